"""Checked copies: the device keeps private ``_X = const(n)`` copies of shared numbers (they cost no
heap, docs/MEMORY.md rule 2); this test makes every copy a checked one (AST only, no import).

Canonical values: the public integers of the host halves ``protocol/*_client.py`` (APDU, A-XDR,
HDLC codes), the public integers of every device module (e.g. ``meter.relay.READY``), and the
event catalogue ``firmware/meter/events.py`` (``_EV_*``, read by host_tools.objects.events).
A private copy matches a canonical name by name (``_K_I`` -> ``K_I``), by the A-XDR tag prefix
(``_T_ENUM`` -> ``ENUM``) or through ``ALIASES`` for copies named after their use.
"""
import ast

from host_tools import objects
from host_tools.firmware_src import ROOT

DEVICE = sorted(p for d in ("firmware", "protocol") for p in (ROOT / d).rglob("*.py"))
CLIENT = sorted((ROOT / "protocol").glob("*_client.py"))
EVENTS = ROOT / "firmware" / "meter" / "events.py"

# copies named after their use -> canonical public name
ALIASES = {
    "_OK": "DAR_SUCCESS", "_HW_FAULT": "DAR_HARDWARE_FAULT", "_TEMP_FAIL": "DAR_TEMPORARY_FAILURE",
    "_DENIED": "DAR_READ_WRITE_DENIED", "_UNDEFINED": "DAR_OBJECT_UNDEFINED",
    "_INCONSISTENT": "DAR_OBJECT_CLASS_INCONSISTENT", "_UNAVAILABLE": "DAR_OBJECT_UNAVAILABLE",
    "_TYPE_UNMATCHED": "DAR_TYPE_UNMATCHED", "_OTHER": "DAR_OTHER_REASON",
    "_CONF_SELECTIVE": "CONF_SELECTIVE_ACCESS",
}
# private names that mean different things in different modules (not copies of each other)
UNRELATED = {"_CHUNK", "_NONE", "_REC_VERSION", "_VERSION", "_HDR", "_ROW"}


def _rel(p):
    return p.relative_to(ROOT).as_posix()


def int_consts(path):
    """{name: (value, line)} of the module-level integer constants (``X = n`` or ``X = const(n)``;
    ``1 << k`` and other constant expressions are evaluated)."""
    out = {}
    for n in ast.parse(path.read_text()).body:
        if not (isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)):
            continue
        v = n.value
        if isinstance(v, ast.Call) and getattr(v.func, "id", None) == "const" and len(v.args) == 1:
            v = v.args[0]
        try:
            val = eval(compile(ast.Expression(v), "<const>", "eval"), {"__builtins__": {}})  # noqa: S307
        except Exception:
            continue
        if isinstance(val, int) and not isinstance(val, bool):
            out[n.targets[0].id] = (val, n.lineno)
    return out


def canonical():
    """{public name: [(value, where)]} of every canonical integer."""
    out = {}
    for p in CLIENT + [p for p in DEVICE if p not in CLIENT]:
        for name, (v, line) in int_consts(p).items():
            if not name.startswith("_"):
                out.setdefault(name, []).append((v, "%s:%d" % (_rel(p), line)))
    for code, name, _text, _detail in objects.events():
        out.setdefault(name, []).append((code, _rel(EVENTS)))
    return out


def _candidates(name):
    yield ALIASES.get(name)
    yield name[1:]
    if name.startswith("_T_"):
        yield name[3:]


def test_every_private_copy_equals_its_canonical_value():
    canon = canonical()
    bad, checked = [], 0
    for p in DEVICE:
        if p == EVENTS:
            continue
        for name, (v, line) in int_consts(p).items():
            if not name.startswith("_"):
                continue
            for cand in _candidates(name):
                if cand and cand in canon:
                    checked += 1
                    for cv, where in canon[cand]:
                        if cv != v:
                            bad.append("%s:%d %s = %d, but %s = %d at %s" % (
                                _rel(p), line, name, v, cand, cv, where))
                    break
    assert not bad, "private copies differ from their canonical value:\n" + "\n".join(bad)
    assert checked > 100, "the checker found only %d copies: is it looking in the right place?" % checked


def test_same_private_name_means_the_same_value_in_every_device_module():
    seen, bad = {}, []
    for p in DEVICE:
        for name, (v, line) in int_consts(p).items():
            if name.startswith("_") and name not in UNRELATED:
                seen.setdefault(name, []).append((v, "%s:%d" % (_rel(p), line)))
    for name, where in sorted(seen.items()):
        if len({v for v, _ in where}) > 1:
            bad.append("%s: %s" % (name, ", ".join("%d at %s" % w for w in where)))
    assert not bad, "one private name, different values (rename one or list it in UNRELATED):\n" + "\n".join(bad)


def _event_calls(tree):
    """(line, first argument node) of every ``x.event(...)``/``event(...)`` and ``persist((code, ...))``."""
    for n in ast.walk(tree):
        if not isinstance(n, ast.Call) or not n.args:
            continue
        fname = n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", None)
        if fname == "event":
            yield n.lineno, n.args[0]
        elif fname == "_log" and len(n.args) > 1:          # _log(epoch, code, detail)
            yield n.lineno, n.args[1]
        elif fname == "persist" and isinstance(n.args[0], ast.Tuple) and n.args[0].elts:
            yield n.lineno, n.args[0].elts[0]


def test_no_bare_integer_event_codes():
    bad = []
    for p in DEVICE:
        for line, arg in _event_calls(ast.parse(p.read_text())):
            if isinstance(arg, ast.Constant) and isinstance(arg.value, int):
                bad.append("%s:%d event code %d: use its _EV_* const (meter/events.py)" % (_rel(p), line, arg.value))
    assert not bad, "\n".join(bad)


def test_events_py_has_every_code_the_firmware_logs_with_one_text():
    catalogue = {code: text for code, _n, text, _d in objects.events()}   # raises on a repeat
    names = {name: code for code, name, _t, _d in objects.events()}
    missing = []
    for p in DEVICE:
        if p == EVENTS:
            continue
        consts = int_consts(p)
        for line, arg in _event_calls(ast.parse(p.read_text())):
            if isinstance(arg, ast.Name) and arg.id.startswith("_EV_"):
                code = consts[arg.id][0]
                if code not in catalogue or names.get(arg.id[1:]) != code:
                    missing.append("%s:%d %s = %d" % (_rel(p), line, arg.id, code))
    assert not missing, "events logged but not in meter/events.py:\n" + "\n".join(missing)
    assert len(set(catalogue.values())) == len(catalogue), "two codes share one text"
    for code in (47, 48, 55, 56, 57, 64):
        assert code in catalogue


def test_event_names_are_the_host_table():
    names = objects.event_names()
    assert names == {code: text for code, _n, text, _d in objects.events()}
    assert names[30] == "LLS authentication failure" and names[90] == "DLMS error"


def test_test_copies_of_event_codes_match():
    """Tests that run on MicroPython cannot read private consts: their EV_* copies are checked here."""
    names = {name: code for code, name, _t, _d in objects.events()}
    bad = []
    for p in sorted((ROOT / "tests").rglob("*.py")):
        for n in ast.walk(ast.parse(p.read_text())):
            if (isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
                    and n.targets[0].id in names and isinstance(n.value, ast.Constant)
                    and n.value.value != names[n.targets[0].id]):
                bad.append("%s:%d %s = %r, events.py says %d" % (
                    _rel(p), n.lineno, n.targets[0].id, n.value.value, names[n.targets[0].id]))
    assert not bad, "\n".join(bad)

