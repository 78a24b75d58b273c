"""Field-by-field reading of ACSE APDUs (AARE, RLRQ/RLRE) and HDLC FRMR information fields for
``meterctl decode`` (host only). ``host_tools.decode_apdu`` calls these; they never raise for bad
bytes of a field they only show (an undecodable part is reported in place).

- ACSE (IEC 62056-5-3 §8, ISO/IEC 8650-1; BER): an AARE's result [2], result-source-diagnostic
  [3], responding-AP-title [4] (the server system title, needed to decipher its APDUs),
  mechanism-name [9], responding-authentication-value [10] (the server challenge, HLS) and
  user-information [30]: an InitiateResponse, a ConfirmedServiceError or a *ciphered*
  glo-/ded-initiateResponse / ConfirmedServiceError (service-specific tags 0x28/0x48/0x2E/0x4E),
  whose security header is shown (and its plaintext when the caller can decipher it).
- RLRQ/RLRE: reason [0] (0 normal, 1 urgent, 30 user-defined) and user-information.
- FRMR (ISO/IEC 13239 §5.5.3.4.2, modulo 8, as IEC 62056-46 uses it): rejected control field,
  V(S), C/R, V(R) and the W/X/Y/Z flags.
"""
from protocol import apdu_client as apdu
from protocol import security_client as security

RELEASE_REASONS = {0: "normal", 1: "urgent", 30: "user-defined"}
_CIPHERED_UI = {0x28: "glo-initiateResponse", 0x48: "ded-initiateResponse",
                0x21: "glo-initiateRequest", 0x41: "ded-initiateRequest",
                0x2E: "glo-confirmedServiceError", 0x4E: "ded-confirmedServiceError"}


def tlvs(b, p, end):
    """BER TLVs of b[p:end] -> [(tag, value bytes)]. Raises ApduError when a length runs out."""
    out = []
    while p < end:
        if p + 2 > end:
            raise apdu.ApduError("truncated BER element")
        tag, n = b[p], b[p + 1]
        p += 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 2 or p + k > end:
                raise apdu.ApduError("bad BER length")
            n = int.from_bytes(b[p:p + k], "big")
            p += k
        if p + n > end:
            raise apdu.ApduError("BER element runs past its APDU")
        out.append((tag, bytes(b[p:p + n])))
        p += n
    return out


def _outer_end(b):
    if len(b) < 2:
        raise apdu.ApduError("truncated ACSE APDU")
    n = b[1]
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 2 or len(b) < 2 + k:
            raise apdu.ApduError("bad BER length")
        return 2 + k + int.from_bytes(b[2:2 + k], "big")
    return 2 + n


def _inner_int(v):
    """The INTEGER inside an explicit context tag (A2 03 02 01 00 -> 0), else None."""
    try:
        ((t, x),) = tlvs(v, 0, len(v))
    except (apdu.ApduError, ValueError):
        return None
    return x[0] if t == 0x02 and len(x) == 1 else None


def user_information(v, decipher):
    """The user-information [30] of an ACSE APDU: {"type": ..., fields} (never raises).
    ``decipher(bytes) -> dict`` reads a ciphered one (see ApduDecoder._ciphered)."""
    try:
        ((t, x),) = tlvs(v, 0, len(v))
    except (apdu.ApduError, ValueError):
        return {"error": "malformed user-information", "hex": v.hex()}
    if t != 0x04 or not x:
        return {"error": "user-information is not an OCTET STRING", "hex": v.hex()}
    tag = x[0]
    if tag in _CIPHERED_UI:
        d = {"type": _CIPHERED_UI[tag]}
        if tag in security.SERVICE_TAGS:
            d.update(decipher(x))
        else:
            d["hex"] = x.hex()
        return d
    if tag == apdu.INITIATE_RESPONSE:
        return {"type": "InitiateResponse", "hex": x.hex()}
    if tag == apdu.INITIATE_REQUEST:
        return {"type": "InitiateRequest", "hex": x.hex()}
    if tag == apdu.CONFIRMED_SERVICE_ERROR:
        return {"type": "ConfirmedServiceError", "hex": x.hex()}
    return {"type": "unknown 0x%02X" % tag, "hex": x.hex()}


def aare_extras(b, decipher):
    """What ``apdu.parse_aare`` does not give: responding-AP-title, responding-authentication-
    value, and a ciphered user-information. A dict (may be empty). Raises ApduError."""
    end = _outer_end(b)
    d = {}
    title = None
    for t, v in tlvs(b, _hdr(b), end):
        if t == 0xA4:
            inner = tlvs(v, 0, len(v))
            if inner and inner[0][0] == 0x04:
                title = inner[0][1]
                d["responding_ap_title"] = title.hex()
        elif t == 0xAA:
            inner = tlvs(v, 0, len(v))
            if inner:
                d["responding_authentication_value"] = inner[0][1].hex()
        elif t == 0xBE:
            ui = user_information(v, lambda x: decipher(x, title))
            if ui.get("type", "").startswith(("glo-", "ded-")) or "error" in ui:
                d["user_information"] = ui
    return d


