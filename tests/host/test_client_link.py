"""The sans-I/O client (protocol/client_link.py, protocol/client_assoc.py) driven against the
meter's real HDLC link and association (firmware/meter/link.py ``HdlcLink`` with the small
stand-in meter of tests/support/fake_meter.py), frame by frame, in process: no pty, no thread,
no clock. A ``Wire`` carries every frame from one station to the other and can lose or echo
frames; silence is the client seeing ``NeedData`` with nothing left to read.

Covers SNRM/UA negotiation, AARQ/AARE, GET/SET/ACTION, segmentation both ways at a small
maximum information field, GET block transfer of the event log, a lost request and a lost
response recovered by RR polling, echo suppression, RLRQ/RLRE and DISC; then the link's and the
association's state transitions on their own (an illegal call raises and changes nothing)."""
import pytest

from meter.link import HdlcLink
from protocol import apdu_client as apdu
from protocol import axdr_client as axdr
from protocol import client_link as cl
from protocol import hdlc_client as hdlc
from protocol.client_assoc import (AccessDenied, AssociationRejected, ClientAssociation,
                                   ObjectUndefined)

from fake_meter import ASSOC_LN, CLOCK_LN, EVENT_LOG_LN, Meter

PASSWORDS = {1: b"12345678", 32: b"00000000", 16: None}


class Wire:
    """Client link <-> meter link. ``lose_tx``/``lose_rx``: indices (0-based, per direction)
    of frames lost on the line; ``echo``: the client hears its own frames (optical head)."""

    def __init__(self, link, meter_link, echo=False):
        self.c, self.m = link, meter_link
        self.tx_frames, self.rx_frames = [], []      # every frame put on the line, decoded
        self.lose_tx, self.lose_rx = set(), set()
        self.echo = echo
        self.seen = []                               # frames the client reported (FrameReceived)
        self.timeouts = 0

    def send(self, data):
        i = len(self.tx_frames)
        self.tx_frames.append(hdlc.decode_frame(data))
        if self.echo:
            self.c.receive(data)
        if i in self.lose_tx:
            return
        for out in self.m.on_frame(hdlc.decode_frame(data)):
            j = len(self.rx_frames)
            self.rx_frames.append(hdlc.decode_frame(out))
            if j not in self.lose_rx:
                self.c.receive(out)

    def run(self, first, *wanted):
        """Put ``first`` on the line, then run the client until it reports one of ``wanted``;
        returns that event, or None when the client gives up on a silent line."""
        if first:
            self.send(first)
        while True:
            ev = self.c.next_event()
            if isinstance(ev, wanted):
                return ev
            if isinstance(ev, cl.FrameReceived):
                self.seen.append(ev.frame)
            elif isinstance(ev, cl.Transmit):
                self.send(ev.data)
            elif isinstance(ev, cl.NeedData):
                self.timeouts += 1
                poll = self.c.on_timeout()
                if not poll:
                    return None
                self.send(poll)
            else:
                raise AssertionError("unexpected event %r" % (ev,))

    def exchange(self, apdu_bytes):
        ev = self.run(self.c.send_apdu(apdu_bytes), cl.Apdu)
        assert ev is not None, "no answer"
        return ev.data

    def transact(self, t):
        req = t.request
        while req is not None:
            req = t.on_response(self.exchange(req))
        return t.result


def session(sap=16, meter=None, max_info=128, meter_max_info=512, echo=False, max_pdu=0xFFFF):
    """A linked and associated (client link, association, wire, meter link)."""
    m = meter or Meter()
    ml = HdlcLink(m, 1, None, meter_max_info)
    link = cl.ClientLink(sap, 1, None, max_info)
    w = Wire(link, ml, echo)
    ev = w.run(link.snrm(), cl.Connected)
    assert ev == cl.Connected(min(max_info, meter_max_info), min(max_info, meter_max_info))
    assoc = ClientAssociation(PASSWORDS[sap], max_pdu)
    assoc.on_aare(w.exchange(assoc.aarq()))
    assert assoc.associated
    return link, assoc, w, ml


def goodbye(link, assoc, w):
    assoc.on_rlre(w.exchange(assoc.rlrq()))
    assert w.run(link.disc(), cl.Disconnected) == cl.Disconnected(True)
    assert link.state == cl.IDLE and not assoc.associated


# ---------------------------------------------------------------- against the meter's link

