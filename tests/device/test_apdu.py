"""xDLMS / ACSE APDU codec against the real APDUs in shared/reference/dlms.md §2.

Runs on CPython (pytest) and on the MicroPython unix port.
"""
from protocol import apdu_client as apdu
from protocol import hdlc_client as hdlc
from protocol import axdr_client as axdr
from protocol.apdu import ApduError


def h(s):
    return bytes(int(x, 16) for x in s.split())


CLOCK = bytes([0, 0, 1, 0, 0, 255])
ENERGY = bytes([1, 0, 1, 8, 0, 255])
DISCONNECT = bytes([0, 0, 96, 3, 10, 255])
CREDIT = bytes([0, 0, 19, 10, 0, 255])
TOKEN_GW = bytes([0, 0, 19, 40, 0, 255])

AARQ_LLS = h("60 36 A1 09 06 07 60 85 74 05 08 01 01 8A 02 07 80 8B 07 60 85 74 05 08 02 01 "
             "AC 0A 80 08 31 32 33 34 35 36 37 38 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 40 1E 5D FF FF")
AARQ_NONE = h("60 1D A1 09 06 07 60 85 74 05 08 01 01 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 40 1E 5D FF FF")
AARE_ACCEPT = h("61 29 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 00 A3 05 A1 03 02 01 00 "
                "BE 10 04 0E 08 00 06 5F 1F 04 00 00 10 1D 01 00 00 07")
# dlms-cosem sends a calling-AP-title in every AARQ
AARQ_DLMS_COSEM = h("60 29 A1 09 06 07 60 85 74 05 08 01 01 A6 0A 04 08 75 74 69 01 02 03 04 05 "
                    "BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 00 1E 1D FF FF")


def err(fn, *args):
    try:
        fn(*args)
    except ApduError as e:
        return e
    raise AssertionError("no ApduError")


def test_conformance_bits():
    assert apdu.CONF_GET == 0x000010 and apdu.CONF_SET == 0x000008 and apdu.CONF_ACTION == 0x000001
    assert apdu.CONF_SELECTIVE_ACCESS == 0x000004 and apdu.CONF_BLOCK_TRANSFER_WITH_GET == 0x001000
    assert apdu.CONF_MULTIPLE_REFERENCES == 0x000200
    # AARE accept in dlms.md: 00 10 1D = block-get | get | set | selective access | action
    assert (apdu.CONF_BLOCK_TRANSFER_WITH_GET | apdu.CONF_GET | apdu.CONF_SET |
            apdu.CONF_SELECTIVE_ACCESS | apdu.CONF_ACTION) == 0x00101D


def test_parse_aarq_lls():
    a = apdu.parse_aarq(AARQ_LLS)
    assert a["context"] == apdu.CONTEXT_LN and a["mechanism"] == apdu.MECH_LLS
    assert a["auth_value"] == b"12345678" and a["acse_requirements"] == 1
    assert a["dlms_version"] == 6 and a["conformance"] == 0x401E5D and a["max_pdu"] == 0xFFFF
    assert a["user_info_ok"] and a["dedicated_key"] is None and a["calling_ap_title"] is None
    # as carried in the HDLC frame of dlms.md
    f = hdlc.decode_frame(h("7E A0 44 03 23 10 56 B7 E6 E6 00") + AARQ_LLS + h("8B 3C 7E"))
    assert apdu.parse_aarq(f.info[3:]) == a


def test_parse_aarq_none_and_dlms_cosem():
    a = apdu.parse_aarq(AARQ_NONE)
    assert a["context"] == 1 and a["mechanism"] is None and a["auth_value"] is None
    assert a["acse_requirements"] == 0 and a["user_info_ok"]
    b = apdu.parse_aarq(AARQ_DLMS_COSEM)
    assert b["calling_ap_title"] == h("75 74 69 01 02 03 04 05") and b["conformance"] == 0x001E1D


