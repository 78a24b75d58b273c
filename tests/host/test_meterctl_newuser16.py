"""meterctl for a new user (new-user pass, session 16), without a meter: one --json object
shape per command whatever the outcome (applied, not applied, unknown, not sent; null where not
known, never "None"), a temporary-failure that says "not applied ... retry", one statement of the
credit limit, and unknown outcomes that say which reading means applied."""
import json

import pytest
from click.testing import CliRunner

from host_tools import outcome as oc
from host_tools import vend
from host_tools.client import DataAccessError
from host_tools.meterctl import common
from host_tools.meterctl.cli import meterctl
from host_tools.outcome import APPLIED, NOT_APPLIED, UNKNOWN, Outcome

DK = "0ABC12DEF3456789"
PROFILE = {"name": "flat", "tariff": {"slabs": [[0, 650]]}}


def _run(*args, env=None):
    return CliRunner().invoke(meterctl, list(args), env=env)


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """``run(outcome_or_exception, *args)``: meterctl with ``perform`` answering that outcome
    (or raising that exception: stopped before sending)."""
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path))
    port = tmp_path / "tty"
    port.write_text("")

    def run(result, *args):
        def fake(*a, **kw):
            if isinstance(result, BaseException):
                raise result
            return result
        monkeypatch.setattr(common, "perform", fake)
        return _run(*args, "--port", str(port), "--password", "x", "--json")
    return run


def _no_none_strings(obj):
    return all(v != "None" for v in obj.values())


BEFORE = {"total_recharged": 1000, "credit": 500, "meter": "PPM0000001", "profile": None,
          "token": None, "status": None, "reasons": []}


def _outcomes():
    return {"applied": Outcome(APPLIED, dict(BEFORE), result={}, details={"credit_after": 1000}),
            "not applied": Outcome(NOT_APPLIED, dict(BEFORE), refused=DataAccessError(3, "x"), reason="x"),
            "unknown": Outcome(UNKNOWN, dict(BEFORE), doubt="no answer", reason="the meter could not be reached"),
            "not sent": KeyboardInterrupt()}


@pytest.mark.parametrize("args", [
    ("credit", "add", "--amount", "5"),
    ("set", "1.0.0.0.0.255", "2", "--class", "1", "--value", "enum:9"),
    ("action", "0.0.96.3.10.255", "1", "--class", "70", "--param", "integer:0"),
    ("relay", "connect"),
], ids=lambda a: " ".join(a[:2]))
def test_a_change_prints_one_json_shape_whatever_the_outcome(cli, args):
    # new-user pass (session 16): credit add / set dropped their own keys when not applied or
    # unknown; Ctrl-C before sending printed no JSON at all (exit 130, stdout empty)
    got = {}
    for name, out in _outcomes().items():
        r = cli(out, *args)
        got[name] = (r.exit_code, json.loads(r.stdout))
    assert [got[k][0] for k in ("applied", "not applied", "unknown", "not sent")] == [0, 1, 4, 130]
    keys = set(got["applied"][1])
    assert all(set(o) == keys for _, o in got.values()), {k: set(o) ^ keys for k, (_, o) in got.items()}
    assert [o["outcome"] for _, o in got.values()] == ["applied", "not applied", "unknown", "not sent"]
    assert all(_no_none_strings(o) for _, o in got.values())


def test_config_apply_json_has_one_shape_and_a_host_refusal_prints_not_sent(cli, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(PROFILE))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tariff": {"rate": -5}}))
    got = {name: cli(out, "config", "apply", str(good)) for name, out in _outcomes().items()}
    refused = cli(_outcomes()["applied"], "config", "apply", str(bad))
    assert refused.exit_code == 2 and json.loads(refused.stdout)["outcome"] == "not sent", refused.output
    objs = [json.loads(r.stdout) for r in got.values()] + [json.loads(refused.stdout)]
    assert all(set(o) == set(objs[0]) for o in objs), [set(o) for o in objs]
    assert objs[0]["applied"] == "flat" and objs[0]["bytes"] > 0 and objs[2]["applied"] is None


