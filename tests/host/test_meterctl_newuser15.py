"""meterctl for a bench technician and a lab's scripts (new-user pass, session 15), without a
meter: ``--json`` keys that stay the same (a topup's applied / not applied / unknown objects, the
relay's reason as a stable code next to its prose, a not-specified date as null), and ``vend``'s
wrong inputs as one ``meterctl: error:`` line with a documented exit code."""
import json

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
    assert s["relay_reason_code"] == "opened_by_meter" and s["relay_reason_code"] in RELAY_REASON_CODES
    s = _summary({cs: (axdr.ENUM, 1), (70, objects.DISCONNECT_CONTROL.obis, 2): (axdr.BOOLEAN, True)})
    assert s["relay_reason_code"] is None and s["relay_reason"] is None        # closed, credit left


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
