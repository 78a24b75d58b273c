"""HDLC codec (IEC 62056-46) against the real frames in shared/reference/dlms.md §1-2.

Runs on CPython (pytest) and on the MicroPython unix port (tests/support/mpy_runner.py, driven by tests/device/run_on_micropython_test.py).
"""
from protocol import hdlc_client as hdlc
from protocol.hdlc import HdlcError

from hdlc_rx import drain


def h(s):
    return bytes(int(x, 16) for x in s.split())


SNRM = h("7E A0 07 03 21 93 0F 01 7E")
UA = h("7E A0 20 21 03 73 73 98 81 80 14 05 02 00 80 06 02 00 80 07 04 00 00 00 01 08 04 00 00 00 01 CE 6A 7E")
SNRM_512 = h("7E A0 14 03 21 93 63 E7 81 80 08 05 02 02 00 06 02 02 00 43 B0 7E")
SNRM_4B = h("7E A0 0A 00 02 48 69 21 93 7B F7 7E")
DISC = h("7E A0 07 03 21 53 03 C7 7E")
UA_DISC = h("7E A0 07 21 03 73 01 40 7E")
RR = h("7E A0 07 03 21 51 11 E4 7E")
AARQ_LLS = h("7E A0 44 03 23 10 56 B7 E6 E6 00 60 36 A1 09 06 07 60 85 74 05 08 01 01 "
             "8A 02 07 80 8B 07 60 85 74 05 08 02 01 AC 0A 80 08 31 32 33 34 35 36 37 38 "
             "BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 40 1E 5D FF FF 8B 3C 7E")
AARE = h("7E A0 37 21 03 30 6C 7C E6 E7 00 61 29 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 00 "
         "A3 05 A1 03 02 01 00 BE 10 04 0E 08 00 06 5F 1F 04 00 00 10 1D 01 00 00 07 15 F1 7E")
GET_FRAME_HEAD = h("7E A0 19 03 21 32 6F D8 E6 E6 00")
GET_FRAME_TAIL = h("60 1A 7E")
GET_APDU = h("C0 01 C1 00 08 00 00 01 00 00 FF 02 00")

C16 = hdlc.encode_client_address(16)
S1 = hdlc.encode_server_address(1)


def expect_error(reason, fn, *args):
    try:
        fn(*args)
    except HdlcError as e:
        assert e.reason == reason, (e.reason, reason)
        return
    raise AssertionError("no HdlcError(%s)" % reason)


def test_addresses():
    assert [hdlc.encode_client_address(x) for x in (16, 17, 32, 48)] == [b"\x21", b"\x23", b"\x41", b"\x61"]
    assert hdlc.encode_server_address(1) == b"\x03"
    assert hdlc.encode_server_address(1, 17) == b"\x02\x23"
    assert hdlc.encode_server_address(1, 0x1234) == b"\x00\x02\x48\x69"
    assert hdlc.encode_server_address(1, 17, size=4) == b"\x00\x02\x00\x23"
    assert hdlc.encode_server_address(0x3FFF, 0x3FFF) == b"\xFE\xFE\xFE\xFF"
    expect_error("address", hdlc.encode_server_address, 0x80)
    expect_error("address", hdlc.encode_server_address, 1, 0x4000)
    expect_error("address", hdlc.encode_server_address, 0x80, 1, 2)
    expect_error("address", hdlc.encode_client_address, 0x80)


def test_decode_address():
    v, n, p = hdlc.decode_address(SNRM_4B, 3)
    assert (n, p) == (4, 7)
    assert hdlc.split_server_address(v, n) == (1, 0x1234)
    v, n, p = hdlc.decode_address(b"\x02\x23", 0)
    assert hdlc.split_server_address(v, n) == (1, 17)
    v, n, p = hdlc.decode_address(b"\x03", 0)
    assert hdlc.split_server_address(v, n) == (1, None) and p == 1
    expect_error("address", hdlc.decode_address, b"\x00\x02\x04\x06\x09", 0)   # 5 bytes
    expect_error("address", hdlc.decode_address, b"\x00\x02", 0)               # runs off
    expect_error("address", hdlc.decode_address, b"\x00\x02\x03", 0)           # 3 bytes illegal


