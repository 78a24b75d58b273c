"""Issue 14 findings that need a running emulated meter: `meterctl emulate` when its firmware
dies and on SIGTERM, and `config show` on a fresh emulator."""
import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest

from meterctl_proc import Emulate, meterctl

pytestmark = pytest.mark.hil

ROOT = pathlib.Path(__file__).resolve().parents[2]


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
        ports, keys = {}, None
        for line in p.stdout:                       # blocks until the list is out
            if line.startswith("Stop with Ctrl-C"):
                break
            parts = line.split()
            if len(parts) == 2 and parts[0].startswith("PPM"):
                ports[parts[0]] = parts[1]
            if line.startswith("Keys: "):           # new-user pass (session 12): they had no HLS keys
                keys = parts[1]
        assert sorted(ports) == ["PPM0000001", "PPM0000002", "PPM0000003"], p.stderr.read()
        for serial, port in ports.items():          # each port is its own meter
            r = meterctl("get", "0.0.42.0.0.255", "2", "--port", port, "--json")
            assert r.returncode == 0 and serial in r.stdout, r.stdout + r.stderr
        r = meterctl("get", "0.0.19.10.0.255", "2", "--class", "112", "--port", ports["PPM0000002"],
                     "--client", "1", "--key-file", keys)   # management by HLS, as the banner says
        assert r.returncode == 0, r.stdout + r.stderr
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and "Traceback" not in err, (p.returncode, err)


# -- second new-user pass (issue 14 acceptance, H22) ----------------------------------------

DOCS = ("README.md", "profiles/README.md", "docs/BENCH.md")
HELPS = ("", "credit", "credit add", "relay", "set", "action", "objects", "events", "read", "get",
         "config show", "config apply", "emulate", "profile", "bill")
KEY_DIR = "~/.local/state/meterctl/"


def _documented_examples():
    """Every `meterctl ...` example on the emulator's port (/dev/pts/5) in the docs and --help texts
    (comments dropped; placeholders, topup of a made-up token and emulate itself left out)."""
    from click.testing import CliRunner
    from host_tools.meterctl.cli import meterctl as group
    texts = [(ROOT / d).read_text() for d in DOCS]
    texts += [CliRunner().invoke(group, h.split() + ["--help"]).output for h in HELPS]
    seen = []
    for text in texts:
        for line in text.splitlines():
            line = line.strip().split("  #")[0].split(" # ")[0].strip()
            if not line.startswith("meterctl ") or "/dev/pts/5" not in line or "<" in line or "..." in line:
                continue
            if line.split()[1] in ("emulate", "topup", "decode") or line in seen:
                continue
            seen.append(line)
    return seen


def test_every_documented_emulator_example_works_as_written(tmp_path):
    import shutil
    state = tmp_path / "state"
    env = dict(os.environ, METERCTL_STATE_DIR=str(state))
    examples = _documented_examples()
    assert any("credit add" in x for x in examples) and any("config show" in x for x in examples)
    shutil.copytree(str(ROOT / "profiles"), str(tmp_path / "profiles"))
    e = Emulate("--profiles", env=env)             # the IS 15959 examples need them on (README)
    try:
        assert e.info["Keys"].startswith(str(state / "emulator-keys.json")), e.info
        failures = []
        for ex in examples:
            argv = ex.replace("/dev/pts/5", e.info["DLMS serial port"]).replace(KEY_DIR, str(state) + "/").split()
            r = subprocess.run([sys.executable, "-m", "host_tools.meterctl", *argv[1:]], capture_output=True,
                               text=True, timeout=90, cwd=str(tmp_path), env=dict(env, PYTHONPATH=str(ROOT)))
            if r.returncode != 0:
                failures.append((ex, r.returncode, r.stderr.strip()))
    finally:
        e.p.send_signal(signal.SIGINT)
        e.finish()
        e.kill()
    assert not failures, failures


def test_lls_to_an_hls_client_and_a_locked_client_say_what_to_do(tmp_path):
    e = Emulate(env=dict(os.environ, METERCTL_STATE_DIR=str(tmp_path)))
    port = e.info["DLMS serial port"]
    try:
        r = meterctl("credit", "add", "--port", port, "--amount", "5", "--password", "12345678")
        assert r.returncode == 1 and "client 1 needs HLS here (ciphered context): add --auth hls --key-file FILE " \
            "or --meter SERIAL" in r.stderr, r.stderr
        for _ in range(3):
            r = meterctl("objects", "--port", port, "--password", "wrong!!!")
            assert r.returncode == 1 and "(permanent)" in r.stderr and "wrong password" in r.stderr, r.stderr
        r = meterctl("objects", "--port", port, "--password", "00000000")     # the right one, while locked
        assert r.returncode == 1 and "rejected (transient): this client (32) is locked out after failed logins; " \
            "retry in a little while" in r.stderr, r.stderr
    finally:
        e.p.send_signal(signal.SIGINT)
        e.finish()
        e.kill()


