"""DLMS security suite 0 (protocol.security): the worked examples of the reference note
dlms-security.md reproduce byte for byte (Green Book HLS Table 43 values and ciphering
examples; gurux and dlms-cosem AARQ/AARE user-information), HLS mechanisms 5 and 2, and the
refusals (tampering, replayed counters, foreign system titles). Runs on CPython and MicroPython.
"""
from protocol import aes, security_client as security
from protocol.security_client import Suite0, SecurityError, DecipherError, CounterError

H = bytes.fromhex
EK = H("000102030405060708090A0B0C0D0E0F")
AK = H("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
CLIENT_ST = H("4D4D4D0000000001")
SERVER_ST = H("4D4D4D0000BC614E")
CTOS = b"K56iVagY"
STOC = b"P6wRJ21F"
GET_CLOCK = H("C0010000080000010000FF0200")       # get-request clock 0.0.1.0.0.255 attr 2
CONTENT = {0x10: H("1001234567C0010000080000010000FF020006725D910F9221D263877516"),
           0x20: H("2001234567411312FF935A47566827C467BC"),
           0x30: H("3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B")}
HEAD = security.HEADROOM


def _framed(plain, room=HEAD):
    """A transmit buffer with the plaintext at offset ``room`` and tag room after it."""
    buf = bytearray(room + len(plain) + security.TAILROOM)
    buf[room:room + len(plain)] = plain
    return buf


def _seal(plain, sc, ic, title, form=security.FORM_GLO):
    s = Suite0(EK, AK)
    buf = _framed(plain)
    h = s.seal(buf, HEAD, HEAD + len(plain), sc, ic, title, form)
    end = HEAD + len(plain) + (security.TAG_LEN if sc & security.SC_AUTH else 0)
    return bytes(buf[h:end])


def _open(apdu, title, min_ic=0):
    s = Suite0(EK, AK)
    buf = bytearray(apdu)
    n = s.open(buf, 0, len(buf), title, min_ic)
    assert n == s.end - s.start
    return s, bytes(buf[s.start:s.end])


def test_hls_gmac_green_book_pass3_and_pass4():
    s = Suite0(EK, AK)
    f = bytearray(security.HLS_LEN)
    s.hls_gmac(CLIENT_ST, 1, STOC, f)          # client's f(StoC)
    assert bytes(f) == H("10000000011A52FE7DD3E72748973C1E28")
    request = H("C301C1000F0000280000FF01010911") + bytes(f)
    assert request == H("C301C1000F0000280000FF010109111000000001") + H("1A52FE7DD3E72748973C1E28")
    assert s.hls_check(CLIENT_ST, STOC, request, len(request) - 17, 17)
    assert s.ic == 1
    s.hls_gmac(SERVER_ST, 0x01234567, CTOS, f)  # meter's f(CtoS), its own ST and IC
    answer = H("C701C10001000911") + bytes(f)
    assert answer == H("C701C1000100091110") + H("01234567") + H("FE1466AFB3DBCD4F9389E2B7")


def test_hls_gmac_ciphered_context_inner_value():
    s = Suite0(EK, AK)
    f = bytearray(17)
    s.hls_gmac(CLIENT_ST, 2, STOC, f)
    assert bytes(f) == H("1000000002F3DF815E7B3AC9F2E3EB9105")


def test_hls_check_refuses():
    s = Suite0(EK, AK)
    good = H("10000000011A52FE7DD3E72748973C1E28")
    assert s.hls_check(CLIENT_ST, STOC, good)
    for i in range(17):
        bad = bytearray(good)
        bad[i] ^= 0x04
        assert not s.hls_check(CLIENT_ST, STOC, bad), i
    assert not s.hls_check(SERVER_ST, STOC, good)        # wrong party's system title
    assert not s.hls_check(CLIENT_ST, CTOS, good)        # wrong challenge
    assert not s.hls_check(CLIENT_ST, STOC, good + b"\x00", 0, 18)
    assert not Suite0(EK, bytes(16)).hls_check(CLIENT_ST, STOC, good)   # wrong AK
    assert not Suite0(bytes(16), AK).hls_check(CLIENT_ST, STOC, good)   # wrong EK


def test_real_meter_hls_exchange_parses():
    # dlms-cosem test_action.py, keys unknown: the value parses, its IC is read, it does not
    # verify under the Green Book keys.
    req = H("C301C0000F0000280000FF0101091110") + H("00001A90E6D2221FA2FD85EED61ACC22")
    s = Suite0(EK, AK)
    assert not s.hls_check(CLIENT_ST, STOC, req, len(req) - 17, 17)
    assert s.ic == 0x1A90


def test_glo_get_request_contents_sc_10_20_30():
    for sc, content in CONTENT.items():
        apdu = _seal(GET_CLOCK, sc, 0x01234567, SERVER_ST)
        assert apdu == bytes((0xC8, len(content))) + content, hex(sc)
        s, plain = _open(apdu, SERVER_ST)
        assert plain == GET_CLOCK and s.sc == sc and s.ic == 0x01234567 and s.tag == 0xC8


def test_glo_get_request_and_general_glo_bytes():
    glo = H("C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B")
    gen = H("DB084D4D4D0000BC614E1E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B")
    assert _seal(GET_CLOCK, 0x30, 0x01234567, SERVER_ST) == glo
    assert _seal(GET_CLOCK, 0x30, 0x01234567, SERVER_ST, security.GENERAL_GLO) == gen
    s, plain = _open(gen, None)                # the general form carries its system title
    assert plain == GET_CLOCK and s.tag == security.GENERAL_GLO
    assert security.reply_form(0xDB) == security.GENERAL_GLO
    assert security.reply_form(0xCB) == security.FORM_GLO
    assert security.reply_form(0xD3) == security.FORM_DED
    # the empty-system-title variant (DB 00 ...) uses the association's title
    s, plain = _open(b"\xDB\x00" + gen[10:], SERVER_ST)
    assert plain == GET_CLOCK


def test_glo_initiate_request_dedicated_key_gosem():
    plain = H("01011000112233445566778899AABBCCDDEEFF0000065F1F0400007E1F04B0")
    want = H("21303001234567801302FF8A7874133D414CED25B42534D28DB0047720606B175BD5"
             "2211BE6841DB204D39EE6FDB8E356855")
    assert _seal(plain, 0x30, 0x01234567, SERVER_ST) == want
    assert _open(want, SERVER_ST)[1] == plain


def test_ciphered_aarq_and_aare_user_information():
    # gurux's ciphered AARQ (client IC 1): BE 23 04 21 | glo-initiate-request
    aarq = H("6055A109060760857405080103A60A04084D4D4D00000000018A0207808B0760857405080205"
             "AC0A80084B35366956616759BE230421211F30000000019945AB0E570975CCDF118385675F"
             "CD3C22209B0C3FB0E290CC9A")
    glo_req = aarq[-33:]
    initiate = H("01000000065F1F0400401E5DFFFF")    # gurux's plain InitiateRequest
    assert _seal(initiate, 0x30, 1, CLIENT_ST) == glo_req
    s, plain = _open(glo_req, CLIENT_ST)
    assert plain == initiate and s.ic == 1
    # the AARE both clients accepted: glo-initiate-response with the server's ST and IC
    aare = H("6161A109060760857405080103A203020100A305A10302010EA40A04084D4D4D0000BC614E"
             "88020780890760857405080205AA0A8008503677524A323146BE230421281F3001234567"
             "891214A0845E4757763A3F65BC196823FEDA5BD3C3BAF2BA40FE")
    response = H("0800065F1F0400001E1D04000007")
    assert _seal(response, 0x30, 0x01234567, SERVER_ST) == aare[-33:]


def test_open_refuses_tampering_and_keeps_ciphertext():
    apdu = _seal(GET_CLOCK, 0x30, 5, CLIENT_ST)
    for i in range(2, len(apdu)):                # every byte after tag and length
        buf = bytearray(apdu)
        buf[i] ^= 0x01
        tampered = bytes(buf)
        try:
            Suite0(EK, AK).open(buf, 0, len(buf), CLIENT_ST)
        except DecipherError:
            assert bytes(buf) == tampered, i     # nothing deciphered
            continue
        except SecurityError:                    # SC byte damaged: refused as unsupported
            assert i == 2
            continue
        assert False, i
    auth_only = bytearray(_seal(GET_CLOCK, 0x10, 5, CLIENT_ST))
    auth_only[10] ^= 0x20                        # plaintext under GMAC
    try:
        Suite0(EK, AK).open(auth_only, 0, len(auth_only), CLIENT_ST)
        assert False
    except DecipherError:
        pass


def test_open_refuses_wrong_keys_titles_counters():
    apdu = _seal(GET_CLOCK, 0x30, 7, CLIENT_ST, security.GENERAL_GLO)
    for ek, ak in ((bytes(16), AK), (EK, bytes(16))):
        try:
            Suite0(ek, ak).open(bytearray(apdu), 0, len(apdu), CLIENT_ST)
            assert False
        except DecipherError:
            pass
    try:
        _open(apdu, SERVER_ST)                   # general form naming another station
        assert False
    except DecipherError:
        assert False
    except SecurityError:
        pass
    try:
        _open(apdu, CLIENT_ST, min_ic=8)         # replayed counter
        assert False
    except CounterError:
        pass
    assert _open(apdu, CLIENT_ST, min_ic=7)[1] == GET_CLOCK
    glo = _seal(GET_CLOCK, 0x30, 7, CLIENT_ST)
    try:
        _open(glo, SERVER_ST)                    # service-specific: IV from the given title
        assert False
    except DecipherError:
        pass


def test_open_refuses_malformed():
    good = _seal(GET_CLOCK, 0x30, 7, CLIENT_ST)
    bad = (b"", b"\xC8", b"\xC0\x01\x00", good[:-1], good + b"\x00", b"\xC8\x04\x30\x00\x00\x00",
           b"\xC8\x10" + good[2:],                          # length != content
           b"\xC8\x05\x30\x00\x00\x00\x01",                 # no room for the tag
           bytes((0xC8, good[1], 0xB0)) + good[3:],         # compression bit
           bytes((0xC8, good[1], 0x31)) + good[3:],         # suite 1
           bytes((0xC8, good[1], 0x70)) + good[3:],         # broadcast key
           bytes((0xC8, good[1], 0x00)) + good[3:],         # no protection
           b"\xDB\x04ABCD" + good[1:])                      # 4-byte system title
    for b in bad:
        try:
            Suite0(EK, AK).open(bytearray(b), 0, len(b), CLIENT_ST)
        except SecurityError:
            continue
        assert False, b


def test_seal_long_apdu_lengths_and_room():
    for n in (100, 113, 120, 200, 300):          # content lengths 0x7F.. and > 0xFF
        plain = bytes((0xC4,)) + bytes(range(n - 1 & 0xFF)) * 2
        plain = plain[:n]
        for form in (security.FORM_GLO, security.GENERAL_GLO):
            apdu = _seal(plain, 0x30, 9, SERVER_ST, form)
            s, got = _open(apdu, SERVER_ST)
            assert got == plain and s.tag == (0xCC if form == security.FORM_GLO else 0xDB)
    s = Suite0(EK, AK)
    buf = _framed(GET_CLOCK, 3)
    try:
        s.seal(buf, 3, 3 + len(GET_CLOCK), 0x30, 1, SERVER_ST)
        assert False
    except SecurityError:
        pass
    buf = _framed(b"\x60\x00")                   # an AARQ has no glo- form
    try:
        s.seal(buf, HEAD, HEAD + 2, 0x30, 1, SERVER_ST)
        assert False
    except SecurityError:
        pass


def test_seal_ded_form_and_set_keys():
    s = Suite0(bytes(16), bytes(16))
    s.set_keys(EK, AK)
    buf = _framed(GET_CLOCK)
    h = s.seal(buf, HEAD, HEAD + len(GET_CLOCK), 0x30, 0x01234567, SERVER_ST, security.FORM_DED)
    assert buf[h] == 0xD0 and bytes(buf[h + 1:HEAD + len(GET_CLOCK) + 12]) == bytes((0x1E,)) + CONTENT[0x30]


def test_hls_mechanism_2_ecb():
    key = H("000102030405060708090a0b0c0d0e0f")
    # FIPS 197 C.1: a 16-byte challenge is one ECB block
    fips = security.hls_ecb(key, H("00112233445566778899aabbccddeeff"))
    assert fips == H("69c4e0d86a7b0430d8cdb78070b4c55a")
    # an 8-byte challenge is zero-padded to 16, a short secret zero-padded to 16
    e = aes.new(b"ABCDEFGH" + bytes(8))
    blk = bytearray(CTOS + bytes(8))
    e.encrypt(blk, blk)
    assert security.hls_ecb(b"ABCDEFGH", CTOS) == bytes(blk)
    v = security.hls_ecb(key, bytes(range(40)))
    assert len(v) == 48
    assert security.hls_ecb_check(key, bytes(range(40)), v)
    assert not security.hls_ecb_check(key, bytes(range(40)), v[:32])
    bad = bytearray(v)
    bad[47] ^= 1
    assert not security.hls_ecb_check(key, bytes(range(40)), bad)
    try:
        security.hls_ecb(bytes(17), CTOS)
        assert False
    except ValueError:
        pass


def test_service_tag_must_match_inner_apdu():
    apdu = bytearray(_seal(GET_CLOCK, 0x30, 3, CLIENT_ST))
    assert apdu[0] == 0xC8 and not security.is_dedicated(0xC8)
    apdu[0] = 0xC9                               # glo-set-request around a get-request
    try:
        Suite0(EK, AK).open(apdu, 0, len(apdu), CLIENT_ST)
        assert False
    except DecipherError:
        assert False
    except SecurityError:
        pass
    assert security.is_dedicated(0xDC) and security.is_dedicated(0xD0)
    assert not security.is_dedicated(0xDB)


class _Keys:
    """A resident key record as meter.keyset.load builds it (counters far below their limits:
    no file is written)."""
    ek, ak, title, suite, tx, tx_lim = EK, AK, SERVER_ST, None, 5, 1000


def _sealed_in(buf, out):
    """True when the sealed APDU ``out`` lies inside ``buf`` (sealed in place, not copied)."""
    b, o = bytes(buf), bytes(out)
    return any(b[i:i + len(o)] == o for i in range(len(b) - len(o) + 1))


def test_meter_seals_the_response_buffer_and_a_block_in_place():
    from meter import secure
    rbuf = bytearray(64)          # the response buffer: capacity kept, the room added to it
    rbuf[:] = GET_CLOCK
    out = secure.seal(_Keys(), rbuf, security.FORM_GLO)
    assert _sealed_in(rbuf, out)
    assert _open(bytes(out), SERVER_ST)[1] == GET_CLOCK
    block = _framed(GET_CLOCK)    # a GET block built with HEADROOM before and TAILROOM after
    out = secure.seal(_Keys(), memoryview(block), security.FORM_GLO)
    assert _sealed_in(block, out)
    assert _open(bytes(out), SERVER_ST)[1] == GET_CLOCK
    assert bytes(secure.seal(_Keys(), bytes(GET_CLOCK), security.FORM_GLO)) == bytes(out)


def test_hls_ecb_takes_the_aes_object_of_its_secret():
    from protocol import hlsecb as dev
    e = dev.ecb(b"secret")
    assert dev.hls_ecb(e, STOC) == dev.hls_ecb(b"secret", STOC)
    assert dev.hls_ecb_check(e, CTOS, dev.hls_ecb(b"secret", CTOS))
    assert dev.hls_ecb(e, CTOS) == dev.hls_ecb(b"secret", CTOS)     # reused: ECB keeps no state
