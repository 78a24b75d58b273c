"""Tariff engine (meter.tariff) on both runtimes: slabs, TOD, fixed charge, duty, rounding, state."""
from meter.tariff import ConfigError, billing_start
from meter.profile import tariff as Tariff   # validates the section, builds the Tariff
from meter import timeutil

IST = 19800  # +05:30


def utc(y, m, d, hh=0, mi=0):
    """Epoch of a *local* (IST) wall-clock time."""
    return timeutil.join(y, m, d, hh, mi) - IST


SLABS = [[100, 350], [150, 400], [300, 550], [0, 600]]


def raises(fn, field):
    try:
        fn()
    except ConfigError as e:
        assert e.field == field, (e.field, field)
        return e
    assert False, "no ConfigError for %s" % field


def test_flat_rate_floor_and_carry_any_split():
    a = Tariff({"rate": 777})
    b = Tariff({"rate": 777})
    t0 = utc(2026, 3, 2, 9)
    pa = sum(a.charge(t0 + i, t0 + i + 1, 1, IST) for i in range(1000))
    pb = b.charge(t0, t0 + 1000, 1000, IST)
    assert pa == pb == 777            # 1000 Wh * 777 paise/kWh
    c = Tariff({"rate": 777})
    assert c.charge(t0, t0 + 3, 3, IST) == 2     # 2.331 paise -> 2, 331000 micro-paise carried
    assert c.e_rem == 331000
    assert c.charge(t0 + 3, t0 + 4, 1, IST) == 1  # 0.331 + 0.777 = 1.108 -> 1
    assert c.e_rem == 108000


def test_telescopic_slabs_in_one_month():
    t = Tariff({"slabs": SLABS})
    t0 = utc(2026, 3, 1, 0)
    # 320 kWh over ten days in one interval: 100 @ 3.50 + 50 @ 4.00 + 150 @ 5.50 + 20 @ 6.00
    p = t.charge(t0, t0 + 10 * 86400, 320000, IST)
    assert p == 100 * 350 + 50 * 400 + 150 * 550 + 20 * 600 == 149500
    assert t.m_wh == 320000 and t.m_energy == 149500
    # the same energy in uneven pieces gives the same paise
    u = Tariff({"slabs": SLABS})
    pieces = [99999, 2, 49999, 1, 170000 - 2]
    q = 0
    tt = t0
    for w in pieces:
        q += u.charge(tt, tt + 3600, w, IST)
        tt += 3600
    assert sum(pieces) == 320000 - 1
    q += u.charge(tt, tt + 3600, 1, IST)
    assert q == 149500


def test_slab_counter_resets_at_billing_date():
    t = Tariff({"slabs": SLABS, "billing_day": 5})
    # local 2026-03-04 12:00 -> 03-05 12:00 (24 h, billing date 00:00 in the middle): 2400 Wh
    p = t.charge(utc(2026, 3, 4, 12), utc(2026, 3, 5, 12), 2400, IST)
    assert p == 2400 * 350 // 1000
    assert len(t.bills) == 1
    start, wh, energy, fixed, duty = t.bills[0]
    assert start == timeutil.days_from_civil(2026, 2, 5) and wh == 1200 and energy == 420
    assert t.m_wh == 1200 and t.cyc == timeutil.days_from_civil(2026, 3, 5)
    # 150 kWh in month 1 pushes the next Wh into slab 3; after the billing date slab 1 again
    t2 = Tariff({"slabs": SLABS, "billing_day": 5})
    t2.charge(utc(2026, 3, 10), utc(2026, 3, 20), 150000, IST)
    assert t2.charge(utc(2026, 3, 20), utc(2026, 3, 20, 1), 1000, IST) == 550
    assert t2.charge(utc(2026, 4, 5), utc(2026, 4, 5, 1), 1000, IST) == 350