def test_associate_get_set_action_release():
    link, assoc, w, ml = session(sap=1)
    assert assoc.server_max_pdu and assoc.conformance & apdu.CONF_GET
    raw = w.transact(assoc.get(8, "0.0.1.0.0.255", 2))
    tag, clock = axdr.decode(raw, 0)[0]
    assert tag == axdr.OCTET_STRING and len(clock) == 12
    assert w.transact(assoc.set(8, CLOCK_LN, 2, raw)) == 0
    with pytest.raises(ObjectUndefined):
        w.transact(assoc.get(1, "0.0.96.99.99.255", 2))
    goodbye(link, assoc, w)
    assert [hdlc.kind(f.ctrl) for f in w.tx_frames][:2] == [hdlc.K_SNRM, hdlc.K_I]
    assert hdlc.kind(w.tx_frames[-1].ctrl) == hdlc.K_DISC and w.timeouts == 0


def test_public_client_is_refused_and_wrong_password_rejected():
    link, assoc, w, ml = session(sap=16)
    with pytest.raises(AccessDenied):
        w.transact(assoc.get(7, EVENT_LOG_LN, 2))
    goodbye(link, assoc, w)
    ml = HdlcLink(Meter(), 1, None, 512)
    link = cl.ClientLink(1, 1)
    w = Wire(link, ml)
    w.run(link.snrm(), cl.Connected)
    assoc = ClientAssociation(b"wrong")
    with pytest.raises(AssociationRejected) as ei:
        assoc.on_aare(w.exchange(assoc.aarq()))
    assert ei.value.diagnostic == apdu.DIAG_AUTH_FAILURE and not assoc.associated


@pytest.mark.parametrize("max_info", [32, 48])
def test_segmentation_both_ways(max_info):
    """At a small information field the LLS AARQ and a GET-with-list go out in segments (each
    acknowledged by the meter's RR), and the object list comes back in segments (each
    acknowledged by ours)."""
    link, assoc, w, ml = session(sap=1, max_info=max_info)
    assert (link.max_info_tx, link.max_info_rx) == (max_info, max_info)
    sent = [f for f in w.tx_frames if hdlc.kind(f.ctrl) == hdlc.K_I]
    assert sent[0].segmented and all(len(f.info) <= max_info for f in sent)   # the AARQ
    invoke = assoc.next_invoke()
    items = [(8, CLOCK_LN, 2, None, b"")] * 12
    reply = w.exchange(apdu.get_with_list_request(invoke, items))
    r = assoc.check(reply, invoke, apdu.GET_RESPONSE, "GET-Response")
    assert len(r.results) == 12 and all(choice == 0 for choice, _ in r.results)
    n_tx, n_rx = len(w.tx_frames), len(w.rx_frames)
    objects = w.transact(assoc.get(15, ASSOC_LN, 2))
    assert axdr.decode(objects, 0)[1] == len(objects) and len(objects) > 1024
    answers = [f for f in w.rx_frames[n_rx:] if hdlc.kind(f.ctrl) == hdlc.K_I]
    assert len(answers) > len(objects) // max_info and all(len(f.info) <= max_info for f in answers)
    acks = [f for f in w.tx_frames[n_tx:] if hdlc.kind(f.ctrl) == hdlc.K_RR]
    assert len(acks) == sum(f.segmented for f in answers) > 10 and w.timeouts == 0
    goodbye(link, assoc, w)


def test_event_log_block_transfer_with_get_next():
    meter = Meter(n_events=300)
    link, assoc, w, ml = session(sap=32, meter=meter, max_pdu=256)
    blocks = []
    t = assoc.get(7, EVENT_LOG_LN, 2, on_block=blocks.append)
    raw = w.transact(t)
    rows = axdr.to_python(axdr.decode(raw)[0])
    assert len(rows) == 300 and [r[1] for r in rows] == [e[1] for e in meter.events]
    assert len(blocks) > 10 and blocks == sorted(blocks) and blocks[-1] == len(raw)
    goodbye(link, assoc, w)


def test_lost_request_is_repeated_after_an_rr_poll():
    # not client 1: its address and the server's are both 0x03, so the meter's RR answering
    # our RR poll would look like the echo of the poll (the client keeps that limitation)
    link, assoc, w, ml = session(sap=32)
    w.lose_tx.add(len(w.tx_frames))                 # the GET never reaches the meter
    raw = w.transact(assoc.get(8, CLOCK_LN, 2))
    assert axdr.decode(raw, 0)[0][0] == axdr.OCTET_STRING
    lost, poll, again = w.tx_frames[-3:]
    assert hdlc.kind(poll.ctrl) == hdlc.K_RR and w.timeouts == 1
    assert (again.ctrl, again.info) == (lost.ctrl, lost.info)
    goodbye(link, assoc, w)


