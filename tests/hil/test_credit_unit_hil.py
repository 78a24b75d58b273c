"""A meter whose credit register counts 0.1 kWh (config credit_unit 1) seen from DLMS and from
meterctl (attack pass, session 13: IC 111 attribute 15 said {INR, -2, 1} whatever the unit, and
`meterctl credit add --amount 5.00` put 500 units, 50.0 kWh worth ₹325, into such a meter)."""
import json
import signal

import pytest

from host_tools import creditunit
from host_tools.changes import OBIS_TOTAL_RECHARGED
from host_tools.client import DlmsClient

from meterctl_proc import Emulate, meterctl

pytestmark = pytest.mark.hil

ACCOUNT = "0.0.19.0.0.255"
LLS = ("--password", "12345678")


def _registers(rig):
    """(currency as the meter states it, available credit, recharge total)."""
    with DlmsClient(rig.port, client_sap=1, password="12345678") as c:
        return (creditunit.unit_of(c.get(111, ACCOUNT, 15)), c.get(111, ACCOUNT, 5)[1],
                c.get(1, OBIS_TOTAL_RECHARGED, 2)[1])


def test_meterctl_reads_and_tops_up_an_energy_unit_meter_in_kwh(rig_factory):
    rig = rig_factory(config={"credit_unit": 1, "credit_paise": 325})
    unit, credit, total = _registers(rig)
    assert unit == (creditunit.DECI_KWH, None) and credit == 325
    r = meterctl("read", "--port", rig.port)
    assert r.returncode == 0, r.stderr
    assert "32.5 kWh (325 x 0.1 kWh)" in r.stdout and "₹" not in r.stdout and "paise" not in r.stdout
    s = json.loads(meterctl("read", "--port", rig.port, "--json").stdout)
    assert (s["credit_unit"], s["available_credit"], s["available_credit_paise"]) == ("0.1 kWh", 325, None)

    r = meterctl("credit", "add", "--port", rig.port, *LLS, "--amount", "5.00")
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("meterctl: error: meter PPM") and "--kwh KWH" in lines[0]
    assert _registers(rig)[1:] == (325, total)                    # nothing sent

    r = meterctl("credit", "add", "--port", rig.port, *LLS, "--kwh", "5", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["credit_unit"], out["amount"], out["credit_before"], out["credit_after"]) == ("0.1 kWh", 50, 325, 375)
    assert _registers(rig)[1:] == (375, total + 50)               # the recharge total in the same unit
    r = meterctl("credit", "add", "--port", rig.port, *LLS, "--kwh", "5")
    assert r.returncode == 2 and "a top-up of 5.0 kWh (50 x 0.1 kWh) to meter PPM" in r.stderr, r.stderr


def test_meterctl_refuses_kwh_on_a_paise_meter(rig_factory):
    rig = rig_factory(config={"credit_paise": 500})
    unit, credit, total = _registers(rig)
    assert unit == (creditunit.PAISE, None) and credit == 500
    r = meterctl("read", "--port", rig.port)
    assert r.returncode == 0 and r.stdout.count("(500 paise)") == 2 and "Note:" not in r.stdout, r.stdout
    r = meterctl("credit", "add", "--port", rig.port, *LLS, "--kwh", "5")
    assert r.returncode == 2 and "counts its credit in paise" in r.stderr and "--amount RUPEES" in r.stderr
    assert _registers(rig)[1:] == (500, total)


def test_emulate_shows_an_energy_meters_credit_in_kwh(tmp_path):
    # a kept state directory (--state DIR: the meter's files in DIR/state) of an energy-unit meter
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "config.json").write_text(json.dumps({"credit_unit": 1, "credit_paise": 325}))
    e = Emulate("--state", str(tmp_path), "--warp", "60")
    try:
        line = e.p.stdout.readline()                 # the first tick's status line
    finally:
        e.p.send_signal(signal.SIGINT)
        e.finish()
        e.kill()
    assert "credit 32.5 kWh" in line, line
