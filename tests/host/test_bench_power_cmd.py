"""``--rig bench --power-cmd CMD``: the rig runs CMD with ``{state}`` replaced by ``off`` for
``rig.power_cut()`` and ``on`` for ``rig.power_on()``, as docs/BENCH.md says; a command without
``{state}`` (docs/BENCH.md gave ``'relayctl {on|off}'``, run as such) is a usage error before any
test runs (new-user pass, session 13)."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

CUT = '''
def test_cut_and_restore(rig):
    rig.power_cut()
    rig.power_on()
'''


def bench_run(tmp_path, power_cmd):
    (tmp_path / "test_cut.py").write_text(CUT)
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["hil.pytest_plugin"]\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTEST_ADDOPTS", None)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                        "--rig", "bench", "--meter-port", os.devnull, "--power-cmd", power_cmd,
                        "test_cut.py"], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                       timeout=120)
    return r.returncode, r.stdout + r.stderr


def test_power_cmd_state_becomes_off_then_on(tmp_path):
    log = tmp_path / "supply.log"
    code, out = bench_run(tmp_path, "echo {state} >> %s" % log)
    assert code == 0 and "1 passed" in out, out
    assert log.read_text().split() == ["off", "on"]


def test_power_cmd_without_state_is_a_usage_error(tmp_path):
    code, out = bench_run(tmp_path, "echo {on|off} >> %s" % (tmp_path / "supply.log"))
    assert code == 4, out                                   # pytest's usage error: nothing ran
    assert "--power-cmd" in out and "{state}" in out and "Traceback" not in out, out
    assert not (tmp_path / "supply.log").exists()
