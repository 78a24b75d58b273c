"""Windowed HDLC against the firmware on the MicroPython unix port (IEC 62056-46 §6.4.4.4.3.2):
window 7 negotiated and used by our client (host_tools.client.DlmsClient(window=7)), a meter
I-frame lost inside a window and sent again, a window-1 client and gurux (which proposes window 1)
unchanged. Frames are counted and dropped on the pty (PtyLink filter on the meter's side)."""
import threading

import pytest

from host_tools.client import DlmsClient
from protocol import hdlc_client as hdlc

from gurux_peer import GuruxPeer

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]

OBJECT_LIST = (15, "0.0.40.0.0.255", 2)     # ~1 kB: a dozen frames at max info 128


class FrameTap:
    """A filter on the meter -> host direction: splits the byte stream into frames by their
    length field, records them, and drops the ``drop``-th meter I-frame (0-based) once."""

    def __init__(self, drop=None):
        self.buf = bytearray()
        self.frames = []
        self.drop = drop
        self.dropped = []
        self.lock = threading.Lock()

    def __call__(self, chunk):
        with self.lock:
            self.buf += chunk
            out = bytearray()
            while len(self.buf) >= 3 and self.buf[0] == 0x7E:
                n = ((self.buf[1] & 0x07) << 8 | self.buf[2]) + 2
                if len(self.buf) < n:
                    break
                raw, self.buf = bytes(self.buf[:n]), self.buf[n:]
                f = hdlc.decode_frame(raw)
                is_i = hdlc.kind(f.ctrl) == hdlc.K_I
                if is_i and self.drop is not None and \
                        sum(1 for g in self.frames if hdlc.kind(g.ctrl) == hdlc.K_I) == self.drop:
                    self.drop = None
                    self.dropped.append(f)
                    continue
                self.frames.append(f)
                out += raw
            if self.buf and self.buf[0] != 0x7E:        # not framed: pass it on untouched
                out += self.buf
                self.buf = bytearray()
            return bytes(out)


def _read(rig, window, tap=None):
    link = rig.dlms_link
    link.set_filter("a2b", tap)
    try:
        with DlmsClient(rig.port, client_sap=32, password="00000000", max_info=128, window=window,
                        retries=3) as c:
            assert (c.window_tx, c.window_rx) == (window, window)
            return c.get_raw(*OBJECT_LIST)
    finally:
        link.drain()
        link.set_filter("a2b", None)


def test_window_7_negotiated_and_used(rig):
    tap = FrameTap()
    raw7 = _read(rig, 7, tap)
    i_frames = [f for f in tap.frames if hdlc.kind(f.ctrl) == hdlc.K_I]
    unpolled = [f for f in i_frames if not hdlc.pf(f.ctrl)]
    assert unpolled, "the meter never sent more than one I-frame per poll"
    assert all(f.segmented for f in unpolled)
    assert raw7 == _read(rig, 1)


@pytest.mark.parametrize("drop", [3, 6])
def test_frame_lost_inside_a_window_is_sent_again(rig, drop):
    clean = _read(rig, 7)
    tap = FrameTap(drop=drop)
    assert _read(rig, 7, tap) == clean
    lost = tap.dropped[0]
    again = [f for f in tap.frames if hdlc.kind(f.ctrl) == hdlc.K_I and f.info == lost.info]
    assert again and hdlc.ns(again[0].ctrl) == hdlc.ns(lost.ctrl)


def test_window_1_client_and_gurux_unchanged(rig):
    tap = FrameTap()
    raw = _read(rig, 1, tap)
    assert raw and all(hdlc.pf(f.ctrl) for f in tap.frames)
    p = GuruxPeer(rig.port, client=16, server=1)
    try:
        p.connect()
        assert p.c.hdlcSettings.windowSizeRX == 1 and p.c.hdlcSettings.windowSizeTX == 1
    finally:
        p.close()
