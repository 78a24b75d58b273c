"""The meter's HDLC link and association (firmware/meter/server.py) driven frame by frame on
CPython with a small stand-in meter: IEC 62056-46 negotiation at 128 and 512, segmentation both
ways with RR per segment, N(S)/N(R) retransmission, DISC/DM, FRMR, silence for other addresses,
2- and 4-byte server addresses, inactivity timeout, echo tolerance; IEC 62056-5-3 AARE
diagnostics, block transfer, access rights, invoke-id echo. Reference frames are the worked
frames of ../shared/reference/dlms.md §1-2 (checked there against gurux and dlms-cosem)."""
import pytest

from meter import cosem_values
from meter.link import HdlcLink
from protocol import apdu_client as apdu
from protocol import hdlc_client as hdlc
from protocol import axdr_client as axdr

from fake_meter import (SUPPORTED, CLOCK_LN, ASSOC_LN, EVENT_LOG_LN, TOKEN_CREDIT_LN,  # noqa: F401
                        EMERGENCY_CREDIT_LN, TOKEN_GATEWAY_LN, Meter, SRV, C16, C32, C1)


class Client:
    """A minimal HDLC primary driving the link, checking every answer's addresses."""

    def __init__(self, link, src=C16, dest=SRV):
        self.link, self.src, self.dest = link, src, dest
        self.vs = self.vr = 0

    def send(self, ctrl, info=b"", seg=False, dest=None):
        raw = hdlc.encode_frame(dest or self.dest, self.src, ctrl, info, seg)
        out = [hdlc.decode_frame(f) for f in self.link.on_frame(hdlc.decode_frame(raw))]
        for f in out:
            assert f.dest == self.src and f.src == (dest or self.dest)
        return out

    def snrm(self, info=b""):
        out = self.send(hdlc.SNRM, info)
        assert len(out) == 1 and out[0].ctrl == hdlc.UA
        self.vs = self.vr = 0
        return hdlc.decode_params(out[0].info)

    def request(self, apdu_bytes, max_info=128):
        """Send an APDU (segmented at max_info), collect the answer (RR per segment)."""
        data = hdlc.LLC_REQUEST + apdu_bytes
        chunks = [data[i:i + max_info] for i in range(0, len(data), max_info)]
        for i, ch in enumerate(chunks):
            last = i == len(chunks) - 1
            out = self.send(hdlc.ctrl_i(self.vs, self.vr), ch, not last)
            self.vs = (self.vs + 1) & 7
            if not last:
                assert len(out) == 1 and hdlc.kind(out[0].ctrl) == hdlc.K_RR
                assert hdlc.nr(out[0].ctrl) == self.vs
        resp = bytearray()
        segs = 0
        while True:
            assert len(out) == 1 and hdlc.kind(out[0].ctrl) == hdlc.K_I, out
            f = out[0]
            assert hdlc.ns(f.ctrl) == self.vr and hdlc.nr(f.ctrl) == self.vs
            assert len(f.info) <= self.max_rx
            self.vr = (self.vr + 1) & 7
            resp += f.info
            segs += 1
            if not f.segmented:
                break
            out = self.send(hdlc.ctrl_rr(self.vr))
        assert resp[:3] == hdlc.LLC_RESPONSE
        self.segments = segs
        return bytes(resp[3:])

    max_rx = 128


def linked(meter=None, **kw):
    m = meter or Meter()
    link = HdlcLink(m, 1, kw.pop("physical", None), kw.pop("max_info", 512))
    return m, link


def associate(c, sap=16, password=None, max_pdu=0xFFFF):
    req = apdu.build_aarq(mechanism=apdu.MECH_LLS if password else None, auth_value=password,
                          max_pdu=max_pdu)
    return apdu.parse_aare(c.request(req))


# ---------------------------------------------------------------- negotiation (dlms.md §1)

