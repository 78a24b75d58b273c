"""meterctl outputs a technician can trust (new-user pass, session 13), without a meter: error
format and exit codes, what ``read`` says about an open relay (host_tools.summary on a scripted
client), token arguments and what an accepted token did, the event log's stable JSON keys, wide
profile tables, and the docs that say what the event logs and ``--json`` outcomes are."""
import json
import os
import pathlib
import subprocess
import sys
import tty

import click
import pytest
from click.testing import CliRunner

from host_tools import objects
from host_tools import vend
from host_tools.client import DataAccessError
from host_tools.meterctl.cli import meterctl
from host_tools.summary import read_summary
from protocol import axdr_client as axdr

ROOT = pathlib.Path(__file__).resolve().parents[2]
DK = "0ABC12DEF3456789"          # the IEC 62055-41 example decoder key (sample tables)


def _run(*args, env=None):
    return CliRunner().invoke(meterctl, list(args), env=env)


# --- errors: one line, the documented exit codes --------------------------------------------

def test_a_click_usage_error_is_the_hint_then_one_meterctl_error_line_exit_2():
    r = _run("read", "--port", "/dev/null", "--bogus")
    lines = r.output.splitlines()
    assert r.exit_code == 2 and "Error:" not in r.output, r.output
    assert lines[0].startswith("Usage: meterctl read") and lines[1] == "Try 'meterctl read -h' for help."
    assert lines[-1].startswith("meterctl: error: No such option '--bogus'")


def test_ctrl_c_is_a_meterctl_error_line(monkeypatch, capsys):
    from host_tools.meterctl import read as read_cmd
    from host_tools.meterctl.cli import main

    def interrupted(*a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(read_cmd, "make_client", interrupted)
    with pytest.raises(SystemExit) as e:
        main(["read", "--port", "/dev/x"])
    assert e.value.code == 130
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln]     # click ends the ^C line first
    assert err == ["meterctl: error: interrupted: nothing was sent"]


def test_flash_with_a_bad_serial_or_a_keystore_in_the_repository_is_usage(tmp_path):
    r = _run("flash", "--board", "esp32", "--port", str(tmp_path / "tty"), "--serial", "XYZ", "--sgc", "123456",
             "--no-confirm", "--keystore", str(tmp_path / "k.keystore"))
    assert r.exit_code == 2 and r.output.splitlines()[-1] == \
        "meterctl: error: serial 'XYZ' has no digits: give the DRN explicitly (--drn)", r.output
    inside = ROOT / "newuser-test.ks"
    r = _run("flash", "--board", "esp32", "--port", str(tmp_path / "tty"), "--serial", "PPM1", "--sgc", "123456",
             "--no-confirm", "--keystore", str(inside))
    assert r.exit_code == 2 and "is inside the repository" in r.output.splitlines()[-1], r.output
    assert not inside.exists()


