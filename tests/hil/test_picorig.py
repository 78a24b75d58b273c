"""PicoRig (hil.picorig): the firmware's rp2040 board on the real MicroPython rp2 port inside
rp2040js. The whole HIL suite runs on it with ``--rig pico``; these tests are its own: flashing
an erased Pico with ``meterctl flash --board rp2040``, the runner's UART/flash fixes, and a
power-cut campaign on the real littlefs of the rp2 port (cuts at any cycle and at a chosen flash
erase/program). Skipped with one line when Node, rp2040js (``npm ci`` in hil/pico) or the UF2
are missing.
"""
import os
import random
import subprocess
import sys
import time

import pytest

from hil.picorig import PicoRig, unavailable
from hil.rig import RigError
from host_tools.client import DlmsClient, DlmsError
from host_tools.firmware_src import ROOT

pytestmark = [pytest.mark.hil, pytest.mark.skipif(unavailable() is not None,
                                                  reason=unavailable() or "")]

MGMT = dict(client_sap=1, password="12345678")
RATE = 650
CREDIT_LN = "0.0.19.10.0.255"


def top_up(port, paise, timeout=3.0):
    with DlmsClient(port, timeout=timeout, **MGMT) as c:
        return c.action(112, CREDIT_LN, 1, b"\x05" + paise.to_bytes(4, "big", signed=True))[0]


