"""meterctl for a bench technician and a lab's scripts (new-user pass, session 15), without a
meter: ``--json`` keys that stay the same (a topup's applied / not applied / unknown objects, the
relay's reason as a stable code next to its prose, a not-specified date as null), and ``vend``'s
wrong inputs as one ``meterctl: error:`` line with a documented exit code."""
import json
import os

import pytest
from click.testing import CliRunner

from host_tools import objects
from host_tools import vend
from host_tools.meterctl.cli import meterctl
from host_tools.outcome import APPLIED, NOT_APPLIED, UNKNOWN, Outcome
from host_tools.summary import RELAY_REASON_CODES, read_summary
from protocol import axdr_client as axdr

DK = "0ABC12DEF3456789"          # the IEC 62055-41 example decoder key (sample tables)


def _run(*args, env=None):
    return CliRunner().invoke(meterctl, list(args), env=env)


# --- topup --json: the same keys whatever the outcome ----------------------------------------

def _topup_json(monkeypatch, tmp_path, outcome):
    from host_tools.meterctl import common
    monkeypatch.setattr(common, "perform", lambda *a, **kw: outcome)
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path))
    port = tmp_path / "tty"
    port.write_text("")
    token = vend.vend_token(DK, tid=100, rnd=1, amount=10)["token"]
    r = _run("topup", "--port", str(port), "--password", "x", "--json", token)
    return r.exit_code, json.loads(r.stdout)


def test_topup_json_has_the_same_keys_applied_refused_or_unknown(monkeypatch, tmp_path):
    # new-user pass (session 15): a refused token's JSON carried an extra "after" (and "reasons")
    before = {"token": None, "status": None, "reasons": [], "credit": 5000, "mpl_w": None, "rate": 650}
    after = {"credit": 6000, "mpl_w": None, "rate": 650}
    applied = Outcome(APPLIED, before, result={"status": 2, "reasons": ["accepted"]},
                      details={"credit_after": 6000, "after": after})
    refused = Outcome(NOT_APPLIED, before, result={"status": 4, "reasons": ["used"]},
                      details={"credit_after": 5000, "after": dict(after, credit=5000)})
    unknown = Outcome(UNKNOWN, before, doubt="no answer", reason="the meter could not be reached")
    got = {}
    for name, out in (("applied", applied), ("refused", refused), ("unknown", unknown)):
        code, obj = _topup_json(monkeypatch, tmp_path, out)
        got[name] = (code, obj)
    assert [got[k][0] for k in ("applied", "refused", "unknown")] == [0, 1, 4]
    keys = set(got["applied"][1])
    assert set(got["refused"][1]) == keys == set(got["unknown"][1]), {k: set(v[1]) ^ keys for k, v in got.items()}
    assert "after" not in keys and "reasons" not in keys
    assert got["refused"][1]["reason"] == "used" and got["refused"][1]["credit_after"] == 5000
    assert got["applied"][1]["credit_after"] == 6000


# --- read --json: why the relay is open, as a code and as prose ------------------------------

def _summary(extra):
    v = {(70, objects.DISCONNECT_CONTROL.obis, 2): (axdr.BOOLEAN, False),
         (70, objects.DISCONNECT_CONTROL.obis, 4): (axdr.ENUM, 5),
         (111, objects.ACCOUNT.obis, 5): (axdr.DOUBLE_LONG, 9999),
         (112, objects.EMERGENCY_CREDIT.obis, 8): (axdr.ENUM, 1)}
    v.update(extra)

    class Client:
        def get(self, ic, obis, attr, selector=None, params=b""):
            from host_tools.client import DataAccessError
            try:
                return v[(ic, obis, attr)]
            except KeyError:
                raise DataAccessError(3) from None
    return read_summary(Client())


def test_read_json_gives_the_relay_reason_as_a_stable_code_too():
    cs = (70, objects.DISCONNECT_CONTROL.obis, 3)
    s = _summary({cs: (axdr.ENUM, 0)})
    assert s["relay_reason_code"] == "remote_disconnect" and s["relay_reason"].startswith("disconnected by")
    s = _summary({cs: (axdr.ENUM, 2)})
    assert s["relay_reason_code"] == "ready_for_reconnection" and s["relay_reason"].startswith(
        "ready for reconnection: the button recloses it (opened by a max power limit trip")
    s = _summary({cs: (axdr.ENUM, 1), (70, objects.DISCONNECT_CONTROL.obis, 2): (axdr.BOOLEAN, True)})
    assert s["relay_reason_code"] is None and s["relay_reason"] is None        # closed, credit left


