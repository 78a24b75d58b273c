"""PicoRig power-cut campaign: the firmware on the real MicroPython rp2 port (littlefs on the
RP2040's flash, rp2040js), one power cut per power-on, 100+ cuts in a few minutes.

Each cycle powers the board on (the flash image kept from the last cut, nothing redeployed),
checks it, runs one operation with no cut armed (acknowledged: it must survive the coming cut),
arms the cycle's cut, runs a second operation and cuts the power. The cut is one of:

- ``boot``: armed at the n-th flash erase/program of the boot (``power_on(cut_at=n)``: the boot's
  own writes, the power-up event and journal); when the boot gets through, the same cut is still
  armed and strikes in the operation;
- ``flash``: armed at the n-th erase/program from now, relative to the meter's own flash writes
  (`PicoRig.arm_cut`), then the operation (the cut tears its journal write, its event, ...);
- ``cycle``: armed after n executed CPU cycles (any instruction: decoding, crediting, writing);
- ``after``: none armed; the supply is cut (SIGKILL of the emulator) right after the
  acknowledgement reached the host.

The operation is a top-up over DLMS (IC 112), an STS token entered over DLMS (IC 115) or a drain
step (a load for a while; about half the steps take the credit to zero or below), as in
``test_powercut_campaign`` (its operations, in tests/support/powercut.py, are reused). After every power-on:

- the meter answers: it reports a metering cycle and its credit over DLMS equals the reported one;
- every acknowledged top-up and token is credited exactly once: the credit equals the reference
  ``applied - debit(module energy)``; the operation cut before its acknowledgement is applied
  at most once (its amount or nothing); a token whose entry was cut is entered again as the next
  operation and must be accepted if it was not applied and refused as USED if it was;
- the relay follows the rules (prepayment, control mode 5): closed if and only if credit > 0,
  on the reported state and on the relay GPIO.

One summary line: cuts by kind, boots, acknowledged operations, lost (0), wall time.
"""
import os
import random
import time

import pytest

from hil.picorig import PicoRig, unavailable
from hil.rig import RigError
from host_tools.client import DlmsError
from powercut import CREDIT_LN, RATE, Campaign, Op, Token, TopUp, debit, identity_tid0

pytestmark = [pytest.mark.hil, pytest.mark.skipif(unavailable() is not None,
                                                  reason=unavailable() or "")]

CUTS = ("boot", "flash", "cycle", "after")
CUT_WEIGHTS = (2, 4, 3, 2)
BOOT_FLASH_OPS = 4          # a boot erases/programs 3-4 times (power-up event, journal)
OP_FLASH_OPS = 3            # a top-up 2-3, a token 2-5, a drain step 1-2
OP_CYCLES = 8000000         # a top-up ~3.8 M cycles, a token ~8 M, idle metering ~6.5 M/s


