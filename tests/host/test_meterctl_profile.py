"""``meterctl profile`` / ``bill`` / ``emulate --profiles`` without a meter: the range checks
(one ``meterctl: error:`` line, exit 2), the message for a meter with the profiles off, the
column headers (names and units) and the name plate's texts."""
import json
import pathlib

import pytest
from click.testing import CliRunner

from host_tools.client import DlmsError, ObjectUndefined
from host_tools.meterctl import emulate, profile
from host_tools.meterctl.cli import meterctl
from host_tools.meterctl.events import column_name
from protocol import axdr_client as axdr

LINK = ["-p", "/dev/null-no-such-port", "--password", "00000000"]


def _run(args):
    return CliRunner().invoke(meterctl, args)


@pytest.mark.parametrize("args, text", [
    (["--from", "2026-01-02T00:00", "--to", "2026-01-01T00:00"], "--from 2026-01-02T00:00:00 is after --to"),
    (["--from", "2026-01-02T00:00:00+05:30", "--to", "2026-01-01T23:00:00+05:30"], "is after --to"),
    (["--from", "yesterday"], "--from 'yesterday': not a date-time"),
    (["--to", "2026-13-01"], "--to '2026-13-01': not a date-time"),
    (["--from-entry", "5", "--to-entry", "2"], "--from-entry 5 is after --to-entry 2"),
    (["--from", "2026-01-01", "--from-entry", "3"], "not both"),
])
def test_nonsense_ranges_are_one_line_and_exit_2(args, text):
    r = _run(["profile", "block"] + LINK + args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("meterctl: error: ") and text in lines[0], r.output


def test_name_plate_by_time_is_refused():
    r = _run(["profile", "nameplate"] + LINK + ["--from", "2026-01-01"])
    assert r.exit_code == 2 and "no clock column" in r.output


def test_ranges_the_meter_is_asked_for():
    since = profile._when(None, None, "2026-01-01")          # a date alone: its 00:00, local
    assert since[1][:8] == bytes.fromhex("07ea010104000000")                 # 2026-01-01 Thu 00:00
    assert since[1][9:11] == b"\x80\x00"                                     # deviation unspecified
    until = profile._when(None, None, "2026-01-01T06:00:00+05:30")
    assert until[1][9:11] == (-330).to_bytes(2, "big", signed=True)
    assert profile.check_access("block", since, until, None, 0) == (since[1], until[1], None, 0)
    assert profile.check_access("block", None, None, 3, 3) == (None, None, 3, 3)   # one entry


class _Off:
    """A client of a meter without the profiles: every IC 7 profile is object-undefined."""

    def get(self, ic, code, attr, *a, **kw):
        raise ObjectUndefined(4, "IC 7 %s.%d" % (code, attr))

    get_raw = get


@pytest.mark.parametrize("name", sorted(profile.PROFILES))
def test_profiles_off_says_so(name):
    with pytest.raises(DlmsError) as e:
        profile.read_profile(_Off(), name, (None, None, None, 0), True)
    assert str(e.value) == ("object not served: this meter has the IS 15959 profiles off "
                            "(config profiles: true)")


def test_headers_name_the_column_and_keep_the_unit():
    assert column_name("1.0.1.29.0.255.2 [Wh]") == "block import [Wh]"
    assert column_name("0.128.94.96.1.255.2 [INR]") == "block charge [INR]"
    assert column_name("1.0.1.8.0.255.2 [Wh]") == "active energy import [Wh]"
    assert column_name("1.0.1.6.0.255.5").endswith("(attribute 5)")
    assert column_name("9.9.9.9.9.255.2 [V]") == "9.9.9.9.9.255.2 [V]"        # unknown: as announced


def test_name_plate_texts_are_text():
    assert profile.text_cell((axdr.OCTET_STRING, b"PPM0000001")) == "PPM0000001"
    assert profile.text_cell((axdr.OCTET_STRING, b"")) == ""
    assert profile.text_cell((axdr.OCTET_STRING, b"\x01\xff")) == "01ff"


def test_scalers_and_units_in_the_header():
    caps = [(8, b"\x00\x00\x01\x00\x00\xff", 2, 0), (3, b"\x01\x00\x0c\x1b\x00\xff", 2, 0),
            (1, b"\x00\x00\x60\x0a\x01\xff", 2, 0), (3, b"\x00\x80\x5e\x60\x01\xff", 2, 0)]
    cols = profile.scaled_columns(caps, [[-1, 35], [-2, 10]])
    assert [h for h, _ in cols] == ["0.0.1.0.0.255.2", "1.0.12.27.0.255.2 [V]", "0.0.96.10.1.255.2",
                                    "0.128.94.96.1.255.2 [INR]"]
    assert profile.apply_scalers([["t", 2301, 4, 975]], cols) == [["t", "230.1", 4, "9.75"]]


def test_emulate_profiles_flag_sets_a_kept_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"serial": "PPM0000009"}))
    emulate._keep_config(str(tmp_path), {"profiles": True})
    assert json.loads((tmp_path / "config.json").read_text()) == {"serial": "PPM0000009", "profiles": True}
    assert emulate._profiles_on(str(tmp_path))
    r = _run(["emulate", "--help"])
    assert "--profiles" in r.output and "IS 15959" in r.output