def test_read_does_not_call_a_remote_disconnect_since_reconnected_local():
    # new-user pass (session 15): relay disconnect, then relay connect (control mode 5): the reader
    # was told "opened at the meter (the button or a local disconnect)"
    log = objects.EVENT_LOGS["control"][0].obis
    clock = axdr.datetime_bytes(2026, 3, 2, 20, 0, 5, deviation=-330)
    rows = (axdr.ARRAY, [(axdr.STRUCTURE, [(axdr.OCTET_STRING, clock), (axdr.LONG_UNSIGNED, 42),
                                           (axdr.DOUBLE_LONG_UNSIGNED, 1)])])
    s = _summary({(70, objects.DISCONNECT_CONTROL.obis, 3): (axdr.ENUM, 2),
                  (7, log, 7): (axdr.DOUBLE_LONG_UNSIGNED, 1), (7, log, 2): rows})
    assert s["relay_reason_code"] == "ready_for_reconnection", s["relay_reason"]
    assert "remote disconnect since reconnected" in s["relay_reason"] and "local" not in s["relay_reason"]


# --- a date-time not specified: null in JSON, "????" in the table -------------------------------

NO_DATE = b"\xff" * 9 + b"\x80\x00\xff"          # an MD time before any demand (firmware: _NO_DATE)


def test_an_unspecified_md_time_is_null_in_json_and_question_marks_in_the_table(capsys):
    from host_tools.meterctl.events import _output, _rows
    cols = ["1.0.1.6.0.255.5", "1.0.1.6.0.255.2 [W]"]
    raw = axdr.Writer().array(1).structure(2).octet_string(NO_DATE).double_long_unsigned(0).getvalue()
    cols, table = _rows(cols, raw)
    _output("1.0.98.1.0.255", cols, 1, table, None, True)
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["1.0.1.6.0.255.5"] is None
    _output("1.0.98.1.0.255", cols, 1, table, None, False, transpose=False)
    assert "????-??-??T??:??:??" in capsys.readouterr().out


def test_get_json_iso_hint_is_null_for_a_date_not_specified():
    from host_tools import format as fmt
    j = fmt.to_jsonable((axdr.OCTET_STRING, NO_DATE))
    assert j["iso"] is None and j["value"] == NO_DATE.hex()
    day = axdr.datetime_bytes(2026, 3, 2, 20, 0, 5, deviation=-330)
    assert fmt.to_jsonable((axdr.OCTET_STRING, day))["iso"] == "2026-03-02T20:00:05+05:30"
    assert fmt.iso_or_none("2026-03-02T20:00:05") == "2026-03-02T20:00:05"


def test_readme_lists_every_relay_reason_code():
    import pathlib
    import re
    root = pathlib.Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    assert all("`%s`" % c in readme for c in RELAY_REASON_CODES)
    src = (root / "host_tools" / "summary.py").read_text()
    used = set(re.findall(r'return "([a-z_]+)", ', src)) | set(re.findall(r'reason = \(?"([a-z_]+)",', src))
    assert used == set(RELAY_REASON_CODES), used ^ set(RELAY_REASON_CODES)


# --- vend: every wrong input is one line, exit 2, nothing vended --------------------------------

VK = ("--vending-key", "abababababababab")
DRN = ("--drn", "01234567890")


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("METERCTL_KEYSTORE", raising=False)
    return tmp_path / "state"