def test_control_field():
    # client I 10 32 54 76 98 BA DC; meter I 30 52 74 96 B8 DA FC; client RR 51 91 B1
    assert [hdlc.ctrl_i(i, i) for i in range(7)] == [0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC]
    assert [hdlc.ctrl_i(i, i + 1) for i in range(7)] == [0x30, 0x52, 0x74, 0x96, 0xB8, 0xDA, 0xFC]
    assert [hdlc.ctrl_rr(n) for n in (2, 4, 5)] == [0x51, 0x91, 0xB1]
    assert hdlc.ctrl_rnr(3) == 0x75 and hdlc.ctrl_rr(3, False) == 0x61
    assert hdlc.ctrl_i(7, 7, False) == 0xEE
    assert hdlc.kind(0x32) == hdlc.K_I and hdlc.ns(0x32) == 1 and hdlc.nr(0x32) == 1
    assert hdlc.nr(0xFC) == 7 and hdlc.ns(0xFC) == 6 and hdlc.pf(0xFC) and not hdlc.pf(0xEE)
    assert hdlc.kind(0x51) == hdlc.K_RR and hdlc.kind(0x75) == hdlc.K_RNR
    for c, k in ((hdlc.SNRM, hdlc.K_SNRM), (hdlc.UA, hdlc.K_UA), (hdlc.DISC, hdlc.K_DISC),
                 (hdlc.DM, hdlc.K_DM), (hdlc.FRMR, hdlc.K_FRMR), (hdlc.UI, hdlc.K_UI)):
        assert hdlc.kind(c) == k and hdlc.kind(c & 0xEF) == k
    assert hdlc.kind(0x09) == hdlc.K_UNKNOWN   # REJ is not used by IEC 62056-46
    assert hdlc.kind(0xFF) == hdlc.K_UNKNOWN


def test_encode_snrm_disc_ua_rr():
    assert hdlc.encode_frame(S1, C16, hdlc.SNRM) == SNRM
    assert hdlc.encode_frame(S1, C16, hdlc.DISC) == DISC
    assert hdlc.encode_frame(C16, S1, hdlc.UA) == UA_DISC
    assert hdlc.encode_frame(S1, C16, hdlc.ctrl_rr(2)) == RR
    s4 = hdlc.encode_server_address(1, 0x1234)
    assert hdlc.encode_frame(s4, C16, hdlc.SNRM) == SNRM_4B


def test_encode_with_params():
    assert hdlc.encode_frame(C16, S1, hdlc.UA, hdlc.encode_params()) == UA
    p512 = hdlc.encode_params(512, 512, None, None)
    assert hdlc.encode_frame(S1, C16, hdlc.SNRM, p512) == SNRM_512


def test_encode_i_frames():
    info = hdlc.LLC_REQUEST + AARQ_LLS[11 + 0:-3]
    assert hdlc.encode_frame(hdlc.encode_server_address(1), hdlc.encode_client_address(17), 0x10, info) == AARQ_LLS
    info = hdlc.LLC_RESPONSE + AARE[11:-3]
    assert hdlc.encode_frame(C16, S1, 0x30, info) == AARE
    frame = hdlc.encode_frame(S1, C16, 0x32, hdlc.LLC_REQUEST + GET_APDU)
    assert frame == GET_FRAME_HEAD + GET_APDU + GET_FRAME_TAIL


def test_decode_frames():
    f = hdlc.decode_frame(SNRM)
    assert (f.dest, f.src, f.ctrl, f.info, f.segmented, f.length) == (b"\x03", b"\x21", 0x93, b"", False, 7)
    f = hdlc.decode_frame(UA)
    assert f.ctrl == hdlc.UA and f.dest == b"\x21" and f.src == b"\x03"
    assert hdlc.decode_params(f.info) == (128, 128, 1, 1)
    f = hdlc.decode_frame(SNRM_4B)
    assert f.dest == b"\x00\x02\x48\x69"
    f = hdlc.decode_frame(AARE)
    assert f.info[:3] == hdlc.LLC_RESPONSE and f.info[3] == 0x61 and f.length == 0x37
    f = hdlc.decode_frame(GET_FRAME_HEAD + GET_APDU + GET_FRAME_TAIL)
    assert f.info == hdlc.LLC_REQUEST + GET_APDU and f.ctrl == 0x32


def test_decode_segment_header():
    # 7E A8 89 21 03 52 86 A9 E6 E7 00 C4 01 C1 00 0A 81 C8 41 ... : S bit, length 0x089
    info = h("E6 E7 00 C4 01 C1 00 0A 81 C8") + b"A" * (0x89 - 9 - 10)
    fr = hdlc.encode_frame(C16, S1, 0x52, info, segmented=True)
    assert fr[:11] == h("7E A8 89 21 03 52 86 A9 E6 E7 00")
    f = hdlc.decode_frame(fr)
    assert f.segmented and f.length == 0x89 and f.info == info