def _hdr(b):
    n = b[1]
    return 2 + (n & 0x7F if n & 0x80 else 0)


def aare_fallback(b, decipher):
    """An AARE ``apdu.parse_aare`` refuses (ciphered user-information): result, diagnostic,
    context, mechanism and the extras, read element by element. Raises ApduError."""
    d = {"type": "AARE"}
    for t, v in tlvs(b, _hdr(b), _outer_end(b)):
        if t == 0xA1:
            inner = tlvs(v, 0, len(v))
            if inner and inner[0][0] == 0x06:
                arc = inner[0][1][-1]
                d["application_context"] = apdu.CONTEXT_NAMES.get(arc, arc)
        elif t == 0xA2:
            r = _inner_int(v)
            d["result"] = apdu.RESULT_NAMES.get(r, r)
        elif t == 0xA3:
            sub = tlvs(v, 0, len(v))
            if sub:
                r = _inner_int(sub[0][1])
                d["diagnostic"] = apdu.AARE_DIAG_NAMES.get(r, r) if sub[0][0] == 0xA1 else r
        elif t == 0x89:
            d["mechanism"] = apdu.MECHANISM_NAMES.get(v[-1], v[-1]) if v else None
    if "result" not in d:
        raise apdu.ApduError("AARE without result")
    d.update(aare_extras(b, decipher))
    return d


def release(b, decipher):
    """RLRQ/RLRE field by field: reason (number and name) and user-information. Raises
    ApduError."""
    d = {"type": "RLRQ" if b[0] == apdu.RLRQ else "RLRE"}
    for t, v in tlvs(b, _hdr(b), _outer_end(b)):
        if t == 0x80 and len(v) == 1:
            d["reason"] = v[0]
            d["reason_name"] = RELEASE_REASONS.get(v[0], "?")
        elif t == 0xBE:
            d["user_information"] = user_information(v, decipher)
    return d


def frmr(info):
    """FRMR information field -> dict (ISO/IEC 13239 modulo 8: 3 bytes; a longer field is
    shown with its extra bytes, a shorter one as an error)."""
    if len(info) < 3:
        return {"error": "FRMR information shorter than 3 bytes", "hex": info.hex()}
    c, s, f = info[0], info[1], info[2]
    d = {"rejected_control": "%02X" % c, "v_s": (s >> 1) & 7, "c_r": (s >> 4) & 1,
         "v_r": (s >> 5) & 7, "w_invalid_control": bool(f & 1),
         "x_info_not_permitted": bool(f & 2), "y_info_too_long": bool(f & 4),
         "z_invalid_nr": bool(f & 8)}
    if len(info) > 3:
        d["extra"] = info[3:].hex()
    return d


def ber_end(b):
    """End of a tag + BER length + content APDU (a ciphered one); None when undecidable."""
    if len(b) < 2:
        return None
    n = b[1]
    if n < 0x80:
        return 2 + n
    k = n & 0x7F
    if k == 0 or len(b) < 2 + k:
        return None
    return 2 + k + int.from_bytes(b[2:2 + k], "big")


def initiate_request(x):
    """An xDLMS InitiateRequest (tag 01, e.g. deciphered from a glo-initiateRequest) -> dict:
    dlms_version, conformance names, max_pdu (and dedicated_key hex). Raises ApduError."""
    out = {}
    apdu.parse_initiate_request(x, out)
    d = {"type": "InitiateRequest", "dlms_version": out["dlms_version"],
         "conformance": apdu.conformance_names(out["conformance"]), "max_pdu": out["max_pdu"]}
    if out.get("dedicated_key") is not None:
        d["dedicated_key"] = out["dedicated_key"].hex()
    return d


def initiate_response(x):
    """An xDLMS InitiateResponse (tag 08, e.g. deciphered from a glo-initiateResponse) ->
    dict: dlms_version, conformance names, max_pdu, vaa_name. Raises ApduError."""
    q = 1
    if q < len(x) and x[q]:              # negotiated-quality-of-service OPTIONAL
        q += 1
    q += 1
    if q + 10 > len(x) or x[q + 1:q + 4] != b"\x5f\x1f\x04":
        raise apdu.ApduError("truncated InitiateResponse")
    conf = int.from_bytes(x[q + 5:q + 8], "big")
    return {"type": "InitiateResponse", "dlms_version": x[q], "conformance": apdu.conformance_names(conf),
            "max_pdu": int.from_bytes(x[q + 8:q + 10], "big"),
            "vaa_name": int.from_bytes(x[q + 10:q + 12], "big")}
