"""Noise campaign on the Modbus line of the emulated meter (issue 13): a drain run (constant load,
prepaid credit running out) with random noise of every `hil.linenoise` kind between the meter and
its metering module, and stalls of the module (10 minutes each) on the way, for each module type.

What must hold at the end: the energy charged equals the module's own counter to the Wh; the
relay opened at the same moment as without noise (the noise-free moment is computed from the
tariff rule: flat rate, cumulative floor; the short variant also runs the schedule without
noise) within one metering interval; every stall (a fault longer than the threshold) gave one
fault event and one recovery in the event log. The full campaign (a simulated day, >= 1,000
noise events per module) is ``slow`` (make soak) and prints a summary line per module type.
"""

import time

import pytest

from hil.linenoise import KINDS

pytestmark = pytest.mark.hil

RATE = 650
LOAD_W = 1000
STEP_S = 60                  # one metering interval of the campaign (RTC seconds per step)
EV_FAULT, EV_RECOVERED = "70", "71"
# per transaction; the kinds that cost a master timeout (delay, silent, wrong_unit, request-side
# drop/stray) are kept low: each costs 0.5-1.5 s of wall time
NOISE = {"stray": 0.08, "drop": 0.06, "delay": 0.02, "split": 0.06, "crc": 0.06,
         "exception": 0.05, "wrong_unit": 0.03, "silent": 0.02}
# the PZEM answers a poll in one transaction, the SDMs in two: its rates are scaled up so that a
# day gives >= 1,000 events to each module type at about the same wall time
SCALE = {"pzem": 1.4}
# max_w lifted: the rig's clock is frozen between steps, so a late (stale) reply read after the
# clock moved restarts the plausibility window and the step's energy then looks instantaneous
# (meter.metrology.Health); a real clock moves on and resolves it, the frozen one never does.
# This campaign is about line noise, not plausibility (tests/hil/test_metering_faults.py)
METERING = {"fail_polls": 5, "fail_s": 600, "max_w": 100000000}


def expected_open_step(credit):
    """The step at whose metering cycle the relay opens without noise: the first k with
    credit - floor(Wh_k x rate / 1000) <= 0, Wh_k = floor(LOAD_W x STEP_S x k / 3600)."""
    k = 0
    while credit - (LOAD_W * STEP_S * k // 3600) * RATE // 1000 > 0:
        k += 1
    return k


def drain_run(rig_factory, module, credit, steps, stalls, noise, seed=1, name=None):
    """Run ``steps`` metering intervals at LOAD_W from ``credit`` paise; the module is stalled
    for 10 steps from each step in ``stalls``. Returns a dict of what happened."""
    rig = rig_factory(config={"credit_paise": credit, "metering": METERING}, module=module,
                      poll_ms=50, name=name)
    rig.set_load(LOAD_W)
    t0 = rig.clock
    if noise:
        for kind in KINDS:                       # every kind at least once, then at random
            rig.modbus_noise.inject(kind)
        f = SCALE.get(module, 1.0)
        rig.modbus_noise.random({kind: rate * f for kind, rate in NOISE.items()}, seed=seed)
    stall_events = []
    wall = time.monotonic()
    k = 0
    while k < steps:
        if k in stalls:
            n0 = len(rig.events)
            rig.pzem.stall(True)
            for _ in range(10):
                rig.pzem.advance(STEP_S)
                rig.set_clock(rig.clock + STEP_S)
                epoch = rig.clock
                rig.wait_meter(lambda m: m.epoch >= epoch, timeout=30)
            rig.wait_event(EV_FAULT, timeout=30, start=n0)
            rig.pzem.stall(False)
            rig.wait_event(EV_RECOVERED, timeout=30, start=n0)
            wh = rig.pzem.energy_wh + rig.wh_offset
            rig.wait_meter(lambda m: m.wh == wh, timeout=30)
            stall_events.append([e[0] for e in rig.events[n0:]])
            k += 10
            continue
        rig.advance(STEP_S, timeout=30)
        k += 1
    wall = time.monotonic() - wall
    rig.modbus_noise.random(None)
    opened = [t for t, closed in rig.relay_history if not closed and t > t0]
    codes = [e[0] for e in rig.events]
    return {"rig": rig, "wall": wall, "meter_wh": rig.meter.wh, "module_wh": rig.pzem.energy_wh,
            "credit": rig.meter.credit, "open_at": (opened[0] - t0) if opened else None,
            "counts": rig.modbus_noise.counts, "total": rig.modbus_noise.total,
            "transactions": rig.modbus_noise.transactions, "stalls": stall_events,
            "faults": codes.count(EV_FAULT), "recoveries": codes.count(EV_RECOVERED)}


def check(r, credit, steps):
    """The campaign's acceptance on one run; returns its summary line."""
    assert r["meter_wh"] == r["module_wh"], r             # charged = the module's counter
    assert r["credit"] == credit - r["meter_wh"] * RATE // 1000
    want = expected_open_step(credit) * STEP_S
    assert want < steps * STEP_S and r["open_at"] is not None, r
    assert abs(r["open_at"] - want) <= STEP_S, r           # within one metering interval
    for ev in r["stalls"]:                                  # every long fault is logged, once
        assert ev.count(EV_FAULT) == 1 and ev.count(EV_RECOVERED) == 1, ev
    assert r["faults"] == r["recoveries"] >= len(r["stalls"]), r
    return ("wh %d = module %d, relay open at +%d s (noise-free +%d s, delta %d s), faults %d "
            "(stalls %d), noise %d events in %d transactions %s, wall %.0f s"
            % (r["meter_wh"], r["module_wh"], r["open_at"], want, r["open_at"] - want,
               r["faults"], len(r["stalls"]), r["total"], r["transactions"], r["counts"],
               r["wall"]))


# make test: the PZEM (integer registers) and the SDM630 (the Eastron float32 path, which the
# SDM120 shares); the SDM120's short run goes with the day campaigns into make soak
@pytest.mark.parametrize("module", ["pzem", pytest.param("sdm120", marks=pytest.mark.slow), "sdm630"])
def test_noise_short(rig_factory, module):
    """One simulated hour, one stall: the same checks as the campaign, and the relay moment
    compared with a noise-free run of the same schedule."""
    credit, steps = 500, 60                       # opens after 770 Wh: step 47
    quiet = drain_run(rig_factory, module, credit, steps, (10,), noise=False, name="quiet")
    noisy = drain_run(rig_factory, module, credit, steps, (10,), noise=True, name="noisy")
    check(quiet, credit, steps)
    line = check(noisy, credit, steps)
    assert noisy["open_at"] == quiet["open_at"]
    assert all(noisy["counts"][k] for k in KINDS), noisy["counts"]
    print("\nnoise short %s: %s" % (module, line))


@pytest.mark.slow
@pytest.mark.parametrize("module", ["pzem", "sdm120", "sdm630"])
def test_noise_campaign_day(rig_factory, module):
    """A simulated day (1,440 metering intervals), three 10-minute stalls, >= 1,000 noise
    events of every kind."""
    credit, steps = 13000, 1440                   # opens after 20000 Wh: step 1200 (hour 20)
    r = drain_run(rig_factory, module, credit, steps, (180, 540, 900), noise=True, seed=13)
    line = check(r, credit, steps)
    assert r["total"] >= 1000 and all(r["counts"][k] for k in KINDS), r["counts"]
    print("\nnoise campaign %s: %s" % (module, line))
