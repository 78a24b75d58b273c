"""Proleptic Gregorian calendar in integers: the one implementation every layer uses.

Day numbers count from 1970-01-01 (day 0). Algorithms: H. Hinnant, "chrono-Compatible Low-Level
Date Algorithms" (days_from_civil / civil_from_days). No floats, no dependence on a port's time
epoch or ``time.gmtime`` (MicroPython ports differ: some count from 2000). Used by the STS TID
arithmetic (IEC 62055-41 §6.6), COSEM date-time (IEC 62056-6-2 §4.1.6.1), the meter's tariff
calendar and the boards' RTC conversion.
"""


def days_from_civil(y, m, d):
    """(year, month 1-12, day 1-31) -> days since 1970-01-01 (int, may be negative)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    """Days since 1970-01-01 -> (year, month, day)."""
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
    """ISO weekday (1 = Monday .. 7 = Sunday) of a day number; 1970-01-01 was a Thursday."""
    return (days + 3) % 7 + 1
