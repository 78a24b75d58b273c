"""``meterctl events --state DIR`` on a running emulated meter (new-user pass, session 15): the
details the firmware records (a top-up's paise, the relay's cause) are in its files, read while
it runs; over DLMS the same log shows code and time only (the IC 7 buffers carry no detail)."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.hil, pytest.mark.needs("telemetry")]     # the emulated board's state directory


def meterctl(*args):
    return subprocess.run([sys.executable, "-m", "host_tools.meterctl", *args], capture_output=True, text=True,
                          timeout=120)


def test_events_state_reads_the_details_of_a_running_meter(rig):
    with rig.management_client() as c:
        assert c.action(112, "0.0.19.10.0.255", 1, b"\x05" + (2000).to_bytes(4, "big", signed=True))[0] == 0
        assert c.action(70, "0.0.96.3.10.255", 1, b"\x0f\x00")[0] == 0          # remote disconnect
    rig.wait_relay(False)
    r = meterctl("events", "--state", str(rig.state_dir), "--json")
    assert r.returncode == 0, r.stderr
    rows = [(x["code"], x["detail"], x["detail_is"]) for x in json.loads(r.stdout)["rows"]]
    assert (10, 2000, "paise") in rows and (42, "remote", "cause") in rows, rows
    dlms = meterctl("events", "--port", rig.port, "--password", "00000000", "--json")
    assert dlms.returncode == 0, dlms.stderr
    keys = set(json.loads(dlms.stdout)["rows"][-1])
    assert "detail" not in keys and {"code", "event"} <= keys          # what DLMS serves


def test_meterctl_emulate_says_how_to_read_the_details(tmp_path):
    from meterctl_proc import Emulate
    e = Emulate("--load", "0", env=dict(os.environ, METERCTL_STATE_DIR=str(tmp_path)))
    try:
        state = e.info["State directory"]
        hint = [ln.split("#")[0].split() for ln in e.banner if "events --state" in ln]
        assert hint and hint[0][:4] == ["meterctl", "events", "--state", state], e.banner
        port, keys = e.info["DLMS serial port"], e.info["Keys"].split()[0]
        assert meterctl("credit", "add", "--port", port, "--amount", "100", "--key-file", keys).returncode == 0
        r = meterctl(*hint[0][1:], "--json")
        assert r.returncode == 0, r.stderr
        assert (10, 10000, "paise") in [(x["code"], x["detail"], x["detail_is"]) for x in json.loads(r.stdout)["rows"]]
    finally:
        e.kill()
