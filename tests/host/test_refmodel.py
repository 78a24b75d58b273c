"""The firmware's integer tariff/policy against the exact reference model (refmodel),
plus property tests: tick size does not change the paise; credit never drifts from the reference."""
import datetime
import json
import pathlib

from hypothesis import given, settings, strategies as st, HealthCheck

from refmodel import RefMeter, RefTariff, RefCalendar
from meter.account import Account
from meter.profile import policy as Policy   # validates, builds (Policy takes validated parameters)
from meter.relay import DisconnectControl, CONNECTED
from meter.profile import tariff as Tariff   # validates, builds

ROOT = pathlib.Path(__file__).resolve().parents[2]
IST = 19800
T0 = 1767205800            # 2026-01-01 00:00 IST

UPPCL = json.loads((ROOT / "profiles" / "uppcl_like.json").read_text())
STS = json.loads((ROOT / "profiles" / "sts_keypad.json").read_text())

TARIFFS = [
    UPPCL["tariff"],
    {"rate": 777},
    {"slabs": [[1, 300], [2, 450], [0, 999]], "tod": [[1320, 300, -250], [1080, 1260, 200]],
     "fixed_paise_kw_month": 12345, "sanctioned_w": 3300, "duty_pm": 87, "billing_day": 17},
]


class FwMeter:
    """The firmware's pieces wired as meter.app wires them (account, tariff, policy, IC 70)."""

    def __init__(self, profile, credit=0, start=T0):
        self.account = Account(650, credit, profile.get("payment_mode", 2))
        self.tariff = Tariff(profile.get("tariff") or {})
        self.policy = Policy(profile)
        self.dc = DisconnectControl(profile.get("control_mode", 5))
        self.metro = None
        self.tz_minutes = profile.get("tz_minutes", 330)
        self.events = []
        self.t_prev = start
        self.charge(start, 0)

    def event(self, code, text, detail=None):
        self.events.append((code, text))

    def charge(self, now, wh):
        self.account.meter(wh, self.tariff.charge(self.t_prev, now, wh, self.tz_minutes * 60))
        self.t_prev = now

    def evaluate(self, now):
        self.policy.evaluate(self, now)
        return self.dc.control_state == CONNECTED


# --- hand-checked figures -------------------------------------------------------------------------

def test_reference_uppcl_month_by_hand():
    """320 kWh in January under the UPPCL-like profile, figures worked out by hand."""
    tar = dict(UPPCL["tariff"], tod=[])
    ref = RefTariff(tar)
    ref.clock(T0)
    ref.consume(T0 + 3600, T0 + 30 * 86400 + 3600, 320000)
    ref.clock(T0 + 31 * 86400)           # 1 Feb 00:00 IST closes January
    jan = ref.month_log[0]
    # slabs [[100, 550], [150, 550], [300, 600], [0, 650]]: 150*5.50 + 150*6.00 + 20*6.50
    assert jan["energy"] == 150 * 550 + 150 * 600 + 20 * 650 == 185500
    assert jan["fixed"] == tar["fixed_paise_kw_month"] * tar["sanctioned_w"] // 1000
    assert jan["duty"] == (jan["energy"] + jan["fixed"]) * tar["duty_pm"] // 1000
    fw = Tariff(tar)
    fw.charge(T0, T0, 0, IST)
    paid = fw.charge(T0 + 3600, T0 + 30 * 86400 + 3600, 320000, IST)
    paid += fw.charge(T0 + 30 * 86400 + 3600, T0 + 31 * 86400, 0, IST)
    assert fw.bills[0][2:] == (jan["energy"], jan["fixed"], jan["duty"])


def test_reference_calendar_matches_policy_on_a_year_of_hours():
    cal = RefCalendar(UPPCL["policy"])
    pol = Policy(UPPCL)
    for h in range(0, 366 * 24):
        t = T0 + h * 3600 + 1800
        assert cal.allowed(t) == pol.allowed(t, 330), datetime.datetime.fromtimestamp(t, cal.tz)
    # next allowed moment after a Saturday 19:00 (2026-03-21, third Saturday) is Monday 08:00
    sat = int(datetime.datetime(2026, 3, 21, 19, tzinfo=cal.tz).timestamp())
    mon = int(datetime.datetime(2026, 3, 23, 8, tzinfo=cal.tz).timestamp())
    assert cal.next_allowed(sat) == mon


