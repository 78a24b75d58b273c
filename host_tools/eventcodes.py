"""The firmware's event catalogue on the host: firmware/meter/events.py is the one list of event
codes, each ``_EV_X = const(code)  # text [detail]`` line carrying its one text (the device keeps
the codes as private consts: they cost no heap). ``events()`` reads it, ``event_names()`` is the
``{code: text}`` the CLI shows; tests/host/test_checked_copies.py checks every copy against it."""
import ast
import re

from host_tools import firmware_src

_EV_LINE = re.compile(r"^(_?EV_[A-Z0-9_]+)\s*=\s*const\((\d+)\)\s*#\s*(.*?)\s*$")


def events():
    """The event catalogue of firmware/meter/events.py: list of (code, name, text, detail), in
    source order. Each ``EV_*``/``_EV_*`` constant line carries its one text as a comment,
    ``# text [detail]``. ValueError if a code line has no text or a code repeats."""
    out, seen = [], set()
    src = (firmware_src.FIRMWARE_DIR / "meter" / "events.py").read_text()
    for n in ast.parse(src).body:
        if (isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
                and n.targets[0].id.lstrip("_").startswith("EV_")):
            line = src.splitlines()[n.lineno - 1]
            m = _EV_LINE.match(line)
            if not m or not m.group(3):
                raise ValueError("events.py:%d: event code without its text: %s" % (n.lineno, line))
            text, _, detail = m.group(3).partition(" [")
            code = int(m.group(2))
            if code in seen:
                raise ValueError("events.py:%d: code %d defined twice" % (n.lineno, code))
            seen.add(code)
            out.append((code, m.group(1).lstrip("_"), text, detail.rstrip("]")))
    return out


def event_names():
    """{event code: text} of every event the firmware logs (meter/events.py)."""
    return {code: text for code, _, text, _ in events()}
