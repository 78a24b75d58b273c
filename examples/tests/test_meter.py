"""An outside suite against a prepaid meter: only the installed plugin's fixtures (``rig``,
``meter_client``, the ``needs`` marker) and the public client (``host_tools.client``).

Runs unchanged on the emulated meter (default), on a board of your own (``--rig bench
--meter-port PORT`` with the board's keys: ``--meter-key-file FILE`` or ``--meter-serial SERIAL``)
and on a labgrid place (``--rig labgrid``), where the board keeps its state between tests: every
assertion is relative to what was read first. ``rig.management_client()`` is the management
association (HLS with the board's keys, else LLS).
"""
import pytest

from host_tools.client import read_summary

REGISTER = (112, "0.0.19.10.0.255")   # IC 112 credit; method 1 update_amount


def top_up(rig, paise):
    """Add ``paise`` of credit over DLMS as the management client; returns the action result."""
    with rig.management_client() as c:
        res, _ = c.action(*REGISTER, 1, b"\x05" + int(paise).to_bytes(4, "big", signed=True))
    return res


def credit(rig):
    with rig.management_client() as c:
        return read_summary(c)["available_credit_paise"]


def test_read_credit_and_energy(meter_client):
    s = read_summary(meter_client)
    assert isinstance(s["available_credit_paise"], int)
    assert s["energy_import_wh"] >= 0


def test_top_up_closes_the_relay(rig):
    before = credit(rig)
    need = max(0, -before) + 2000
    assert top_up(rig, need) == 0
    assert credit(rig) == before + need
    rig.wait_relay(True)


@pytest.mark.needs("load", "energy", "clock")
def test_drain_until_relay_opens(rig):
    assert top_up(rig, 500) == 0
    rig.wait_relay(True)
    rig.set_load(3000)
    t = rig.advance(3600)                    # 3 kWh: far more than Rs 5 buys
    assert t.credit <= 0
    rig.wait_relay(False)


@pytest.mark.needs("power_cut")
def test_power_cut_keeps_credit(rig):
    assert top_up(rig, 1234) == 0
    before = credit(rig)
    rig.power_cut()
    rig.power_on()
    assert credit(rig) == before
