"""The bench rig reads the relay back (new-user pass, session 15: it had no relay capability, so
every relay assertion skipped on a lab's board): over DLMS, the disconnect control's
output_state (IC 70 0.0.96.3.10.255 attribute 2, public client), or with ``relay_sense`` the
contact itself. The board is an emulated meter on its pty; its control channel's ``relay`` line
(what the board drove) is the reference."""
import pytest

from hil.bench import BenchRig
from hil.rig import RigTimeout

# the board is an emulated meter: its control channel is the reference (skipped on --rig bench)
pytestmark = [pytest.mark.hil, pytest.mark.needs("telemetry")]


def top_up(rig, paise):
    with rig.management_client() as c:
        return c.action(112, "0.0.19.10.0.255", 1, b"\x05" + paise.to_bytes(4, "big", signed=True))[0]


def test_bench_rig_reads_the_relay_back_over_dlms(rig_factory):
    board = rig_factory()
    bench = BenchRig(board.port, password=board.management_password, keys=board.management_keys)
    try:
        assert bench.has("relay")
        board.wait_relay(False)                      # zero credit at first boot: open
        assert bench.relay_closed() is False
        assert top_up(bench, 2000) == 0
        bench.wait_relay(True, timeout=15)
        assert board.relay_closed() is True          # the board drove it: the same answer
        with pytest.raises(RigTimeout, match=r"relay not open after 0.5 s \(output_state over DLMS"):
            bench.wait_relay(False, timeout=0.5)
    finally:
        bench.stop()


def test_bench_rig_relay_sense_is_the_contact_not_dlms(rig_factory):
    board = rig_factory()
    contact = [True]
    bench = BenchRig(board.port, relay_sense=lambda: contact[0])
    try:
        assert bench.relay_closed() is True          # the contact says closed; DLMS would say open
        contact[0] = False
        bench.wait_relay(False, timeout=1)
    finally:
        bench.stop()