def test_credit_add_json_unreadable_key_file_prints_not_sent(monkeypatch, tmp_path):
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path))
    r = _run("credit", "add", "--amount", "5", "--port", str(tmp_path / "tty"),
             "--key-file", str(tmp_path / "missing.json"), "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["outcome"] == "not sent", r.output
    assert json.loads(r.stdout)["amount"] == 500


def _token():
    return vend.vend_token(DK, tid=100, rnd=1, amount=10)["token"]


def test_topup_unknown_is_null_not_false_nor_the_string_none(cli):
    # new-user pass: "reason": "None", "accepted": false, "status_text": "?" for a lost answer
    r = cli(_outcomes()["unknown"], "topup", _token())
    obj = json.loads(r.stdout)
    assert r.exit_code == 4 and obj["accepted"] is None and obj["reason"] is None, obj
    assert obj["status_text"] is None and _no_none_strings(obj), obj
    assert "enum 3 (tokenExecutionOk)" in r.stderr.splitlines()[-1]


def test_a_temporary_failure_says_not_applied_retry_and_names_the_reason(cli):
    out = Outcome(NOT_APPLIED, dict(BEFORE), refused=DataAccessError(2, "IC 115 0.0.19.40.0.255 method 1"),
                  reason="temporary-failure")
    r = cli(out, "topup", _token())
    obj = json.loads(r.stdout)
    assert r.exit_code == 1 and obj["reason"] == "temporary-failure" and obj["accepted"] is False, obj
    line = r.stderr.strip().splitlines()[-1]
    assert "temporary-failure (data-access-result 2)" in line and "not applied" in line and "retry" in line, line
    r = cli(out, "credit", "add", "--amount", "3")
    assert "not applied" in r.stderr and "retry" in r.stderr, r.output


def test_credit_add_states_one_limit_the_same_way(monkeypatch, tmp_path):
    # new-user pass: 99999999999 said ₹21474836.47 (early check), 20000000 said ₹1,07,37,418.23
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path))
    lines = [_run("credit", "add", "--amount", a, "--port", str(tmp_path / "tty"), "--password", "x").stderr
             for a in ("99999999999", "20000000")]
    assert all(ln.strip().splitlines() == [ln.strip()] for ln in lines), lines
    assert all("credit register limit of ₹1,07,37,418.23" in ln for ln in lines), lines


def test_config_apply_unknown_names_the_reading_that_means_applied(cli, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(PROFILE))
    old = json.dumps({"name": "old"}).encode().hex()
    out = Outcome(UNKNOWN, dict(BEFORE, profile=old), doubt="no answer", reason="the meter could not be reached")
    r = cli(out, "config", "apply", str(good))
    line = r.stderr.strip().splitlines()[-1]
    assert r.exit_code == 4 and "applied if it shows profile 'flat'" in line and "profile 'old'" in line, line


def test_report_of_not_sent_keeps_its_reason_over_a_commands_reason_key():
    obj = oc.report(None, lambda out: {"reason": None, "token": "1"}, "port in use")
    assert obj["reason"] == "port in use" and obj["outcome"] == "not sent" and obj["token"] == "1"


def test_an_explicit_password_wins_over_the_key_file_in_the_environment(monkeypatch, tmp_path):
    # new-user pass: METERCTL_KEY_FILE set, `read --password 00000000` read as client 1 over HLS
    made = []

    class Fake:
        def __init__(self, port, client_sap=None, password=None, hls=None, **kw):
            made.append((client_sap, password, hls))

        def __enter__(self):
            raise KeyboardInterrupt
    monkeypatch.setattr(common, "LockedClient", Fake)
    env = {"METERCTL_KEY_FILE": str(tmp_path / "missing-keys.json")}
    r = _run("read", "--port", str(tmp_path / "tty"), "--password", "00000000", env=env)
    assert made == [(32, "00000000", None)], (made, r.output)
    r = _run("read", "--port", str(tmp_path / "tty"), env=env)     # the key file alone: HLS (missing)
    assert r.exit_code == 2 and "missing-keys.json" in r.output, r.output


@pytest.mark.parametrize("zero", ["0", "0.0", "00"])
def test_vend_amount_zero_of_a_credit_class_is_one_usage_line(zero):
    # new-user pass: `vend --amount 0` exited 0 with a 0.0 kWh token (a TID used for nothing)
    r = _run("vend", "--vending-key", "abababababababab", "--drn", "01234567890", "--amount", zero)
    assert r.exit_code == 2 and r.output.strip().splitlines() == [r.output.strip()], r.output
    assert r.output.startswith("meterctl: error: --amount %s: a credit token of 0" % zero), r.output


def test_the_repeat_guard_names_both_ports_and_the_override(tmp_path):
    # new-user pass: two emulators (both PPM0000001) on two ptys: the refusal did not name a port
    from host_tools.recharges import Recharges, RetryRefused
    r = Recharges(str(tmp_path / "rec.json"), clock=lambda: 50.0)
    a = r.claim("PPM0000001", 777, {"total_recharged": None}, port="/dev/pts/5")
    r.finish("PPM0000001", a, APPLIED)
    with pytest.raises(RetryRefused) as e:
        r.claim("PPM0000001", 777, {"total_recharged": None}, port="/dev/pts/6")
    text = str(e.value)
    assert "PPM0000001 on /dev/pts/5 was applied" in text and "on /dev/pts/6" in text and "--force" in text, text


def test_emulate_keeps_a_key_file_holding_rotated_keys(monkeypatch, tmp_path):
    # new-user pass: `keys rotate --key-file <emulator-keys.json>`, then the next `meterctl emulate`
    # overwrote it with the test keys: the rotated meter's keys were lost
    from hil import identity
    from host_tools.meterctl import emulate
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path))
    assert emulate.write_test_keys() is None                         # nothing there: no copy
    assert emulate.write_test_keys() is None                         # the test keys: no copy
    rotated = dict(identity.keys(), ek="11" * 16, ak="22" * 16)
    (tmp_path / "emulator-keys.json").write_text(json.dumps(rotated))
    kept = emulate.write_test_keys()
    assert kept and json.loads(open(kept).read()) == rotated
    assert json.loads((tmp_path / "emulator-keys.json").read_text())["ek"] == identity.keys()["ek"]