def test_decode_errors():
    expect_error("flag", hdlc.decode_frame, SNRM[1:])
    expect_error("flag", hdlc.decode_frame, SNRM[:-1] + b"\x00")
    expect_error("format", hdlc.decode_frame, b"\x7E\x90" + SNRM[2:])
    expect_error("length", hdlc.decode_frame, b"\x7E\xA0\x08" + SNRM[3:])
    bad = bytearray(UA)
    bad[6] ^= 1                              # HCS
    expect_error("hcs", hdlc.decode_frame, bytes(bad))
    bad = bytearray(UA)
    bad[12] ^= 0x40                          # info byte
    expect_error("fcs", hdlc.decode_frame, bytes(bad))
    bad = bytearray(SNRM)
    bad[6] ^= 1
    expect_error("fcs", hdlc.decode_frame, bytes(bad))
    expect_error("address", hdlc.decode_frame, h("7E A0 07 02 20 93 00 00 7E"))
    expect_error("flag", hdlc.decode_frame, b"")
    expect_error("format", hdlc.decode_frame, b"\x7E\x7E")


def test_frame_too_long():
    ok = hdlc.encode_frame(S1, C16, 0x10, bytes(2047 - 9))
    assert len(ok) == 2049 and hdlc.decode_frame(ok).length == 2047
    expect_error("length", hdlc.encode_frame, S1, C16, 0x10, bytes(2047 - 8))


def test_params():
    assert hdlc.encode_params() == UA[8:-3]
    assert hdlc.decode_params(b"") == (128, 128, 1, 1)
    assert hdlc.decode_params(SNRM_512[8:-3]) == (512, 512, 1, 1)
    # Kamstrup: 1-byte and 2-byte values mixed
    assert hdlc.decode_params(h("81 80 07 05 01 80 06 02 02 00")) == (128, 512, 1, 1)
    assert hdlc.decode_params(h("81 80 0D 07 01 07 08 02 00 03 05 01 F8 09 01 00")) == (248, 128, 7, 3)
    assert hdlc.decode_params(hdlc.encode_params(1024, 256, 7, 2)) == (1024, 256, 7, 2)
    for bad in ("81 80", "82 80 00", "81 80 05 05 02 00", "81 80 03 05 05 00", "81 80 04 05 00 06 01"):
        expect_error("format", hdlc.decode_params, h(bad))
    expect_error("format", hdlc.encode_params, 0x10000)


def test_receiver_raw_flags_in_info():
    info = hdlc.LLC_RESPONSE + h("C4 01 C1 00 09 05 06 7E 7E 00 7E")
    fr = hdlc.encode_frame(C16, S1, 0x30, info)
    rx = hdlc.Receiver()
    rx.feed(fr)
    fs = drain(rx)
    assert len(fs) == 1 and fs[0].info == info and rx.dropped == 0


def test_receiver_garbage_and_shared_flags():
    rx = hdlc.Receiver()
    rx.feed(b"\x00\xFF\x7E\x7E\x7E\xA0garbage" + SNRM + DISC[1:] + RR + UA)
    fs = drain(rx)
    assert [f.ctrl for f in fs] == [0x93, 0x53, 0x51, 0x73]
    assert drain(rx) == []


def test_receiver_byte_at_a_time():
    stream = b"\x11\x7E" + AARQ_LLS + SNRM + UA_DISC[1:]
    rx = hdlc.Receiver()
    got = []
    for i in range(len(stream)):
        rx.feed(stream[i:i + 1])
        got.extend(drain(rx))
    assert [f.ctrl for f in got] == [0x10, 0x93, 0x73]
    assert got[0].info == AARQ_LLS[8:-3] and got[0].src == b"\x23"
    assert rx.dropped == 0


def test_receiver_bad_fcs_dropped():
    bad = bytearray(AARE)
    bad[30] ^= 0xFF
    rx = hdlc.Receiver()
    rx.feed(bytes(bad) + SNRM)
    fs = drain(rx)
    assert [f.ctrl for f in fs] == [0x93]
    assert rx.dropped == 1 and rx.last_error == "fcs"
    bad = bytearray(AARE)
    bad[7] ^= 0x01                       # HCS: dropped as soon as the header is in
    rx.feed(bytes(bad[:12]))
    assert rx.pop() is None and rx.dropped == 2 and rx.last_error == "hcs"
    rx.feed(bytes(bad[12:]) + DISC)
    assert [f.ctrl for f in drain(rx)] == [0x53]