def test_help_says_how_to_turn_profiles_on_and_the_exit_codes():
    r = _run(["profile", "--help"])
    assert "profiles\": true" in r.output and "--profiles" in r.output and "Exit codes" in r.output


@pytest.mark.parametrize("transpose", [False, True])
def test_tables_keep_units_that_look_like_markup(capsys, transpose):
    from host_tools.meterctl.events import _output
    cols = ["0.0.94.91.13.255.2 [min]", "1.0.1.8.0.255.2 [Wh]"]
    _output("1.0.98.1.0.255", cols, 2, [[450, 29400], [30, 100]], None, False, transpose=transpose)
    out = capsys.readouterr().out
    assert "[min]" in out and "[Wh]" in out and "2 of 2 entries" in out
    if transpose:                                   # one line per column, one column per entry
        assert "entry 2" in out and any("[min]" in ln and "450" in ln and "30" in ln for ln in out.splitlines())


def test_csv_file_says_what_it_wrote_instead_of_a_table(capsys, tmp_path):
    from host_tools.meterctl.events import _output
    path = tmp_path / "lp.csv"
    _output("1.0.99.1.0.255", ["0.0.1.0.0.255.2", "1.0.1.29.0.255.2 [Wh]"], 60, [["t", 400]], str(path), False,
            table_too=False)
    assert capsys.readouterr().out == "1.0.99.1.0.255: 1 of 60 entries written to %s\n" % path
    assert path.read_text().splitlines() == ["0.0.1.0.0.255.2,1.0.1.29.0.255.2 [Wh]", "t,400"]


def test_profiles_in_a_tariff_profile_file_says_where_it_goes(tmp_path):
    path = tmp_path / "p.json"
    base = json.loads((pathlib.Path(__file__).parents[2] / "profiles" / "uppcl_like.json").read_text())
    path.write_text(json.dumps(dict(base, profiles=True)))
    r = _run(["config", "check", str(path)])
    assert r.exit_code == 1
    assert "profiles: unknown setting, not a tariff/policy profile field" in r.output
    assert "meterctl provision --settings" in r.output and "emulate --profiles" in r.output


@pytest.mark.parametrize("cmd", [["profile", "block"], ["bill"]])
def test_csv_into_a_missing_directory_is_refused_before_reading(cmd, tmp_path):
    r = _run(cmd + LINK + ["--csv", str(tmp_path / "no" / "lp.csv")])
    assert r.exit_code == 2 and r.output.startswith("meterctl: error: --csv ") and "cannot write" in r.output
