"""A lab runs the HIL suite on its own board (new-user pass, session 13): a board flashed by
``meterctl flash`` (or ``meterctl emulate``) refuses LLS to the management client 1, so the
bench rig takes the board's HLS keys (``--meter-key-file`` or ``--meter-serial`` with
``--meter-keystore``) and ``meter_client``, ``rig.management_client()`` and examples/ use them.

The board here is an emulated meter provisioned with the DLMS test identity's keys, as
``meterctl emulate`` runs it; a second pytest drives it as a bench rig on its pty."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from hil import identity

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUITE = ["examples/tests/test_meter.py", "tests/hil/test_e2e_meter.py"]

pytestmark = [pytest.mark.hil]


def bench_pytest(port, *options):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    for k in ("METER_KEY_FILE", "METER_SERIAL", "METER_KEYSTORE", "METER_PASSWORD", "PYTEST_ADDOPTS"):
        env.pop(k, None)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                        "-p", "no:xdist", "--rig", "bench", "--meter-port", port, *options, *SUITE],
                       cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=240)
    return r.returncode, r.stdout + r.stderr


def keystore_file(tmp_path, serial):
    """A keystore as ``meterctl flash`` leaves it: the meter's ``security`` record (no mech)."""
    sec = identity.keys()
    sec.pop("mech")
    path = tmp_path / "lab.keystore"
    path.write_text(json.dumps({"format": 1, "defaults": {}, "meters": {serial: {"security": sec}}}))
    return path


def test_bench_rig_runs_the_suite_on_a_board_with_keys(rig_factory, tmp_path):
    board = rig_factory(config={"security": identity.security_config()})
    assert board.management_keys is not None      # the emulated rig's own clients use HLS too
    with board.management_client() as c:
        assert c.get(1, "0.0.42.0.0.255", 2)[1] == b"PPM0000001"
    key_file = identity.write_key_file(tmp_path / "keys.json")
    for options in (("--meter-key-file", str(key_file)),
                    ("--meter-keystore", str(keystore_file(tmp_path, "PPM0000001")),
                     "--meter-serial", "PPM0000001")):
        code, out = bench_pytest(board.port, *options)
        assert code == 0, out
        assert "PASSED examples/tests/test_meter.py::test_read_credit_and_energy" in out, out
        assert "PASSED tests/hil/test_e2e_meter.py::test_public_client_reads_but_cannot_write" in out
        # the relay read back over DLMS (session 15: skipped, the bench rig had no relay capability)
        assert "PASSED examples/tests/test_meter.py::test_top_up_closes_the_relay" in out, out
    # without the board's keys the management association is refused: the suite fails
    code, out = bench_pytest(board.port)
    assert code == 1 and "application-context-name-not-supported" in out, out


def test_unknown_serial_is_one_usage_line(tmp_path):
    code, out = bench_pytest("/dev/null", "--meter-keystore", str(keystore_file(tmp_path, "PPM1")),
                             "--meter-serial", "PPM0000099")
    assert code == 4, out
    assert "no DLMS keys for meter PPM0000099" in out and "Traceback" not in out, out
