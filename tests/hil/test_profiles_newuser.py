"""What a new user and a head-end meet first with the IS 15959 profiles: a meter with them off
answers ``meterctl profile`` with one line that says so; the name plate's manufacturer column is
what 0.0.96.1.1.255 serves read alone (a head-end compares them); selective access by an entry
range beyond the end or a time range backwards answers an empty array, not an error or a hang."""
import json
import signal

import pytest
from click.testing import CliRunner

from host_tools.client import DlmsClient
from host_tools.meterctl.cli import meterctl
from interop_rig import make_rig
from protocol import axdr_client as axdr

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]

READER = dict(client_sap=32, password="00000000")


def _name_plate_and_manufacturer(rig):
    with DlmsClient(rig.port, **READER) as c:
        plate = axdr.to_python(c.get(7, "0.0.94.91.10.255", 2))[0]
        alone = axdr.to_python(c.get(1, "0.0.96.1.1.255", 2))
        empty = [c.get_raw(7, "1.0.99.1.0.255", 2, 2, axdr.Writer().structure(4).double_long_unsigned(1000)
                           .double_long_unsigned(1005).long_unsigned(1).long_unsigned(0).getvalue())]
    return plate, alone, empty


def test_profiles_off_is_one_line(rig_factory):
    rig = make_rig(rig_factory)
    r = CliRunner().invoke(meterctl, ["profile", "block", "-p", rig.port, "--password", "00000000"])
    assert r.exit_code == 1
    assert r.output.strip() == ("meterctl: error: object not served: this meter has the IS 15959 "
                                "profiles off (config profiles: true)")


@pytest.mark.parametrize("plate", [None, {"manufacturer": "ACME Meters", "category": "D2"}])
def test_name_plate_manufacturer_is_the_object_read_alone(rig_factory, plate):
    cfg = {"profiles": True}
    if plate:
        cfg["name_plate"] = plate
    rig = make_rig(rig_factory, config=cfg)
    row, alone, (empty,) = _name_plate_and_manufacturer(rig)
    assert row[1] == alone == (b"ACME Meters" if plate else b"prepaid-meter")
    assert row[0] == rig.config["serial"].encode()
    assert axdr.decode(empty, 0)[0][1] == []                  # entries past the end: an empty array


def test_emulate_profiles_flag_serves_them_and_the_banner_says_how(tmp_path):
    from meterctl_proc import Emulate, meterctl as run_meterctl
    e = Emulate("--profiles", "--state", str(tmp_path / "m"))
    try:
        port = e.info["DLMS serial port"]
        r = run_meterctl("profile", "nameplate", "--port", port, "--password", "00000000", "--json")
    finally:
        e.p.send_signal(signal.SIGINT)
        e.finish()
        e.kill()
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)["rows"][0]
    assert row["0.0.96.1.0.255.2"] == "PPM0000001" and row["0.0.96.1.1.255.2"] == "prepaid-meter"
    assert json.loads((tmp_path / "m" / "state" / "config.json").read_text())["profiles"] is True


def test_bill_json_gives_an_md_time_not_yet_seen_as_null(rig_factory):
    # new-user pass (session 15): --json carried "????-??-??T??:??:??" (the table keeps it)
    rig = make_rig(rig_factory, config={"profiles": True})
    args = ["bill", "-p", rig.port, "--password", "00000000"]
    r = CliRunner().invoke(meterctl, args + ["--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    md_times = [v for row in rows for k, v in row.items() if k.endswith(".5")]
    assert md_times and None in md_times and "????" not in r.stdout, r.stdout
    table = CliRunner().invoke(meterctl, args, env={"COLUMNS": "200"})
    assert "????-??-??T??:??:??" in table.output, table.output
