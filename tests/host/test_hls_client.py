"""The client side of HLS (protocol.hls_client, protocol.client_assoc with ``hls=``) against the
worked examples of shared/reference dlms-security.md §1 (Green Book keys, gurux's bytes) and
against gurux-dlms's own client, sans I/O."""
import pytest

from protocol import apdu_client as apdu
from protocol import security_client as sec
from protocol.client_assoc import AssociationRejected, ClientAssociation, SecurityRefused
from protocol.hls_client import HlsError, HlsKeys, HlsSession

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
CLIENT_ST = bytes.fromhex("4D4D4D0000000001")
SERVER_ST = bytes.fromhex("4D4D4D0000BC614E")
CTOS = b"K56iVagY"
STOC = b"P6wRJ21F"
AARQ_CIPHERED = bytes.fromhex(
    "6055A109060760857405080103A60A04084D4D4D00000000018A0207808B0760857405080205"
    "AC0A80084B35366956616759BE230421211F30000000019945AB0E570975CCDF118385675FCD3C22209B0C3F"
    "B0E290CC9A")
AARE_CIPHERED = bytes.fromhex(
    "6161A109060760857405080103A203020100A305A10302010EA40A04084D4D4D0000BC614E88020780890760"
    "857405080205AA0A8008503677524A323146BE230421281F3001234567891214A0845E4757763A3F65BC1968"
    "23FEDA5BD3C3BAF2BA40FE")


def session(**kw):
    kw.setdefault("challenge", CTOS)
    return HlsSession(EK, AK, CLIENT_ST, ic=1, **kw)


def test_aarq_matches_gurux_bytes():
    assert session().aarq() == AARQ_CIPHERED


def test_aare_gives_title_challenge_and_plain_initiate_response():
    s = session()
    s.aarq()
    a = apdu.parse_aare(s.on_aare(AARE_CIPHERED))
    assert (s.server_title, s.stoc, s.server_ic) == (SERVER_ST, STOC, 0x01234567)
    assert (a["result"], a["diagnostic"], a["max_pdu"]) == (0, 14, 1024)


def test_pass3_value_is_the_reference_f_stoc_and_wrapped_like_gurux():
    s = session()
    s.aarq()
    s.on_aare(AARE_CIPHERED)
    req = s.wrap(s.pass3_request(0xC1))
    c = sec.parse(req)
    assert (req[0], c.sc, c.ic) == (0xCB, 0x30, 3)           # glo-action-request, IC 3 (gurux)
    b = bytearray(req)
    su = sec.Suite0(EK, AK)
    su.open(b, 0, len(b), CLIENT_ST)
    inner = bytes(b[su.start:su.end])
    assert inner.endswith(bytes.fromhex("091110" "00000002" "F3DF815E7B3AC9F2E3EB9105"))


def test_pass4_checks_the_meters_f_ctos():
    s = session()
    s.on_aare(AARE_CIPHERED)
    good = bytes.fromhex("10" "01234567" "FE1466AFB3DBCD4F9389E2B7")
    assert s.check_pass3(good)
    assert not s.check_pass3(good[:-1] + bytes((good[-1] ^ 1,)))


def test_wrong_keys_refuse_the_aare():
    s = HlsSession(EK, bytes(16), CLIENT_ST, challenge=CTOS)
    with pytest.raises(HlsError, match="does not verify"):
        s.on_aare(AARE_CIPHERED)
    a = ClientAssociation(hls=HlsSession(EK, bytes(16), CLIENT_ST, challenge=CTOS))
    with pytest.raises(SecurityRefused):
        a.on_aare(AARE_CIPHERED)


def test_replayed_or_plaintext_replies_are_refused():
    server = sec.Suite0(EK, AK)

    def sealed(plain, ic):
        h = sec.HEADROOM
        b = bytearray(h + len(plain) + sec.TAILROOM)
        b[h:h + len(plain)] = plain
        p = server.seal(b, h, h + len(plain), 0x30, ic, SERVER_ST, sec.FORM_GLO)
        return bytes(b[p:h + len(plain) + 12])

    s = session()
    s.on_aare(AARE_CIPHERED)
    resp = apdu.get_response(0xC1, b"\x11\x05")
    assert s.unwrap(sealed(resp, 0x01234568)) == resp
    with pytest.raises(sec.CounterError):
        s.unwrap(sealed(resp, 0x01234568))                   # the same counter again
    with pytest.raises(HlsError, match="plaintext"):
        s.unwrap(resp)
    assert s.unwrap(b"\xD8\x01\x05") == b"\xD8\x01\x05"     # exception-response comes in clear