def test_tod_window_split_inside_interval():
    cfg = {"rate": 500, "tod": [[1080, 1320, 100], [600, 960, -200]]}  # 18-22 +10 %, 10-16 -20 %
    t = Tariff(cfg)
    # 17:00-19:00 local, 2000 Wh at constant power: 1000 Wh normal + 1000 Wh at +10 %
    assert t.charge(utc(2026, 3, 2, 17), utc(2026, 3, 2, 19), 2000, IST) == 500 + 550
    # 09:00-11:00: 1000 Wh normal + 1000 Wh at -20 %
    assert t.charge(utc(2026, 3, 2, 9), utc(2026, 3, 2, 11), 2000, IST) == 500 + 400
    assert t.adj_at(1079) == 0 and t.adj_at(1080) == 100 and t.adj_at(1319) == 100 and t.adj_at(1320) == 0


def test_tod_window_wrapping_midnight():
    t = Tariff({"rate": 1000, "tod": [[1320, 360, -500]]})   # 22:00-06:00 half price
    assert t.tod == ((0, 360, -500), (1320, 1440, -500))
    # 21:00-23:00 local: 1000 Wh at 1000, 1000 Wh at 500
    assert t.charge(utc(2026, 3, 2, 21), utc(2026, 3, 2, 23), 2000, IST) == 1500


def test_constant_power_any_tick_size_same_paise():
    """3600 W = 1 Wh/s: whatever the tick sizes, every boundary falls on a whole Wh."""
    cfg = {"slabs": [[2, 450], [0, 650]], "tod": [[1080, 1320, 150], [1320, 1440, -100]],
           "fixed_paise_kw_month": 11000, "sanctioned_w": 2000, "duty_pm": 50, "billing_day": 3}
    start = utc(2026, 3, 2, 16)
    end = start + 2 * 86400 + 1234
    totals = []
    for ticks in ((end - start,), (7, 3600, 1, 86400, 13), (997,), (5000, 1)):
        t = Tariff(cfg)
        p = 0
        x = start
        i = 0
        while x < end:
            y = min(end, x + ticks[i % len(ticks)])
            p += t.charge(x, y, y - x, IST)
            x = y
            i += 1
        totals.append((p, t.m_energy, t.m_fixed, t.m_duty, t.bills))
    assert totals[0][0] > 0
    for tot in totals[1:]:
        assert tot == totals[0], (tot, totals[0])


def test_fixed_charge_per_day_sums_to_month():
    t = Tariff({"rate": 0, "fixed_paise_kw_month": 11000, "sanctioned_w": 2000})
    assert t.fixed_month == 22000
    jan1 = utc(2026, 1, 1)
    first = t.charge(jan1, jan1, 0, IST)       # commissioning: day 1 charged at once
    assert first == 22000 // 31 == 709
    p = first
    day_charges = [first]
    for d in range(1, 31):
        c = t.charge(jan1 + (d - 1) * 86400 + 3600, jan1 + d * 86400 + 3600, 0, IST)
        day_charges.append(c)
        p += c
    assert p == 22000 and t.m_fixed == 22000
    assert set(day_charges) == {709, 710}
    # Feb 1 opens a new billing month: January's bill shows the full fixed charge
    t.charge(jan1 + 31 * 86400 - 60, jan1 + 31 * 86400, 0, IST)
    assert t.bills[-1][3] == 22000 and t.m_fixed == 22000 * 1 // 28


def test_commissioning_mid_month():
    t = Tariff({"rate": 0, "fixed_paise_kw_month": 3000, "sanctioned_w": 1000})
    assert t.charge(utc(2026, 2, 27, 15), utc(2026, 2, 27, 15), 0, IST) == 3000 * 27 // 28 - 3000 * 26 // 28


def test_duty_on_energy_and_fixed():
    t = Tariff({"rate": 613, "fixed_paise_kw_month": 11000, "sanctioned_w": 1500, "duty_pm": 50})
    t0 = utc(2026, 4, 1)
    total = 0
    x = t0
    for i in range(200):
        total += t.charge(x, x + 7200, 97 + i % 5, IST)
        x += 7200
    assert total == t.m_energy + t.m_fixed + t.m_duty
    assert t.m_duty == (t.m_energy + t.m_fixed) * 50 // 1000
    wh = sum(97 + i % 5 for i in range(200))
    assert t.m_energy == wh * 613 // 1000


def test_zero_length_interval_charges_at_its_instant():
    t = Tariff({"rate": 1000, "tod": [[1080, 1320, 100]]})
    assert t.charge(utc(2026, 3, 2, 18), utc(2026, 3, 2, 18), 1000, IST) == 1100
    assert t.charge(utc(2026, 3, 2, 19), utc(2026, 3, 2, 17), 1000, IST) == 1000   # clock set back