WRONG = [      # what a technician types -> what the one line says (before: the line after '#')
    (VK + ("--drn", "0123456789", "--amount", "10"), "--drn 0123456789: 10 digits; with IIN 600727 a meter "
     "number (DRN) has 11"),                                # IIN (6 or 4 digits) + DRN must make 17 digits
    (VK + ("--drn", "0123456789X", "--amount", "10"), "is digits only"),
    (VK + ("--pan", "12345", "--amount", "10"), "--pan 12345: 5 digits; a meter PAN has 18"),
    (VK + ("--pan", "600727012345678901", "--amount", "10"), "check digit (the last) should be 2: a digit "
     "is mistyped"),                                        # bad check digit (expected 2)
    (VK + DRN + ("--amount", "₹100"), "carries energy, not money"),     # must be a non-negative number
    (VK + DRN + ("--amount", "10.55"), "at most one decimal"),
    (VK + DRN + ("--amount", "99999999"), "more than one token carries (1820162.4 kWh"),   # 0..18201624 (0.1 units)
    (VK + DRN + ("--amount", "-5"), "cannot take credit away"),
    (VK + DRN, "class 0 subclass 0 needs --amount KWH"),     # needs an amount or value
    (VK + DRN + ("--class", "2", "--subclass", "0"), "needs --amount WATTS"),
    (VK + DRN + ("--class", "2", "--subclass", "0", "--amount", "4.5"), "watts, a whole number"),
    (VK + DRN + ("--class", "2", "--subclass", "2"), "needs --value PAISE_PER_KWH"),
    (VK + DRN + ("--class", "2", "--subclass", "2", "--value", "70000"), "0..65535"),
    (VK + DRN + ("--class", "2", "--subclass", "3", "--value", "5"), "give --key-change"),  # use key_change_tokens()
    (VK + DRN + ("--amount", "10", "--subclass", "9"), "not defined by IEC 62055-41"),      # vended 'proprietary'
    (VK + DRN + ("--class", "2", "--subclass", "11"), "not defined by IEC 62055-41"),        # vended 'proprietary'
    (VK + DRN + ("--amount", "10", "--subclass", "1"), "this meter takes electricity only"),  # vended water
    (("--vending-key", "abab") + DRN + ("--amount", "10"), "8 to 64 bytes"),                 # 8/9/10/.../64 bytes
    (VK + DRN + ("--amount", "10", "--tid", "99999999999"), "a TID is 0..16777215"),
    (VK + DRN + ("--amount", "10", "--tid", "16000000"), "after now"),                       # vended
    (VK + DRN + ("--amount", "10", "--issued", "1980-01-01T00:00"), "before base date 2014's TIDs"),
    (VK + DRN + ("--amount", "10", "--base-date", "1993"), "the STS TID rollover"),          # time outside ...
    (("--key-file", "keys.json", "--amount", "10"), "vend needs the STS keys"),              # no such option
    (("--meter", "PPM404", "--keystore", "none.keystore", "--amount", "10"), "does not exist"),   # has no meter
]


@pytest.mark.parametrize("args, says", WRONG, ids=[" ".join(a[2:]) or "none" for a, _ in WRONG])
def test_vend_wrong_input_is_one_error_line_exit_2_and_uses_no_tid(state, args, says):
    r = _run("vend", *args)
    lines = r.output.splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("meterctl: error: "), r.output
    assert says in lines[0], lines[0]
    tids = state / "tids"
    assert not tids.exists() or not [f for f in os.listdir(tids) if f.endswith(".last")], "a TID was used"


def test_a_mistyped_tid_no_longer_breaks_every_later_vend_for_the_meter(state):
    # new-user pass (session 15): --tid 99999999999 was recorded before it was refused, then every
    # vend for the meter failed "TID 100000000000 is past the rollover of base date 2014"
    assert _run("vend", *VK, *DRN, "--amount", "10", "--tid", "99999999999").exit_code == 2
    r = _run("vend", *VK, *DRN, "--amount", "10", "--json")
    assert r.exit_code == 0, r.output
    from host_tools import tidstore
    with pytest.raises(Exception, match="outside 0..16777215"):
        tidstore.note(b"k" * 8, 2014, [1 << 24])


def test_a_tid_store_poisoned_by_an_older_meterctl_says_which_file(state):
    from host_tools import tidstore
    dk = vend.derive_decoder_key("abababababababab", vend.build_pan("600727", "01234567890"), "123456", 1, 1, 2,
                                 2014, "ea07")
    d, last, _lock = tidstore._paths(tidstore.meter_id(dk, 2014))
    os.makedirs(d)
    with open(last, "w") as f:
        f.write("99999999999\n")
    r = _run("vend", *VK, *DRN, "--amount", "10")
    assert r.exit_code == 2 and "holds 99999999999, not a TID" in r.output and last in r.output, r.output


