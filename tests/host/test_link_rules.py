"""The meter's link rules (firmware/meter/link.py) on CPython: which addresses it answers
(IEC 62056-46 §6.4.2: never the all-station or no-station address; a provisioned physical
address only), who owns an open link (its client until DISC or inactivity; others get DM), and
the with-list bound (read item by item in blocks; refused without block transfer)."""
from meter.link import HdlcLink
from protocol import apdu_client as apdu
from protocol import hdlc_client as hdlc

from fake_meter import Meter, SRV, C16, C1, C32, ASSOC_LN


def frame(dest, src, ctrl, info=b"", segmented=False):
    return hdlc.decode_frame(hdlc.encode_frame(dest, src, ctrl, info, segmented))


def test_addresses_answered():
    bus = HdlcLink(Meter(), 1, 17)
    p2p = HdlcLink(Meter(), 1, None)
    a = hdlc.encode_server_address
    for dest, on_bus, on_p2p in ((a(1), False, True), (a(1, 17), True, True), (a(1, 17, 4), True, True),
                                 (a(1, 18), False, True), (a(1, 0x7F), False, False),
                                 (a(1, 0x3FFF, 4), False, False), (a(1, 0), False, False),
                                 (a(0x7F), False, False), (a(0x7F, 17), False, False),
                                 (a(0x3FFF, 17, 4), False, False), (a(2, 17), False, False)):
        for link, want in ((bus, on_bus), (p2p, on_p2p)):
            out = link.on_frame(frame(dest, C16, hdlc.SNRM))
            assert bool(out) == want, (dest.hex(), link.physical)
            if out:
                assert hdlc.decode_frame(out[0]).src == dest
                link.on_frame(frame(dest, C16, hdlc.DISC))


def _open(link, src, info=b""):
    assert hdlc.decode_frame(link.on_frame(frame(SRV, src, hdlc.SNRM, info))[0]).ctrl == hdlc.UA


def test_open_link_belongs_to_its_client():
    m = Meter()
    link = HdlcLink(m, 1, None, 512, inactivity_s=120)
    _open(link, C1)                       # a link without an association: another SNRM takes it
    _open(link, C32)
    assert link.client == C32
    out = link.on_frame(frame(SRV, C32, hdlc.ctrl_i(0, 0), hdlc.LLC_REQUEST + apdu.build_aarq(
        mechanism=1, auth_value=b"00000000")))
    assert apdu.parse_aare(hdlc.decode_frame(out[0]).info[3:])["result"] == 0
    for ctrl in (hdlc.SNRM, hdlc.DISC, hdlc.ctrl_rr(0), hdlc.ctrl_i(0, 0)):
        out = link.on_frame(frame(SRV, C1, ctrl, hdlc.LLC_REQUEST + b"\x62\x00" if ctrl & 1 == 0 else b""))
        f = hdlc.decode_frame(out[0])
        assert f.ctrl == hdlc.DM and f.dest == C1
    assert link.on_frame(frame(SRV, C1, 0x13)) == ()             # UI: nothing
    assert link.refused == 5 and link.client == C32
    # the owner's link is untouched: its RR gets RR(1)
    assert hdlc.decode_frame(link.on_frame(frame(SRV, C32, hdlc.ctrl_rr(1)))[0]).ctrl == hdlc.ctrl_rr(1)
    # another client's frames do not keep the link alive; after inactivity it may connect
    m.board.ms += 100000
    link.on_frame(frame(SRV, C1, hdlc.SNRM))
    m.board.ms += 30000
    _open(link, C1)
    assert link.client == C1


def test_an_unauthenticated_link_is_taken_over_by_a_non_public_client():
    # attack pass (session 16): client 16 opened a public association and sent an RR every 100 s;
    # every SNRM of the management client was answered DM for as long as it went on
    m = Meter()
    link = HdlcLink(m, 1, None, 512, inactivity_s=120)
    _open(link, C16)
    out = link.on_frame(frame(SRV, C16, hdlc.ctrl_i(0, 0), hdlc.LLC_REQUEST + apdu.build_aarq()))
    assert apdu.parse_aare(hdlc.decode_frame(out[0]).info[3:])["result"] == 0 and link.assoc.open
    _open(link, C1)                       # the public association is gone, the link is client 1's
    assert link.client == C1 and not link.assoc.open
    assert hdlc.decode_frame(link.on_frame(frame(SRV, C16, hdlc.ctrl_rr(0)))[0]).ctrl == hdlc.DM
    _open(link, C16)                      # no association: the public client's SNRM takes it too
    _open(link, C1)
    # an authenticated association (LLS, client 32) holds the link against client 1's SNRM
    _open(link, C32)
    out = link.on_frame(frame(SRV, C32, hdlc.ctrl_i(0, 0), hdlc.LLC_REQUEST + apdu.build_aarq(
        mechanism=1, auth_value=b"00000000")))
    assert apdu.parse_aare(hdlc.decode_frame(out[0]).info[3:])["result"] == 0
    f = hdlc.decode_frame(link.on_frame(frame(SRV, C1, hdlc.SNRM))[0])
    assert f.ctrl == hdlc.DM and link.client == C32 and link.assoc.open


def _associated(conformance=apdu.DEFAULT_CONFORMANCE):
    link = HdlcLink(Meter(), 1, None, 512)
    _open(link, C16, hdlc.encode_params(512, 512, 1, 1))
    link.seq = [0, 0]
    return link, _req(link, apdu.build_aarq(conformance=conformance))


def _req(link, a):
    """One APDU in I-frames of 128 bytes (what the meter receives), the answer (its segments
    acknowledged with RR)."""
    seq = link.seq
    a = hdlc.LLC_REQUEST + a
    while True:
        out = link.on_frame(frame(SRV, C16, hdlc.ctrl_i(*seq), a[:128], len(a) > 128))
        seq[0] = (seq[0] + 1) & 7
        a = a[128:]
        if not a:
            break
        assert hdlc.kind(hdlc.decode_frame(out[0]).ctrl) == hdlc.K_RR
    f = hdlc.decode_frame(out[0])
    data = bytearray()
    while True:
        seq[1] = (seq[1] + 1) & 7
        data += f.info
        if not f.segmented:
            return bytes(data[3:])
        f = hdlc.decode_frame(link.on_frame(frame(SRV, C16, hdlc.ctrl_rr(seq[1])))[0])


def test_with_list_of_object_lists_goes_in_blocks_or_is_refused():
    link, aare = _associated()
    assert apdu.parse_aare(aare)["result"] == 0
    req = apdu.get_with_list_request(0xC1, [(15, ASSOC_LN, 2, None, None)] * 40)
    r = apdu.parse_response(_req(link, req))
    raw = bytearray(r.raw)
    while not r.last:
        r = apdu.parse_response(_req(link, apdu.get_next_request(0xC1, r.block_no)))
        assert len(r.raw) <= link.assoc.send_max - 12    # one block in memory at a time
        raw += r.raw
    assert raw[0] == 40 and raw.count(ASSOC_LN) == 40
    link, aare = _associated(apdu.DEFAULT_CONFORMANCE & ~apdu.CONF_BLOCK_TRANSFER_WITH_GET)
    r = apdu.parse_response(_req(link, req))
    assert r.tag == apdu.EXCEPTION_RESPONSE and r.service_error == 4
    small = apdu.get_with_list_request(0xC1, [(1, bytes((0, 0, 42, 0, 0, 255)), 2, None, None)] * 3)
    r = apdu.parse_response(_req(link, small))
    assert r.kind == 3 and len(r.results) == 3