def test_receiver_false_start_in_garbage():
    # "7E A7 FF" looks like a start with length 2047; the HCS check rejects it early
    rx = hdlc.Receiver()
    rx.feed(h("7E A7 FF 03 21 10 00 00 01 02") + SNRM)
    assert [f.ctrl for f in drain(rx)] == [0x93]
    assert rx.dropped == 1 and rx.last_error == "hcs"


def test_receiver_impossible_length():
    rx = hdlc.Receiver()
    rx.feed(h("7E A0 03 00") + UA)
    assert [f.ctrl for f in drain(rx)] == [0x73]
    assert rx.last_error == "length"
    small = hdlc.Receiver(64)
    small.feed(hdlc.encode_frame(C16, S1, 0x30, bytes(100)) + SNRM)
    assert [f.ctrl for f in drain(small)] == [0x93]
    assert small.dropped >= 1


def test_receiver_long_frames_and_big_feed():
    info = bytes(range(256)) * 3 + b"\x7E" * 10
    fr = hdlc.encode_frame(C16, S1, 0x52, info, segmented=True)
    assert len(fr) > 255
    rx = hdlc.Receiver()
    stream = (fr + SNRM) * 4            # > maxlen in one feed
    for i in range(0, len(stream), 97):
        rx.feed(stream[i:i + 97])
    rx.feed(b"")
    fs = drain(rx)
    assert [f.ctrl for f in fs] == [0x52, 0x93] * 4
    assert fs[0].info == info and fs[0].segmented and fs[0].length == len(fr) - 2
    rx2 = hdlc.Receiver()
    rx2.feed(stream)
    assert len(drain(rx2)) == 8 and rx2.dropped == 0


def test_receiver_reset():
    rx = hdlc.Receiver()
    rx.feed(SNRM[:5])
    rx.reset()
    rx.feed(SNRM[5:] + DISC)
    assert [f.ctrl for f in drain(rx)] == [0x53]
    assert rx.pending() <= 1


def test_aarq_no_security_frame():
    apdu_bytes = h("60 1D A1 09 06 07 60 85 74 05 08 01 01 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 40 1E 5D FF FF")
    frame = h("7E A0 2B 03 21 10 FB AF E6 E6 00") + apdu_bytes + h("91 23 7E")
    assert hdlc.encode_frame(S1, C16, hdlc.ctrl_i(0, 0), hdlc.LLC_REQUEST + apdu_bytes) == frame
    f = hdlc.decode_frame(frame)
    assert f.info == hdlc.LLC_REQUEST + apdu_bytes and hdlc.kind(f.ctrl) == hdlc.K_I


def test_segmented_get_response_reassembles():
    # dlms.md: GET response with a 200-byte visible-string, first segment 7E A8 89 ... 86 A9 ...
    from protocol import apdu_client as apdu
    from protocol import axdr_client as axdr
    resp = hdlc.LLC_RESPONSE + apdu.get_response(0xC1, axdr.Writer().visible_string("A" * 200).getvalue())
    first = 0x89 - 9
    f1 = hdlc.encode_frame(C16, S1, hdlc.ctrl_i(1, 2), resp[:first], segmented=True)
    assert f1[:19] == h("7E A8 89 21 03 52 86 A9 E6 E7 00 C4 01 C1 00 0A 81 C8 41")
    f2 = hdlc.encode_frame(C16, S1, hdlc.ctrl_i(2, 3), resp[first:])
    rx = hdlc.Receiver()
    rx.feed(f1 + f2)
    a, b = rx.pop(), rx.pop()
    assert a.segmented and not b.segmented and rx.pop() is None
    body = (a.info + b.info)[3:]
    r = apdu.parse_response(body)
    assert axdr.decode(r.data)[0] == (axdr.VISIBLE_STRING, "A" * 200)


def test_receiver_out_of_memory_drops_the_frame_whole_and_goes_on():
    """A frame whose fields find no room (a MemoryError building the Frame: a full heap) is
    dropped whole, as if lost on the line, and the next one is parsed (the 56k tier: it was raised
    out of the meter's loop and ended the firmware)."""
    from protocol import hdlc as dev
    frame = dev.Frame
    calls = []

    def no_room(*a):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("memory allocation failed, allocating 129 bytes")
        return frame(*a)
    dev.Frame = no_room
    try:
        rx = dev.Receiver()
        rx.feed(AARQ_LLS + SNRM)
        fs = drain(rx)
    finally:
        dev.Frame = frame
    assert [f.ctrl for f in fs] == [0x93]
    assert rx.dropped == 1 and rx.last_error == "memory"
