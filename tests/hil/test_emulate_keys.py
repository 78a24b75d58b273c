"""`meterctl emulate` has the meter's push button and cover on its stdin (new-user pass, session
13: an emulated meter in ready_for_reconnection after `relay connect` (control mode 5) waited for a
button nobody could press, and an MPL lock-out kept its relay open for good)."""
import json
import os
import select
import signal
import subprocess
import time

import pytest

from meterctl_proc import Emulate, meterctl

pytestmark = pytest.mark.hil


def _press(e, key, answer, timeout=30):
    """Type ``key`` + Enter; wait for the emulator's ``answer`` line (AssertionError after
    ``timeout`` s). Reads the pipe's bytes itself: a TextIOWrapper's read-ahead hides lines
    from select()."""
    e.p.stdin.write(key + "\n")
    e.p.stdin.flush()
    fd, seen = e.p.stdout.fileno(), b""
    end = time.monotonic() + timeout
    while ("\n%s\n" % answer).encode() not in b"\n" + seen.replace(b"\r", b""):
        left = end - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], \
            "no %r from the emulator in %d s: %r" % (answer, timeout, seen)
        chunk = os.read(fd, 4096)
        assert chunk, "the emulator ended: %r" % seen
        seen += chunk


def _read(port, keys):
    r = meterctl("read", "--port", port, "--key-file", keys, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_b_presses_the_button_and_o_c_operate_the_cover(tmp_path):
    e = Emulate("--load", "500", stdin=subprocess.PIPE,
                env=dict(os.environ, METERCTL_STATE_DIR=str(tmp_path)))
    try:
        port, keys = e.info["DLMS serial port"], e.info["Keys"].split(" (")[0]
        r = meterctl("credit", "add", "--port", port, "--key-file", keys, "--amount", "100")
        assert r.returncode == 0, r.stdout + r.stderr
        for action in ("disconnect", "connect"):
            r = meterctl("relay", action, "--port", port, "--key-file", keys)
            assert r.returncode == 0, r.stdout + r.stderr
        assert _read(port, keys)["control_state"] == "ready_for_reconnection"
        _press(e, "b", "button pressed")
        state = _read(port, keys)
        assert state["control_state"] == "connected" and state["relay_output_state"] is True
        _press(e, "o", "cover opened")
        r = meterctl("events", "--port", port, "--password", "00000000", "--log", "tamper", "--json")
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)["rows"]
        assert [v for row in rows for v in row.values() if v == 60], rows      # cover opened
        e.p.send_signal(signal.SIGINT)
        rc, _, err = e.finish()
        assert rc == 0, err
    finally:
        e.kill()
