"""Metering faults on the emulated meter (issue 13): a stalled module (no replies for 10 minutes
of simulated time) gives one fault event, the error register's bit, V/I/P answering
temporary-failure over DLMS, and the configured policy (keep supply / open the relay after a
grace period); its recovery is logged and charges the energy the module counted meanwhile. A
counter reset on the module is a tamper event and credits nothing; one forged (or garbled into
valid) reply on the RS-485 line, lower or far higher, moves no money."""

import time

import pytest

from hil import rtuframes
from host_tools import objects
from host_tools.client import DlmsClient
from protocol import axdr_client as axdr
from protocol.client_assoc import DataAccessError

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]

READER = dict(client_sap=32, password="00000000")
MGMT = dict(client_sap=1, password="12345678")
RATE = 650
CREDIT = 100000
EV_RESET, EV_FAULT, EV_RECOVERED, EV_RELAY_OPEN = "62", "70", "71", "42"
INSTANT = ("1.0.32.7.0.255", "1.0.31.7.0.255", "1.0.1.7.0.255")   # V, I, P
ERROR_REGISTER = "0.0.97.97.0.255"


def make(rig_factory, module, **metering):
    cfg = {"credit_paise": CREDIT, "metering": dict({"fail_polls": 5, "fail_s": 60}, **metering)}
    rig = rig_factory(config=cfg, module=module)
    rig.set_load(2000)
    return rig


def dlms_state(rig):
    """(error register, [V, I, P] value or the data-access-result code, energy register Wh,
    event codes in the event log on flash)."""
    with DlmsClient(rig.port, **READER) as c:
        err = c.get(1, ERROR_REGISTER, 2)[1]
        inst = []
        for code in INSTANT:
            try:
                inst.append(c.get(3, code, 2)[1])
            except DataAccessError as e:
                inst.append(("dar", e.dar))
        wh = c.get(3, "1.0.1.8.0.255", 2)[1]
        log = c.get(7, objects.EVENT_LOG.obis, 2)[1]
    return err, inst, wh, [str(entry[1][1][1]) for entry in log]


def stalled_steps(rig, steps, seconds=60):
    """``steps`` x ``seconds`` of simulated time while the module is stalled: the module keeps
    counting, the meter's RTC moves, each step waits for a metering cycle at the new time."""
    for _ in range(steps):
        rig.pzem.advance(seconds)
        rig.set_clock(rig.clock + seconds)
        epoch = rig.clock
        rig.wait_meter(lambda m: m.epoch >= epoch, timeout=20)


@pytest.mark.parametrize("module", ["pzem", "sdm630"])
def test_stall_keep_supply_then_recovery_charges_the_fault(rig_factory, module):
    rig = make(rig_factory, module)
    t = rig.advance(600)
    assert t.wh == 333 and t.credit == CREDIT - 333 * RATE // 1000
    n0 = len(rig.events)
    rig.pzem.stall(True)
    stalled_steps(rig, 10)                                   # 10 minutes without a reply
    rig.wait_event(EV_FAULT, timeout=30, start=n0)
    during = rig.meter
    assert during.wh == 333 and during.credit == t.credit and during.relay   # kept supply
    err, inst, wh, log = dlms_state(rig)
    assert err == 1 and inst == [("dar", 2)] * 3 and wh == 333
    assert log.count(EV_FAULT) == 1
    assert [e[0] for e in rig.events[n0:]].count(EV_FAULT) == 1   # once per fault
    rig.pzem.stall(False)
    code, text = rig.wait_event(EV_RECOVERED, timeout=30, start=n0)
    assert "333 Wh" in text                                  # 10 min at 2 kW
    m = rig.wait_meter(lambda m: m.wh == 666, timeout=20)
    assert m.credit == CREDIT - 666 * RATE // 1000 and m.relay
    err, inst, wh, log = dlms_state(rig)
    assert err == 0 and inst[0] == 2300 and inst[2] == 20000 and wh == 666
    assert EV_FAULT in log and EV_RECOVERED in log