def test_build_aarq_golden():
    assert apdu.build_aarq() == AARQ_NONE
    assert apdu.build_aarq(mechanism=apdu.MECH_LLS, auth_value=b"12345678") == AARQ_LLS
    long_pw = apdu.build_aarq(mechanism=1, auth_value=b"x" * 200)
    a = apdu.parse_aarq(long_pw)
    assert a["auth_value"] == b"x" * 200 and long_pw[1] == 0x81


def test_parse_aarq_variants():
    sn = AARQ_NONE[:12] + b"\x02" + AARQ_NONE[13:]
    assert apdu.parse_aarq(sn)["context"] == apdu.CONTEXT_SN
    other = AARQ_NONE[:8] + b"\x75" + AARQ_NONE[9:]
    assert apdu.parse_aarq(other)["context"] is None
    # dedicated key + response-allowed + quality-of-service present
    ui = h("01 01 03 AA BB CC 01 00 01 05 06 5F 1F 04 00 00 00 10 01 00")
    body = h("A1 09 06 07 60 85 74 05 08 01 03") + h("BD 02 01 02") + b"\xBE" + bytes((len(ui) + 2, 4, len(ui))) + ui
    a = apdu.parse_aarq(b"\x60" + bytes((len(body),)) + body)
    assert a["context"] == 3 and a["dedicated_key"] == h("AA BB CC")
    assert a["conformance"] == 0x10 and a["max_pdu"] == 256 and a["user_info_ok"]
    # glo-initiate-request (ciphered) is not an InitiateRequest we can use
    body = h("A1 09 06 07 60 85 74 05 08 01 03 BE 06 04 04 21 02 00 00")
    assert not apdu.parse_aarq(b"\x60" + bytes((len(body),)) + body)["user_info_ok"]
    # broken InitiateRequest -> user_info_ok False, not an exception
    bad = AARQ_NONE.replace(b"\x5F\x1F\x04", b"\x5F\x1E\x04")
    assert not apdu.parse_aarq(bad)["user_info_ok"]


def test_parse_aarq_malformed():
    for bad in (b"", b"\x60", AARQ_NONE[:-1], b"\x61" + AARQ_NONE[1:], h("60 04 A1 09 06 07"),
                h("60 03 A1 81"), h("60 02 BF")):
        e = err(apdu.parse_aarq, bad)
        assert e.service_error == apdu.SERVICE_OTHER_REASON
    err(apdu.parse_aarq, None)


def test_build_aare_accept_golden():
    b = apdu.build_aare(0, 0, conformance=0x00101D, max_pdu=256)
    assert b == AARE_ACCEPT
    a = apdu.parse_aare(b)
    assert a["result"] == 0 and a["diagnostic"] == 0 and not a["diag_provider"]
    assert a["context"] == 1 and a["dlms_version"] == 6 and a["conformance"] == 0x00101D
    assert a["max_pdu"] == 256 and a["vaa_name"] == 7 and a["service_error"] is None
    assert a["mechanism"] is None


def test_aare_lls_accept_has_mechanism():
    b = apdu.build_aare(0, 0, conformance=0x1D, mechanism=apdu.MECH_LLS)
    assert h("88 02 07 80 89 07 60 85 74 05 08 02 01") in b
    assert apdu.parse_aare(b)["mechanism"] == 1


def test_aare_reject():
    # real L+G reject: A2 03 02 01 01 / A3 05 A1 03 02 01 0D, no user-information
    lg = h("61 17 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 01 A3 05 A1 03 02 01 0D")
    a = apdu.parse_aare(lg)
    assert a["result"] == 1 and a["diagnostic"] == 13 and a["conformance"] is None
    ours = apdu.build_aare(1, apdu.DIAG_AUTH_FAILURE)
    assert ours.startswith(b"\x61") and h("A2 03 02 01 01 A3 05 A1 03 02 01 0D BE") in ours
    a = apdu.parse_aare(ours)
    assert a["result"] == 1 and a["diagnostic"] == 13 and a["vaa_name"] == 7
    v = apdu.build_aare(1, apdu.DIAG_NO_REASON, initiate_error=(6, apdu.INITIATE_DLMS_VERSION_TOO_LOW))
    assert v.endswith(h("BE 06 04 04 0E 01 06 01"))
    a = apdu.parse_aare(v)
    assert a["service_error"] == (6, 1) and a["dlms_version"] is None
    p = apdu.build_aare(2, 2, diag_provider=True)
    assert h("A3 05 A2 03 02 01 02") in p
    a = apdu.parse_aare(p)
    assert a["diag_provider"] and a["diagnostic"] == 2 and a["result"] == 2