def test_lost_response_is_sent_again_after_an_rr_poll():
    link, assoc, w, ml = session(sap=1)
    w.lose_rx.add(len(w.rx_frames))                 # the meter's answer is lost on the line
    raw = w.transact(assoc.get(8, CLOCK_LN, 2))
    assert axdr.decode(raw, 0)[0][0] == axdr.OCTET_STRING
    assert ml.retransmitted == 1 and w.timeouts == 1
    assert hdlc.kind(w.tx_frames[-1].ctrl) == hdlc.K_RR
    assert hdlc.nr(w.tx_frames[-1].ctrl) == hdlc.ns(w.rx_frames[-1].ctrl)   # polled for it
    goodbye(link, assoc, w)


def test_lost_response_segment_is_recovered_by_polling():
    link, assoc, w, ml = session(sap=1, max_info=64)
    w.lose_rx.add(len(w.rx_frames) + 3)             # the 4th segment of the object list
    objects = w.transact(assoc.get(15, ASSOC_LN, 2))
    assert axdr.decode(objects, 0)[1] == len(objects)
    assert ml.retransmitted == 1 and w.timeouts == 1


def test_silent_meter_polled_once_then_given_up():
    link, assoc, w, ml = session(sap=1)
    w.lose_rx.update(range(len(w.rx_frames), len(w.rx_frames) + 10))
    assert w.run(link.send_apdu(assoc.get(8, CLOCK_LN, 2).request), cl.Apdu) is None
    assert w.timeouts == 2 and hdlc.kind(w.tx_frames[-1].ctrl) == hdlc.K_RR
    assert link.state == cl.AWAITING             # the caller decides: here, DISC
    assert w.run(link.disc(), cl.Disconnected) is None and link.state == cl.CLOSING


def test_echo_of_own_frames_is_suppressed():
    """Client 1 and server 1 both encode as 0x03: our echoed frames look like the meter's."""
    link, assoc, w, ml = session(sap=1, max_info=64, echo=True)
    assert w.transact(assoc.get(15, ASSOC_LN, 2))
    goodbye(link, assoc, w)
    assert all(f.src == link.dest for f in w.seen)
    assert len(w.seen) == len(w.rx_frames) and w.timeouts == 0


def test_meter_restart_is_link_down():
    link, assoc, w, ml = session(sap=1)
    ml.on_frame(hdlc.decode_frame(hdlc.encode_frame(link.dest, b"\x03", hdlc.DISC)))  # link lost (restart)
    ev = w.run(link.send_apdu(assoc.get(8, CLOCK_LN, 2).request), cl.Apdu, cl.LinkDown)
    assert isinstance(ev, cl.LinkDown) and "DM" in ev.reason
    assert link.state == cl.IDLE and not link.connected


# ---------------------------------------------------------------- the link on its own

SRV, ME = b"\x03", b"\x21"


def _meter_frame(ctrl, info=b"", seg=False, src=SRV):
    return hdlc.encode_frame(ME, src, ctrl, info, seg)


def _drain(link):
    out = []
    while True:
        ev = link.next_event()
        if isinstance(ev, cl.NeedData):
            return out
        out.append(ev)


def _linked(**kw):
    link = cl.ClientLink(16, 1, **kw)
    link.snrm()
    link.receive(_meter_frame(hdlc.UA))
    evs = _drain(link)
    assert isinstance(evs[-1], cl.Connected)
    return link


def _snapshot(link):
    return (link.state, link.vs, link.vr, link.max_info_tx, link.connected)


def test_ua_without_parameters_means_128_and_negotiation_takes_the_minimum():
    link = _linked(max_info=512)
    assert (link.max_info_tx, link.max_info_rx) == (128, 128)
    link = cl.ClientLink(16, 1, max_info=512)
    link.snrm()
    link.receive(_meter_frame(hdlc.UA, hdlc.encode_params(1024, 256, 1, 1)))
    assert _drain(link)[-1] == cl.Connected(256, 512)