def test_stall_open_after_grace_then_reclose(rig_factory):
    rig = make(rig_factory, "sdm120", on_fault="open_after", grace_s=300)
    t = rig.advance(60)
    n0 = len(rig.events)
    rig.pzem.stall(True)
    rig.wait_event(EV_FAULT, timeout=30, start=n0)           # 5 failed polls, RTC still t0
    stalled_steps(rig, 4)                                    # 240 s of fault: grace not over
    assert rig.relay_closed()
    stalled_steps(rig, 1)                                    # 300 s: the relay opens
    rig.wait_relay(False)
    code, text = rig.wait_event(EV_RELAY_OPEN, start=n0)
    assert "metering" in text
    err, inst, wh, log = dlms_state(rig)
    assert err == 1 and inst == [("dar", 2)] * 3 and wh == t.wh
    stalled_steps(rig, 5)                                    # 10 minutes in all; no load
    assert rig.pzem.energy_wh == 200                         # 60 s + 300 s at 2 kW, then open
    rig.pzem.stall(False)
    rig.wait_event(EV_RECOVERED, timeout=30, start=n0)
    rig.wait_relay(True)                                     # control mode 5: recloses
    m = rig.wait_meter(lambda m: m.wh == 200, timeout=20)
    assert m.credit == CREDIT - m.wh * RATE // 1000
    assert dlms_state(rig)[0] == 0


@pytest.mark.parametrize("module", ["pzem", "sdm120", "sdm630"])
def test_counter_reset_is_tamper_and_credits_nothing(rig_factory, module):
    rig = make(rig_factory, module)
    t = rig.advance(1800)
    assert t.wh == 1000
    n0 = len(rig.events)
    rig.pzem.reset_energy()
    r0 = rig.pzem.requests
    m = rig.wait_meter(lambda m: m.epoch == t.epoch and rig.pzem.requests >= r0 + 4, timeout=20)
    assert m.wh == 1000 and m.credit == t.credit             # no change in either direction
    # a lower counter is a reset once fail_polls readings over a minute confirm it (it was one
    # reading before: then one forged reply did the same, session 11); the clock must move.
    # No load while it does: the emulated counter jumps before the clock moves (rig.advance),
    # and a jump of 200 Wh in no time would break the run of low readings and start a new one
    # at 200 Wh (CI, stop 13); a real counter climbs from 0 in steps that each fit
    rig.set_load(0)
    rig.advance(60, expect_wh=1000)
    rig.wait_event(EV_RESET, timeout=20, start=n0)
    assert [e[1] for e in rig.events[n0:] if e[0] == EV_RESET] == [
        "tamper: metering counter re-based at 0 Wh"]
    rig.set_load(2000)
    m = rig.advance(360, expect_wh=1200)                     # new consumption only
    assert m.credit == CREDIT - 1200 * RATE // 1000
    assert EV_RESET in dlms_state(rig)[3]
    assert [e[0] for e in rig.events[n0:]].count(EV_RESET) == 1


def forged_pzem_reply(wh):
    """A valid PZEM-004T reply (right CRC) with the energy counter ``wh`` Wh, 2 kW, 230 V."""
    regs = [2300, 8696, 0, 20000, 0, wh & 0xFFFF, wh >> 16, 500, 100, 0]
    return rtuframes.with_crc(bytes([1, 4, 20]) + b"".join(r.to_bytes(2, "big") for r in regs))


@pytest.mark.parametrize("forged", [0, 100 + 100050], ids=["zero", "plus_100kwh"])
def test_one_forged_reply_moves_no_money(rig_factory, forged):
    # the attack of session 11: one reply with counter 0 made the meter re-base at 0 and charge
    # the module's whole count again; one at +100,050 Wh was charged at once (Rs 650)
    rig = make(rig_factory, "pzem")
    for _ in range(3):
        t = rig.advance(60)
    assert t.wh == 100
    n0 = len(rig.events)
    rig.modbus_noise.inject("stray", data=forged_pzem_reply(forged), where="before_reply")
    rig.wait_meter(lambda m: rig.modbus_noise.counts.get("stray", 0) == 1, timeout=20)
    rig.pzem.advance(60)                                     # the real count: 133 Wh
    rig.set_clock(rig.clock + 60)
    epoch = rig.clock
    m = rig.wait_meter(lambda m: m.epoch >= epoch and m.wh != t.wh, timeout=20)
    assert m.wh == 133 and m.credit == CREDIT - 133 * RATE // 1000 and m.relay
    m = rig.advance(60)                                      # and on from there (166 Wh)
    assert m.wh == rig.pzem.energy_wh and m.credit == CREDIT - m.wh * RATE // 1000
    assert EV_RESET not in [e[0] for e in rig.events[n0:]]   # a glitch, not a tamper event