def test_aare_parse_errors():
    for bad in (b"", AARE_ACCEPT[:-2], h("61 05 A1 03 02 01 00"), h("61 07 A2 03 02 02 00 00 00"),
                AARQ_NONE, h("61 03 BE 01 04")):
        err(apdu.parse_aare, bad)


def test_release():
    assert apdu.build_rlrq() == h("62 03 80 01 00")
    assert apdu.build_rlre() == h("63 03 80 01 00")
    assert apdu.parse_rlrq(h("62 03 80 01 00"))["reason"] == 0
    assert apdu.parse_rlre(h("63 03 80 01 01"))["reason"] == 1
    cosem = h("62 15 80 01 00 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 00 1E 1D FF FF")
    r = apdu.parse_rlrq(cosem)
    assert r["reason"] == 0 and r["user_info"][:2] == h("04 0E")
    assert apdu.parse_rlrq(h("62 00"))["reason"] is None
    for bad in (h("62 03 80 01"), h("63 03 80 01 00"), b""):
        err(apdu.parse_rlrq, bad)


def test_request_builders_golden():
    assert apdu.get_request(0xC1, 8, CLOCK, 2) == h("C0 01 C1 00 08 00 00 01 00 00 FF 02 00")
    assert apdu.get_with_list_request(0xC1, [(8, CLOCK, 2, None, b""), (3, ENERGY, 2, None, b"")]) == \
        h("C0 03 C1 02 00 08 00 00 01 00 00 FF 02 00 00 03 01 00 01 08 00 FF 02 00")
    assert apdu.get_next_request(0xC1, 0x01020304) == h("C0 02 C1 01 02 03 04")
    assert apdu.set_request(0xC1, 3, ENERGY, 2, h("06 00 00 00 2A")) == \
        h("C1 01 C1 00 03 01 00 01 08 00 FF 02 00 06 00 00 00 2A")
    assert apdu.action_request(0xC1, 70, DISCONNECT, 1, axdr.Writer().integer(0).getvalue()) == \
        h("C3 01 C1 00 46 00 00 60 03 0A FF 01 01 0F 00")
    assert apdu.action_request(0xC1, 112, CREDIT, 1, axdr.Writer().double_long(5000).getvalue()) == \
        h("C3 01 C1 00 70 00 00 13 0A 00 FF 01 01 05 00 00 13 88")
    tok = b"58411463081620947322"
    assert apdu.action_request(0xC1, 115, TOKEN_GW, 1, axdr.Writer().octet_string(tok).getvalue()) == \
        h("C3 01 C1 00 73 00 00 13 28 00 FF 01 01 09 14") + tok
    assert apdu.action_request(0xC0, 70, DISCONNECT, 2) == h("C3 01 C0 00 46 00 00 60 03 0A FF 02 00")
    err(apdu.get_request, 0xC1, 8, b"\x00\x00", 2)