def test_counters_are_reserved_before_use():
    seen = []
    s = HlsSession(EK, AK, CLIENT_ST, ic=250, reserve=seen.append)
    assert [s.next_ic() for _ in range(3)] == [250, 251, 252]
    assert seen == [350]
    s.ic = 350
    s.next_ic()
    assert seen == [350, 450]


def test_mechanism2_values():
    secret = b"TEST-HLS2-000001"
    s = HlsSession(EK, AK, CLIENT_ST, mechanism=2, secret=secret, challenge=CTOS)
    s.stoc = STOC
    assert s.f_stoc() == sec.hls_ecb(secret, STOC)
    assert s.check_pass3(sec.hls_ecb(secret, CTOS))
    assert not s.check_pass3(sec.hls_ecb(b"other", CTOS))


def test_keys_are_checked():
    with pytest.raises(ValueError):
        HlsKeys(EK[:8], AK, CLIENT_ST)
    with pytest.raises(ValueError):
        HlsKeys(EK, AK, CLIENT_ST[:4])
    with pytest.raises(ValueError):
        HlsKeys(EK, AK, CLIENT_ST, mechanism=2)          # no secret


def test_association_rejected_aare_is_not_an_hls_error():
    aare = apdu.build_aare(1, 13, max_pdu=1024, mechanism=5)
    a = ClientAssociation(hls=session())
    with pytest.raises(AssociationRejected) as e:
        a.on_aare(aare)
    assert e.value.diagnostic == 13


def test_gurux_client_builds_the_same_aarq():
    """gurux's GXDLMSSecureClient (HIGH_GMAC, auth+enc) sends the same AARQ bytes (in HDLC)."""
    from gurux_dlms.enums import Authentication
    from gurux_dlms.secure import GXDLMSSecureClient
    c = GXDLMSSecureClient(True, 1, 1, Authentication.HIGH_GMAC)
    c.ciphering.systemTitle = CLIENT_ST
    c.ciphering.blockCipherKey = EK
    c.ciphering.authenticationKey = AK
    c.ciphering.invocationCounter = 1
    c.ctoSChallenge = CTOS
    from gurux_dlms.enums import Security
    c.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
    ours = session().aarq()
    theirs = bytes(c.aarqRequest()[0])
    assert ours in theirs


def test_decode_learns_titles_and_deciphers_an_hls_session():
    """host_tools.decode on bare APDUs of an HLS session (Green Book keys): the AARQ's and the
    AARE's ciphered InitiateRequest/-Response and the glo-action-request of pass 3 come out in
    clear, each with the sender's system title learned from A6 / A4."""
    from host_tools import decode
    s = session()
    s.aarq()
    s.on_aare(AARE_CIPHERED)
    pass3 = s.wrap(s.pass3_request(0xC1))
    text = "\n".join(x.hex() for x in (AARQ_CIPHERED, AARE_CIPHERED, pass3))
    recs = [r["apdu"] for r in decode.decode_text(text, EK, AK)]
    assert recs[0]["user_information"]["plaintext"]["hex"].startswith("01000000065f1f04")
    assert recs[1]["responding_ap_title"] == SERVER_ST.hex()
    assert recs[1]["user_information"]["plaintext"]["hex"] == "0800065f1f0400001e1d04000007"
    inner = recs[2]["plaintext"]
    assert inner["type"].startswith("ACTION-Request") and "0.0.40.0.0.255" in str(inner)
    # without the keys nothing is deciphered, and the AARE still decodes
    plain = [r["apdu"] for r in decode.decode_text(text)]
    assert "not decrypted" in plain[2]["note"] and plain[1]["result"]