def test_a_forged_reply_at_the_recovery_from_a_fault_moves_no_money(rig_factory):
    # attack pass (session 13): a module silent for 10 minutes, then one forged reply of
    # +4000 Wh (it fits 26 kW over the fault) was charged at once: "4033 Wh counted during the
    # fault", a credit of 2000 paise at -642 and the relay open, nothing charged for 2 h after
    rig = rig_factory(config={"credit_paise": 2000, "metering": {"fail_polls": 5, "fail_s": 60}},
                      module="pzem")
    rig.set_load(200)
    t = rig.advance(600)
    n0 = len(rig.events)
    rig.pzem.stall(True)
    stalled_steps(rig, 10)
    rig.wait_event(EV_FAULT, timeout=30, start=n0)
    real = rig.pzem.energy_wh
    rig.pzem.stall(False)
    rig.modbus_noise.inject("stray", data=forged_pzem_reply(real + 4000), where="before_reply")
    code, text = rig.wait_event(EV_RECOVERED, timeout=30, start=n0)
    assert "recovered: %d Wh" % (real - t.wh) in text, text
    m = rig.wait_meter(lambda m: m.wh == real, timeout=20)
    assert m.credit == 2000 - real * RATE // 1000 and m.relay
    codes = [e[0] for e in rig.events[n0:]]
    assert EV_RELAY_OPEN not in codes and EV_RESET not in codes
    assert rig.modbus_noise.counts.get("stray", 0) == 1


def test_clock_set_back_keeps_charging(rig_factory):
    # the plausibility window (max power x time since the last reading) steps with a clock SET:
    # an hour back must not make the next minutes' consumption look impossible (tamper event)
    rig = make(rig_factory, "pzem")
    t = rig.advance(120)
    n0 = len(rig.events)
    back = t.epoch - 3600
    with DlmsClient(rig.port, **MGMT) as c:
        dt = axdr.datetime_bytes(*time.gmtime(back)[:6], 0, 0, 0)       # deviation 0: UTC
        assert c.set(8, objects.CLOCK.obis, 2, axdr.Writer().octet_string(dt).getvalue()) == 0
    rig.wait_event("20", start=n0)                                      # clock set
    for k in range(1, 6):
        rig.pzem.advance(60)
        rig.set_clock(back + 60 * k)
        wh = rig.pzem.energy_wh
        m = rig.wait_meter(lambda m: m.wh == wh, timeout=20)
    assert m.credit == CREDIT - m.wh * RATE // 1000 and m.wh == rig.pzem.energy_wh
    assert EV_RESET not in [e[0] for e in rig.events[n0:]]


def minutes_later(rig, seconds):
    """The module counts ``seconds`` at the present load, then the RTC moves; returns the first
    meter line at the new time whose energy moved (or the first at that time when idle)."""
    before = rig.meter.wh
    idle = rig.pzem.watts == 0
    rig.pzem.advance(seconds)
    rig.pzem.wait_asked()
    rig.set_clock(rig.clock + seconds)
    epoch = rig.clock
    return rig.wait_meter(lambda m: m.epoch >= epoch and (idle or m.wh != before), timeout=20)


def test_a_forged_reply_at_the_first_poll_after_a_reboot_moves_no_money(rig_factory):
    # attack pass (session 12): at boot the downtime is unknown (no battery-backed clock), so the
    # first reading was bounded below only: one forged reply of +100 kWh right after a reboot was
    # charged in full (65000 paise). Now a step beyond the slack waits for the next reading.
    rig = make(rig_factory, "pzem")
    t = rig.advance(600)
    assert t.wh == 333
    n0 = len(rig.events)
    rig.power_cut()
    real = rig.pzem.advance(900)                             # counted while the meter is down
    assert real == 833
    rig.modbus_noise.inject("stray", data=forged_pzem_reply(real + 100000), where="before_reply")
    rig.power_on()
    assert rig.modbus_noise.counts.get("stray", 0) == 1      # the first poll got the forged reply
    m = rig.wait_meter(lambda m: m.wh >= real, timeout=20)   # the 500 Wh: once, a poll or two late
    assert m.wh == real and m.credit == CREDIT - real * RATE // 1000 and m.relay
    m = minutes_later(rig, 60)
    assert m.wh == rig.pzem.energy_wh and m.credit == CREDIT - m.wh * RATE // 1000
    assert EV_RESET not in [e[0] for e in rig.events[n0:]]