# --- property tests -------------------------------------------------------------------------------

ticks = st.lists(st.integers(min_value=1, max_value=30000), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tar=st.sampled_from(TARIFFS), start=st.integers(0, 400 * 86400), whps=st.integers(1, 3),
       sizes_a=ticks, sizes_b=ticks)
def test_tick_size_does_not_change_the_paise(tar, start, whps, sizes_a, sizes_b):
    """Constant power of whps Wh/s over the same span, cut into two different tick patterns."""
    t0 = T0 + start
    span = min(sum(sizes_a), 3 * 86400)
    results = []
    for sizes in (sizes_a, sizes_b, [span]):
        fw = Tariff(tar)
        paise = fw.charge(t0, t0, 0, IST)
        x = t0
        i = 0
        while x < t0 + span:
            y = min(t0 + span, x + sizes[i % len(sizes)])
            paise += fw.charge(x, y, whps * (y - x), IST)
            x = y
            i += 1
        results.append((paise, fw.m_energy, fw.m_fixed, fw.m_duty, fw.m_wh, fw.bills))
    assert results[0] == results[1] == results[2]
    ref = RefTariff(tar)
    ref.clock(t0)
    ref.consume(t0, t0 + span, whps * span)
    assert results[2][0] == ref.total_paise()


step = st.one_of(
    st.tuples(st.just("use"), st.integers(0, 7 * 86400), st.integers(0, 40000)),
    st.tuples(st.just("top"), st.integers(0, 3 * 86400), st.integers(1, 500000)),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile=st.sampled_from([UPPCL, STS, dict(UPPCL, tariff=TARIFFS[2])]),
       credit=st.integers(-100000, 100000), start=st.integers(0, 365 * 86400),
       steps=st.lists(step, max_size=30))
def test_credit_never_drifts_from_the_reference(profile, credit, start, steps):
    t = T0 + start
    fw = FwMeter(profile, credit, t)
    ref = RefMeter(profile, credit, t)
    assert fw.account.credit == ref.credit
    for kind, dt, amount in steps:
        t1 = t + dt
        if kind == "use":
            fw.charge(t1, amount)
            ref.consume(t, t1, amount)
            ref.clock(t1)
            t = t1
        else:
            fw.charge(t1, 0)
            ref.clock(t1)
            t = t1
            fw.policy.top_up(fw, amount, t)
            ref.top_up(amount, t)
        closed = fw.evaluate(t)
        ref.evaluate(t)
        assert fw.account.credit == ref.credit, (kind, dt, amount)
        assert closed == ref.closed
    if ref.tariff.month is not None:
        m = ref.tariff.month_totals()
        assert (fw.tariff.m_energy, fw.tariff.m_fixed, fw.tariff.m_duty, fw.tariff.m_wh) == \
            (m["energy"], m["fixed"], m["duty"], m["wh"])
    assert [b[2:] for b in fw.tariff.bills] == \
        [(b["energy"], b["fixed"], b["duty"]) for b in ref.tariff.month_log][-len(fw.tariff.bills):] \
        if fw.tariff.bills else True


@settings(max_examples=40, deadline=None)
@given(tar=st.sampled_from(TARIFFS), start=st.integers(0, 365 * 86400),
       parts=st.lists(st.tuples(st.integers(0, 5 * 86400), st.integers(0, 90000)), min_size=1, max_size=20))
def test_arbitrary_intervals_match_reference(tar, start, parts):
    t = T0 + start
    fw = Tariff(tar)
    paid = fw.charge(t, t, 0, IST)
    ref = RefTariff(tar)
    ref.clock(t)
    for dt, wh in parts:
        paid += fw.charge(t, t + dt, wh, IST)
        ref.consume(t, t + dt, wh)
        ref.clock(t + dt)
        t += dt
        assert paid == ref.total_paise()
