"""The labgrid path end to end, on this machine: an emulated meter exported like a farm board.

hil.farm starts the meter and its simplerest power switch; the test starts labgrid's gRPC
coordinator and an exporter (127.0.0.1 only; the exporter serves the meter's DLMS pty with
ser2net as an RFC 2217 NetworkSerialPort), creates and acquires a place, runs the outside example
suite (examples/tests: top-up over DLMS, relay read back, power cut through labgrid's power
driver) with ``--rig labgrid --lg-env``, and releases the place.
"""
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import pytest

from hil.farm import EmulatedFarm

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
PLACE = "meter-farm-0"

pytestmark = [
    pytest.mark.hil,
    pytest.mark.skipif(not (BIN / "labgrid-coordinator").exists(), reason="labgrid not installed"),
    pytest.mark.skipif(shutil.which("ser2net") is None and not os.path.exists("/usr/sbin/ser2net"),
                       reason="ser2net (the exporter's serial server) not installed"),
]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client(coord, *args, check=True, timeout=30):
    r = subprocess.run([str(BIN / "labgrid-client"), "-x", coord, "-p", PLACE] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        raise AssertionError("labgrid-client %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
    return r


def _wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.2)   # sleep-ok: labgrid's processes give no event: poll their state


def _daemon(argv, log, cwd):
    # cwd: the coordinator keeps places.yaml / resources.yaml in its working directory
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=str(cwd))


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def farm_place(tmp_path):
    """(coordinator address, env.yaml) with the place acquired; everything torn down after."""
    coord = "127.0.0.1:%d" % _free_port()
    log = open(str(tmp_path / "labgrid.log"), "w")
    procs = []
    farm = EmulatedFarm(1, tmp_path / "farm")
    try:
        exp_yaml = tmp_path / "exporter.yaml"
        exp_yaml.write_text(farm.exporter_config())
        procs.append(_daemon([str(BIN / "labgrid-coordinator"), "--listen", coord], log, tmp_path))
        _wait_for(lambda: _client(coord, "places", check=False).returncode == 0, 30, "coordinator")
        procs.append(_daemon([str(BIN / "labgrid-exporter"), "--coordinator", coord,
                              "--name", "farm", "--hostname", "127.0.0.1", str(exp_yaml)], log, tmp_path))
        _wait_for(lambda: "farm/meter0/NetworkSerialPort" in _client(
            coord, "resources", check=False).stdout, 30, "exported resources")
        _client(coord, "create")
        _client(coord, "add-match", "farm/meter0/*")
        _client(coord, "acquire")
        yield coord, ROOT / "examples" / "labgrid" / "env.yaml", farm
        _client(coord, "release")
    finally:
        for p in reversed(procs):
            _stop(p)
        farm.stop()
        log.close()


def test_example_suite_runs_on_a_labgrid_place(farm_place, tmp_path):
    coord, env_yaml, farm = farm_place
    env = dict(os.environ, LG_COORDINATOR=coord, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "hil.pytest_plugin",
                        "-p", "no:cacheprovider", "-rs", "--rig", "labgrid", "--lg-env", str(env_yaml),
                        str(ROOT / "examples" / "tests")],
                       cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out + (tmp_path / "labgrid.log").read_text()[-3000:]
    # top-up + relay and power cut ran on the farm; drain needs the emulator's load/clock
    assert "3 passed, 1 skipped" in out, out
    assert "lacks capability load" in out, out
    assert farm.rigs[0].running               # labgrid's power driver switched it back on
