"""Issue 14 findings that need a running emulated meter: `meterctl emulate` when its firmware
dies and on SIGTERM, and `config show` on a fresh emulator."""
import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.hil

ROOT = pathlib.Path(__file__).resolve().parents[2]


class Emulate:
    """`python -m host_tools.meterctl emulate` of this checkout; reads its banner."""

    def __init__(self):
        self.p = subprocess.Popen([sys.executable, "-m", "host_tools.meterctl", "emulate"], cwd=str(ROOT),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=dict(os.environ, PYTHONPATH=str(ROOT)))
        self.info = {}
        for line in self.p.stdout:                  # blocks until the banner is out
            key, sep, value = line.partition(":")
            if sep:
                self.info[key.strip()] = value.strip()
            if line.startswith("Stop with Ctrl-C"):
                break
        assert "DLMS serial port" in self.info, self.p.stderr.read()

    def finish(self, timeout=60):
        out, err = self.p.communicate(timeout=timeout)
        return self.p.returncode, out, err

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def meterctl(*args):
    return subprocess.run([sys.executable, "-m", "host_tools.meterctl", *args], capture_output=True, text=True,
                          timeout=60, cwd=str(ROOT))


def test_emulate_exits_when_its_firmware_dies():
    e = Emulate()
    try:
        os.kill(int(e.info["Firmware pid"]), signal.SIGKILL)
        code, _, err = e.finish()
    finally:
        e.kill()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and "firmware process died" in lines[0], (code, err)


def test_sigterm_to_emulate_removes_its_temporary_directory():
    e = Emulate()
    try:
        workdir = pathlib.Path(e.info["State directory"]).parent
        assert workdir.is_dir()
        e.p.send_signal(signal.SIGTERM)
        code, _, err = e.finish()
    finally:
        e.kill()
    assert code == 143 and "Traceback" not in err, (code, err)
    assert not workdir.exists()


def test_config_show_on_a_fresh_emulator_shows_the_tariff_it_bills_at():
    e = Emulate()
    try:
        r = meterctl("config", "show", "--port", e.info["DLMS serial port"], "--client", "32", "--password", "00000000", "--json")
    finally:
        e.p.send_signal(signal.SIGINT)
        e.finish()
        e.kill()
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tariff"] == {"rate": 650}      # paise/kWh: the emulator's flat rate


def test_emulate_many_meters_prints_one_port_each_and_stops_on_ctrl_c():
    p = subprocess.Popen([sys.executable, "-m", "host_tools.meterctl", "emulate", "--meters", "3"],
                         cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        ports = {}
        for line in p.stdout:                       # blocks until the list is out
            if line.startswith("Stop with Ctrl-C"):
                break
            parts = line.split()
            if len(parts) == 2 and parts[0].startswith("PPM"):
                ports[parts[0]] = parts[1]
        assert sorted(ports) == ["PPM0000001", "PPM0000002", "PPM0000003"], p.stderr.read()
        for serial, port in ports.items():          # each port is its own meter
            r = meterctl("get", "0.0.42.0.0.255", "2", "--port", port, "--json")
            assert r.returncode == 0 and serial in r.stdout, r.stdout + r.stderr
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and "Traceback" not in err, (p.returncode, err)