def test_bare_snrm_gets_the_reference_ua():
    m, link = linked()
    raw = bytes.fromhex("7EA00703219 30F017E".replace(" ", ""))
    out = link.on_frame(hdlc.decode_frame(raw))
    # UA with 128/128/1/1 (the defaults when SNRM carries no parameters)
    assert out == (bytes.fromhex("7EA0202103737398818014050200800602008007040000000108040000"
                                 "0001CE6A7E"),)


@pytest.mark.parametrize("ours,theirs,want", [(512, 512, 512), (512, 128, 128), (128, 512, 128),
                                              (512, 256, 256)])
def test_snrm_negotiates_the_minimum(ours, theirs, want):
    m, link = linked(max_info=ours)
    c = Client(link)
    tx, rx, wtx, wrx = c.snrm(hdlc.encode_params(theirs, theirs, 1, 1))
    assert (tx, rx, wtx, wrx) == (want, min(want, 128), 1, 1)    # the meter receives at most 128


def test_reference_snrm_512_and_kamstrup_parameters():
    m, link = linked()
    out = link.on_frame(hdlc.decode_frame(bytes.fromhex(
        "7EA014032193 63E7 818008050202000602020043B07E".replace(" ", ""))))
    assert hdlc.decode_params(hdlc.decode_frame(out[0]).info)[:2] == (512, 128)
    # values of other widths (Kamstrup: 05 01 80 06 02 02 00) are accepted
    c = Client(linked()[1])
    assert c.snrm(b"\x81\x80\x07\x05\x01\x80\x06\x02\x02\x00")[:2] == (512, 128)


