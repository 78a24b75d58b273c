"""The metering task's fault handling (meter.metering) on CPython and MicroPython: one event per
fault, recovery logged with the Wh counted meanwhile, a counter reset logged as tamper, the
fault policy (keep supply / open the relay after a grace period, reclose on recovery), and its
configuration (meter.profile.metering_params). The module is a stub with the attributes of
``meter.metrology.Module`` after a poll; the meter a stub with what the task uses."""
from meter import metering as mg
from meter import metrology as mt
from meter import profile
from meter.relay import DisconnectControl, READY, CONNECTED
from meter.tariff import ConfigError


class Board:
    poll_ms = 200

    def __init__(self):
        self.t = 1000
        self.fed = 0

    def time(self):
        return self.t

    def wdt_feed(self):
        self.fed += 1


class Policy:
    def __init__(self, metering):
        self.metering = metering
        self.dirty = False


class Mod:
    """A metrology.Module after a poll."""

    def __init__(self):
        self.health = mt.Health(5, 60)
        self.outcome = 0
        self.faulted = False
        self.fresh = True
        self.fault_wh = 0
        self.energy_wh = 100
        self.last_error = "timeout"


class Meter:
    def __init__(self, on_fault=0, grace_s=300, mode=5):
        self.board = Board()
        self.policy = Policy((5, 60, on_fault, grace_s, 0))
        self.dc = DisconnectControl(mode)
        self.metro = Mod()
        self.events = []
        self.ticks = 0

    def event(self, code, text, detail=None):
        self.events.append((code, detail))

    def meter_tick(self):
        self.ticks += 1


def poll(meter, outcome=0, faulted=False, fresh=True, dt=10, **kw):
    m = meter.metro
    meter.board.t += dt
    m.outcome, m.faulted, m.fresh = outcome, faulted, fresh
    for k in kw:
        setattr(m, k, kw[k])
    meter.metering.after()


def make(**kw):
    meter = Meter(**kw)
    meter.metering = mg.Metering(meter, "sdm120", 1)
    return meter



def codes(meter):
    return [c for c, _ in meter.events]


def test_fault_logged_once_then_recovery_with_the_energy():
    m = make()
    poll(m, fresh=False)
    poll(m, mt.FAULT, True, False)
    for _ in range(5):
        poll(m, 0, True, False)
    poll(m, mt.RECOVERED, fault_wh=42)
    assert codes(m) == [70, 71]
    assert m.events[1] == (71, 42)
    assert m.ticks == 8 and m.board.fed == 8       # every poll ticks and feeds the watchdog
    assert m.dc.control_state == CONNECTED          # keep supply: the relay is left alone


def test_counter_reset_is_a_tamper_event():
    m = make()
    poll(m, mt.COUNTER_RESET, energy_wh=3)
    assert m.events == [(62, 3)]
    poll(m, mt.RECOVERED | mt.COUNTER_RESET, energy_wh=1, fault_wh=0)
    assert codes(m) == [62, 71, 62]


def test_a_forged_plus_one_wh_while_idle_is_no_tamper_event():
    # attack pass (session 12): idle load, counter 5000 Wh, one forged reply +1 Wh (plausible:
    # charged); the real counter then reads 1 Wh below the baseline for minutes: the module's
    # Health confirmed a counter "reset" and the task logged event 62 (tamper) for nothing
    m = make()
    h = m.metro.health
    for wh in [5000, 5000, 5001] + [5000] * 30:      # polls 10 s apart: 5 minutes
        m.board.t += 10
        poll(m, h.good(m.board.t, wh), dt=0, energy_wh=wh)
    assert 62 not in codes(m) and h.resets == 0 and h.baseline_wh == 5001


def test_open_after_grace_and_reclose_on_recovery():
    m = make(on_fault=1, grace_s=300)
    poll(m, mt.FAULT, True, False)
    for _ in range(29):                      # 290 s of fault: still within the grace period
        poll(m, 0, True, False)
    assert m.dc.control_state == CONNECTED
    poll(m, 0, True, False)                  # 300 s
    assert m.dc.control_state == READY and m.dc.cause == "metering" and m.policy.dirty
    m.policy.dirty = False
    poll(m, 0, True, False)
    assert not m.policy.dirty                # opened once
    poll(m, mt.RECOVERED, fault_wh=5)
    assert m.dc.control_state == CONNECTED and m.policy.dirty


def test_reclose_after_a_reboot_during_the_fault():
    m = make(on_fault=1)
    m.dc.local_disconnect("metering")        # journaled state of the last boot
    poll(m)                                  # first good reading of this boot: no RECOVERED
    assert m.dc.control_state == CONNECTED


def test_open_after_never_recloses_another_cause():
    m = make(on_fault=1)
    m.dc.local_disconnect("credit")
    poll(m, mt.RECOVERED)
    assert m.dc.control_state == READY and m.dc.cause == "credit"


def test_mode_without_local_reconnect_waits_for_the_button():
    m = make(on_fault=1, grace_s=0, mode=1)
    poll(m, mt.FAULT, True, False)
    assert m.dc.control_state == READY
    poll(m, mt.RECOVERED)
    assert m.dc.control_state == READY and m.dc.cause == "metering"


def test_fault_thresholds_follow_the_policy():
    m = make()
    m.policy.metering = (3, 20, 0, 900, 5000)
    poll(m)
    h = m.metro.health
    assert (h.fail_polls, h.fail_s, h.max_w) == (3, 20, 5000)
    m.policy.metering = (3, 20, 0, 900, 0)         # 0: the module's rating
    poll(m)
    assert h.max_w == 26000


def test_metering_params():
    assert profile.metering_params({}) == (5, 60, 0, 900, 0)
    assert profile.metering_params({"metering": {"fail_polls": 3, "fail_s": 0, "on_fault": "open_after",
                                                 "grace_s": 600, "max_w": 9000}}) == (3, 0, 1, 600, 9000)
    for bad, field in (({"on_fault": "estimate"}, "metering.on_fault"), ({"fail_polls": 0}, "metering.fail_polls"),
                       ({"grace_s": -1}, "metering.grace_s"), (7, "metering"),
                       ({"max_w": -1}, "metering.max_w")):
        try:
            profile.metering_params({"metering": bad})
        except ConfigError as e:
            assert e.field == field, (bad, e.field)
        else:
            raise AssertionError(bad)
    t, p = profile.check_profile({"metering": {"on_fault": "open_after"}})
    assert p.metering == (5, 60, 1, 900, 0)
