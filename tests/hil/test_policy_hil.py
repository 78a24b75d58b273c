"""Disconnect policy on the real firmware (MicroPython unix port behind ptys), scenario by scenario:
UP rules on a Saturday evening, arrears and the reconnection threshold, IC 70 ready-for-reconnection
with the button, and the maximum power limit (trip, reclose, lock-out)."""
import datetime
import json
import pathlib
import re

import pytest

from host_tools.client import DlmsClient, read_summary
from refmodel import RefCalendar

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]

ROOT = pathlib.Path(__file__).resolve().parents[2]
UPPCL = json.loads((ROOT / "profiles" / "uppcl_like.json").read_text())
STS = json.loads((ROOT / "profiles" / "sts_keypad.json").read_text())
IST = datetime.timezone(datetime.timedelta(minutes=330))
MGMT = dict(client_sap=1, password="12345678")


def ist(*a):
    return int(datetime.datetime(*a, tzinfo=IST).timestamp())


def profile_config(profile, **extra):
    cfg = {k: v for k, v in profile.items() if k not in ("name", "about")}
    cfg.update(extra)
    return cfg


def top_up(rig, paise):
    with DlmsClient(rig.port, **MGMT) as c:
        res, _ = c.action(112, "0.0.19.10.0.255", 1, b"\x05" + paise.to_bytes(4, "big", signed=True))
    return res


def control_state(rig):
    with DlmsClient(rig.port) as c:
        return c.get(70, "0.0.96.3.10.255", 3)[1]


def settle(rig, n=2):
    """Wait for ``n`` new metering cycles (the meter has read what the rig just set)."""
    for _ in range(n):
        old = rig.meter
        rig.wait_meter(lambda m: m is not old)


def why_supplied(rig):
    """``meterctl read``'s reason for a closed relay at no credit, or for an open one
    (host_tools.summary)."""
    return summary(rig)["relay_reason"]


def summary(rig):
    """``meterctl read``'s summary (host_tools.summary) as the management client reads it."""
    with DlmsClient(rig.port, **MGMT) as c:
        return read_summary(c)


def event_times(rig, code):
    """Meter-clock epochs of the policy events ``code`` (their text carries ``t=<epoch>``)."""
    out = []
    for c, text in rig.events:
        m = re.search(r"t=(\d+)", text)
        if c == str(code) and m:
            out.append(int(m.group(1)))
    return out


