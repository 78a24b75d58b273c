"""Disconnect policy (meter.policy) and MPL limiter (meter.limiter) on both runtimes."""
from meter.account import Account
from meter.profile import policy as Policy, limiter as Limiter   # validate and build
from meter.relay import DisconnectControl, CONNECTED, READY, DISCONNECTED
from meter.tariff import ConfigError
from meter import timeutil

IST_MIN = 330
PAYMENT_CREDIT, PAYMENT_PREPAYMENT = 1, 2      # IC 111 payment_mode
CREDIT_ENERGY = 1                              # Account unit: 0.1 kWh
# Policy.ec_state (journaled): emergency credit available, active, used up
EC_AVAILABLE, EC_ACTIVE, EC_USED = 0, 1, 2
# Limiter.step results
NONE, TRIP, RECLOSE, LOCKOUT = 0, 1, 2, 3


class P:
    """Event codes the policy logs (meter event log, docs: meter/events.py)."""
    EV_RELAY_OPEN_CREDIT = 40
    EV_RELAY_CLOSE_CREDIT = 41
    EV_LOW_CREDIT = 45
    EV_EC_ON = 46
    EV_EC_END = 47
    EV_DISCONNECT_DEFERRED = 48
    EV_MPL_TRIP = 55
    EV_MPL_RECLOSE = 56
    EV_MPL_LOCKOUT = 57

UP = {"policy": {"friendly": [1080, 480], "days_off": [7], "off_saturdays": [2],
                 "holidays": ["2026-01-26", "2026-03-04"], "ec_s": 3 * 86400, "ec_by": ["auto"],
                 "reconnect": 1}}


def local(y, m, d, hh=0, mi=0):
    return timeutil.join(y, m, d, hh, mi) - IST_MIN * 60


class Metro:
    def __init__(self):
        self.power_dw = 0
        self.fresh = True


class FakeMeter:
    def __init__(self, cfg, credit=0, mode=5, payment=PAYMENT_PREPAYMENT):
        self.account = Account(650, credit, payment)
        self.dc = DisconnectControl(mode)
        self.metro = Metro()
        self.tz_minutes = IST_MIN
        self.events = []
        self.policy = Policy(cfg)

    def event(self, code, text, detail=None):
        self.events.append((code, text))

    def codes(self):
        return [c for c, _ in self.events]

    def run(self, now):
        self.policy.evaluate(self, now)
        return self.dc.control_state


def test_up_calendar():
    p = Policy(UP)
    def ok(*a):
        return p.allowed(local(*a), IST_MIN)
    assert ok(2026, 3, 2, 8, 0) and ok(2026, 3, 2, 17, 59)        # Monday office hours
    assert not ok(2026, 3, 2, 18, 0) and not ok(2026, 3, 2, 7, 59)  # friendly hours
    assert not ok(2026, 3, 8, 12)                                   # Sunday
    assert not ok(2026, 3, 14, 12)                                  # second Saturday
    assert ok(2026, 3, 7, 12) and ok(2026, 3, 21, 12)               # first / third Saturday
    assert not ok(2026, 3, 4, 12) and not ok(2026, 1, 26, 12)       # holidays (Holi, Republic Day)
    assert ok(2026, 3, 5, 12)


def test_negative_saturday_evening_waits_for_ec_end_and_next_allowed_moment():
    m = FakeMeter(UP, credit=100)
    sat = local(2026, 3, 21, 19)        # third Saturday, 19:00 IST
    assert m.run(sat) == CONNECTED
    m.account.meter(200, 150)           # balance goes negative
    assert m.run(sat + 60) == CONNECTED
    assert m.policy.ec_state == EC_ACTIVE and P.EV_EC_ON in m.codes()
    # emergency credit (3 days) runs until Tuesday 19:01, inside friendly hours
    for t in (local(2026, 3, 22, 12), local(2026, 3, 23, 10), local(2026, 3, 24, 19)):
        assert m.run(t) == CONNECTED
    assert m.run(local(2026, 3, 24, 19, 2)) == CONNECTED
    assert m.policy.ec_state == EC_USED and P.EV_DISCONNECT_DEFERRED in m.codes()
    assert m.run(local(2026, 3, 25, 7, 59)) == CONNECTED
    assert m.run(local(2026, 3, 25, 8, 0)) == READY                 # Wednesday 08:00
    assert P.EV_RELAY_OPEN_CREDIT in m.codes()