@pytest.fixture
def pico(tmp_path):
    made = []

    def make(name="pico", **kw):
        r = PicoRig(tmp_path / name, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def test_meterctl_flash_rp2040_on_an_erased_pico(pico, tmp_path):
    """`meterctl flash --board rp2040` against the virtual Pico as against a real one: copy over
    the USB CDC REPL, sha256 verify, machine.reset() (the watchdog reboots the board), DLMS
    confirmation of the serial on UART0."""
    rig = pico(start=False)
    rig.boot_erased()
    r = subprocess.run([sys.executable, "-m", "host_tools.meterctl", "flash", "--board", "rp2040",
                        "--port", rig.repl_port, "--serial", "PPM0000042", "--sgc", "123456",
                        "--keystore", str(tmp_path / "ks.json"), "--dlms-port", rig.port,
                        "--connect-timeout", "60"],
                       capture_output=True, text=True, timeout=600, cwd=str(ROOT))
    assert r.returncode == 0, r.stdout + r.stderr + rig.log_tail(20)
    assert "flashed PPM0000042" in r.stdout and "DLMS ok" in r.stdout, r.stdout
    assert rig.wdt_resets == 1                   # machine.reset() went through the watchdog
    r = subprocess.run([sys.executable, "-m", "host_tools.meterctl", "flash", "--board", "rp2040",
                        "--port", rig.repl_port, "--serial", "PPM0000042", "--keystore",
                        str(tmp_path / "ks.json"), "--no-confirm", "--json"],
                       capture_output=True, text=True, timeout=600, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr
    import json
    report = json.loads(r.stdout)
    assert report["copied"] == [] and report["verified"]      # a second run copies nothing


def test_long_dlms_frames_and_relay_gpio(pico):
    """Host->guest bursts far beyond the PL011's 32-byte FIFO (the runner's RX fix), the relay
    GPIO and the contact sense wired to it, the button on GP17."""
    rig = pico()
    rig.wait_relay(False)
    assert rig.relay_output is False
    with DlmsClient(rig.port, **MGMT) as c:          # AARQ with LLS: a frame of ~70 bytes
        assert c.action(112, CREDIT_LN, 1, b"\x05" + (5000).to_bytes(4, "big"))[0] == 0
        value = c.get(1, "0.0.42.0.0.255", 2)
        assert value[1] == b"PPM0000001"
    rig.wait_relay(True)
    assert rig.relay_output is True
    with DlmsClient(rig.port, **MGMT) as c:
        assert c.action(70, "0.0.96.3.10.255", 1, b"\x0f\x00")[0] == 0
        rig.wait_relay(False)
        assert c.action(70, "0.0.96.3.10.255", 2, b"\x0f\x00")[0] == 0
    rig.press_button()
    rig.wait_relay(True)
    assert rig.relay_output is True


class PicoCampaign:
    """Top-ups over DLMS and consumption, power cut at a random flash erase/program (torn) or at a
    random moment (SIGKILL at whatever cycle); after each cut the meter must boot with every
    acknowledged top-up applied exactly once and the in-flight one at most once."""

    def __init__(self, rig, seed):
        self.rig, self.rnd = rig, random.Random(seed)
        self.acked = self.inflight = 0
        self.n = {"cuts": 0, "flash_cuts": 0, "boot_cuts": 0, "op_cuts": 0, "timed_cuts": 0,
                  "acked_topups": 0, "inflight_applied": 0}

    def check(self, inflight):
        t = self.rig.telemetry
        assert t.wh == self.rig.pzem.energy_wh, (t, self.rig.pzem.energy_wh)
        base = self.acked - t.wh * RATE // 1000
        assert t.credit in (base, base + inflight), (t, self.acked, inflight)
        if inflight and t.credit == base + inflight:
            self.acked += inflight
            self.n["inflight_applied"] += 1

    def boot(self, cut_at):
        try:
            self.rig.power_on(cut_at=cut_at)
        except RigError:
            if not self.rig.cut_happened:
                raise
            self.rig.wait_off()
            self.n["boot_cuts"] += 1
            self.n["flash_cuts"] += 1
            self.rig.power_on()

    def _cut_struck(self):
        """True once the runner has stopped at the armed cut (waits a moment for its exit)."""
        try:
            self.rig.wait_off(timeout=2.0)
        except RigError:
            return False
        return self.rig.cut_happened

    def cycle(self):
        rig, rnd = self.rig, self.rnd
        timed = rnd.random() < 0.25
        self.boot(0 if timed else rnd.randint(1, 16))
        self.n["cuts"] += 1
        self.check(self.inflight)
        inflight = self.inflight = 0
        deadline = time.monotonic() + (rnd.uniform(0.5, 4.0) if timed else 60)
        while time.monotonic() < deadline and not rig.cut_happened:
            if rnd.random() < 0.6:
                inflight = rnd.randint(1, 500)
                try:
                    if top_up(rig.port, inflight) == 0:
                        self.acked += inflight
                        self.n["acked_topups"] += 1
                        inflight = 0
                except (DlmsError, OSError):
                    break
            else:
                rig.set_load(rnd.choice((0, 500, 2000, 5000)))
                try:
                    rig.advance(rnd.randint(60, 1800), timeout=15)
                except RigError:
                    break
        if not timed and self._cut_struck():
            self.n["op_cuts"] += 1
            self.n["flash_cuts"] += 1
        else:
            rig.power_cut()                          # at whatever cycle the guest is in
            self.n["timed_cuts"] += 1
        self.inflight = inflight


def run_pico_campaign(make, cuts, seed):
    rig = make(poll_ms=300)
    rig.power_cut()
    c = PicoCampaign(rig, seed)
    t0 = time.monotonic()
    while c.n["cuts"] < cuts:
        c.cycle()
    rig.power_on()
    c.check(c.inflight)
    c.n["seconds"] = round(time.monotonic() - t0, 1)
    print("\npico power-cut campaign: " + ", ".join("%s=%s" % kv for kv in sorted(c.n.items())))
    return c.n


def test_pico_powercut_campaign_short(pico):
    n = run_pico_campaign(pico, int(os.environ.get("PICO_CUTS", "3")), seed=19)
    assert n["acked_topups"] >= 1


@pytest.mark.slow
@pytest.mark.pico_campaign
def test_pico_powercut_campaign(pico):
    """At least 100 cuts (make soak / make pico): nothing acknowledged is ever lost."""
    n = run_pico_campaign(pico, int(os.environ.get("PICO_CAMPAIGN_CUTS", "100")), seed=20260101)
    assert n["cuts"] >= 100 or "PICO_CAMPAIGN_CUTS" in os.environ
    assert n["flash_cuts"] >= 20 and n["acked_topups"] >= 20