def test_flash_to_a_port_where_no_board_answers_prints_no_stray_bytes(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        r = subprocess.run([sys.executable, "-m", "host_tools.meterctl", "flash", "--board", "esp32", "--port",
                            os.ttyname(slave), "--serial", "PPM1", "--sgc", "123456", "--no-confirm",
                            "--keystore", str(tmp_path / "k.keystore"), "--connect-timeout", "1"],
                           capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode == 3 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.splitlines()[-1].endswith("could not enter raw repl (nothing answered)"), r.stderr


def test_config_apply_of_a_profile_the_host_refuses_is_usage_check_is_1(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tariff": {"rate": -5}}))
    r = _run("config", "apply", str(bad), "--port", str(tmp_path / "tty"), "--password", "x")
    assert r.exit_code == 2 and r.output.startswith("meterctl: error: profile refused: tariff.rate"), r.output
    assert _run("config", "check", str(bad)).exit_code == 1
    assert _run("config", "check", str(tmp_path / "none.json")).exit_code == 2


def test_a_key_file_without_a_key_says_which(tmp_path):
    f = tmp_path / "keys.json"
    f.write_text(json.dumps({"ak": "00" * 16, "client_title": "00" * 8}))
    r = _run("read", "--port", "/dev/null", "--key-file", str(f))
    assert r.exit_code == 2 and "keys of %s: it has no 'ek'" % f in r.output.splitlines()[-1], r.output


def test_a_key_file_that_is_not_an_object_is_one_line(tmp_path):
    # new-user pass (session 14): '[1,2]' printed an AttributeError traceback
    f = tmp_path / "keys.json"
    for text in ("[1, 2]", '"x"', "null"):
        f.write_text(text)
        r = _run("read", "--port", "/dev/null", "--key-file", str(f))
        assert r.exit_code == 2 and r.output.splitlines()[-1].startswith(
            "meterctl: error: cannot use the DLMS keys of %s: not a JSON object" % f), r.output


def test_events_refuses_a_time_range_with_an_entry_range():
    r = _run("events", "--port", "/dev/null", "--password", "x", "--since", "2026-01-01T00:00:00",
             "--from-entry", "3")
    assert r.exit_code == 2 and r.output == "meterctl: error: give --since/--until (by time) or " \
        "--from-entry/--to-entry (by entry), not both\n"


# --- output -----------------------------------------------------------------------------------

def test_event_json_rows_keep_code_and_occurrences_whatever_the_log(capsys):
    from host_tools.meterctl.events import STABLE_KEYS, _output, _rows
    for log in ("all", "tamper", "control"):
        obj = objects.EVENT_LOGS[log][0] if log != "all" else objects.EVENT_LOG
        code_col = (objects.EVENT_LOGS[log][1] if log != "all" else objects.EVENT_CODE).obis + ".2"
        cols = ["0.0.1.0.0.255.2", code_col]
        raw = axdr.Writer().array(1).structure(2).octet_string(bytes(12)).long_unsigned(57).getvalue()
        cols, table = _rows(cols, raw, cell=lambda t: t[1] if t[0] != axdr.OCTET_STRING else "t")
        _output(obj.obis, cols, 1, table, None, True, aliases=STABLE_KEYS)
        row = json.loads(capsys.readouterr().out)["rows"][0]
        assert row["code"] == 57 and row[code_col] == 57 and row["event"] == "max power limit lock-out"


def test_a_profile_too_wide_for_80_columns_is_transposed(capsys, monkeypatch):
    from host_tools.meterctl.events import _output
    monkeypatch.setenv("COLUMNS", "80")
    cols = ["1.0.%d.7.0.255.2 [V]" % i for i in range(12)]
    _output("1.0.94.91.0.255", cols, 1, [["230.1%d" % i for i in range(12)]], None, False, transpose=None)
    out = capsys.readouterr().out
    assert "…" not in out and "entry 1" in out and all("230.1%d" % i in out for i in range(12)), out
    _output("1.0.99.1.0.255", cols[:2], 2, [["1", "2"], ["3", "4"]], None, False, transpose=None)
    assert "entry 1" not in capsys.readouterr().out           # fits: one line per entry


# --- topup: several tokens, what a token did ------------------------------------------------

def test_topup_takes_several_tokens_whole_or_in_groups():
    from host_tools.meterctl.topup import parse_tokens
    a, b = "1" * 20, "2" * 20
    assert parse_tokens([a, b]) == [a, b]
    assert parse_tokens(["1111", "1111-1111", "1111 1111", b]) == [a, b]
    assert parse_tokens([a + b]) == [a, b]
    for bad in ([a[:19], "1" + b], [a + "1"], ["12ab"]):
        with pytest.raises(click.BadParameter):
            parse_tokens(bad)


def _tok(**kw):
    return vend.vend_token(DK, tid=100, rnd=1, **kw)["token"]


def test_an_accepted_token_says_what_it_changed():
    from host_tools.meterctl.topup import effect
    before = {"credit": 5000, "mpl_w": 3000, "rate": 650}
    text, facts = effect(_tok(token_class=2, subclass=0, amount=4500), "accepted", before, dict(before, mpl_w=4500))
    assert text == "max power limit set to 4500 W (was 3000 W)"
    assert (facts["token_class"], facts["mpl_before_w"], facts["mpl_after_w"]) == (2, 3000, 4500)
    text, _ = effect(_tok(token_class=2, subclass=2, value=720), "accepted", before, dict(before, rate=720))
    assert text == "tariff rate set to 720 paise/kWh (was 650)"
    text, _ = effect(_tok(token_class=2, subclass=1, value=0xFFFF), "accepted", before, dict(before, credit=0))
    assert text == "credit cleared (was ₹50.00)"
    text, _ = effect(_tok(token_class=2, subclass=5), "accepted", before, before)
    assert text.startswith("management token (class 2): nothing the meter shows changed (max power limit "
                           "3000 W, tariff rate 650 paise/kWh, credit ₹50.00)")
    text, facts = effect(vend.vend_token(token_class=1, control=2)["token"], "accepted", before, before)
    assert text == "test token (class 1): display; nothing changes on the meter" and facts["tests"] == ["display"]
    text, _ = effect(_tok(amount=100), "accepted", before, dict(before, credit=11500))
    assert text == "credit ₹50.00 -> ₹115.00"


def test_a_restarted_key_change_set_is_explained():
    # session 15: a section of another set than the pending sections restarts the set (IC 115 status 2)
    from host_tools.meterctl.topup import effect
    before = {"credit": 5000, "mpl_w": 3000, "rate": 650}
    text, _ = effect(_tok(token_class=2, subclass=5), "key_change_restarted", before, before)
    assert text == ("a section of another key-change set than the sections pending before it (dropped): "
                    "enter this set's next section (key change)")
    text, _ = effect(_tok(token_class=2, subclass=5), "accepted", before, before, "key_change_restarted")
    assert text == "key change complete: the meter takes tokens of the new key from now on"


def test_vend_help_gives_the_unit_of_value_per_management_subclass():
    text = " ".join(_run("vend", "--help").output.split())
    assert "2 tariff rate: paise per kWh" in text and "Subclasses 0 and 6 take --amount (W)" in text


# --- read: why the relay is open ------------------------------------------------------------

CLOCK = axdr.datetime_bytes(2026, 3, 2, 20, 0, 5, deviation=-330)
EV = {name: c for c, name, _, _ in objects.events()}


class Client:
    """``get`` from a table {(ic, obis, attr): tagged}; a buffer read gives the rows as they are."""

    def __init__(self, values):
        self.values = values

    def get(self, ic, obis, attr, selector=None, params=b""):
        try:
            return self.values[(ic, obis, attr)]
        except KeyError:
            raise DataAccessError(3) from None


def _log(*events):
    return (axdr.ARRAY, [(axdr.STRUCTURE, [(axdr.OCTET_STRING, t), (axdr.LONG_UNSIGNED, c),
                                           (axdr.DOUBLE_LONG_UNSIGNED, 1)]) for t, c in events])


def _meter(control_state=2, credit=9999, ec_status=1, control=(), public=False, extra=None):
    log = objects.EVENT_LOGS["control"][0].obis
    v = {(70, objects.DISCONNECT_CONTROL.obis, 2): (axdr.BOOLEAN, False),
         (70, objects.DISCONNECT_CONTROL.obis, 3): (axdr.ENUM, control_state),
         (70, objects.DISCONNECT_CONTROL.obis, 4): (axdr.ENUM, 5),
         (111, objects.ACCOUNT.obis, 5): (axdr.DOUBLE_LONG, credit),
         (112, objects.EMERGENCY_CREDIT.obis, 8): (axdr.ENUM, ec_status),
         (1, objects.EVENT_LOGS["control"][1].obis, 2): (axdr.LONG_UNSIGNED, control[-1][1] if control else 0)}
    if not public:
        v.update({(7, log, 7): (axdr.DOUBLE_LONG_UNSIGNED, len(control)), (7, log, 2): _log(*control),
                  (71, objects.LIMITER.obis, 3): (axdr.DOUBLE_LONG_UNSIGNED, 20000),
                  (71, objects.LIMITER.obis, 7): (axdr.DOUBLE_LONG_UNSIGNED, 30)})
    v.update(extra or {})
    return read_summary(Client(v))


def test_read_says_why_the_relay_is_open():
    lock = ((CLOCK, EV["EV_MPL_LOCKOUT"]), (CLOCK, EV["EV_RELAY_OPEN"]))
    assert _meter(control=lock)["relay_reason"] == ("max power limit lock-out: the load went over the limit "
                                                    "(2000 W) too often; a button press or a remote reconnect "
                                                    "clears it")
    trip = ((CLOCK, EV["EV_MPL_TRIP"]), (CLOCK, EV["EV_RELAY_OPEN"]))
    assert _meter(control=trip)["relay_reason"] == ("max power limit trip: the load went over the limit (2000 W); "
                                                    "the relay recloses by itself 30 s after the trip")
    assert _meter(control=trip, public=True)["relay_reason"].startswith(
        "ready for reconnection: the button recloses it (opened by a max power limit trip or lock-out")
    ended = ((CLOCK, EV["EV_RELAY_OPEN_CREDIT"]),)
    assert _meter(credit=-5000, ec_status=4, control=ended)["relay_reason"] == \
        "credit exhausted after the emergency credit ended: a top-up reconnects"
    assert _meter(control_state=0)["relay_reason"].startswith("disconnected by a remote command")


def test_read_says_when_the_emergency_credit_in_use_ends():
    tlog, ec = objects.EVENT_LOGS["transaction"][0].obis, objects.EMERGENCY_CREDIT.obis
    on = axdr.datetime_bytes(2026, 3, 21, 20, 30, 0, deviation=-330)
    s = _meter(credit=-100, ec_status=3, extra={
        (70, objects.DISCONNECT_CONTROL.obis, 2): (axdr.BOOLEAN, True),
        (112, ec, 6): (axdr.DOUBLE_LONG, 5000), (112, ec, 11): (axdr.DOUBLE_LONG_UNSIGNED, 259200),
        (1, objects.PROFILE.obis, 2): (axdr.OCTET_STRING, b'{"policy":{"min_credit":-1000}}'),
        (7, tlog, 7): (axdr.DOUBLE_LONG_UNSIGNED, 2), (7, tlog, 2): _log((on, EV["EV_EC_ON"]), (on, 45))})
    assert s["relay_reason"] == "on emergency credit"
    assert s["emergency_credit_end"] == {"balance": -6000, "time": "2026-03-24T20:30:00+05:30"}


# --- docs -------------------------------------------------------------------------------------

def test_docs_say_what_the_event_logs_and_the_json_outcomes_are():
    from host_tools.meterctl.common import EXIT_CODES_HELP
    text = " ".join(_run("events", "--help").output.split())
    assert "IS 15959 event logs" not in text and "this firmware's own event codes" in text
    assert "0.0.99.98.2/3/4/6.255 (power, transaction, other, control)" in text
    readme = (ROOT / "README.md").read_text()
    assert '`"not sent"`' in readme and '"not sent"' in EXIT_CODES_HELP
    assert "0.0.99.98.2/3/4/6.255 (power, transaction, other, control)" in readme
