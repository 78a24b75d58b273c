"""Power-cut campaign on the emulated meter (the machinery, its workload and its checks:
tests/support/powercut.py): 100 cuts at random flash program/erase operations during a mixed
workload, each followed by a mount of the flash image checked against a reference model; a
1000-cut soak (slow). Also the event log's content over DLMS and from the flash, and the
watchdog, one rig each.
"""
import os

import pytest

from hil import norimage
from host_tools.client import DlmsClient
from powercut import BLOCKS, CREDIT_LN, DC_LN, EV_CREDIT, MGMT, debit, run_campaign

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]


def test_powercut_campaign(tmp_path):
    s = run_campaign(tmp_path, int(os.environ.get("POWERCUT_CUTS", "100")), seed=20260101)
    assert s["flash_cuts"] >= 100 or "POWERCUT_CUTS" in os.environ
    assert s["acked_topups"] > 10 and s["op_cuts"] > 10 and s["boot_cuts"] > 5


@pytest.mark.slow
def test_powercut_soak(tmp_path):
    s = run_campaign(tmp_path, 1000, seed=int(os.environ.get("POWERCUT_SEED", "7")))
    assert s["flash_cuts"] >= 1000


# -- event log content, tamper and watchdog (HIL, one rig each) ------------------------------------
EV_POWER_DOWN, EV_POWER_UP, EV_WATCHDOG = 2, 3, 4
EV_CONFIG, EV_RELAY_OPEN, EV_RELAY_CLOSE, EV_COVER_OPEN, EV_COVER_CLOSED = 21, 42, 43, 60, 61
EVENT_LOG = "0.0.99.98.0.255"


def _entry_descriptor(first, last):
    """IC 7 selective access 2: {from_entry, to_entry, from_selected_value, to_selected_value}."""
    return (b"\x02\x04" + b"\x06" + first.to_bytes(4, "big") + b"\x06" + last.to_bytes(4, "big")
            + b"\x12\x00\x01" + b"\x12\x00\x00")


def _codes(buffer):
    """Event codes from an IC 7 buffer value (array of {clock, code})."""
    tag, rows = buffer
    assert tag == 1
    return [row[1][1][1] for row in rows]


def _subsequence(want, got):
    it = iter(got)
    return all(any(g == w for g in it) for w in want)


def _flash_rig(rig_factory, **kw):
    return rig_factory(flash={"blocks": BLOCKS, "seed": 3}, **kw)


def test_event_log_records_the_operations_and_reads_over_dlms(rig_factory):
    rig = _flash_rig(rig_factory)
    with DlmsClient(rig.port, **MGMT) as c:
        assert c.action(112, CREDIT_LN, 1, b"\x05" + (4321).to_bytes(4, "big"))[0] == 0
        rig.wait_relay(True)
        assert c.action(70, DC_LN, 1, b"\x0f\x00")[0] == 0          # remote disconnect
        rig.wait_relay(False)
        assert c.action(70, DC_LN, 2, b"\x0f\x00")[0] == 0          # -> ready_for_reconnection
        c.set(70, DC_LN, 4, b"\x16\x06")                            # control_mode 6
    rig.press_button()                                              # manual reconnect
    rig.wait_relay(True)
    rig.set_cover(True)
    rig.set_cover(False)
    rig.power_cut()
    rig.power_on()
    with DlmsClient(rig.port, client_sap=32, password="00000000") as c:
        n = c.get(7, EVENT_LOG, 7)[1]                               # entries_in_use
        assert n >= 9
        codes = _codes(c.get(7, EVENT_LOG, 2))                      # whole buffer
        assert len(codes) == n
        tail = _codes(c.get(7, EVENT_LOG, 2, selector=2, params=_entry_descriptor(n - 3, 0)))
    want = [EV_CREDIT, EV_RELAY_OPEN, EV_CONFIG, EV_RELAY_CLOSE, EV_COVER_OPEN, EV_COVER_CLOSED,
            EV_POWER_DOWN, EV_POWER_UP]
    assert _subsequence(want, codes), codes
    assert tail == codes[-4:]
    rig.power_cut()
    st = norimage.inspect(rig.flash_image, BLOCKS)                     # details, from the flash itself
    ev = [(e[1], e[2]) for e in st["events"]]
    assert (EV_CREDIT, 4321) in ev and (EV_RELAY_OPEN, "remote") in ev and (EV_RELAY_CLOSE, "manual") in ev
    assert (EV_CONFIG, "ctl_mode") in ev
    assert st["journal"]["obj"]["mode"] == 6 and st["journal"]["obj"]["cs"] == 1


def test_watchdog_resets_a_hung_meter_which_comes_back_in_its_state(rig_factory):
    rig = _flash_rig(rig_factory, wdt_ms=1500)
    with DlmsClient(rig.port, **MGMT) as c:
        assert c.action(112, CREDIT_LN, 1, b"\x05" + (7777).to_bytes(4, "big"))[0] == 0
    rig.set_load(1200)
    t = rig.advance(600)                                             # 200 Wh
    assert t.credit == 7777 - debit(200)
    start = len(rig.events)
    rig.hang(10000)                                                  # a task blocks the loop
    rig.wait_event(EV_WATCHDOG, timeout=15, start=start)             # reset by the watchdog ...
    assert rig.wdt_resets == 1
    rig.wait_meter(lambda m: m.epoch == t.epoch and m is not t, timeout=10)
    t2 = rig.advance(300)                                            # ... and metering on: +100 Wh
    assert t2.wh == 300 and t2.credit == 7777 - debit(300) and t2.relay
