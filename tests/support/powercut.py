"""The power-cut campaign machinery (tests/hil/test_powercut_campaign.py runs it on the emulated
meter, tests/hil/test_picorig_campaign.py reuses its operations on PicoRig): the firmware on the
MicroPython unix port, littlefs on the NOR flash model, power cut at a random program/erase
(torn program or partial erase, then SIGKILL) during a mixed workload; after every cut the flash
image is mounted and checked against a reference model.

Workload (pluggable: ``Op`` subclasses in ``WORKLOAD``; a campaign takes any list of them):
top-ups over DLMS (IC 112 update_amount), consumption (PZEM load + clock), settings writes
(IC 70 control_mode, IC 8 time_zone), relay operations (IC 70 remote_disconnect /
remote_reconnect, the button), STS tokens entered over DLMS (IC 115 enter). A token whose entry
was cut is entered again after the reboot: it must then be accepted if the cut journal did not
apply it, and rejected as USED if it did (applied at most once, never both).

After every cut (checks in ``Campaign.check_flash`` / ``check_boot``):
- the filesystem mounts (hil.norimage.inspect on a copy of the image, the firmware's own VfsLfs2);
- every acknowledged top-up is applied exactly once, and an operation cut before its
  acknowledgement reached the host is applied at most once: the journaled credit satisfies
  ``credit + debit(import_wh) - acknowledged == 0 or the amount in flight``, and after reboot
  the meter's credit equals ``top-ups applied - debit(module energy)`` exactly;
- settings and relay state are the acknowledged ones (or the one in flight);
- the loss bound: journaled import energy is less than ``persist_wh`` behind any energy the
  meter reported before the cut (README "Power cuts");
- the event log mounts, holds no top-up twice, holds no top-up that was not applied, and
  holds every top-up acknowledged in the cycle (or repaired at the next boot).
"""
import inspect
import random
import time

from hil import identity, norimage
from hil.emulated import EmulatedRig
from hil.rig import RigError
from host_tools import vend
from host_tools.build import build
from host_tools.client import DlmsClient, DlmsError

RATE = 650                 # paise/kWh (flat tariff of the rig's default config)
PERSIST_WH = 10            # firmware default cadence (meter.app DEFAULTS)
EV_CREDIT = 10
EV_TOKEN = 50              # token accepted (detail: TID)
MGMT = dict(client_sap=1, password="12345678")
CREDIT_LN, DC_LN, CLOCK_LN = "0.0.19.10.0.255", "0.0.96.3.10.255", "0.0.1.0.0.255"
BLOCKS = 64


def identity_tid0():
    """TID of the rig's first boot time (2026-01-01 00:00 UTC) on the 2014 base date."""
    from protocol import sts
    return sts.tid_from_unix(1767225600, identity.BASE_DATE)


def debit(wh):
    return wh * RATE // 1000


class Cut(Exception):
    """The meter died of an injected power cut during an operation."""


class Op:
    """One workload operation. ``run(c)`` performs it; an op that changes persisted state sets
    ``c.inflight`` before it starts and calls ``c.acked(...)`` when the host saw the ack."""
    weight = 1

    def run(self, c):
        raise NotImplementedError


class TopUp(Op):
    weight = 3

    def run(self, c):
        amount = c.new_amount()
        c.inflight = ("topup", amount)
        res, _ = c.dlms().action(112, CREDIT_LN, 1, b"\x05" + amount.to_bytes(4, "big", signed=True))
        assert res == 0, res
        c.applied += amount
        c.applied_amounts.add(amount)
        c.acked_this_cycle.append(amount)
        c.inflight = None


class Consume(Op):
    weight = 4

    def run(self, c):
        c.rig.set_load(c.rnd.choice((0, 150, 800, 2000, 4500)))
        t = c.rig.advance(c.rnd.choice((5, 20, 60, 180)), timeout=5)
        c.seen_wh = max(c.seen_wh, t.wh)


class SetMode(Op):
    def run(self, c):
        mode = 6 if c.mode == 5 else 5
        c.inflight = ("mode", mode)
        c.dlms().set(70, DC_LN, 4, bytes((0x16, mode)))
        c.mode = mode
        c.inflight = None