def test_parse_request_get():
    r = apdu.parse_request(h("C0 01 C1 00 08 00 00 01 00 00 FF 02 00"))
    assert (r.tag, r.kind, r.invoke) == (apdu.GET_REQUEST, 1, 0xC1)
    assert r.items == [(8, CLOCK, 2, None, None)]
    r = apdu.parse_request(h("C0 03 C1 02 00 08 00 00 01 00 00 FF 02 00 00 03 01 00 01 08 00 FF 02 00"))
    assert r.kind == 3 and r.items == [(8, CLOCK, 2, None, None), (3, ENERGY, 2, None, None)]
    r = apdu.parse_request(h("C0 02 81 00 00 00 05"))
    assert r.kind == 2 and r.block_no == 5 and r.invoke == 0x81
    # selective access: profile generic entry descriptor {from 1, to 10, col 1..0}
    params = axdr.Writer().structure(4).double_long_unsigned(1).double_long_unsigned(10) \
        .long_unsigned(1).long_unsigned(0).getvalue()
    req = apdu.get_request(0xC2, 7, bytes([1, 0, 99, 1, 0, 255]), 2, 2, params)
    r = apdu.parse_request(req)
    assert r.items == [(7, bytes([1, 0, 99, 1, 0, 255]), 2, 2, params)] and r.invoke == 0xC2
    # bytes after a GET-Request-Normal's access parameters go with them (the object refuses
    # them); a view of the request, not a copy
    r = apdu.parse_request(memoryview(req + h("12 00 01 FF")))
    assert bytes(r.items[0][4]) == params + h("12 00 01 FF") and isinstance(r.items[0][4], memoryview)
    r = apdu.parse_request(h("C0 03 C1 02") + req[3:] + h("00 03 01 00 01 08 00 FF 02 00"))
    assert r.items[0][4] == params and r.items[1] == (3, ENERGY, 2, None, None)


def test_parse_request_set_action():
    r = apdu.parse_request(h("C1 01 C1 00 03 01 00 01 08 00 FF 02 00 06 00 00 00 2A"))
    assert r.tag == apdu.SET_REQUEST and r.items[0][:3] == (3, ENERGY, 2) and r.value == h("06 00 00 00 2A")
    # the meter parses a view of its link buffer: the SET value is a view of it, not a copy (a
    # profile's ~600 B needed a hole of its own in a 56 KiB heap)
    r = apdu.parse_request(memoryview(h("C1 01 C1 00 03 01 00 01 08 00 FF 02 00 06 00 00 00 2A")))
    assert isinstance(r.value, memoryview) and bytes(r.value) == h("06 00 00 00 2A")
    r = apdu.parse_request(h("C3 01 C1 00 70 00 00 13 0A 00 FF 01 01 05 00 00 13 88"))
    assert r.items == [(112, CREDIT, 1, None, h("05 00 00 13 88"))]
    r = apdu.parse_request(h("C3 01 C0 00 46 00 00 60 03 0A FF 02 00"))
    assert r.items == [(70, DISCONNECT, 2, None, None)] and r.invoke == 0xC0


def test_parse_request_errors():
    for bad in ("C0 01 C1 00 08 00 00 01", "C0 01 C1 00 08 00 00 01 00 00 FF 02", "C0 02 C1 00 00",
                "C1 01 C1 00 03 01 00 01 08 00 FF 02 00 06 00 00", "C3 01 C1 00 46 00 00 60 03 0A FF 01 01",
                "C0 03 C1 05 00 08", "C0 01 C1 00 08 00 00 01 00 00 FF 02 01 01 02 01", "C0",
                "C0 01 C1 00 08 00 00 01 00 00 FF 02 07", "C1 01 C1 00 03 01 00 01 08 00 FF 02 00 FF"):
        e = err(apdu.parse_request, h(bad))
        assert e.service_error == apdu.SERVICE_OTHER_REASON, bad
    for bad in ("C0 04 C1", "C1 02 C1 00", "C1 05 C1 00", "C3 02 C1 01", "C5 01 C1 00", "60 1D A1", "D0 01 02", "DB"):
        e = err(apdu.parse_request, h(bad))
        assert e.service_error == apdu.SERVICE_NOT_SUPPORTED, bad


