"""The plugin with ``--rig bench`` (new-user pass, session 13; no board needed: nothing here opens
the port). ``--power-cmd CMD``: the rig runs CMD with ``{state}`` replaced by ``off`` for
``rig.power_cut()`` and ``on`` for ``rig.power_on()``, as docs/BENCH.md says; a command without
``{state}`` (docs/BENCH.md gave ``'relayctl {on|off}'``, run as such) is a usage error before any
test runs. A test that needs the emulated meter (its test identity, its control channel) is
skipped with the reason on a lab's board, from ``rig`` and ``rig_factory`` alike."""
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


EMULATED_ONLY = '''
import pytest


@pytest.mark.needs("test_identity")
def test_logs_in_with_the_test_passwords(rig_factory):
    rig_factory()
    raise AssertionError("ran on a lab's board")


def test_reads_the_event_lines(rig):
    assert rig.events is not None


def test_reads_the_heap(rig):
    rig.mem()


def test_a_typo_is_still_an_attribute_error(rig):
    with pytest.raises(AttributeError):
        rig.evnets
'''


def bench_run(tmp_path, power_cmd, test=CUT):
    (tmp_path / "test_cut.py").write_text(test)
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["hil.pytest_plugin"]\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTEST_ADDOPTS", None)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
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


def test_what_needs_the_emulated_meter_skips_with_the_reason(tmp_path):
    code, out = bench_run(tmp_path, "true {state}", EMULATED_ONLY)
    assert code == 0 and "1 passed" in out and "3 skipped" in out, out
    for reason in ("BenchRig lacks capability test_identity", "BenchRig lacks capability events",
                   "BenchRig lacks mem"):
        assert reason in out, out
