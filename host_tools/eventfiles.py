"""An emulated meter's event log read from its state directory, with each event's detail.

The firmware records every event with a detail (``meter.events``: the credit added in paise,
the token's TID, the relay's cause, the failed logins a lock-out counted, the metering counter of
a tamper re-base, ...; the catalogue's ``[bracket]`` says which), but its IC 7 buffers serve only
{clock, event code, occurrences} (docs/CONTRACTS.md "Audit trail"): over DLMS the detail is not
readable. On the bench, an emulated meter's rings are files in its state directory
(``<state>/ev/<ring>/eNN``, the directory ``meterctl emulate`` prints): ``read_events`` reads
them with the firmware's own code (``meter.events.EventLog``, ``meter.audit``: loaded with
``host_tools.firmware_src``, so the record format exists once) and never writes. A real board's
rings are on its flash (``/ev``): copy that directory into DIR/ev (mpremote on the board's
REPL, the meter stopped), then read DIR.

What it shows is what is on flash: a repetition being counted in RAM (refusals within their
900 s window, ``Audit.tick``) appears once its window closes.

Public API: ``read_events(state_dir, log="all") -> [dict]`` (oldest first; keys ``seq``,
``epoch``, ``clock`` (ISO, UTC), ``code``, ``event``, ``occurrences``, ``detail``, ``detail_is``);
``LOGS`` (the ``--log`` names); ``detail_text(row)``; ``EventFilesError``.
"""
import datetime
import os
import re

from host_tools import eventcodes
from host_tools.firmware_src import firmware_module

__all__ = ["read_events", "detail_text", "LOGS", "EventFilesError"]

# meter.audit's rings by directory letter (p power, t transaction, o other, k cover, s security,
# c control) for each ``meterctl events --log`` name; tamper is cover + security, as 98.5 serves it
LOGS = {"all": "ptoksc", "power": "p", "transaction": "t", "other": "o", "tamper": "ks", "control": "c"}
_SEGMENT = re.compile(r"^e(\d\d)$")


class EventFilesError(ValueError):
    """A directory that holds no event log (one line saying what to give)."""


def _ev_dir(state_dir):
    for d in (os.path.join(state_dir, "ev"), os.path.join(state_dir, "state", "ev")):
        if os.path.isdir(d):
            return d
    raise EventFilesError("%s holds no event log (no ev/ directory): give the meter's state directory, "
                          "as meterctl emulate prints it ('State directory:')" % state_dir)


def read_events(state_dir, log="all"):
    """The events of ``log`` (a LOGS name) in ``state_dir`` (or its ``state/``), oldest first."""
    events_mod = firmware_module("meter.events")
    audit = firmware_module("meter.audit")
    base = _ev_dir(state_dir)
    rings = []
    for letter in LOGS[log]:
        path = os.path.join(base, letter)
        if not os.path.isdir(path):
            continue
        segs = [int(m.group(1)) for m in map(_SEGMENT.match, os.listdir(path)) if m]
        if segs:       # as many segments as are on disk: a ring not yet wrapped reads the same
            rings.append(events_mod.EventLog(path, max(segs) + 1))
    # the catalogue's bracket up to a colon: 'cause: "remote", "manual", ...' -> "cause"
    names = {code: (text, detail.partition(":")[0]) for code, _n, text, detail in eventcodes.events()}
    out = []
    for seq, epoch, code, detail, count in audit.Audit(rings).records() if rings else ():
        text, detail_is = names.get(code, ("", ""))
        out.append({"seq": seq, "epoch": epoch, "clock": _iso(epoch), "code": code, "event": text,
                    "occurrences": count, "detail": detail, "detail_is": detail_is or None})
    return out


def _iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def detail_text(row):
    """A row's detail for a table: the value and what it is ("2000 paise", "TID 6801601",
    "remote"); an epoch detail as its ISO time; "" without one."""
    d, what = row["detail"], row["detail_is"] or ""
    if d is None:
        return ""
    if "epoch" in what and isinstance(d, int) and d > 0:
        return "%s (%s)" % (_iso(d), what)
    if what in ("paise", "TID"):
        return "%s %s" % (what, d) if what == "TID" else "%s %s" % (d, what)
    return "%s (%s)" % (d, what) if what else str(d)
