"""The plugin's issue-18 parts: ``meter_client``, the ``needs`` marker, ``--rig labgrid`` option
checks, the many-meters API and the build lock."""
import os
import subprocess
import sys
import threading

import pytest

from hil import launch
from hil.env import REPO_ROOT
from hil.multi import serial_of, start_meters, stop_meters
from host_tools.client import DlmsClient, read_summary

OUTSIDE = '''
import pytest

@pytest.mark.needs("power_cut")
def test_needs_power_cut(rig):
    pass

@pytest.mark.needs("dlms")
def test_needs_dlms(rig):
    assert rig.port == "/dev/null"

@pytest.mark.needs("teleport")
def test_needs_unknown(rig):
    pass
'''


def _pytest(tmp_path, *args):
    (tmp_path / "test_outside.py").write_text(OUTSIDE)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                        "-p", "hil.pytest_plugin"] + list(args) + [str(tmp_path / "test_outside.py")],
                       cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def test_needs_marker_skips_for_a_missing_capability_and_rejects_unknown_names(tmp_path):
    # a bench rig with only a DLMS port: no power switch (BenchRig opens nothing at start)
    code, out = _pytest(tmp_path, "--rig", "bench", "--meter-port", "/dev/null")
    assert "BenchRig lacks capability power_cut" in out, out
    assert "1 passed, 1 skipped" in out and "needs('teleport'): unknown capability" in out, out
    code, out = _pytest(tmp_path, "--rig", "labgrid")
    assert code == 4 and "--rig labgrid needs --lg-env" in out, out


@pytest.mark.needs("power_cut", "dlms")
def test_meter_client_is_a_management_association(rig, meter_client):
    s = read_summary(meter_client)
    assert s["available_credit_paise"] == 0
    res, _ = meter_client.action(112, "0.0.19.10.0.255", 1, b"\x05" + (700).to_bytes(4, "big"))
    assert res == 0                      # update_amount: management only
    assert read_summary(meter_client)["available_credit_paise"] == 700


def test_start_meters_gives_distinct_meters(tmp_path):
    rigs = start_meters(3, tmp_path, poll_ms=1000)
    try:
        assert len({r.port for r in rigs}) == 3 and all(r.running for r in rigs)
        for i, r in enumerate(rigs):
            with DlmsClient(r.port, client_sap=1, password=r.management_password) as c:
                assert c.get(1, "0.0.42.0.0.255", 2)[1] == serial_of(i).encode()  # LDN
    finally:
        stop_meters(rigs)
    assert not any(r.running for r in rigs)


def test_build_lock_serialises_processes_and_threads():
    order = []
    started = threading.Event()

    def other():
        started.set()
        with launch.build_lock("test-lock"):
            order.append("other")

    with launch.build_lock("test-lock"):
        t = threading.Thread(target=other)
        t.start()
        started.wait(5)
        t.join(0.2)                      # blocked on the lock while we hold it
        order.append("holder")
    t.join(5)
    assert order == ["holder", "other"]