def test_cold_hot_restore_rebuilds_month_totals():
    cfg = {"slabs": SLABS, "fixed_paise_kw_month": 11000, "sanctioned_w": 2000, "duty_pm": 50,
           "tod": [[1080, 1320, 100]]}
    t = Tariff(cfg)
    credit = 500000
    wh = 0
    x = utc(2026, 5, 20, 7)
    for i in range(300):
        w = (i * 37) % 900
        credit -= t.charge(x, x + 3600, w, IST)
        wh += w
        x += 3600
    cold = t.cold(credit, wh)
    u = Tariff(cfg)
    u.restore(cold, credit, t.hot_rem(), wh)
    for k in ("e_rem", "day", "cyc", "cyc_n", "m_wh", "m_energy", "m_fixed", "m_duty"):
        assert getattr(u, k) == getattr(t, k), k
    assert u.seg[0] == t.seg[0]         # the duty carried (milli-paise)
    # charging on from the restored copy gives the same paise as the original
    assert u.charge(x, x + 86400, 5000, IST) == t.charge(x, x + 86400, 5000, IST)


def test_billing_start():
    d = timeutil.days_from_civil
    assert billing_start(d(2026, 3, 4), 5) == d(2026, 2, 5)
    assert billing_start(d(2026, 3, 5), 5) == d(2026, 3, 5)
    assert billing_start(d(2026, 1, 2), 10) == d(2025, 12, 10)


def test_bad_configs_name_the_field():
    raises(lambda: Tariff({"slabs": [[100, 350], [50, 400], [0, 500]]}), "tariff.slabs[1]")
    raises(lambda: Tariff({"slabs": [[100, 350]]}), "tariff.slabs")
    raises(lambda: Tariff({"slabs": [[100, 350], [0, 99999]]}), "tariff.slabs[1]")
    raises(lambda: Tariff({"slabs": [[100, "x"], [0, 1]]}), "tariff.slabs[0]")
    raises(lambda: Tariff({"tod": [[600, 700, 10], [650, 800, 10]]}), "tariff.tod")
    raises(lambda: Tariff({"tod": [[600, 600, 10]]}), "tariff.tod[0]")
    raises(lambda: Tariff({"duty_pm": 1001}), "tariff.duty_pm")
    raises(lambda: Tariff({"billing_day": 31}), "tariff.billing_day")
    raises(lambda: Tariff({"rate": True}), "tariff.rate")
    # a typo was silently ignored: no fixed charge billed (new-user pass, session 13)
    raises(lambda: Tariff({"fixed_paise_kw_mnth": 100}), "tariff.fixed_paise_kw_mnth")
    raises(lambda: Tariff({"rate slabs": 100}), "tariff.rate slabs")
    e = raises(lambda: Tariff({"rate": -1}), "tariff.rate")
    assert "0..5000" in e.reason


def test_set_rate_token_switches_to_flat_keeping_counters():
    t = Tariff({"slabs": SLABS})
    t0 = utc(2026, 3, 2, 9)
    t.charge(t0, t0 + 3600, 200000, IST)
    wh = t.m_wh
    t.set_rate(1234)
    assert t.charge(t0 + 3600, t0 + 7200, 1000, IST) == 1234 and t.m_wh == wh + 1000


def test_a_profile_applied_over_a_configuration_builds_the_engines_of_the_result():
    # the meter (meter.settings.apply_config) builds one pair of engines: the profile's over
    # config.json, which it updates (without the profile's about text)
    from meter.profile import check_profile
    cfg = {"serial": "PPM0000002", "tariff": {"rate": 500}, "policy": {"ec_paise": 100}}
    t, p = check_profile({"name": "x", "about": "text", "tariff": {"rate": 900}}, cfg)
    assert cfg == {"serial": "PPM0000002", "name": "x", "tariff": {"rate": 900}, "policy": {"ec_paise": 100}}
    t0 = utc(2026, 3, 2, 9)
    assert t.charge(t0, t0 + 3600, 1000, IST) == 900 and p.ec_paise == 100
