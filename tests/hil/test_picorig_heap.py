"""Heap of the real MicroPython rp2 port (RP2040, 32-bit) running the firmware on PicoRig.

The board runs a probe ``main.py``: the firmware's own boot sequence (same imports, collects and
``gc.threshold``) with the board's control task replaced by a probe task (a generator of the
meter's loop, ``meter.metrology.loop``) that runs the board's I/O pass and samples ``gc.mem_alloc()``
every 2 ms and prints ``heapprobe <alloc now> <highest alloc since the last line>`` twice
a second, and ``heapsteady <alloc> <free>`` after a ``gc.collect()`` when asked by the test
(button press: the probe polls GP17 itself). The high-water mark is sampled between tasks, so it is
live data plus garbage not yet collected at the moment of sampling: the figure a heap must hold
with the firmware's threshold, not a single allocation's peak. Figures go to docs/MEMORY.md.
"""
import re

import pytest

from hil import identity
from hil.picorig import PicoRig, unavailable
from host_tools.client import DlmsClient

pytestmark = [pytest.mark.hil, pytest.mark.skipif(unavailable() is not None,
                                                  reason=unavailable() or "")]

PROBE_MAIN = b'''import gc
import sys

gc.collect()
import time
import machine
from boards import make_board
from meter.app import Meter

gc.collect()


def _probe():
    hi = 0
    n = 0
    btn = machine.Pin(17, machine.Pin.IN, machine.Pin.PULL_UP)
    while True:
        board.poll_io(time.ticks_ms())      # the board's own control task
        a = gc.mem_alloc()
        if a > hi:
            hi = a
        n += 1
        if n >= 250:
            print("heapprobe %d %d" % (a, hi))
            n = hi = 0
        if not btn.value():
            gc.collect()
            print("heapsteady %d %d" % (gc.mem_alloc(), gc.mem_free()))
            while not btn.value():
                yield 5
        yield 2


board = make_board(sys.argv)
gc.collect()
meter = Meter(board)
gc.collect()
gc.threshold(gc.mem_free() // 4 + gc.mem_alloc())
gc.collect()
print("heapsteady %d %d" % (gc.mem_alloc(), gc.mem_free()))
board.control_task = _probe
meter.run()
'''


def _lines(rig, kind, start=0):
    text = rig.log_path.read_text(errors="replace")[start:]
    return [tuple(int(x) for x in m.groups()) for m in re.finditer(kind + r" (\d+) (\d+)", text)]


def _peak_during(rig, action):
    """Highest sampled alloc while ``action()`` runs (plus two probe periods after)."""
    start = len(rig.log_path.read_text(errors="replace"))
    action()
    n0 = len(_lines(rig, "heapprobe", start))
    rig.ctl.wait(lambda: len(_lines(rig, "heapprobe", start)) >= n0 + 2, 30, "heapprobe lines")
    return max(hi for _, hi in _lines(rig, "heapprobe", start))


def _steady(rig):
    n = len(_lines(rig, "heapsteady"))
    rig.press_button()
    rig.ctl.wait(lambda: len(_lines(rig, "heapsteady")) > n, 30, "heapsteady line")
    return _lines(rig, "heapsteady")[-1]


def test_rp2_heap_figures(tmp_path):
    rig = PicoRig(tmp_path / "pico", sts=True, start=False)
    try:
        (rig.state_dir / "main.py").write_bytes(PROBE_MAIN)
        rig.start()
        boot = _lines(rig, "heapsteady")[-1]
        with DlmsClient(rig.port, client_sap=1, password="12345678") as c:
            c.action(112, "0.0.19.10.0.255", 1, b"\x05" + (5000).to_bytes(4, "big"))
        steady = _steady(rig)

        def readout():      # the event log (IC 7 buffer): several blocks (GET with block transfer)
            with DlmsClient(rig.port, client_sap=32, password="00000000") as c:
                c.get(7, "0.0.99.98.0.255", 2)

        def token():
            from protocol import axdr_client as axdr
            from host_tools import vend
            tok = vend.vend_token(identity.decoder_key(), algorithm="ea07", tables=str(identity.TABLES),
                                  base_date=identity.BASE_DATE, amount=100,
                                  issued=1767225600 + 60, rnd=3)["token"]
            with DlmsClient(rig.port, client_sap=1, password="12345678") as c:
                c.action(115, "0.0.19.40.0.255", 1, axdr.Writer().octet_string(tok.encode()).getvalue())
                assert c.get(115, "0.0.19.40.0.255", 6)[1][0][1] == 3      # accepted

        peak_read = _peak_during(rig, readout)
        peak_token = _peak_during(rig, token)
        after = _steady(rig)
        print("\nrp2 heap: total %d; boot steady alloc %d free %d; steady after top-up alloc %d; "
              "peak sampled: block-transfer readout %d, token entry %d; steady after %d"
              % (sum(boot), boot[0], boot[1], steady[0], peak_read, peak_token, after[0]))
        assert boot[0] < sum(boot) and after[0] < sum(boot)
    finally:
        rig.stop()
