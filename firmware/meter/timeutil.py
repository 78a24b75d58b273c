"""Calendar arithmetic in integers (no dependence on a port's epoch or time.gmtime).

Epoch: 1970-01-01T00:00:00 UTC. Algorithm: days <-> civil date after H. Hinnant,
"chrono-Compatible Low-Level Date Algorithms". Weekday: 1 = Monday .. 7 = Sunday (ISO 8601,
as COSEM date-time uses it, IEC 62056-6-2 §4.1.6.1).
"""


from protocol.civil import days_from_civil, civil_from_days, weekday  # noqa: F401 (re-exported)


def split(epoch):
    """epoch seconds -> (year, month, day, weekday, hour, minute, second)."""
    days = epoch // 86400
    sec = epoch - days * 86400
    y, m, d = civil_from_days(days)
    return (y, m, d, weekday(days), sec // 3600, (sec // 60) % 60, sec % 60)


def join(y, m, d, hh=0, mm=0, ss=0):
    """(year, month, day, hour, minute, second) -> epoch seconds."""
    return days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss


def iso(epoch):
    y, m, d, _, hh, mi, ss = split(epoch)
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (y, m, d, hh, mi, ss)
