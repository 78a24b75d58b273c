"""Recent top-ups per meter, so that ``meterctl credit add`` refuses to repeat one by mistake.

The rule (README "Exit codes"): a top-up is a *retry* when the same meter (its logical device
name, else the port) got a top-up of the same amount within ``RETRY_WINDOW_S`` seconds whose
outcome was applied, unknown or never finished (a killed meterctl). A retry is refused
(``RetryRefused``) unless forced, except that an unknown/unfinished one is first settled with
the meter's evidence read now: if the recharge total (0.0.94.96.23.255) is still what it was
before that top-up, it was not applied and the new one goes ahead; if it moved by exactly its
amount, it was applied (and the record says so from then on). A total that has not moved by the
prior top-up's amount since (below it: another meter of the same name, e.g. a new emulator) is
no retry.

Amounts are integers in the meter's credit unit (``host_tools.creditunit``: paise, or 0.1 kWh;
"paise" is the amount's key either way, "unit" is stored for a unit other than paise and only a
top-up in the same unit is a repeat).

Storage: ``<state>/recharges.json`` ``{meter: [{"id", "time", "paise", "outcome", "total"}]}``
(entries older than a day dropped, at most 50 per meter), read-modify-written under ``flock``
on ``recharges.json.lock`` so parallel meterctls do not lose entries. A state directory that
cannot be written keeps no record (and refuses nothing).

Public API: ``Recharges(path=None, window=RETRY_WINDOW_S, clock=time.time)`` with
``claim(meter, paise, evidence, force=False, unit=PAISE) -> entry id or None`` and ``finish(meter, id,
outcome)``; ``RetryRefused``; ``RETRY_WINDOW_S``; ``PENDING``.
"""

import contextlib
import fcntl
import json
import os
import time

from host_tools.creditunit import PAISE, amount_raw
from host_tools.portlock import state_dir

__all__ = ["Recharges", "RetryRefused", "RETRY_WINDOW_S", "PENDING"]

RETRY_WINDOW_S = 600
PENDING = "pending"
_KEEP_S = 86400
_KEEP_N = 50


class RetryRefused(Exception):
    """A top-up that repeats a recent applied (or unsettled) one; ``str()`` is one line."""


class Recharges:
    """The per-meter record of recent top-ups (module docstring)."""

    def __init__(self, path=None, window=RETRY_WINDOW_S, clock=time.time):
        self.path = path or os.path.join(state_dir(), "recharges.json")
        self.window = float(window)
        self.clock = clock

    @contextlib.contextmanager
    def _locked(self):
        """Yields the record (dict) under the lock, saved afterwards; None if unusable."""
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                with open(self.path, encoding="utf-8") as f:
                    data = json.load(f)
                if not isinstance(data, dict):
                    data = {}
            except (OSError, ValueError):
                data = {}
            yield data
            tmp = self.path + ".tmp"
            try:
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=1, sort_keys=True)
                os.replace(tmp, self.path)
            except OSError:
                pass
        finally:
            os.close(fd)

    def claim(self, meter, paise, evidence, force=False, unit=PAISE, port=None):
        """Check that a top-up of ``paise`` to ``meter`` is not a retry (see module rule) and
        record it as pending -> its entry id (None without a usable state directory).
        ``evidence`` is the meter's evidence read now (``total_recharged`` used). Raises
        RetryRefused for a retry unless ``force``; ``port`` (where it is sent) is kept and named."""
        now = self.clock()
        total = evidence.get("total_recharged")
        refusal = None
        with self._locked() as data:
            if data is None:
                return None
            entries = [e for e in data.get(meter, []) if now - e.get("time", 0) < _KEEP_S]
            prior = None
            for e in entries:
                if (e.get("paise") == paise and e.get("unit", PAISE) == unit
                        and now - e.get("time", 0) < self.window and e.get("outcome") != "not applied"):
                    prior = e
            if prior is not None:
                self._settle(prior, total)
                if prior["outcome"] != "not applied" and not force and not _elsewhere(prior, total):
                    refusal = _refusal(meter, prior, now, self.window, port)
            data[meter] = entries[-_KEEP_N:]
            if refusal is None:
                entry = {"id": "%d-%d" % (int(now * 1000), os.getpid()), "time": now,
                         "paise": paise, "outcome": PENDING, "total": total}
                if port is not None:
                    entry["port"] = port
                if unit != PAISE:
                    entry["unit"] = unit
                data[meter] = (entries + [entry])[-_KEEP_N:]
        if refusal is not None:
            raise RetryRefused(refusal)
        return entry["id"]

    @staticmethod
    def _settle(prior, total):
        """An unknown/pending prior top-up, settled by the recharge total read now."""
        if prior.get("outcome") == "applied" or total is None or prior.get("total") is None:
            return
        moved = (total - prior["total"]) & 0xFFFFFFFF
        if moved == 0:
            prior["outcome"] = "not applied"
        elif moved == prior.get("paise"):
            prior["outcome"] = "applied"

    def finish(self, meter, entry_id, outcome):
        """Record the outcome ("applied", "not applied", "unknown") of entry ``entry_id``."""
        if entry_id is None:
            return
        with self._locked() as data:
            for e in (data or {}).get(meter, []):
                if e.get("id") == entry_id:
                    e["outcome"] = outcome


def _elsewhere(prior, total):
    """The meter's recharge total has not moved by the prior top-up since it was read before it:
    that top-up did not go to this meter (a meter of the same name, e.g. a new emulator, or a meter
    replaced): no retry. Unknown totals: it may have (the rule applies)."""
    if total is None or prior.get("total") is None:
        return False
    moved = (total - prior["total"]) & 0xFFFFFFFF
    return not prior.get("paise", 0) <= moved < 0x80000000


def _refusal(meter, prior, now, window, port=None):
    ago = int(now - prior["time"])
    if prior["outcome"] == "applied":
        how = "was applied"
    elif prior["outcome"] == PENDING:
        how = "never finished (its meterctl was stopped), and the meter's recharge total has moved since"
    else:
        how = "has an unknown outcome, and the meter's recharge total has moved since"
    then = " on %s" % prior["port"] if prior.get("port") else ""
    here = " on %s" % port if port else ""
    return ("a top-up of %s to meter %s%s %s %d s ago; not repeating it%s within %d s: check the "
            "credit, then add --force to top up again (also when this port is another meter with the "
            "same serial, e.g. a second meterctl emulate)"
            % (amount_raw(prior["paise"], prior.get("unit", PAISE)), meter, then, how, ago, here, window))