def test_vend_tid_before_the_last_one_is_refused_unless_forced(state):
    first = json.loads(_run("vend", *VK, *DRN, "--amount", "10", "--json").output)
    r = _run("vend", *VK, *DRN, "--amount", "10", "--tid", str(first["tid"]))
    assert r.exit_code == 2 and "is not after the last TID vended for this meter" in r.output, r.output
    again = _run("vend", *VK, *DRN, "--amount", "10", "--tid", str(first["tid"]), "--rnd", str(first["rnd"]),
                 "--json", "--force")
    assert again.exit_code == 0 and json.loads(again.output)["token"] == first["token"]


def test_vend_meter_with_another_meters_drn_is_refused(state, tmp_path):
    from host_tools import keystore as ks
    store = {"format": 1, "defaults": {"sgc": 123456, "iin": "600727"}, "meters": {}}
    ks.meter_record(store, "PPM1", ti=1, krn=1)
    path = tmp_path / "lab.keystore"
    ks.save(path, store)
    r = _run("vend", "--meter", "PPM1", "--keystore", str(path), "--drn", "01234567890", "--amount", "10")
    assert r.exit_code == 2 and r.output.startswith("meterctl: error: --meter PPM1 and --drn:"), r.output
    assert _run("vend", "--meter", "PPM1", "--keystore", str(path), "--amount", "10").exit_code == 0


def test_vend_help_documents_its_exit_codes():
    text = " ".join(_run("vend", "--help").output.split())
    assert "Exit codes: 0 vended; 2 a wrong input" in text and "--key-file" not in text


# --- events: the details the meter records (its IC 7 buffers do not carry them) ---------------

def _meter_log(state):
    """An event log written by the firmware's own meter.audit on CPython, as a meter writes it."""
    from host_tools.firmware_src import firmware_module
    audit = firmware_module("meter.audit").Audit(str(state / "ev"))
    t = 1767225600
    audit.append(t, 10, 2000)                  # credit added [paise]
    audit.append(t + 60, 50, 6801601)          # token accepted [TID]
    for _ in range(3):
        audit.append(t + 120, 51, "used")      # token rejected [reason], coalesced
    audit.append(t + 180, 31, 3)               # locked out [failures counted]
    audit.append(t + 240, 42, "remote")        # relay open [cause]
    audit.append(t + 300, 62, 123456)          # metering counter re-based [new counter Wh]
    audit.flush()


def test_events_state_shows_each_events_detail(tmp_path):
    # new-user pass (session 15): meterctl events showed code and time only, never the TID, the
    # paise, the relay's cause or a tamper event's counter the meter records
    _meter_log(tmp_path)
    r = _run("events", "--state", str(tmp_path), "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["rows"]
    got = [(x["code"], x["detail"], x["detail_is"], x["occurrences"]) for x in rows]
    assert got == [(10, 2000, "paise", 1), (50, 6801601, "TID", 1), (51, "used", "reason", 3),
                   (31, 3, "failures counted", 1), (42, "remote", "cause", 1), (62, 123456, "new counter Wh", 1)]
    assert rows[0]["clock"] == "2026-01-01T00:00:00Z" and rows[1]["event"] == "token accepted"
    table = _run("events", "--state", str(tmp_path), "--log", "tamper", env={"COLUMNS": "200"}).output
    for text in ("3 (failures counted)", "used (reason)", "123456 (new counter Wh)"):
        assert text in " ".join(table.split()), table
    assert "2000 paise" not in table                       # the transaction ring is not tamper


def test_events_without_port_or_state_and_a_state_without_a_log_are_one_line(tmp_path):
    r = _run("events", "--password", "x")
    assert r.exit_code == 2 and r.output.splitlines()[-1].startswith("meterctl: error: Missing option '--port'")
    r = _run("events", "--state", str(tmp_path))
    assert r.exit_code == 2 and r.output.startswith("meterctl: error: %s holds no event log" % tmp_path), r.output
    r = _run("events", "--state", str(tmp_path), "--from-entry", "2")
    assert r.exit_code == 2 and "--state reads the whole log" in r.output
