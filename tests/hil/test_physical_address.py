"""The HDLC physical address set by ``meterctl config`` (issue 12): a profile field
``physical_address`` (IEC 62056-46 lower HDLC address, 0x10..0x3FFD usable; null = a
point-to-point port), validated by meter.profile on the host and on the meter, applied over DLMS
from the next link on (the session that set it ends normally), kept across a power cut, shown by
``meterctl config show``."""
import json

import pytest
from click.testing import CliRunner

from host_tools.client import DataAccessError, DlmsClient, LinkTimeout
from host_tools.meterctl import cli
from host_tools import objects
from protocol import axdr_client as axdr

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]

PW = "12345678"


def meterctl(*args):
    return CliRunner().invoke(cli.meterctl, list(args))


def _profile(tmp_path, **fields):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(dict(name="bus", **fields)))
    return str(path)


def _answers(rig, physical):
    try:
        with DlmsClient(rig.port, client_sap=16, server_physical=physical, timeout=1) as c:
            c.get(1, "0.0.42.0.0.255", 2)
        return True
    except LinkTimeout:
        return False


def test_physical_address_by_meterctl_config(rig, tmp_path):
    r = meterctl("config", "apply", _profile(tmp_path, physical_address=42), "--port", rig.port, "--password", PW)
    assert r.exit_code == 0, r.output
    assert not _answers(rig, None) and not _answers(rig, 41)
    assert _answers(rig, 42)
    r = meterctl("config", "show", "--port", rig.port, "--physical", "42", "--password", PW, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["physical_address"] == 42
    rig.power_cut()
    rig.power_on()
    assert _answers(rig, 42) and not _answers(rig, None)
    # out of range: refused on the host (exit 2 as a usage error, nothing sent) and by the meter
    for bad in (15, 0x3FFE, "42"):
        r = meterctl("config", "apply", _profile(tmp_path, physical_address=bad), "--port", rig.port,
                     "--physical", "42", "--password", PW)
        assert r.exit_code == 2 and "physical_address" in r.output, r.output
    with DlmsClient(rig.port, client_sap=1, password=PW, server_physical=42) as c:
        with pytest.raises(DataAccessError):
            c.set(1, objects.PROFILE.obis, 2, axdr.Writer().octet_string(b'{"physical_address": 5}').getvalue())
        assert bytes(c.get(1, objects.PROFILE_ERROR.obis, 2)[1]).startswith(b"physical_address:")
    assert _answers(rig, 42)
    # null: a point-to-point port again (every physical part and the 1-byte address)
    r = meterctl("config", "apply", _profile(tmp_path, physical_address=None), "--port", rig.port,
                 "--physical", "42", "--password", PW)
    assert r.exit_code == 0, r.output
    assert _answers(rig, None) and _answers(rig, 41)
