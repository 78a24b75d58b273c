"""Read-outs of a ``meter.tokens.TokenAcceptor``'s state for the tests (CPython and MicroPython):
the meter never asks for them, so the device class keeps no method for them (each method is heap
at every token entry on a board: docs/MEMORY.md)."""


def algorithm(a):
    """'ea07' or 'ea11'."""
    return "ea07" if a._alg == 0 else "ea11"


def key_info(a):
    """{'algorithm', 'krn', 'kt', 'ti', 'ken', 'base_date'}: never the key itself."""
    return {"algorithm": algorithm(a), "krn": a.krn, "kt": a.kt, "ti": a.ti, "ken": a.ken,
            "base_date": a.base_date}


def tids(a):
    """Stored TIDs, ascending (list)."""
    return sorted(a._tid_at(i) for i in range(a._n))


def lockout_remaining(a, now_s):
    """Seconds of keypad lockout left (0 if none)."""
    r = a._lock_until - now_s
    return r if r > 0 else 0