class SetTimeZone(Op):
    def run(self, c):
        tz = c.rnd.choice((-330, -300, 0, 60))             # IC 8 attr 3: minutes, UTC = local + tz
        c.inflight = ("tz", -tz)
        c.dlms().set(8, CLOCK_LN, 3, b"\x10" + tz.to_bytes(2, "big", signed=True))
        c.tz = -tz
        c.inflight = None


class Relay(Op):
    weight = 2

    def run(self, c):
        if c.cs == 1:
            nxt, how = 0, lambda: c.dlms().action(70, DC_LN, 1, b"\x0f\x00")
        elif c.cs == 0:
            nxt, how = 2, lambda: c.dlms().action(70, DC_LN, 2, b"\x0f\x00")
        else:
            nxt, how = 1, c.rig.press_button
        c.inflight = ("cs", nxt)
        r = how()
        if r is not None:
            assert r[0] == 0, r
        c.cs = nxt
        c.inflight = None


class Token(Op):
    """Vend a credit token (unique TID, credit = units x 65 paise at 650 paise/kWh) and enter it."""
    weight = 2

    def run(self, c):
        while True:
            units = c.rnd.randrange(1, 900)                   # 0.1 kWh
            paise = units * RATE // 10
            if paise not in c.amounts:
                c.amounts.add(paise)
                break
        c.tid += 1
        digits = vend.vend_token(identity.decoder_key(), algorithm="ea07", tables=str(identity.TABLES),
                                 base_date=identity.BASE_DATE, amount=units, tid=c.tid, rnd=c.tid & 15)["token"]
        c.inflight = ("token", paise, digits, c.tid)
        status = c.enter_token(digits)
        assert status == (3, "accepted"), status
        c.applied += paise
        c.applied_amounts.add(paise)
        c.acked_tids.append(c.tid)
        c.applied_tids.add(c.tid)
        c.inflight = None


WORKLOAD = [TopUp(), Consume(), SetMode(), SetTimeZone(), Relay(), Token()]