def test_illegal_calls_raise_and_change_nothing():
    link = cl.ClientLink(16, 1)
    before = _snapshot(link)
    for call in (lambda: link.send_apdu(b"\xC0"), link.on_timeout):
        with pytest.raises(cl.LocalProtocolError):
            call()
        assert _snapshot(link) == before
    link = _linked()
    link.send_apdu(b"\xC0\x01\xC1\x00\x08\x00\x00\x01\x00\x00\xFF\x02\x00")
    before = _snapshot(link)
    for call in (lambda: link.send_apdu(b"\xC0"), link.snrm):
        with pytest.raises(cl.LocalProtocolError):
            call()
        assert _snapshot(link) == before
    assoc = ClientAssociation()
    with pytest.raises(cl.LocalProtocolError):
        assoc.get(8, CLOCK_LN, 2)
    assert assoc.next_invoke() == 0xC1               # the refused call took no invoke-id


def test_segmented_request_waits_for_each_rr():
    link = _linked()
    first = hdlc.decode_frame(link.send_apdu(bytes(300)))
    assert first.segmented and len(first.info) == 128 and link.state == cl.SENDING
    assert _drain(link) == []                       # nothing until the meter acknowledges
    link.receive(_meter_frame(hdlc.ctrl_rr(1)))
    (rx, tx) = _drain(link)
    second = hdlc.decode_frame(tx.data)
    assert isinstance(rx, cl.FrameReceived) and hdlc.ns(second.ctrl) == 1 and second.segmented
    link.receive(_meter_frame(hdlc.ctrl_rr(1)))     # acknowledges the wrong segment
    with pytest.raises(cl.ProtocolError, match="N\\(R\\)=1, expected 2"):
        _drain(link)


def test_response_segments_repeats_and_sequence_errors():
    link = _linked()
    link.send_apdu(b"\xC0")
    info = hdlc.LLC_RESPONSE + bytes(range(200))
    link.receive(_meter_frame(hdlc.ctrl_i(0, 1), info[:128], True))
    evs = _drain(link)
    assert hdlc.decode_frame(evs[-1].data).ctrl == hdlc.ctrl_rr(1)
    link.receive(_meter_frame(hdlc.ctrl_i(0, 1), info[:128], True))   # our RR was lost
    evs = _drain(link)
    assert hdlc.decode_frame(evs[-1].data).ctrl == hdlc.ctrl_rr(1)    # acknowledged again
    link.receive(_meter_frame(hdlc.ctrl_i(1, 1), info[128:]))
    assert _drain(link)[-1] == cl.Apdu(bytes(range(200)), "response")
    assert link.state == cl.READY
    link.send_apdu(b"\xC0")
    link.receive(_meter_frame(hdlc.ctrl_i(5, 2), b"\xC4"))
    with pytest.raises(cl.ProtocolError, match="N\\(S\\)=5, expected 2"):
        _drain(link)


def test_other_server_frmr_and_pushed_ui():
    link = _linked()
    link.send_apdu(b"\xC0")
    link.receive(_meter_frame(hdlc.UI, hdlc.LLC_RESPONSE + b"\x0F\x00\x00\x00\x01\x00\x00"))
    assert [type(e) for e in _drain(link)] == [cl.FrameReceived]      # a push: not the answer
    link.receive(_meter_frame(hdlc.FRMR, b"\x10\x00\x80"))
    with pytest.raises(cl.ProtocolError, match="FRMR"):
        _drain(link)
    link.receive(_meter_frame(hdlc.ctrl_i(0, 1), b"\xC4", src=b"\x0B"))
    with pytest.raises(cl.ProtocolError, match="server address 5, expected 1"):
        _drain(link)


def test_frames_for_other_clients_and_bad_frames_are_not_events():
    link = _linked()
    link.send_apdu(b"\xC0")
    link.receive(hdlc.encode_frame(b"\x41", SRV, hdlc.ctrl_i(0, 1), b"\xC4"))  # to client 32
    bad = bytearray(_meter_frame(hdlc.ctrl_i(0, 1), b"\xC4"))
    bad[-2] ^= 1
    link.receive(bytes(bad))
    assert _drain(link) == [] and (link.dropped, link.last_error) == (1, "fcs")


def test_timeouts_poll_once_per_retry():
    link = _linked(retries=2)
    link.send_apdu(b"\xC0")
    poll = hdlc.decode_frame(link.on_timeout())
    assert poll.ctrl == hdlc.ctrl_rr(0)
    assert link.on_timeout() == b""                  # the poll went unanswered: give up
    link.receive(_meter_frame(hdlc.ctrl_rr(1)))      # "still working"
    _drain(link)
    assert link.on_timeout() != b"" and link.on_timeout() == b""
    link.disc()
    assert link.on_timeout() == b""                  # DISC is never repeated