def test_recharge_smaller_than_arrears_keeps_relay_open_then_reconnects():
    m = FakeMeter({"policy": {"reconnect": 1000}}, credit=-5000)
    now = local(2026, 3, 2, 12)
    assert m.run(now) == READY
    m.policy.top_up(m, 3000, now)
    assert m.account.credit == -2000 and m.run(now) == READY
    m.policy.top_up(m, 2500, now)      # credit 500: above zero, below the reconnect threshold
    assert m.run(now) == READY
    m.policy.top_up(m, 500, now)
    assert m.account.credit == 1000 and m.run(now) == CONNECTED
    assert P.EV_RELAY_CLOSE_CREDIT in m.codes()


def test_ready_for_reconnection_mode_needs_the_button():
    m = FakeMeter({}, credit=0, mode=3)
    now = local(2026, 3, 2, 12)
    assert m.run(now) == READY
    assert not m.policy.may_manual_reconnect(m, now)
    m.policy.top_up(m, 1000, now)
    assert m.run(now) == READY                       # mode 3: no local reconnect (h)
    assert m.policy.may_manual_reconnect(m, now)
    assert m.dc.manual_reconnect() and m.run(now) == CONNECTED


def test_credit_mode_meter_never_disconnects_for_credit():
    m = FakeMeter({}, credit=-100000, payment=PAYMENT_CREDIT)
    assert m.run(local(2026, 3, 2, 12)) == CONNECTED
    assert m.dc.remote_disconnect() and m.run(local(2026, 3, 2, 12)) == DISCONNECTED
    assert m.dc.remote_reconnect() and m.dc.control_state == READY   # mode 5: ready (d)


def test_emergency_credit_amount_by_button_repaid_first_then_debt():
    cfg = {"policy": {"ec_paise": 5000, "ec_by": ["button", "token"], "ec_offer": 2000, "debt_pct": 20}}
    m = FakeMeter(cfg, credit=3000)
    m.account.debt = 10000
    now = local(2026, 3, 2, 12)
    assert not m.policy.activate_ec(m, "button", now)        # not low enough yet
    assert not m.policy.credit_status(m) & 0x10
    m.account.meter(0, 1500)
    assert m.policy.credit_status(m) & 0x10                 # next_credit_selectable
    assert not m.policy.activate_ec(m, "dlms", now)          # not an allowed source
    assert m.policy.activate_ec(m, "button", now)
    assert m.policy.credit_status(m) & 0x04                 # selectable_credit_in_use
    m.account.meter(0, 5000)                                # credit -3500: EC covers it
    assert m.run(now) == CONNECTED
    m.account.meter(0, 1500)                                # -5000: EC amount used up
    assert m.run(now) == READY and m.policy.ec_state == EC_USED
    # top-up 10000: EC 5000 repaid first, 20 % of the other 5000 recovers debt
    assert m.policy.top_up(m, 10000, now) == 1000
    assert m.account.debt == 9000 and m.account.credit == -5000 + 10000 - 1000
    assert m.policy.ec_state == EC_AVAILABLE and m.run(now) == CONNECTED


def test_emergency_credit_as_the_ic112_attributes():
    # Policy.emergency is what IC 112 0.0.19.10.1.255 serves, attributes 2..11: amount, type
    # (2 emergency), priority, warning threshold, limit, credit_configuration (0x10 visual,
    # 0x08 confirmation by the consumer, 0x04 paid back), status (1 selectable, 3 in use,
    # 4 exhausted), preset amount, available threshold, period s
    assert Policy({}).emergency is None                     # no EC configured
    cfg = {"policy": {"ec_paise": 5000, "ec_s": 3600, "ec_by": ["button"], "ec_offer": 2000}}
    m = FakeMeter(cfg, credit=1000)
    now = local(2026, 3, 2, 12)
    assert m.policy.emergency == (5000, 2, 2, 2000, 5000, 0x1C, 1, 5000, 2000, 3600)
    assert m.policy.activate_ec(m, "button", now)
    assert m.policy.emergency[6] == 3
    m.run(now + 3600)                                       # period over
    assert m.policy.ec_state == EC_USED and m.policy.emergency[6] == 4
    auto = Policy({"policy": {"ec_paise": 100, "ec_by": ["auto", "dlms"]}})
    assert auto.emergency[5] == 0x04                        # no consumer confirmation