class Campaign:
    """Drives one rig through ``cuts`` injected power cuts; ``summary()`` has the figures."""

    dlms_timeout = 0.6             # s per frame (a cut meter is noticed after this)

    def __init__(self, workdir, seed=1, ops=None, max_cut_at=45, ops_per_cycle=10):
        self.rnd = random.Random(seed)
        self.ops = list(ops or WORKLOAD)
        self.max_cut_at = max_cut_at
        self.ops_per_cycle = ops_per_cycle
        # a private image of the firmware: build/unix is rebuilt under our feet when sources change
        fw, _ = build("unix", workdir.parent / "fw")
        kw = {}
        if "image" in inspect.signature(EmulatedRig).parameters:
            kw["image"] = "romfs"          # a ROMFS image of our private build
        self.rig = EmulatedRig(workdir, poll_ms=50, flash={"blocks": BLOCKS, "seed": seed},
                               relay_gates_load=False, start=False, firmware_dir=fw,
                               config={"sts": identity.sts_config()}, **kw)
        identity.install_tables(self.rig.state_dir)
        self.tid = identity_tid0()     # token identifiers: minutes since 2014, increasing
        self.acked_tids = []           # tokens acknowledged in this cycle
        self.applied_tids = set()
        self.reenter = None            # (digits, paise, tid, applied) of a token whose entry was cut
        self.applied = 0            # paise of top-ups applied (acknowledged or resolved)
        self.amounts = set()
        self.applied_amounts = set()
        self.acked_this_cycle = []
        self.expect_logged = set()
        self.inflight = None
        self.mode, self.tz, self.cs = 5, 330, 0    # first boot: no credit -> relay open
        self.seen_wh = 0
        self._client = None
        self.n = {"flash_cuts": 0, "boot_cuts": 0, "op_cuts": 0, "kills": 0, "ops": 0,
                  "acked_topups": 0, "inflight_applied": 0, "inflight_dropped": 0, "cycles": 0}
        self.rig.start()
        self.first_topup()

    # -- helpers -------------------------------------------------------------------------
    def new_amount(self):
        while True:
            a = self.rnd.randrange(1000, 60000)
            if a not in self.amounts:
                self.amounts.add(a)
                return a

    def dlms(self):
        if self._client is None:
            c = DlmsClient(self.rig.port, timeout=self.dlms_timeout, retries=0, **MGMT)
            self._client = c
            c.open()
            c.connect()
        return self._client

    def drop_client(self):
        c, self._client = self._client, None
        if c is not None:
            c.connected = c.associated = False
            c.close()

    def enter_token(self, digits):
        """IC 115 enter; returns (token_status_code, reason)."""
        from protocol import axdr_client as axdr
        c = self.dlms()
        res, _ = c.action(115, "0.0.19.40.0.255", 1, axdr.Writer().octet_string(digits.encode()).getvalue())
        assert res == 0, res
        st = c.get(115, "0.0.19.40.0.255", 6)[1][0][1]
        reason = bytes(c.get(115, "0.0.19.40.0.255", 4)[1][0][1]).decode()
        return st, reason

    def reenter_cut_token(self):
        """The token whose entry a cut interrupted, entered again: accepted iff not applied."""
        digits, paise, tid, applied = self.reenter
        self.reenter = None
        if not applied:    # this entry may itself be cut: resolved like any token in flight
            self.inflight = ("token", paise, digits, tid)
        status = self.enter_token(digits)
        self.inflight = None
        if applied:
            assert status == (6, "used"), ("re-entered token applied twice?", status)
            self.n["token_reentry_used"] = self.n.get("token_reentry_used", 0) + 1
        else:
            assert status == (3, "accepted"), ("re-entered token refused", status)
            self.applied += paise
            self.applied_amounts.add(paise)
            self.applied_tids.add(tid)
            self.acked_tids.append(tid)
            self.n["token_reentry_accepted"] = self.n.get("token_reentry_accepted", 0) + 1

    def first_topup(self):
        c = self.dlms()
        amount = 500000
        self.amounts.add(amount)
        assert c.action(112, CREDIT_LN, 1, b"\x05" + amount.to_bytes(4, "big"))[0] == 0
        self.applied += amount
        self.applied_amounts.add(amount)
        self.expect_logged.add(amount)
        self.cs = 1                        # credit restored: the policy closes the relay

    # -- one cycle: boot with a cut armed, work until it strikes --------------------------------
    def cycle(self):
        rig = self.rig
        self.n["cycles"] += 1
        self.acked_this_cycle = []
        self.acked_tids = []
        self.seen_wh = rig.meter.wh if rig.meter else 0
        died = False
        for i in range(self.ops_per_cycle):
            op = self.rnd.choices(self.ops, [o.weight for o in self.ops])[0]
            try:
                self.n["ops"] += 1
                if self.reenter is not None:
                    self.reenter_cut_token()
                    continue
                op.run(self)
            except (DlmsError, RigError, AssertionError, OSError):
                if not self._dead():
                    raise
                died = True
                break
        self.drop_client()
        if died:
            self.n["flash_cuts"] += 1
            self.n["op_cuts"] += 1
        elif not self.rig.running and self._dead():
            self.n["flash_cuts"] += 1
        else:
            self.n["kills"] += 1            # no flash op hit: cut the supply anyway
        rig.power_cut()
        self.check_flash()
        self.boot()

    def _dead(self):
        try:
            self.rig.wait_off(timeout=1.0)
            return self.rig.cut_happened
        except RigError:
            return False

    def boot(self):
        """Power on with a cut armed; a cut during boot is checked and booted again."""
        while True:
            cut_at = self.rnd.randrange(1, self.max_cut_at)
            try:
                self.rig.power_on(cut_at=cut_at, timeout=10)
            except RigError as e:
                assert self.rig.cut_happened, "boot failed without a power cut: %s" % (e,)
                self.n["flash_cuts"] += 1
                self.n["boot_cuts"] += 1
                self.rig.power_cut()
                self.check_flash()
                continue
            self.check_boot()
            return

    # -- checks -----------------------------------------------------------------------------
    def check_flash(self):
        st = norimage.inspect(self.rig.flash_image, BLOCKS)
        assert st["mounted"], st
        j = st["journal"]
        assert j is not None, "no journal after %d top-ups" % len(self.applied_amounts)
        obj, hot = j["obj"], j["hot"]
        credit, wh, mwh = hot[0], hot[2], hot[3]
        kind, val = (self.inflight or (None, None))[:2]
        delta = credit + debit(wh) - self.applied
        ok = [0] + ([val] if kind in ("topup", "token") else [])
        assert delta in ok, ("credit", credit, wh, self.applied, delta, self.inflight)
        assert mwh == wh, (mwh, wh)                      # the module counter started at 0 with us
        assert self.seen_wh - wh < PERSIST_WH, ("loss bound", self.seen_wh, wh)
        assert obj["mode"] in [self.mode] + ([val] if kind == "mode" else []), (obj["mode"], self.inflight)
        assert obj["tz"] in [self.tz] + ([val] if kind == "tz" else []), (obj["tz"], self.inflight)
        assert obj["cs"] in [self.cs] + ([val] if kind == "cs" else []), (obj["cs"], self.cs, self.inflight)
        # resolve what was in flight from the journal the meter will boot from
        carry = set()
        if kind == "topup":
            if delta == val:
                self.applied += val
                self.applied_amounts.add(val)
                carry.add(val)          # logged now, or repaired from the journal at the next boot
                self.n["inflight_applied"] += 1
            else:
                self.n["inflight_dropped"] += 1
        elif kind == "token":
            applied = delta == val
            if applied:
                self.applied += val
                self.applied_amounts.add(val)
                self.applied_tids.add(self.inflight[3])
                self.n["inflight_applied"] += 1
            else:
                self.n["inflight_dropped"] += 1
            self.reenter = (self.inflight[2], val, self.inflight[3], applied)
        elif kind == "mode":
            self.mode = obj["mode"]
        elif kind == "tz":
            self.tz = obj["tz"]
        elif kind == "cs":
            self.cs = obj["cs"]
        self.inflight = None
        # event log
        assert st["event_count"] == len(st["events"]) <= 180       # the rings of meter.audit
        credits = [e[2] for e in st["events"] if e[1] == EV_CREDIT]
        assert len(credits) == len(set(credits)), ("top-up logged twice", credits)
        assert set(credits) <= self.applied_amounts, ("event of a top-up not applied", credits)
        missing = (set(self.acked_this_cycle) | self.expect_logged) - set(credits)
        pev = obj.get("pev")
        if pev and pev[2] == EV_CREDIT and pev[3] in missing:
            # journaled with its event pending (the cut came before the log append): the next
            # boot writes it from the record; until a boot completes it stays pending
            missing.discard(pev[3])
            carry.add(pev[3])
            self.n["event_repairs_pending"] = self.n.get("event_repairs_pending", 0) + 1
        assert not missing, ("applied top-up not in the event log", missing, self.acked_this_cycle,
                             self.expect_logged, st["events"][-12:], j)
        self.expect_logged = carry
        self.n["acked_topups"] += len(self.acked_this_cycle)
        tids = [e[2] for e in st["events"] if e[1] == EV_TOKEN]
        assert len(tids) == len(set(tids)), ("token logged twice", tids)
        assert set(tids) <= self.applied_tids, ("event of a token not applied", tids)
        pending = {pev[3]} if pev and pev[2] == EV_TOKEN else set()
        lost = set(self.acked_tids) - set(tids) - pending
        assert not lost, ("acknowledged token not in the event log", lost, st["events"][-12:])
        self.n["acked_tokens"] = self.n.get("acked_tokens", 0) + len(self.acked_tids)

    def check_boot(self):
        t = self.rig.meter
        pz = self.rig.pzem.energy_wh
        assert t.wh == pz, (t, pz)
        assert t.credit == self.applied - debit(pz), ("credit after boot", t, self.applied, debit(pz))
        self.seen_wh = t.wh

    def summary(self):
        wear = norimage.wear_summary(self.rig.flash_wear())
        d = dict(self.n, credit_paise=self.rig.meter.credit if self.rig.meter else None,
                 applied_paise=self.applied, wear_max=wear["max"], wear_total=wear["total"])
        return d

    def close(self):
        self.drop_client()
        self.rig.stop()


def run_campaign(tmp_path, cuts, seed):
    c = Campaign(tmp_path / "rig", seed=seed)
    t0 = time.monotonic()
    try:
        while c.n["flash_cuts"] < cuts:
            c.cycle()
        s = c.summary()
    finally:
        c.close()
    s["seconds"] = round(time.monotonic() - t0, 1)
    print("\npower-cut campaign: " + ", ".join("%s=%s" % kv for kv in sorted(s.items())))
    return s