def test_keys_rotate_on_the_emulators_key_file_warns_before(monkeypatch, tmp_path):
    from hil import identity
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path))
    path = identity.write_key_file(tmp_path / "emulator-keys.json")
    r = _run("keys", "rotate", "--port", str(tmp_path / "no-such-tty"), "--key-file", str(path))
    assert r.stderr.startswith("meterctl: warning: %s is the emulator's shared test key file" % path), r.output


def test_emulate_heap_in_bytes_under_8k_asks_for_k():
    r = _run("emulate", "--heap", "72")
    assert r.exit_code == 2 and "did you mean 72k?" in r.output, r.output


def test_read_of_a_port_that_is_no_serial_port_is_one_clean_line(tmp_path):
    # new-user pass: `read --port /dev/null` showed pyserial's tuple (25, 'Inappropriate ioctl ...')
    r = _run("read", "--port", "/dev/null")
    assert r.exit_code == 2, r.output
    assert r.output.strip() == "meterctl: error: cannot open /dev/null: Inappropriate ioctl for device " \
                               "(not a serial port)", r.output


def test_a_piped_table_keeps_whole_clocks_and_headers(capsys, monkeypatch):
    # new-user pass: piped tables were cut at 80 columns ("colu…", "2026-12-07…")
    from rich.table import Table
    monkeypatch.delenv("COLUMNS", raising=False)
    t = Table()
    for n in range(8):
        t.add_column("column_%d_header" % n)
    t.add_row(*["2026-12-07T10:45:00+05:30"] * 8)
    common.console().print(t)
    out = capsys.readouterr().out
    assert "…" not in out and out.count("2026-12-07T10:45:00+05:30") == 8 and "column_7_header" in out, out


# --- Ctrl-C while a change is in doubt ----------------------------------------------------------

class _Doubtful(oc.Change):
    what = "x"

    def __init__(self, events):
        self.events = events

    def send(self, c, before):
        raise KeyboardInterrupt          # Ctrl-C while the answer is awaited


class _Client:
    def __init__(self, events, close_interrupted=False):
        self.events, self.close_interrupted = events, close_interrupted

    def __enter__(self):
        self.events.append("open")
        return self

    def __exit__(self, *exc):
        self.events.append("close")
        if self.close_interrupted:       # the client's cancel: two Ctrl-Cs during the abort's wait
            raise KeyboardInterrupt

    def close(self):
        pass


def test_the_doubt_line_comes_before_the_link_is_closed():
    # new-user pass: a Ctrl-C at 1.33 s printed nothing until 4.37 s (the release waited first)
    events = []
    oc.perform(lambda: _Client(events), _Doubtful(events), attempts=1,
               on_doubt=lambda text: events.append("doubt"), sleep=lambda s: None)
    assert events[:3] == ["open", "doubt", "close"], events


def test_two_ctrl_c_while_the_link_closes_stop_the_check():
    # new-user pass: presses during the close were consumed there, then the check ran to its end
    events = []
    opened = []

    def open_client():
        opened.append(1)
        return _Client(events, close_interrupted=len(opened) == 1)
    out = oc.perform(open_client, _Doubtful(events), on_doubt=lambda text: None, sleep=lambda s: None)
    assert out.state == UNKNOWN and out.reason == "interrupted again while checking" and len(opened) == 1


def test_a_second_ctrl_c_before_the_check_starts_counts_toward_stopping_it():
    import os
    import signal
    try:
        with oc.SigintFlag() as f:
            os.kill(os.getpid(), signal.SIGINT)
            assert f.take()                      # the first press stops the exchange
            os.kill(os.getpid(), signal.SIGINT)  # 0.3 s later, before the check starts
            f.patient()
            os.kill(os.getpid(), signal.SIGINT)  # one more during the check: two since the take
            assert f.take()
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def test_emulate_state_refuses_a_flashed_unix_board_directory(tmp_path):
    # new-user pass: `emulate --state ./meter-flash` started a test-identity meter inside the flashed
    # board's directory (state/, emulate.lock, rig.lock, board.json left there)
    (tmp_path / "main.py").write_text("import meter\n")
    (tmp_path / "config.json").write_text("{}")
    r = _run("emulate", "--state", str(tmp_path))
    assert r.exit_code == 2 and r.output.startswith("meterctl: error: --state %s is a board flashed" % tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "main.py"]


def test_the_keypad_lock_out_text_says_what_the_meter_does():
    # new-user pass: "doubles with each further wrong token", yet tokens during the lock-out left it
    # at 9, 9, 8 s (meter.tokens refuses them without counting)
    from host_tools.meterctl import topup
    for text in (topup._reason_text("locked_out", "wait 9 s"), topup.REASON_TEXT["locked_out"]):
        assert "during the lock-out are refused and do not count" in text, text
        assert "doubles with each further wrong token" not in text, text
    assert topup._reason_text("locked_out", "wait 9 s").startswith("keypad locked out after repeated wrong "
                                                                    "tokens: retry in 9 s (")