def test_a_second_emulate_on_the_same_state_dir_is_one_line_exit_2_before_starting(tmp_path):
    env = dict(os.environ, METERCTL_STATE_DIR=str(tmp_path / "s"))
    e = Emulate("--state", str(tmp_path / "meter"), env=env)
    try:
        r = subprocess.run([sys.executable, "-m", "host_tools.meterctl", "emulate", "--state", str(tmp_path / "meter")],
                           capture_output=True, text=True, timeout=60, cwd=str(ROOT),
                           env=dict(env, PYTHONPATH=str(ROOT)))
    finally:
        e.p.send_signal(signal.SIGINT)
        e.finish()
        e.kill()
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "in use by another meterctl emulate" in lines[0], r.stderr


def test_events_and_objects_tables_fit_80_columns_with_names_and_whole_codes(rig):
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="80")

    def table(*args):
        r = subprocess.run([sys.executable, "-m", "host_tools.meterctl", *args, "--port", rig.port, "--password",
                            "00000000"], capture_output=True, text=True, timeout=60, cwd=str(ROOT), env=env)
        assert r.returncode == 0, r.stderr
        assert max(len(ln) for ln in r.stdout.splitlines()) <= 80, r.stdout
        return r.stdout
    out = table("events", "--log", "power")
    head = out.splitlines()[2]
    assert "clock" in head and "event code" in head and "occurrences" in head and "0.0.96" not in head, out
    import re
    out = table("events")
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", out) and "…" not in out, out
    out = table("objects")
    assert "0.0.94.96.19.255" in out and "…" not in out, out
    r = subprocess.run([sys.executable, "-m", "host_tools.meterctl", "events", "--log", "power", "--json", "--port",
                        rig.port, "--password", "00000000"], capture_output=True, text=True, timeout=60, env=env)
    assert json.loads(r.stdout)["columns"][0] == "0.0.1.0.0.255.2"                    # --json keeps the codes


def test_decode_reads_meterctls_own_hls_trace(tmp_path):
    from hil import identity
    env = dict(os.environ, METERCTL_STATE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    e = Emulate(env=env)
    try:
        r = subprocess.run([sys.executable, "-m", "host_tools.meterctl", "get", "0.0.42.0.0.255", "2", "--port",
                            e.info["DLMS serial port"], "--key-file", e.info["Keys"].split()[0], "--trace"],
                           capture_output=True, text=True, timeout=60, cwd=str(ROOT), env=env)
    finally:
        e.p.send_signal(signal.SIGINT)
        e.finish()
        e.kill()
    assert r.returncode == 0, r.stderr
    trace = tmp_path / "trace.txt"
    trace.write_text(r.stderr)
    d = subprocess.run([sys.executable, "-m", "host_tools.meterctl", "decode", str(trace), "--key",
                        identity.GUEK.hex(), "--auth-key", identity.GAK.hex()], capture_output=True, text=True,
                       timeout=60, cwd=str(ROOT), env=env)
    assert d.returncode == 0, d.stderr
    out = d.stdout
    for bad in ("unknown APDU tag", "malformed", "trailing_bytes", "dlms_version: 0", "conformance: []",
                "max_pdu: 0", "03 -> 03"):
        assert bad not in out, (bad, out)
    assert "HDLC SNRM P/F  client 1 -> server 1" in out and "server 1 -> client 1" in out
    ciphered = out[out.index("application_context: LN-ciphered"):]
    assert "type: InitiateRequest" in ciphered and "dlms_version: 6" in ciphered and "max_pdu: 65535" in ciphered
    assert "type: InitiateResponse" in ciphered and "GET-Response-Normal" in ciphered and "PPM0000001" in out


def test_emulate_warp_ticks_land_on_the_block_edges():
    # new-user pass (session 12): `emulate --warp 1800 --profiles` ticked at the start time's
    # minutes (..:03:02), so a block held the next block's energy; now ticks are on :00 and :30
    e = Emulate("--warp", "1800", "--load", "1000")
    try:
        stamps = []
        for line in e.p.stdout:                     # one status line per tick (a real second)
            if " UTC " in line:
                stamps.append(line.split(" UTC ")[0])
            if len(stamps) >= 3:
                break
        e.p.send_signal(signal.SIGINT)
        rc, _, err = e.finish()
    finally:
        e.kill()
    assert len(stamps) == 3 and all(s.endswith((":00:00", ":30:00")) for s in stamps), (stamps, err)
