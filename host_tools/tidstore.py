"""The vending side's TID memory: every TID handed out once per meter, across processes.

A meter accepts each token identifier (TID, 24-bit minutes since the base date) once and
refuses a token older than every TID it remembers (IEC 62055-41 §6.6, the meter's TID store):
two tokens for one meter with the same TID mean a customer paid for nothing. A TID is a
minute, so two vends in the same minute (or a batch) must step past each other.

Store: one directory per user (``$METERCTL_STATE_DIR``, else ``$XDG_STATE_HOME/meterctl`` or
``~/.local/state/meterctl``), holding per meter ``tids/<meter>.last`` (the last TID handed out,
decimal text, replaced atomically) and ``tids/<meter>.lock`` (an ``fcntl.flock`` lock file that
is never replaced). ``<meter>`` is the first 16 hex digits of SHA-256(decoder key ||
base year): the key itself is never written. Every allocation (one token, or a whole batch's
range) reads, steps and writes under the exclusive lock, so parallel ``meterctl vend`` processes
and ``vend --csv`` batches never hand out one TID twice.

The single ``last_tid.json`` of earlier versions is read once per meter as the starting point.
Where the directory cannot be written (a read-only home) the TIDs are still valid, just not
remembered; where ``fcntl`` does not exist (Windows) the store works without the lock.
Errors: ``StsError("tid")`` when a TID would pass 0xFFFFFF (the base date's rollover).
"""
import contextlib
import hashlib
import json
import os

from protocol import sts
from protocol.sts import StsError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None

__all__ = ["state_dir", "meter_id", "allocate", "note", "last"]


def state_dir():
    """The store's directory (str); see the module docstring."""
    return os.environ.get("METERCTL_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "meterctl")


def meter_id(decoder_key, base_date):
    """16 hex digits naming one meter (decoder key bytes + base year) in the store."""
    return hashlib.sha256(bytes(decoder_key) + b"%d" % int(base_date)).hexdigest()[:16]


def _paths(mid):
    d = os.path.join(state_dir(), "tids")
    return d, os.path.join(d, mid + ".last"), os.path.join(d, mid + ".lock")


def _legacy(mid):
    try:
        with open(os.path.join(state_dir(), "last_tid.json")) as f:
            v = json.load(f).get(mid)
    except (OSError, ValueError, AttributeError):
        return None
    return v if isinstance(v, int) else None


def _read(path, mid):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        return _legacy(mid)
    except (OSError, ValueError):
        return None


def _write(path, value):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % value)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(mid):
    """Yield the .last path with the meter's lock held, or None if the store is not writable."""
    d, last_path, lock_path = _paths(mid)
    try:
        os.makedirs(d, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield None
        return
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield last_path
    finally:
        os.close(fd)          # closing drops the flock


def _update(mid, step):
    """Run ``step(last or None) -> (new_last, result)`` under the lock; store new_last."""
    with _locked(mid) as path:
        if path is None:
            return step(None)[1]
        new_last, result = step(_read(path, mid))
        try:
            _write(path, new_last)
        except OSError:
            pass
        return result


def allocate(decoder_key, base_date, wanted):
    """Reserve one TID per entry of ``wanted`` (list of ints: the TID each token would have by
    its issue time) for this meter, in one locked step. Returns the list of TIDs: strictly
    increasing, each >= its wanted TID and > every TID handed out before for this meter.
    StsError("tid") if the range would pass 0xFFFFFF."""
    wanted = [int(w) for w in wanted]

    mid = meter_id(decoder_key, base_date)

    def step(last):
        if last is not None and last > sts.TID_MAX:
            raise StsError("tid", "the TID store of this meter (%s) holds %d, not a TID (a mistyped --tid an "
                           "earlier meterctl recorded): write the last TID vended for this meter in that file "
                           "(or delete it to start from now's minute)" % (_paths(mid)[1], last))
        prev = -1 if last is None else last
        out = []
        for w in wanted:
            t = w if w > prev else prev + 1
            out.append(t)
            prev = t
        if out and out[-1] > sts.TID_MAX:
            raise StsError("tid", "TID %d is past the rollover of base date %d" % (out[-1], base_date))
        return (prev if out else (last if last is not None else -1)), out

    return _update(mid, step)


def note(decoder_key, base_date, tids):
    """Record TIDs given explicitly (``--tid``, a CSV ``tid`` column) so later allocations step
    past them. Returns the stored last TID. StsError("tid") for a TID outside 0..TID_MAX,
    before anything is stored (a mistyped --tid once made every later vend for the meter fail:
    "past the rollover")."""
    bad = [int(t) for t in tids if not 0 <= int(t) <= sts.TID_MAX]
    if bad:
        raise StsError("tid", "TID %d is outside 0..%d: not recorded" % (bad[0], sts.TID_MAX))
    top = max(int(t) for t in tids) if tids else -1

    def step(last):
        v = top if last is None or top > last else last
        return v, v

    return _update(meter_id(decoder_key, base_date), step)


def last(decoder_key, base_date):
    """The last TID handed out for this meter (int), or None."""
    mid = meter_id(decoder_key, base_date)
    return _read(_paths(mid)[1], mid)