@pytest.mark.parametrize("max_info", [128, 512])
def test_segmented_response_and_request(max_info):
    m, link = linked(max_info=512)
    c = Client(link, C32)
    c.snrm(hdlc.encode_params(max_info, max_info, 1, 1))
    c.max_rx = max_info
    assert associate(c, 32, b"00000000")["result"] == 0
    # object_list (> 1 KB): segments of max_info, RR for each; requests in segments of 128 at most
    # (what the meter's UA announces it receives)
    r = apdu.parse_response(c.request(apdu.get_request(0xC1, 15, ASSOC_LN, 2), 128))
    assert r.kind in (1, 2)
    assert c.segments >= 2
    # a GET-with-list longer than max_info arrives in segments the meter acknowledges with RR
    items = [(3, b"\x01\x00\x01\x08\x00\xff", 2, None, None)] * ((max_info // 10) + 5)
    r = apdu.parse_response(c.request(apdu.get_with_list_request(0xC2, items), 128))
    assert r.kind == 3 and len(r.results) == len(items)
    assert all(x == (0, b"\x06\x00\x00\x00\x00") for x in r.results)


# ---------------------------------------------------------------- sequence numbers, errors

def test_lost_answer_is_sent_again():
    m, link = linked()
    c = Client(link)
    c.snrm()
    associate(c)
    req = hdlc.LLC_REQUEST + apdu.get_request(0xC1, 1, b"\x00\x00\x2a\x00\x00\xff", 2)
    first = link.on_frame(hdlc.decode_frame(hdlc.encode_frame(SRV, C16, hdlc.ctrl_i(c.vs, c.vr), req)))
    # the client polls with RR still at the old N(R): the meter repeats its last I-frame
    again = link.on_frame(hdlc.decode_frame(hdlc.encode_frame(SRV, C16, hdlc.ctrl_rr(c.vr), b"")))
    assert again == first and link.retransmitted == 1
    # the client repeats its request (same N(S)): same answer, not processed twice
    dup = link.on_frame(hdlc.decode_frame(hdlc.encode_frame(SRV, C16, hdlc.ctrl_i(c.vs, c.vr), req)))
    assert dup == first


def test_disc_dm_and_frames_in_ndm():
    m, link = linked()
    c = Client(link)
    assert c.send(hdlc.DISC)[0].ctrl == hdlc.DM             # not connected
    assert c.send(hdlc.ctrl_i(0, 0), hdlc.LLC_REQUEST + b"\x62\x00")[0].ctrl == hdlc.DM
    assert c.send(hdlc.ctrl_rr(0))[0].ctrl == hdlc.DM
    c.snrm()
    out = link.on_frame(hdlc.decode_frame(bytes.fromhex("7EA00703215303C77E")))   # dlms.md DISC
    assert out == (bytes.fromhex("7EA007210373014 07E".replace(" ", "")),)       # dlms.md UA
    assert link.state == 0


def test_frmr_on_bad_control_long_info_and_bad_nr():
    m, link = linked(max_info=128)
    c = Client(link)
    c.snrm()
    out = c.send(0x8F)                                   # not a defined command
    assert out[0].ctrl == hdlc.FRMR and out[0].info == bytes((0x8F, 0, 1))
    out = c.send(hdlc.ctrl_i(0, 0), bytes(200))          # longer than negotiated 128
    assert out[0].ctrl == hdlc.FRMR and out[0].info[2] == 4
    out = c.send(hdlc.ctrl_i(0, 5), hdlc.LLC_REQUEST + b"\x62\x00")  # N(R) 5: never sent
    assert out[0].ctrl == hdlc.FRMR and out[0].info[2] == 8
    assert link.frmr == 3


def test_other_addresses_get_silence_and_2_4_byte_addresses_answer():
    m, link = linked(physical=17)
    for dest in (b"\x0b", hdlc.encode_server_address(1, 18), hdlc.encode_server_address(1, 18, 4),
                 hdlc.encode_server_address(2, 17, 4)):
        assert Client(link, dest=dest).send(hdlc.SNRM) == []
    assert link.ignored == 4
    two = bytes.fromhex("0223")                          # log 1 + phys 17, dlms-cosem #74
    assert Client(link, dest=two).snrm()[:2] == (128, 128)
    four = hdlc.encode_server_address(1, 17, 4)
    c = Client(link, dest=four)
    c.snrm()
    assert associate(c)["result"] == 0
    # the 4-byte reference address of dlms.md (phys 0x1234) with a meter without physical address
    m, link = linked()
    out = link.on_frame(hdlc.decode_frame(bytes.fromhex("7EA00A000248692193 7BF77E".replace(" ", ""))))
    assert hdlc.decode_frame(out[0]).src == bytes.fromhex("00024869")
    # a multi-byte client address is not ours to answer
    assert link.on_frame(hdlc.Frame(False, SRV, b"\x20\x21", hdlc.SNRM, b"", 9)) == ()


def test_inactivity_returns_to_ndm():
    m, link = linked()
    c = Client(link)
    c.snrm()
    associate(c)
    m.board.ms += 121000
    assert c.send(hdlc.ctrl_rr(c.vr))[0].ctrl == hdlc.DM
    assert not link.assoc.open


def test_echo_of_our_own_frame_is_ignored():
    """Client 1 and server 1 share the address byte 03: an optical head's echo of the meter's
    frame looks like a request unless the link recognises it."""
    m, link = linked()
    c = Client(link, C1)
    c.snrm()
    ua_echo = hdlc.decode_frame(hdlc.encode_frame(C1, SRV, hdlc.UA, hdlc.encode_params(128, 128, 1, 1)))
    assert link.on_frame(ua_echo) == ()
    req = hdlc.LLC_REQUEST + apdu.build_aarq(mechanism=apdu.MECH_LLS, auth_value=b"12345678")
    out = link.on_frame(hdlc.decode_frame(hdlc.encode_frame(SRV, C1, hdlc.ctrl_i(0, 0), req)))
    assert link.on_frame(hdlc.decode_frame(out[0])) == ()      # the AARE heard back
    assert apdu.parse_aare(hdlc.decode_frame(out[0]).info[3:])["result"] == 0


# ---------------------------------------------------------------- association (dlms.md §2)

def test_reference_aarq_and_aare():
    m, link = linked()
    c = Client(link)
    c.snrm()
    aarq = bytes.fromhex("7EA02B0321 10FBAF E6E600601DA109060760857405080101BE10040E01000000065F1F"
                         "0400401E5DFFFF 91237E".replace(" ", ""))
    out = link.on_frame(hdlc.decode_frame(aarq))
    a = apdu.parse_aare(hdlc.decode_frame(out[0]).info[3:])
    assert a["result"] == 0 and a["vaa_name"] == 7 and a["dlms_version"] == 6
    assert a["conformance"] == 0x401E5D & SUPPORTED
    assert a["max_pdu"] == 1024                  # the largest APDU the meter receives


@pytest.mark.parametrize("sap,mech,pw,diag,initiate", [
    (1, apdu.MECH_LLS, b"wrong", 13, None),      # authentication-failure
    (32, None, None, 14, None),                  # authentication-required
    (32, apdu.MECH_HLS_GMAC, b"x", 11, None),    # mechanism not recognised
    (17, None, None, 1, None),                   # unknown client SAP
])
def test_aare_rejections(sap, mech, pw, diag, initiate):
    m, link = linked()
    c = Client(link, bytes([(sap << 1) | 1]))
    c.snrm()
    a = apdu.parse_aare(c.request(apdu.build_aarq(mechanism=mech, auth_value=pw)))
    assert a["result"] == 1 and a["diagnostic"] == diag


def test_aare_initiate_errors_and_context():
    m, link = linked()
    c = Client(link)
    c.snrm()
    a = apdu.parse_aare(c.request(apdu.build_aarq(dlms_version=5)))
    assert a["result"] == 1 and a["service_error"] == (6, 1)     # DLMS version too low
    a = apdu.parse_aare(c.request(apdu.build_aarq(max_pdu=20)))
    assert a["service_error"] == (6, 3)                          # PDU size too short
    a = apdu.parse_aare(c.request(apdu.build_aarq(conformance=apdu.CONF_INFORMATION_REPORT)))
    assert a["service_error"] == (6, 2)                          # incompatible conformance
    a = apdu.parse_aare(c.request(apdu.build_aarq(context=apdu.CONTEXT_SN)))
    assert a["result"] == 1 and a["diagnostic"] == 2             # context not supported
    # calling-AP-title as dlms-cosem sends it is tolerated; RLRQ with user-information too
    aarq = bytearray(apdu.build_aarq())
    title = b"\xA6\x0A\x04\x08uti\x01\x02\x03\x04\x05"
    aarq[1] += len(title)
    aarq[2:2] = title
    assert apdu.parse_aare(c.request(bytes(aarq)))["result"] == 0
    rlrq = bytes.fromhex("6215800100BE10040E01000000065F1F0400001E1DFFFF")
    assert c.request(rlrq) == b"\x63\x03\x80\x01\x00"
    assert not link.assoc.open


def test_services_access_rights_and_invoke_id_echo():
    m, link = linked()
    c = Client(link)
    c.snrm()
    associate(c)
    clock = CLOCK_LN
    r = apdu.parse_response(c.request(apdu.get_request(0xC7, 8, clock, 2)))
    assert r.invoke == 0xC7 and axdr.decode(r.data)[0][0] == axdr.OCTET_STRING
    r = apdu.parse_response(c.request(apdu.get_request(0x85, 8, clock, 10)))
    assert r.invoke == 0x85 and r.dar == 4                       # no attribute 10
    r = apdu.parse_response(c.request(apdu.get_request(0xC1, 3, clock, 2)))
    assert r.dar == 9                                            # class inconsistent
    r = apdu.parse_response(c.request(apdu.get_request(0xC1, 1, b"\x01\x02\x03\x04\x05\x06", 2)))
    assert r.dar == 4                                            # object undefined
    r = apdu.parse_response(c.request(apdu.get_request(0xC1, 7, EVENT_LOG_LN, 2)))
    assert r.dar == 3                                            # public: no event log
    r = apdu.parse_response(c.request(apdu.set_request(0xC2, 8, clock, 2, b"\x09\x0c" + bytes(12))))
    assert r.invoke == 0xC2 and r.dar == 3                       # public: read-write-denied
    r = apdu.parse_response(c.request(apdu.action_request(0xC0, 70, b"\x00\x00\x60\x03\x0a\xff", 1, b"\x0f\x00")))
    assert r.invoke == 0xC0 and r.dar == 3
    assert c.request(b"\xC3\x02\xC1") == b"\xD8\x02\x02"         # ACTION with-first-block: not supported
    assert c.request(b"\xCC\x01\x02") == b"\xD8\x02\x02"         # unknown service


def test_manager_set_and_action():
    m, link = linked()
    c = Client(link, C1)
    c.snrm()
    associate(c, 1, b"12345678")
    dt = axdr.datetime_bytes(2026, 2, 3, 10, 0, 0, 0, -330)
    r = apdu.parse_response(c.request(apdu.set_request(0xC1, 8, CLOCK_LN, 2, b"\x09\x0c" + dt)))
    assert r.dar is None and m.board.t == 1770093000              # 2026-02-03T04:30Z
    r = apdu.parse_response(c.request(apdu.action_request(0xC1, 8, CLOCK_LN, 6, b"\x10\x00\x1e")))
    assert r.dar is None and m.board.t == 1770093030              # shift_time(+30 s)
    r = apdu.parse_response(c.request(apdu.action_request(0xC1, 112, TOKEN_CREDIT_LN, 1,
                                                          b"\x05\x00\x00\x13\x88")))
    assert r.dar is None and m.account.credit == 10000
    r = apdu.parse_response(c.request(apdu.set_request(0xC1, 70, b"\x00\x00\x60\x03\x0a\xff", 4, b"\x16\x07")))
    assert r.dar == 250 and m.dc.control_mode == 5                 # modes 0..6 only
    r = apdu.parse_response(c.request(apdu.set_request(0xC1, 70, b"\x00\x00\x60\x03\x0a\xff", 4, b"\x11\x02")))
    assert r.dar == 12                                             # enum expected


def _long_get(c, req, max_pdu):
    """GET with GET-next until the last block; returns (raw value, blocks)."""
    r = apdu.parse_response(c.request(req))
    if r.kind == 1:
        return r.data, 0
    raw, n = bytearray(), 0
    while True:
        assert r.kind == 2 and r.dar is None and r.block_no == n + 1
        n += 1
        raw += r.raw
        assert len(apdu.get_response_block(0xC1, r.last, r.block_no, r.raw)) <= max_pdu
        if r.last:
            return bytes(raw), n
        r = apdu.parse_response(c.request(apdu.get_next_request(0xC1, r.block_no)))


def test_event_log_block_transfer_and_selective_access():
    m, link = linked(Meter(n_events=300))
    c = Client(link, C32)
    c.snrm()
    assert associate(c, 32, b"00000000", max_pdu=256)["result"] == 0
    raw, blocks = _long_get(c, apdu.get_request(0xC1, 7, EVENT_LOG_LN, 2), 256)
    rows = axdr.to_python(axdr.decode(raw)[0])
    assert len(raw) > 4096 and blocks >= len(raw) // 244 and len(rows) == 300
    assert [r[1] for r in rows] == [e[1] for e in m.events]
    # entry descriptor: entries 10..12, column 2 only
    sel = axdr.Writer().structure(4).double_long_unsigned(10).double_long_unsigned(12) \
        .long_unsigned(2).long_unsigned(2).getvalue()
    raw, _ = _long_get(c, apdu.get_request(0xC1, 7, EVENT_LOG_LN, 2, 2, sel), 256)
    assert axdr.to_python(axdr.decode(raw)[0]) == [[m.events[i][1]] for i in (9, 10, 11)]
    # range descriptor on the clock: entries 5..7 by time
    w = axdr.Writer().structure(4).structure(4).long_unsigned(8).octet_string(CLOCK_LN) \
        .integer(2).long_unsigned(0)
    for i in (4, 6):
        cosem_values.put_time(m, m.events[i][0], w)
    w.array(0)
    raw, _ = _long_get(c, apdu.get_request(0xC1, 7, EVENT_LOG_LN, 2, 1, w.getvalue()), 256)
    assert [r[1] for r in axdr.to_python(axdr.decode(raw)[0])] == [m.events[i][1] for i in (4, 5, 6)]
    # GET-next for a block that was never sent: block-number-invalid, transfer aborted
    r = apdu.parse_response(c.request(apdu.get_request(0xC1, 7, EVENT_LOG_LN, 2)))
    assert r.kind == 2 and not r.last
    r = apdu.parse_response(c.request(apdu.get_next_request(0xC1, 7)))
    assert r.dar == 19
    r = apdu.parse_response(c.request(apdu.get_next_request(0xC1, 1)))
    assert r.dar == 16                                            # no long GET in progress


def test_object_list_matches_enforced_rights():
    m, link = linked()
    for sap, pw in ((16, None), (32, b"00000000"), (48, b"ABCDEFGH")):
        c = Client(link, bytes([(sap << 1) | 1]))
        c.snrm()
        assert associate(c, sap, pw)["result"] == 0
        raw, _ = _long_get(c, apdu.get_request(0xC1, 15, ASSOC_LN, 2), 0xFFFF)
        for ic, ver, ln, (attrs, meths) in axdr.to_python(axdr.decode(raw)[0]):
            for a, mode, _sel in attrs:
                r = apdu.parse_response(c.request(apdu.get_request(0xC1, ic, ln, a)))
                assert (r.dar is None) == bool(mode & 1), (sap, ln.hex(), a, r.dar)
                assert r.dar in (None, 3)
        assert c.send(hdlc.DISC)[0].ctrl == hdlc.UA     # the link is this client's until DISC


def test_limiter_and_absent_emergency_credit():
    m, link = linked()
    c = Client(link, C32)
    c.snrm()
    associate(c, 32, b"00000000")
    lim = b"\x00\x00\x11\x00\x00\xff"
    r = apdu.parse_response(c.request(apdu.get_request(0xC1, 71, lim, 3)))
    assert axdr.decode(r.data)[0] == (axdr.DOUBLE_LONG_UNSIGNED, 50000)   # 0.1 W, as 1.0.1.7.0.255
    r = apdu.parse_response(c.request(apdu.get_request(0xC1, 71, lim, 2)))
    assert axdr.to_python(axdr.decode(r.data)[0]) == [3, b"\x01\x00\x01\x07\x00\xff", 2]
    # this meter has no emergency credit: the object is neither listed nor served
    r = apdu.parse_response(c.request(apdu.get_request(0xC1, 112, EMERGENCY_CREDIT_LN, 2)))
    assert r.dar == 4
    # Policy.emergency: IC 112 attributes 2..11 (amount, type, priority, warning, limit,
    # configuration, status 3 = in use, preset, available threshold, period)
    m.policy.emergency = (2000, 2, 2, 0, 2000, 0x1C, 3, 2000, 0, 0)
    r = apdu.parse_response(c.request(apdu.get_request(0xC1, 112, EMERGENCY_CREDIT_LN, 2)))
    assert axdr.decode(r.data)[0] == (axdr.DOUBLE_LONG, 2000)
    r = apdu.parse_response(c.request(apdu.get_request(0xC1, 111, b"\x00\x00\x13\x00\x00\xff", 3)))
    assert axdr.decode(r.data)[0] == (axdr.UNSIGNED, 1)                   # credit_in_use: emergency


@pytest.mark.parametrize("unit,want", [(0, ["INR", -2, 2]), (1, ["kWh", -1, 1])])
def test_account_currency_names_the_credit_unit(unit, want):
    """IC 111 attribute 15 currency {name, scale, unit} says what the credit register counts
    (Blue Book currency_unit: 1 consumption, 2 monetary): paise, or 0.1 kWh (config credit_unit 1)."""
    from meter.account import Account
    m, link = linked()
    m.account = Account(650, 5000, unit=unit)
    c = Client(link, C32)
    c.snrm()
    associate(c, 32, b"00000000")
    r = apdu.parse_response(c.request(apdu.get_request(0xC1, 111, b"\x00\x00\x13\x00\x00\xff", 15)))
    assert axdr.to_python(axdr.decode(r.data)[0]) == want