def idle_rig(rig_factory):
    """A meter that charged 33 Wh (a minute at 2 kW), then idle for a minute: (rig, Wh)."""
    rig = make(rig_factory, "pzem")
    rig.advance(60)
    rig.set_load(0)
    t = rig.advance(60)
    assert t.wh == rig.pzem.energy_wh == 33
    return rig, t.wh


def idle_then_load(rig, minutes, n0, wh):
    """``minutes`` idle minutes with the meter ``wh`` Wh: no tamper event since event ``n0``;
    then 10 minutes at 2 kW (333 Wh): the meter has charged what the module counted."""
    for _ in range(minutes):
        minutes_later(rig, 60)
    r0 = rig.pzem.requests
    m = rig.wait_meter(lambda m: rig.pzem.requests >= r0 + 6, timeout=20)
    assert EV_RESET not in [e[0] for e in rig.events[n0:]] and m.wh == wh
    rig.set_load(2000)
    m = minutes_later(rig, 600)
    assert m.wh == rig.pzem.energy_wh == 33 + 333 and m.credit == CREDIT - m.wh * RATE // 1000
    assert EV_RESET not in [e[0] for e in rig.events[n0:]]


def test_a_forged_step_while_idle_is_no_tamper_event_and_is_paid_back(rig_factory):
    # attack pass (session 12): at an idle load one forged reply above the counter but plausible
    # (here +300 Wh, the RTC a minute on) is charged; the real counter then stood 300 Wh below the
    # baseline: a run of odd readings that confirmed a "reset" (event 62, a false tamper event)
    # and kept the 300 Wh charged (195 paise). Now the real counter is behind the forged step:
    # nothing is charged until it passes it.
    rig, real = idle_rig(rig_factory)
    n0 = len(rig.events)
    with rig.pzem.silent():                                  # every earlier answer is used
        rig.set_clock(rig.clock + 60)
        rig.modbus_noise.inject("stray", data=forged_pzem_reply(real + 300), where="before_reply")
    m = rig.wait_meter(lambda m: m.wh != real, timeout=20)
    assert m.wh == real + 300                                # plausible over its minute: charged
    idle_then_load(rig, 5, n0, real + 300)                   # the 333 Wh: 300 paid already


def test_two_forged_steps_in_a_row_are_no_tamper_event_and_are_paid_back(rig_factory):
    # attack pass (session 12): +300 Wh then +600 Wh forged a minute apart, both charged; the real
    # counter behind both confirmed a "reset" (event 62) and was re-based down: 600 Wh (390
    # paise) charged twice. The floor of 'behind' now reaches back past the last 15 min of steps.
    rig, real = idle_rig(rig_factory)
    n0 = len(rig.events)
    for step in (300, 600):
        with rig.pzem.silent():
            rig.set_clock(rig.clock + 60)
            rig.modbus_noise.inject("stray", data=forged_pzem_reply(real + step), where="before_reply")
        rig.wait_meter(lambda m, w=real + step: m.wh == w, timeout=20)
    for _ in range(5):
        minutes_later(rig, 60)
    rig.set_load(2000)
    rig.pzem.advance(600)
    rig.pzem.wait_asked()
    rig.set_clock(rig.clock + 600)
    epoch, r0 = rig.clock, rig.pzem.requests
    m = rig.wait_meter(lambda m: m.epoch >= epoch and rig.pzem.requests >= r0 + 2, timeout=20)
    assert m.wh == real + 600                      # the real count (366 Wh) is still behind: held
    m = minutes_later(rig, 600)
    assert m.wh == rig.pzem.energy_wh > real + 600 and m.credit == CREDIT - m.wh * RATE // 1000
    assert EV_RESET not in [e[0] for e in rig.events[n0:]]


