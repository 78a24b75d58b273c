"""Calendar arithmetic in integers (no dependence on a port's epoch or time.gmtime).

Epoch: 1970-01-01T00:00:00 UTC. Algorithm: days <-> civil date after H. Hinnant,
"chrono-Compatible Low-Level Date Algorithms". Weekday: 1 = Monday .. 7 = Sunday (ISO 8601,
as COSEM date-time uses it, IEC 62056-6-2 §4.1.6.1).
"""


def days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return (y + (m <= 2), m, d)


def weekday(days):
    """ISO weekday of a day number (1970-01-01 was a Thursday = 4)."""
    return (days + 3) % 7 + 1


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