class Drain(Op):
    """A load for a while: the module counts the energy, the meter debits it; about half the steps
    take the credit (as the reference has it) to zero or a little below."""
    weight = 3

    def run(self, c):
        credit = c.applied - debit(c.rig.pzem.energy_wh)
        if credit > 0 and c.rnd.random() < 0.5:
            wh = credit * 1000 // RATE + c.rnd.randint(-2, 20)
        else:
            wh = c.rnd.randint(1, 300)
        hours = max(1, -(-wh // 5000))                 # at most 5 kW (top-ups up to 600 rupees)
        c.rig.set_load(max(1, wh // hours))
        c.rig.advance(3600 * hours, timeout=10)
        c.rig.set_load(0)


OPS = [TopUp(), Token(), Drain()]


class PicoCampaign(Campaign):
    """`test_powercut_campaign.Campaign`'s operations and bookkeeping on a PicoRig; the checks
    are made on the meter after each power-on (the rp2 flash is not inspected on the host)."""

    dlms_timeout = 2.0             # the emulated RP2040 answers in ~0.1-0.3 s; more under load

    def __init__(self, rig, seed):          # not Campaign.__init__: that one builds an EmulatedRig
        self.rig, self.rnd = rig, random.Random(seed)
        self.tid = identity_tid0()
        self.acked_tids, self.applied_tids, self.acked_this_cycle = [], set(), []
        self.amounts, self.applied_amounts = set(), set()
        self.reenter = self.inflight = self._client = None
        self.applied = 0
        self.n = dict({"cut_" + k: 0 for k in CUTS}, boots=0, acked_topup=0, acked_token=0,
                      acked_drain=0, token_reentries=0, inflight_applied=0, inflight_dropped=0,
                      relay_open_checks=0)

    @property
    def cuts(self):
        return sum(self.n["cut_" + k] for k in CUTS)

    def _dead(self):
        try:
            self.rig.wait_off(timeout=3.0)
        except RigError:
            return False
        return self.rig.cut_happened

    # -- one power-on, two operations, one cut ------------------------------------------------
    def cycle(self):
        """Power on (maybe with a boot cut armed), check, one operation with no cut armed, arm
        the cycle's cut, a second operation, cut."""
        rig, rnd = self.rig, self.rnd
        kind = rnd.choices(CUTS, CUT_WEIGHTS)[0]
        self.n["boots"] += 1
        try:
            rig.power_on(cut_at=rnd.randint(1, BOOT_FLASH_OPS) if kind == "boot" else None, timeout=90)
        except RigError:
            if not rig.cut_happened:
                raise
            rig.wait_off()
            self.n["cut_boot"] += 1
            return
        self.check()
        if not self.operation():        # a boot cut still armed struck in it
            self.n["cut_flash"] += 1
            return
        if kind == "flash":
            rig.arm_cut(op=rnd.randint(1, OP_FLASH_OPS))
        elif kind == "cycle":
            rig.arm_cut(cycles=rnd.randint(1, OP_CYCLES))
        if not self.operation():
            self.n["cut_" + ("flash" if kind == "boot" else kind)] += 1
            return
        rig.power_cut()                 # the armed cut did not come: cut right after the ack
        self.n["cut_after"] += 1

    def operation(self):
        """One operation (a cut token first entered again); False if a power cut struck in it."""
        op = None if self.reenter else self.rnd.choices(OPS, [o.weight for o in OPS])[0]
        try:
            if op is None:
                self.reenter_cut_token()
                self.n["token_reentries"] += 1
            else:
                op.run(self)
                self.n["acked_" + ("topup" if isinstance(op, TopUp) else type(op).__name__.lower())] += 1
        except (DlmsError, RigError, AssertionError, OSError):
            self.drop_client()
            if not self._dead():
                raise
            return False
        self.drop_client()
        return True

    # -- after each power-on -------------------------------------------------------------------
    def check(self):
        rig = self.rig
        t, pz = rig.telemetry, rig.pzem.energy_wh
        assert t.wh == pz, ("energy", t, pz)
        kind, val = (self.inflight or (None, None))[:2]
        delta = t.credit - (self.applied - debit(pz))
        allowed = [0] + ([val] if kind in ("topup", "token") else [])
        assert delta in allowed, ("acknowledged credit lost or doubled", t, self.applied, pz, self.inflight)
        if kind in ("topup", "token"):
            self.n["inflight_applied" if delta else "inflight_dropped"] += 1
            if delta:
                self.applied += val
                self.applied_amounts.add(val)
            if kind == "token":
                if delta:
                    self.applied_tids.add(self.inflight[3])
                self.reenter = (self.inflight[2], val, self.inflight[3], bool(delta))
        self.inflight = None
        assert t.relay == (t.credit > 0), ("relay against the rules", t)
        # the GPIO: driven high when closed; open = low or never driven since power-on
        assert rig.relay_output in ((True,) if t.relay else (False, None)), ("relay GPIO", rig.relay_output, t)
        self.n["relay_open_checks"] += not t.relay
        value = self.dlms().get(112, CREDIT_LN, 2)[1]
        assert value == t.credit, ("credit over DLMS", value, t)
        self.drop_client()


def run_pico_campaign(workdir, cuts, seed):
    rig = PicoRig(workdir, poll_ms=300, sts=True)
    t0 = time.monotonic()
    try:
        c = PicoCampaign(rig, seed)
        TopUp().run(c)             # start with some credit
        c.n["acked_topup"] += 1
        c.drop_client()
        rig.power_cut()
        c.n["cut_after"] += 1
        while c.cuts < cuts:
            c.cycle()
        c.n["boots"] += 1
        rig.power_on()
        c.check()
    finally:
        rig.stop()
    n, wall = c.n, time.monotonic() - t0
    acked = n["acked_topup"] + n["acked_token"] + n["acked_drain"] + n["token_reentries"]
    print("\npico power-cut campaign: cuts=%d (%s), boots=%d, acknowledged ops=%d (top-ups %d, tokens "
          "%d + %d re-entered, drain steps %d), in flight applied/dropped %d/%d, relay-open checks %d, "
          "lost 0, wall %.0f s (%.1f s a cut)"
          % (c.cuts, " ".join("%s %d" % (k, n["cut_" + k]) for k in CUTS), n["boots"], acked,
             n["acked_topup"], n["acked_token"], n["token_reentries"], n["acked_drain"],
             n["inflight_applied"], n["inflight_dropped"], n["relay_open_checks"], wall, wall / c.cuts))
    return dict(n, cuts=c.cuts, acked=acked, seconds=round(wall, 1))


@pytest.mark.slow
@pytest.mark.pico_campaign
def test_pico_powercut_campaign_short(tmp_path):
    """A few cuts of each kind (make pico, ~60 s; out of make test for its 10-minute budget): the
    campaign's machinery on the rp2 port."""
    n = run_pico_campaign(tmp_path / "pico", int(os.environ.get("PICO_CUTS", "8")), seed=19)
    assert n["acked"] >= 3


@pytest.mark.slow
@pytest.mark.pico_campaign
def test_pico_powercut_campaign(tmp_path):
    """At least 100 cuts (make pico / make pico-campaign): nothing acknowledged is ever lost."""
    n = run_pico_campaign(tmp_path / "pico", int(os.environ.get("PICO_CAMPAIGN_CUTS", "100")),
                          seed=20260101)
    assert n["cuts"] >= 100 or "PICO_CAMPAIGN_CUTS" in os.environ
    assert all(n["cut_" + k] >= 5 for k in CUTS) or "PICO_CAMPAIGN_CUTS" in os.environ
    assert n["acked_topup"] >= 10 and n["acked_token"] >= 5 and n["relay_open_checks"] >= 3
