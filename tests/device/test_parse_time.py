"""COSEM date-time from a client (meter.cosem_values.parse_time, the clock SET and range
selectors) on CPython and MicroPython: what IEC 62056-6-2 §4.1.6.1 does not allow is not a time
(30 February set the clock to 2 March and billed two months of fixed charges; a deviation of
0x7FFF moved it 22 days), what real clients send (day of week, deviation, 0x8000) still is."""
from meter import cosem_values as V


class Meter:
    tz_minutes = 330


def dt(y, mo, d, wd=0xFF, hh=0, mi=0, ss=0, hs=0, dev=-330):
    dev &= 0xFFFF
    return bytes((y >> 8, y & 0xFF, mo, d, wd, hh, mi, ss, hs, dev >> 8, dev & 0xFF, 0))


def t(*a, **kw):
    return V.parse_time(Meter(), dt(*a, **kw))


def test_the_repro_30_february_is_refused():
    assert V.parse_time(Meter(), bytes.fromhex("07EA021EFF00000000FEB600")) is None


def test_days_within_the_month_leap_years_included():
    for y, mo, last in ((2026, 2, 28), (2028, 2, 29), (2000, 2, 29), (2100, 2, 28), (2026, 4, 30),
                        (2026, 12, 31), (2026, 1, 31), (2026, 6, 30)):
        assert t(y, mo, last) is not None, (y, mo, last)
        assert t(y, mo, last + 1) is None, (y, mo, last + 1)


def test_deviation_range_and_not_specified():
    base = t(2026, 5, 17, dev=0)
    assert base == 1778976000                                   # 2026-05-17T00:00:00Z
    assert t(2026, 5, 17, dev=-330) == base - 330 * 60          # IST (tz 330)
    assert t(2026, 5, 17, dev=-840) == base - 840 * 60          # UTC+14
    assert t(2026, 5, 17, dev=840) == base + 840 * 60
    assert t(2026, 5, 17, dev=-0x8000) == base - 330 * 60       # 0x8000: the meter's own zone
    for bad in (0x7FFF, 841, -841, 1440, -0x7FFF):
        assert t(2026, 5, 17, dev=bad) is None, bad


def test_day_of_week_matches_the_date_or_is_not_specified():
    assert t(2026, 5, 17, wd=7) is not None                     # a Sunday (gurux, dlms-cosem)
    assert t(2026, 5, 17, wd=0xFF) is not None
    for bad in (1, 6, 0, 8, 0xFE):
        assert t(2026, 5, 17, wd=bad) is None, bad


def test_hundredths_and_the_other_fields():
    assert t(2026, 5, 17, hs=99) is not None and t(2026, 5, 17, hs=0xFF) is not None
    assert t(2026, 5, 17, hs=100) is None
    assert t(2026, 13, 1) is None and t(2026, 5, 17, hh=25) is None and t(2026, 5, 0) is None
    assert V.parse_time(Meter(), b"\xff" * 12) is None
    assert t(2026, 5, 17, 7, 23, 59, 59) == 1778976000 + 86399 - 330 * 60