def test_response_builders_golden():
    dt = h("07 E8 05 11 05 12 22 38 00 80 00 00")
    data = axdr.Writer().octet_string(dt).getvalue()
    assert apdu.get_response(0xC1, data) == h("C4 01 C1 00 09 0C 07 E8 05 11 05 12 22 38 00 80 00 00")
    assert apdu.get_response_error(0xC1, apdu.DAR_OBJECT_UNDEFINED) == h("C4 01 C1 01 04")
    assert apdu.set_response(0xC1, 0) == h("C5 01 C1 00")
    assert apdu.action_response(0xC1, 0) == h("C7 01 C1 00 00")
    assert apdu.action_response(0xC1, 0, h("11 05")) == h("C7 01 C1 00 01 00 11 05")
    assert apdu.exception_response(2, 2) == h("D8 02 02")
    blk = apdu.get_response_block(0xC1, False, 1, bytes(200))
    assert blk[:12] == h("C4 02 C1 00 00 00 00 01 00 81 C8 00") and len(blk) == 11 + 200
    assert apdu.get_response_block(0xC1, True, 2, b"\x01")[:11] == h("C4 02 C1 01 00 00 00 02 00 01 01")
    assert apdu.get_response_block_error(0xC1, 3, apdu.DAR_LONG_GET_ABORTED) == h("C4 02 C1 01 00 00 00 03 01 0F")
    assert apdu.get_response_list(0xC1, [(0, h("11 05")), (1, 4)]) == h("C4 03 C1 02 00 11 05 01 04")


def test_parse_response():
    r = apdu.parse_response(h("C4 01 C1 00 09 0C 07 E8 05 11 05 12 22 38 00 80 00 00"))
    assert r.tag == apdu.GET_RESPONSE and r.kind == 1 and r.invoke == 0xC1 and r.dar is None
    assert axdr.decode(r.data)[0] == (axdr.OCTET_STRING, h("07 E8 05 11 05 12 22 38 00 80 00 00"))
    r = apdu.parse_response(h("C4 01 C1 01 04"))
    assert r.dar == 4 and r.data is None
    r = apdu.parse_response(apdu.get_response_block(0xC1, False, 7, b"abc"))
    assert r.kind == 2 and not r.last and r.block_no == 7 and r.raw == b"abc" and r.dar is None
    r = apdu.parse_response(apdu.get_response_block(0xC1, True, 8, bytes(600)))
    assert r.last and r.raw == bytes(600)
    r = apdu.parse_response(apdu.get_response_block_error(0xC1, 3, 15))
    assert r.last and r.dar == 15 and r.raw is None
    r = apdu.parse_response(h("C4 03 C1 02 00 11 05 01 04"))
    assert r.results == [(0, h("11 05")), (1, 4)]
    r = apdu.parse_response(h("C5 01 C1 00"))
    assert r.tag == apdu.SET_RESPONSE and r.dar is None
    assert apdu.parse_response(h("C5 01 C1 03")).dar == 3
    r = apdu.parse_response(h("C7 01 C1 00 00"))
    assert r.dar is None and r.data is None
    r = apdu.parse_response(h("C7 01 C1 00 01 00 11 05"))
    assert r.dar is None and r.data == h("11 05")
    assert apdu.parse_response(h("C7 01 C1 0B 00")).dar == 11
    assert apdu.parse_response(h("C7 01 C1 00")).dar is None
    r = apdu.parse_response(h("D8 01 02"))
    assert r.tag == apdu.EXCEPTION_RESPONSE and r.state_error == 1 and r.service_error == 2
    r = apdu.parse_response(h("0E 01 06 01"))
    assert r.tag == apdu.CONFIRMED_SERVICE_ERROR and r.kind == 1 and r.service_error == (6, 1)


def test_parse_response_errors():
    for bad in ("C4 01 C1", "C4 01 C1 00 09 05 00", "C4 01 C1 02 00", "C4 02 C1 00 00 00 00 01 00 05 00",
                "C4 02 C1 00 00 00", "C4 03 C1 03 00 11 05", "C5 01 C1", "D8 01", "0E 01 06"):
        err(apdu.parse_response, h(bad))
    for bad in ("C4 04 C1 00", "C5 02 C1 00", "C7 02 C1 00", "C0 01 C1 00"):
        assert err(apdu.parse_response, h(bad)).service_error == apdu.SERVICE_NOT_SUPPORTED