def test_low_credit_alerts_at_30_10_0_percent():
    m = FakeMeter({}, credit=0)
    now = local(2026, 3, 2, 12)
    m.policy.top_up(m, 10000, now)
    m.events = []
    m.run(now)
    assert m.codes() == [] and m.policy.credit_status(m) == 0x80
    m.account.meter(0, 7000)        # 3000 = 30 %
    m.run(now)
    assert m.codes() == [P.EV_LOW_CREDIT] and "30%" in m.events[0][1]
    assert m.policy.credit_status(m) == 0xC0
    m.account.meter(0, 2500)        # 500 < 10 %
    m.run(now)
    assert m.codes() == [P.EV_LOW_CREDIT] * 2 and "10%" in m.events[1][1]
    m.account.meter(0, 500)         # 0
    m.run(now)
    assert m.codes()[2] == P.EV_LOW_CREDIT and "0%" in m.events[2][1]
    assert m.policy.credit_status(m) & 0x02
    m.policy.top_up(m, 10000, now)
    assert m.policy.low_level == 0


def test_limiter_trip_reclose_lockout():
    lim = Limiter({"mpl_w": 2000, "trip_s": 5, "reclose_s": 60, "lockout_trips": 3, "window_s": 3600})
    t = 1000
    assert lim.step(19999, t) == NONE and lim.step(20010, t) == NONE       # 2001 W: over since t
    assert lim.step(20010, t + 4) == NONE
    assert lim.step(20010, t + 5) == TRIP and lim.blocking()
    assert lim.step(0, t + 64) == NONE
    assert lim.step(0, t + 65) == RECLOSE and not lim.blocking()
    assert lim.step(30000, t + 70) == NONE and lim.step(30000, t + 75) == TRIP
    assert lim.step(0, t + 135) == RECLOSE
    assert lim.step(30000, t + 140) == NONE and lim.step(30000, t + 146) == LOCKOUT
    assert lim.blocking() and lim.step(0, t + 10000) == NONE and lim.blocking()
    lim.reset()
    assert not lim.blocking() and lim.trips == 0


def test_limiter_opens_and_recloses_relay_through_policy():
    m = FakeMeter({"limiter": {"mpl_w": 1000, "trip_s": 0, "reclose_s": 30, "lockout_trips": 2}},
                  credit=100000)
    now = local(2026, 3, 2, 20)   # friendly hours do not protect against overload
    m.metro.power_dw = 15000
    assert m.run(now) == READY and m.dc.cause == "mpl"
    m.metro.power_dw = 0
    assert m.run(now + 29) == READY
    assert m.run(now + 30) == CONNECTED
    m.metro.power_dw = 15000
    assert m.run(now + 40) == READY and m.policy.limiter.locked
    m.metro.power_dw = 0
    assert m.run(now + 4000) == READY
    assert P.EV_MPL_LOCKOUT in m.codes() and P.EV_MPL_TRIP in m.codes()


def test_state_roundtrip():
    m = FakeMeter(UP, credit=-1)
    m.run(local(2026, 3, 21, 19))
    p2 = Policy(UP)
    p2.restore(m.policy.state())
    assert p2.state() == m.policy.state() and p2.ec_state == EC_ACTIVE


def test_bad_policy_names_the_field():
    for cfg, field in (({"policy": {"friendly": [1080]}}, "policy.friendly"),
                       ({"policy": {"holidays": ["2026-02-30"]}}, "policy.holidays[0]"),
                       ({"policy": {"ec_by": ["sms"]}}, "policy.ec_by"),
                       ({"policy": {"low_credit_pct": [10, 30]}}, "policy.low_credit_pct"),
                       ({"policy": {"reconnect": -5}}, "policy.reconnect"),
                       ({"policy": {"days_off": [8]}}, "policy.days_off[0]"),
                       ({"limiter": {"mpl_w": -1}}, "limiter.mpl_w"),
                       # typos inside a section were silently ignored (new-user pass, session 13)
                       ({"policy": {"friendy": [0, 60]}}, "policy.friendy"),
                       ({"limiter": {"mpl": 1000}}, "limiter.mpl"),
                       ({"metering": {"fail_pols": 3}}, "metering.fail_pols")):
        try:
            Policy(cfg)
            assert False, field
        except ConfigError as e:
            assert e.field == field, (e.field, field)


def test_energy_credit_register_in_tenth_kwh():
    a = Account(650, 100, PAYMENT_PREPAYMENT, CREDIT_ENERGY)   # 10.0 kWh
    for _ in range(999):
        a.meter(1, 12345)          # the paise argument is ignored in energy unit
    assert a.credit == 100 - 9 and a.rem == 99 and a.import_wh == 999
    a.meter(1, 0)
    assert a.credit == 90 and a.rem == 0
    assert a.consume(250) == 2 and a.credit == 88 and a.rem == 50
    b = Account(650, 0, PAYMENT_PREPAYMENT, CREDIT_ENERGY)
    b.restore(a.state())
    assert b.state() == a.state() and b.unit == CREDIT_ENERGY