def test_a_forged_step_journaled_before_a_cut_is_no_tamper_event_after_the_boot(rig_factory):
    # the same within the slack (26 kW in no time: 15 Wh), journaled, then a power cut: the step
    # before it is not journaled, the slack is what the boot still knows
    rig, real = idle_rig(rig_factory)
    n0 = len(rig.events)
    rig.modbus_noise.inject("stray", data=forged_pzem_reply(real + 10), where="before_reply")
    rig.wait_meter(lambda m: m.wh == real + 10, timeout=20)  # charged, journaled (persist_wh 10)
    rig.power_cut()
    rig.power_on()
    idle_then_load(rig, 3, n0, real + 10)


def test_a_stale_reply_replayed_for_half_an_hour_is_a_tamper_event_and_charges_on(rig_factory):
    # attack pass (session 14): at 2 kW every poll answered for 30 min by a captured reply (333 Wh),
    # then the real replies: the step no reading showed is not charged (charging it let 5 forged
    # replies charge an hour of max_w: next test), the re-base is logged (event 62) for the
    # utility, and billing goes on from the real count
    rig = make(rig_factory, "pzem")
    t = rig.advance(600)
    assert t.wh == 333
    n0 = len(rig.events)
    noise = rig.modbus_noise
    noise.inject("stray", count=100000, data=forged_pzem_reply(t.wh), where="before_reply")
    for _ in range(6):                                       # 30 min: each step answered stale
        seen = noise.counts["stray"]
        rig.pzem.advance(300)
        rig.set_clock(rig.clock + 300)
        epoch = rig.clock
        rig.wait_meter(lambda m: m.epoch >= epoch and noise.counts["stray"] >= seen + 3, timeout=20)
    noise.clear()
    assert rig.meter.wh == t.wh and rig.pzem.energy_wh == 1333
    for _ in range(5):                                       # the real replies, 20 s apart
        rig.pzem.advance(20)
        rig.set_clock(rig.clock + 20)
        epoch, r0 = rig.clock, rig.pzem.requests
        rig.wait_meter(lambda m: m.epoch >= epoch and rig.pzem.requests >= r0 + 2, timeout=20)
    rig.wait_event(EV_RESET, timeout=20, start=n0)
    m0, p0 = rig.meter, rig.pzem.energy_wh
    m = minutes_later(rig, 600)                              # billing on from the real count
    assert m.wh - m0.wh == rig.pzem.energy_wh - p0 > 300 and m.credit == m0.credit - (m.wh * RATE // 1000 - m0.wh * RATE // 1000)
    assert m.relay and [e[0] for e in rig.events[n0:]].count(EV_RESET) == 1


def test_five_forged_replies_charge_nothing_and_open_no_relay(rig_factory):
    # attack pass (session 14, on the rule that charged stale steps): after an hour at 500 W, 5
    # forged replies at +26 kWh over 75 s were charged in full (credit 9622 -> -7316, relay open)
    rig = rig_factory(config={"credit_paise": 10000, "metering": {"fail_polls": 5, "fail_s": 60}},
                      module="pzem")
    rig.set_load(500)
    for _ in range(7):
        t = rig.advance(600)
    assert t.wh == rig.pzem.energy_wh == 583
    n0 = len(rig.events)
    noise = rig.modbus_noise
    noise.inject("stray", count=100000, data=forged_pzem_reply(t.wh + 26058), where="before_reply")
    for _ in range(6):
        seen = noise.counts["stray"]
        rig.set_clock(rig.clock + 15)
        epoch = rig.clock
        rig.wait_meter(lambda m: m.epoch >= epoch and noise.counts["stray"] >= seen + 2, timeout=20)
    noise.clear()
    for _ in range(8):                                       # the real count again, 20 s apart
        rig.pzem.advance(20)
        rig.set_clock(rig.clock + 20)
        epoch, r0 = rig.clock, rig.pzem.requests
        m = rig.wait_meter(lambda m: m.epoch >= epoch and rig.pzem.requests >= r0 + 2, timeout=20)
        assert m.relay and m.credit >= 10000 - rig.pzem.energy_wh * RATE // 1000 - 1
    assert m.wh <= rig.pzem.energy_wh and EV_RESET in [e[0] for e in rig.events[n0:]]
