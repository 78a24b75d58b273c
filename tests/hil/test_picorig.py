"""PicoRig (hil.picorig): the firmware's rp2040 board on the real MicroPython rp2 port inside
rp2040js. The whole HIL suite runs on it with ``--rig pico``; these tests are its own: flashing
an erased Pico with ``meterctl flash --board rp2040`` and the runner's UART/GPIO fixes (the
power-cut campaign is ``test_picorig_campaign.py``, gurux reading every attribute
``test_picorig_gurux.py``). Skipped with one line when Node, rp2040js (``npm ci`` in hil/pico) or
the UF2 are missing.
"""
import subprocess
import sys

import pytest

from hil.picorig import PicoRig, unavailable
from host_tools.client import DlmsClient
from host_tools.firmware_src import ROOT

pytestmark = [pytest.mark.hil, pytest.mark.skipif(unavailable() is not None,
                                                  reason=unavailable() or "")]

MGMT = dict(client_sap=1, password="12345678")
CREDIT_LN = "0.0.19.10.0.255"


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
