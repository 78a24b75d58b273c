"""Windowed HDLC (IEC 62056-46 §6.4.4.4.3.2, ISO/IEC 13239 go-back-N), sans I/O: our client link
(protocol.client_link) against the meter's link (meter.link.HdlcLink) on CPython, frame by frame,
with frames lost on the line. The same exchanges run against the firmware in
tests/hil/test_hdlc_window.py."""
import pytest

from protocol import apdu_client as apdu
from protocol import client_link as cl
from protocol import hdlc_client as hdlc
from meter.link import HdlcLink

from fake_meter import EVENT_LOG_LN, Meter


class Wire:
    """Client link <-> meter link; ``lose_rx``: indices of meter frames lost on the line."""

    def __init__(self, link, meter_link):
        self.c, self.m = link, meter_link
        self.tx, self.rx = [], []
        self.lose_rx = set()
        self.bursts = []            # meter frames answering each client frame

    def send(self, data):
        self.tx.append(hdlc.decode_frame(data))
        out = self.m.on_frame(hdlc.decode_frame(data))
        self.bursts.append(len(out))
        for raw in out:
            j = len(self.rx)
            self.rx.append(hdlc.decode_frame(raw))
            if j not in self.lose_rx:
                self.c.receive(raw)

    def run(self, first, wanted):
        self.send(first)
        while True:
            ev = self.c.next_event()
            if isinstance(ev, wanted):
                return ev
            if isinstance(ev, cl.Transmit):
                self.send(ev.data)
            elif isinstance(ev, cl.NeedData):
                poll = self.c.on_timeout()
                assert poll, "client gave up"
                self.send(poll)


def _session(window, max_info=128, n_events=300):
    meter = HdlcLink(Meter(n_events=n_events), 1, None, 512)
    link = cl.ClientLink(32, 1, None, max_info, retries=3, window=window)
    w = Wire(link, meter)
    ev = w.run(link.snrm(), cl.Connected)
    aarq = apdu.build_aarq(mechanism=apdu.MECH_LLS, auth_value=b"00000000")
    assert apdu.parse_aare(w.run(link.send_apdu(aarq), cl.Apdu).data)["result"] == 0
    return w, ev, meter


def _read_log(w):
    req = apdu.get_request(0xC1, 7, EVENT_LOG_LN, 2)
    r = apdu.parse_response(w.run(w.c.send_apdu(req), cl.Apdu).data)
    raw = bytearray(r.raw if r.kind == 2 else r.data)
    while r.kind == 2 and not r.last:
        r = apdu.parse_response(w.run(w.c.send_apdu(apdu.get_next_request(0xC1, r.block_no)), cl.Apdu).data)
        raw += r.raw
    return bytes(raw)


@pytest.mark.parametrize("window", [2, 7, 12])
def test_window_negotiated_up_to_7_both_ways(window):
    w, ev, meter = _session(window)
    want = min(window, 7)
    assert (ev.window_tx, ev.window_rx) == (want, want)
    assert (meter.win_tx, meter.win_rx) == (want, want)
    ua = hdlc.decode_params(w.rx[0].info)
    assert (ua[2], ua[3]) == (want, want)


def test_window_7_sends_the_window_before_waiting_and_blocks_fill_whole_frames():
    w, _, meter = _session(7, max_info=128)
    start = len(w.rx)
    data = _read_log(w)
    assert data == _read_log(_session(1)[0])
    frames = w.rx[start:]
    assert max(w.bursts) == 7                       # seven I-frames per poll
    finals = [f for f in frames if hdlc.kind(f.ctrl) == hdlc.K_I and hdlc.pf(f.ctrl)]
    assert finals and not finals[-1].segmented      # the last frame of the response is final
    inner = [f for f in frames if hdlc.kind(f.ctrl) == hdlc.K_I and not hdlc.pf(f.ctrl)]
    assert inner and all(f.segmented for f in inner)
    segs = [len(f.info) for f in frames if f.segmented]
    assert max(segs) == 128 and segs.count(128) >= len(segs) - 2    # a byte less: see _window
    # a block response is whole frames: APDU + LLC header = k * 128 (no 3-byte spill frame)
    assert (meter.assoc.send_max + 3) % 128 == 0
    assert not [f for f in frames if not f.segmented and len(f.info) < 8]


def test_no_frame_ends_with_fcs_byte_7e():
    """dlms-cosem finds frames by flags: a frame whose FCS ends in 7E before the closing flag is
    lost to it, so the meter sends such a segment a byte shorter."""
    w, _, meter = _session(7, max_info=128)
    _read_log(w)
    assert all(raw[-2] != 0x7E for raw in (hdlc.encode_frame(f.dest, f.src, f.ctrl, f.info, f.segmented)
                                            for f in w.rx))


@pytest.mark.parametrize("lost", [0, 2, 6])
def test_frame_lost_inside_a_window_is_sent_again(lost):
    w, _, meter = _session(7)
    clean = _read_log(_session(7)[0])
    first = len(w.rx) + lost                        # the (lost+1)-th frame of the response
    w.lose_rx.add(first)
    assert _read_log(w) == clean
    assert meter.retransmitted >= 1
    again = [f.ctrl for f in w.rx[first + 1:] if hdlc.ns(f.ctrl) == hdlc.ns(w.rx[first].ctrl)]
    assert again, "the lost frame was never sent again"


def test_window_1_client_unchanged():
    w, ev, meter = _session(1)
    assert (ev.window_tx, ev.window_rx) == (1, 1)
    _read_log(w)
    assert max(w.bursts) == 1
    assert all(hdlc.pf(f.ctrl) for f in w.rx)


def test_client_window_of_request_segments_without_poll_bit():
    """A client sending request segments inside its window (P=0 until the last) gets no RR
    for the unpolled ones and one answer at the end."""
    meter = HdlcLink(Meter(), 1, None, 128)
    c, s = hdlc.encode_client_address(16), hdlc.encode_server_address(1)

    def put(ctrl, info=b"", seg=False):
        return meter.on_frame(hdlc.decode_frame(hdlc.encode_frame(s, c, ctrl, info, seg)))

    put(hdlc.SNRM, hdlc.encode_params(128, 128, 7, 7))
    req = hdlc.LLC_REQUEST + apdu.build_aarq(mechanism=apdu.MECH_LLS, auth_value=b"x" * 100)
    parts = [req[i:i + 64] for i in range(0, len(req), 64)]
    assert len(parts) >= 2
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        out = put(hdlc.ctrl_i(i, 0, last), part, not last)
        assert bool(out) == last
    assert apdu.parse_aare(hdlc.decode_frame(out[0]).info[3:])["result"] in (0, 1)