def test_up_negative_saturday_evening_waits_for_ec_end_and_office_hours(rig_factory):
    start = ist(2026, 3, 21, 18, 0)          # Saturday (the third of the month), 18:00 IST
    rig = rig_factory(config=profile_config(UPPCL, credit_paise=2500), clock_epoch=start, poll_ms=20)
    rig.wait_relay(True)
    rig.set_load(1000)
    t = rig.advance(1800)                    # 18:30
    assert t.credit > 0 and t.relay
    neg = None
    while neg is None:                       # half-hour steps until the balance goes negative
        t = rig.advance(1800)
        if t.credit <= 0:
            neg = t.epoch
    assert start < neg <= ist(2026, 3, 21, 21, 0)
    cal = RefCalendar(UPPCL["policy"])
    assert not cal.allowed(neg)
    ec_end = event_times(rig, 46)[0] + UPPCL["policy"]["ec_s"]   # 3 days of emergency credit
    due = cal.next_allowed(ec_end)
    assert datetime.datetime.fromtimestamp(due, IST) == datetime.datetime(2026, 3, 25, 8, 0, tzinfo=IST)
    s = summary(rig)                                       # meterctl read says why the relay is closed
    assert s["relay_reason"] == "on emergency credit"
    # ... and when the emergency credit ends (session 13): its period from its start
    assert datetime.datetime.fromisoformat(s["emergency_credit_end"]["time"]).timestamp() == ec_end
    seen_deferred = False
    while rig.clock + 1800 < due:           # Sunday, Monday, Tuesday evening, Wednesday night
        t = rig.advance(1800)
        assert t.relay, "relay opened at %s" % datetime.datetime.fromtimestamp(t.epoch, IST)
        if not seen_deferred and t.epoch > ec_end + 1800:
            assert why_supplied(rig).startswith("disconnection deferred: no-disconnection period")
            seen_deferred = True
    assert seen_deferred
    t = rig.advance(due - rig.clock)         # exactly Wednesday 08:00
    rig.wait_relay(False)
    assert event_times(rig, 40) == [due]
    assert [e for e, closed in rig.relay_history if not closed][-1] == due
    rig.set_load(0)
    arrears = -rig.advance(60).credit
    assert arrears > 0
    # a recharge smaller than the arrears keeps the relay open ...
    assert top_up(rig, arrears // 2) == 0
    assert rig.advance(60).relay is False and control_state(rig) == 2
    # ... one that clears them recloses it (control mode 5: local reconnect)
    assert top_up(rig, arrears) == 0
    rig.wait_relay(True)
    assert event_times(rig, 41)


def test_reconnection_threshold_after_arrears(rig_factory):
    cfg = profile_config(STS, credit_paise=-5000)
    cfg["policy"] = dict(cfg["policy"], reconnect=1000)
    rig = rig_factory(config=cfg, clock_epoch=ist(2026, 3, 2, 12, 0), poll_ms=20)
    rig.wait_relay(False)
    assert top_up(rig, 3000) == 0                     # -2000: arrears remain
    assert rig.advance(10).relay is False
    assert top_up(rig, 2500) == 0                     # +500: paid, but below the threshold
    t = rig.advance(10)
    assert t.credit == 500 and not t.relay and control_state(rig) == 2
    assert top_up(rig, 500) == 0                      # 1000: threshold reached
    rig.wait_relay(True)
    assert control_state(rig) == 1


def test_ready_for_reconnection_waits_for_the_button(rig_factory):
    cfg = profile_config(STS, control_mode=3, credit_paise=0)
    cfg["policy"] = dict(cfg["policy"], ec_paise=0)   # no emergency credit to select
    rig = rig_factory(config=cfg, clock_epoch=ist(2026, 3, 2, 12, 0), poll_ms=20)
    rig.wait_relay(False)
    rig.press_button()                               # no credit: the button does nothing
    rig.advance(1)
    assert not rig.relay_closed()
    assert top_up(rig, 10000) == 0
    rig.advance(10)
    assert not rig.relay_closed() and control_state(rig) == 2     # ready_for_reconnection
    rig.press_button()                               # transition e
    rig.wait_relay(True)


def test_emergency_credit_by_button_then_repaid_first(rig_factory):
    rig = rig_factory(config=profile_config(STS, credit_paise=1000),
                      clock_epoch=ist(2026, 3, 2, 12, 0), poll_ms=20)
    rig.wait_relay(True)
    rig.set_load(1000)
    t = rig.advance(3600)                            # 1 kWh at Rs 8.50: credit 150
    assert t.credit == 150 and t.relay
    rig.press_button()                               # credit <= ec_offer (2000): EC selected
    rig.wait_event(46)
    t = rig.advance(3600)                            # -700: emergency credit covers it
    assert t.credit == -700 and t.relay
    assert summary(rig)["emergency_credit_end"] == {"balance": -5000, "time": None}
    t = rig.advance(3600)                            # -1550 ... until -5000 the relay holds
    for _ in range(12):
        t = rig.advance(1800)
        if not t.relay:
            break
    rig.wait_relay(False)
    assert t.credit <= -5000
    # new-user pass (session 13): meterctl read said nothing of why (relay_reason null)
    assert why_supplied(rig) == "credit exhausted after the emergency credit ended: a top-up reconnects"
    rig.set_load(0)
    debt = -rig.advance(1).credit
    assert top_up(rig, debt + 100) == 0
    rig.wait_relay(True)
    assert rig.advance(1).credit == 100


def test_mpl_trips_recloses_and_locks_out(rig_factory):
    rig = rig_factory(config=profile_config(STS, credit_paise=10 ** 7, limiter={
        "mpl_w": 2000, "trip_s": 5, "reclose_s": 30, "lockout_trips": 3, "window_s": 3600}),
        clock_epoch=ist(2026, 3, 2, 20, 0), poll_ms=20)
    rig.wait_relay(True)
    trips = []
    for n in range(3):
        rig.set_load(2500)
        settle(rig)                                  # the meter sees 2500 W > 2000 W from now
        t = rig.advance(4)
        assert t.relay                               # over the limit, but not for trip_s yet
        rig.advance(1)                               # 5 s over the limit: trip
        rig.wait_relay(False)
        trips.append(rig.clock)
        rig.set_load(0)                              # the relay is open: no current
        settle(rig)
        if n == 0:                                   # meterctl read says why (session 13)
            assert why_supplied(rig) == ("max power limit trip: the load went over the limit (2000 W); "
                                         "the relay recloses by itself 30 s after the trip")
        if n < 2:
            rig.advance(29)
            assert not rig.relay_closed()
            rig.advance(1)                           # reclose after reclose_s
            rig.wait_relay(True)
    assert event_times(rig, 55) == trips[:2] and event_times(rig, 57) == trips[2:]
    rig.advance(3600)                                # locked out: no automatic reclose
    assert not rig.relay_closed()
    assert why_supplied(rig).startswith("max power limit lock-out: the load went over the limit (2000 W) too "
                                        "often; a button press or a remote reconnect clears it")
    rig.press_button()                               # the consumer clears the lock-out
    rig.wait_relay(True)


# --- meterctl config ---------------------------------------------------------------------------

def _cli(*args):
    from click.testing import CliRunner
    from host_tools.meterctl.cli import meterctl
    return CliRunner().invoke(meterctl, list(args))


def test_config_check_accepts_the_shipped_profiles():
    for name in ("uppcl_like.json", "sts_keypad.json"):
        r = _cli("config", "check", str(ROOT / "profiles" / name))
        assert r.exit_code == 0, r.output
        assert ": ok (" in r.output


def test_config_refuses_a_bad_profile_before_the_wire(tmp_path):
    from host_tools.meterctl import config as cmd_config
    bad = dict(UPPCL)
    bad["policy"] = dict(UPPCL["policy"], holidays=["2026-02-30"])
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    r = _cli("config", "check", str(f))
    assert r.exit_code == 1 and "policy.holidays[0]" in r.output and "YYYY-MM-DD" in r.output

    class Client:            # never reached: the host check comes first
        def set(self, *a):
            raise AssertionError("a bad profile went on the wire")

    with pytest.raises(cmd_config.ProfileError) as e:
        cmd_config.apply(Client(), bad)
    assert e.value.field == "policy.holidays[0]"
    f.write_text("{not json")
    r = _cli("config", "check", str(f))
    assert r.exit_code == 2 and "not JSON" in r.output   # an unreadable input file is a usage error


@pytest.mark.parametrize("flash", [None, {"blocks": 64, "seed": 5}], ids=["files", "nor-flash"])
def test_config_apply_over_dlms(rig_factory, flash):
    """Also on the NOR flash model, where config.json is on the host and the meter's files on
    littlefs: the temporary file is written beside config.json (it was refused with
    hardware-fault there: a rename across file systems)."""
    from host_tools.meterctl import config as cmd_config
    from host_tools.client import DataAccessError
    rig = rig_factory(config={"credit_paise": 100000}, clock_epoch=ist(2026, 3, 2, 12, 0), poll_ms=20,
                      flash=flash)
    r = _cli("config", "apply", str(ROOT / "profiles" / "sts_keypad.json"), "--port", rig.port,
             "--password", "12345678")
    assert r.exit_code == 0, r.output
    r = _cli("config", "show", "--port", rig.port, "--client", "1", "--password", "12345678", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["name"] == "sts-keypad"
    rig.set_load(1000)
    assert rig.advance(3600).credit == 100000 - 850          # the flat Rs 8.50/kWh of the profile
    bad = {"tariff": {"slabs": [[100, 550], [50, 600], [0, 700]]}}
    with DlmsClient(rig.port, **MGMT) as c:
        with pytest.raises(DataAccessError):
            c.set(1, cmd_config.PROFILE_LN, 2, cmd_config.encode_value(bad))
        assert c.get(1, cmd_config.PROFILE_ERROR_LN, 2)[1].decode().startswith("tariff.slabs[1]:")
    assert rig.advance(3600).credit == 100000 - 1700         # the old profile still rules


# --- tariff boundaries inside one metering interval ----------------------------------------------

def _one_interval(rig, seconds, watts):
    """Exactly one metering interval of ``seconds`` at ``watts``: the PZEM stops answering
    (the meter's polls time out, nothing is charged), energy and clock move, then it answers
    again, so the meter sees the whole energy with the new time in one reading."""
    with rig.pzem.silent():                  # returns once the meter has polled and got silence:
        rig.set_load(watts)                  # every earlier reading is used up
        wh = rig.pzem.advance(seconds)      # the module's energy register (total Wh)
        rig.set_clock(rig.clock + seconds)
    return rig.wait_meter(lambda m: m.wh == wh and m.epoch == rig.clock, timeout=10)


def test_boundaries_inside_one_interval_are_split(rig_factory):
    from refmodel import RefMeter
    start = ist(2026, 1, 31, 17, 0)
    rig = rig_factory(config=profile_config(UPPCL, credit_paise=200000), clock_epoch=start, poll_ms=20)
    ref = RefMeter(UPPCL, 200000, start)
    assert rig.meter.credit == ref.credit           # commissioning: January 31's fixed share
    # 17:00 -> next day 09:00 in one reading: TOD 18:00 and 22:00, midnight + billing date
    # (fixed charge, slab counter reset), 08:00 ... 16 kWh at constant power
    t = _one_interval(rig, 16 * 3600, 1000)
    ref.consume(start, rig.clock, t.wh)
    assert t.wh == 16000 and t.credit == ref.credit
    jan = ref.tariff.month_log[0]
    bills = [x for c, x in rig.events if c == "64"]
    assert bills and bills[0].endswith("wh=%d energy=%d fixed=%d duty=%d"
                                       % (jan["wh"], jan["energy"], jan["fixed"], jan["duty"]))
    # smearing the interval at one rate would have charged a different amount
    e = jan["energy"] + ref.tariff.month_totals()["energy"]
    assert e not in (16000 * 550 // 1000, 16000 * 605 // 1000, 16000 * 495 // 1000)


def test_payment_mode_switch_over_dlms(rig_factory):
    """IC 111 attr 2 payment_mode: 1 credit mode (head-end decides), 2 prepayment (meter decides)."""
    from protocol import axdr_client as axdr
    cfg = profile_config(STS, credit_paise=-1000)
    cfg["policy"] = dict(cfg["policy"], ec_paise=0)     # the button only reconnects here
    rig = rig_factory(config=cfg, clock_epoch=ist(2026, 3, 2, 12, 0), poll_ms=20)
    rig.wait_relay(False)                               # prepayment: negative -> open

    def set_mode(mode):
        with DlmsClient(rig.port, **MGMT) as c:
            c.set(111, "0.0.19.0.0.255", 2, axdr.Writer().structure(2).enum(mode).enum(2).getvalue())

    set_mode(1)                                         # credit mode: the head-end decides,
    rig.wait_relay(True)                                # the meter's credit cut is released
    rig.set_load(2000)
    t = rig.advance(3600)                               # keeps metering, never cuts for credit
    assert t.relay and t.credit == -1000 - 1700
    with DlmsClient(rig.port, **MGMT) as c:             # remote disconnect is obeyed
        c.action(70, "0.0.96.3.10.255", 1, b"\x0f\x00")
    rig.wait_relay(False)
    with DlmsClient(rig.port, **MGMT) as c:
        c.action(70, "0.0.96.3.10.255", 2, b"\x0f\x00")
    rig.press_button()
    rig.wait_relay(True)
    set_mode(2)                                         # back to prepayment: the meter decides
    rig.wait_relay(False)


def test_power_cut_keeps_tariff_counters(rig_factory):
    """Slab position, carried remainders and the month's charges survive a power cut (journal:
    cold record + hot values); energy counted while the meter was down is charged at boot."""
    from refmodel import RefMeter
    start = ist(2026, 1, 31, 20, 0)
    rig = rig_factory(config=profile_config(UPPCL, credit_paise=500000), clock_epoch=start, poll_ms=20)
    ref = RefMeter(UPPCL, 500000, start)
    rig.set_load(1234)
    for _ in range(2):                                    # 20:00 -> 22:00 (TOD peak)
        t0 = rig.clock
        t = rig.advance(3600)
        ref.consume(t0, t0, 1234)                         # the rig's energy lands at the hour's start
        ref.clock(rig.clock)
        assert t.credit == ref.credit
    rig.power_cut()
    before = rig.pzem.energy_wh
    wh = rig.pzem.advance(1800) - before                  # the module counts on while we are down
    rig.power_on()
    t = rig.wait_meter(lambda m: m.wh == rig.pzem.energy_wh, timeout=15)
    ref.consume(rig.clock, rig.clock, wh)
    assert t.credit == ref.credit
    for _ in range(3):                                    # 22:00 -> 01:00: the month closes
        t0 = rig.clock
        t = rig.advance(3600)
        ref.consume(t0, t0, 1234)
        ref.clock(rig.clock)
    assert t.credit == ref.credit
    jan = ref.tariff.month_log[0]
    bills = [x for c, x in rig.events if c == "64"]
    assert bills[-1].endswith("wh=%d energy=%d fixed=%d duty=%d"
                              % (jan["wh"], jan["energy"], jan["fixed"], jan["duty"]))


def test_a_remote_reconnect_clears_an_mpl_lockout(rig_factory):
    """New-user pass (session 13): after a max-power-limit lock-out only the push button
    cleared it (limiter: "a button press or a remote reconnect clears it"); an emulated meter,
    which has no button at the bench, stayed open for good."""
    rig = rig_factory(config={"credit_paise": 100000, "limiter": {
        "mpl_w": 1000, "trip_s": 0, "reclose_s": 30, "lockout_trips": 2}})
    n0 = len(rig.events)
    rig.set_load(1500)
    for _ in range(6):                                   # trip, reclose after 30 s, trip: locked
        rig.advance(20)
        if "57" in [e[0] for e in rig.events[n0:]]:
            break
    rig.wait_event("57", start=n0)
    rig.wait_relay(False)
    rig.set_load(500)
    rig.advance(600)
    assert not rig.relay_closed()                        # the lock-out holds
    with DlmsClient(rig.port, **MGMT) as c:
        assert c.action(70, "0.0.96.3.10.255", 2, b"\x0f\x00")[0] == 0    # remote_reconnect
    rig.wait_relay(True)
    assert rig.advance(60).relay
