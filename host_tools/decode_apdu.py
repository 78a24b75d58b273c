"""Decode one complete DLMS/COSEM APDU into a JSON-able dict (host only; ``host_tools.decode``
frames captures and reassembles the HDLC segments, this module reads what they carry).

``ApduDecoder(key, auth_key, system_title).apdu(buf) -> dict`` never raises for bad APDU bytes
(``{"type": ..., "error": "malformed APDU: ..."}``); it keeps GET datablocks and
general-block-transfer blocks across calls and decrypts general-glo/ded-ciphering and
service-specific glo APDUs with ``key`` [+ ``auth_key``] (AES-128-GCM, security suite 0,
IEC 62056-5-3 §9.2.7 / Green Book). Names of results, diagnostics and errors are the tables of
``protocol.apdu_client``.
"""
from protocol import apdu_client as apdu
from protocol import axdr_client as axdr
from protocol import gbt, obis, security_client as security
from host_tools import format as fmt

APDU_NAMES = {0x60: "AARQ", 0x61: "AARE", 0x62: "RLRQ", 0x63: "RLRE", 0xC0: "GET-Request",
              0xC1: "SET-Request", 0xC3: "ACTION-Request", 0xC4: "GET-Response",
              0xC5: "SET-Response", 0xC7: "ACTION-Response", 0xD8: "ExceptionResponse",
              0x0E: "ConfirmedServiceError", 0x0F: "DataNotification",
              0xE0: "General-Block-Transfer", 0xDB: "General-Glo-Ciphering",
              0xDC: "General-Ded-Ciphering"}
_GET_KINDS = {1: "Normal", 2: "Next", 3: "With-List"}
_GET_RESP_KINDS = {1: "Normal", 2: "With-Datablock", 3: "With-List"}
_SET_KINDS = {1: "Normal", 2: "With-First-Datablock", 3: "With-Datablock", 4: "With-List",
              5: "With-List-And-First-Datablock"}
_ACTION_KINDS = {1: "Normal", 2: "Next-Pblock", 3: "With-List", 4: "With-First-Pblock",
                 5: "With-List-And-First-Pblock", 6: "With-Pblock"}
# Blue Book unit enumeration (subset)
UNITS = {1: "a", 2: "mo", 3: "wk", 4: "d", 5: "h", 6: "min", 7: "s", 8: "°", 9: "°C",
         10: "currency", 13: "m³", 27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh",
         32: "varh", 33: "A", 34: "C", 35: "V", 44: "Hz", 255: "count", 56: "%"}


# ---------------------------------------------------------------- values

def _value(tagged):
    """to_jsonable with a scaler_unit hint for structure {integer, enum}."""
    out = fmt.to_jsonable(tagged)
    tag, v = tagged
    if (tag == axdr.STRUCTURE and len(v) == 2 and v[0][0] == axdr.INTEGER and v[1][0] == axdr.ENUM):
        out["scaler_unit"] = "10^%d %s" % (v[0][1], UNITS.get(v[1][1], "unit %d" % v[1][1]))
    if tag in (axdr.STRUCTURE, axdr.ARRAY):
        out["value"] = [_value(x) for x in v]
    return out


def _data(buf, p=0):
    """Decode one A-XDR value at p: (json, newpos). Raises axdr.AxdrError."""
    tagged, q = axdr.decode(buf, p)
    return _value(tagged), q


def _obis_text(b6):
    return obis.to_str(bytes(b6))


def _invoke(b):
    return {"invoke_id": b & 0x0F, "service_class": "confirmed" if b & 0x40 else "unconfirmed",
            "priority": "high" if b & 0x80 else "normal", "hex": "%02X" % b}


class _Cursor:
    def __init__(self, buf, p=0):
        self.b = buf
        self.p = p

    def need(self, n):
        if self.p + n > len(self.b):
            raise apdu.ApduError("truncated")

    def u8(self):
        self.need(1)
        self.p += 1
        return self.b[self.p - 1]

    def u16(self):
        self.need(2)
        self.p += 2
        return (self.b[self.p - 2] << 8) | self.b[self.p - 1]

    def u32(self):
        self.need(4)
        self.p += 4
        return int.from_bytes(self.b[self.p - 4:self.p], "big")

    def raw(self, n):
        self.need(n)
        self.p += n
        return bytes(self.b[self.p - n:self.p])

    def data(self):
        v, self.p = _data(self.b, self.p)
        return v

    def length(self):
        n, self.p = axdr.decode_length(self.b, self.p)
        return n


def _descriptor(c, method=False):
    ic = c.u16()
    ln = c.raw(6)
    idx = c.u8()
    return {"class_id": ic, "obis": _obis_text(ln), ("method" if method else "attribute"): idx}


def _access(c, d):
    if c.u8():
        d["access_selector"] = c.u8()
        d["access_parameters"] = c.data()


def _get_result(c):
    if c.u8() == 0:
        return {"data": c.data()}
    dar = c.u8()
    return {"data_access_result": dar, "result_name": apdu.DAR_NAMES.get(dar, "?")}


# ---------------------------------------------------------------- APDUs without decoder state

def _aarq(b):
    a = apdu.parse_aarq(b)
    d = {"type": "AARQ", "application_context": apdu.CONTEXT_NAMES.get(a["context"], a["context"]),
         "mechanism": apdu.MECHANISM_NAMES.get(a["mechanism"], a["mechanism"]),
         "dlms_version": a["dlms_version"], "conformance": apdu.conformance_names(a["conformance"]),
         "max_pdu": a["max_pdu"], "user_information_ok": a["user_info_ok"]}
    if a["auth_value"] is not None:
        d["authentication_value"] = a["auth_value"].hex()
    if a["calling_ap_title"] is not None:
        d["calling_ap_title"] = a["calling_ap_title"].hex()
    return d


def _aare(b):
    a = apdu.parse_aare(b)
    diag = a["diagnostic"]
    d = {"type": "AARE", "application_context": apdu.CONTEXT_NAMES.get(a["context"], a["context"]),
         "result": apdu.RESULT_NAMES.get(a["result"], a["result"]),
         "diagnostic": diag if a["diag_provider"] else apdu.AARE_DIAG_NAMES.get(diag, diag),
         "mechanism": apdu.MECHANISM_NAMES.get(a["mechanism"], a["mechanism"])}
    if a["vaa_name"] is not None:
        d.update({"dlms_version": a["dlms_version"], "conformance": apdu.conformance_names(a["conformance"]),
                  "max_pdu": a["max_pdu"], "vaa_name": a["vaa_name"]})
    if a["service_error"]:
        d["confirmed_service_error"] = list(a["service_error"])
    return d


def _aare_parts(b):
    """AARE -> (the AARE without a ciphered user-information, responding-AP-title or None,
    the ciphered user-information (glo-initiate-response) or None)."""
    p, end = apdu._outer(b, apdu.AARE)
    body, title, ui = bytearray(), None, None
    while p < end:
        tag, s, e = apdu._read_tl(b, p, end)
        t2, s2, e2 = apdu._read_tl(b, s, e) if tag in (0xA4, 0xBE) else (None, s, e)
        if tag == 0xA4 and t2 == 0x04:
            title = bytes(b[s2:e2])
        if tag == 0xBE and t2 == 0x04 and s2 < e2 and b[s2] == 0x28:
            ui = bytes(b[s2:e2])
        else:
            body += b[p:e]
        p = e
    return apdu._tlv(apdu.AARE, body), title, ui


def _release(b):
    r = apdu.parse_rlrq(b) if b[0] == apdu.RLRQ else apdu.parse_rlre(b)
    d = {"type": APDU_NAMES[b[0]], "reason": r["reason"]}
    if r["user_info"]:
        d["user_information"] = r["user_info"].hex()
    return d


def _exception(b):
    if len(b) < 3:
        raise apdu.ApduError("truncated")
    return {"type": "ExceptionResponse",
            "state_error": apdu.STATE_ERROR_NAMES.get(b[1], b[1]),
            "service_error": apdu.SERVICE_ERROR_NAMES.get(b[2], b[2])}


def _service_error(b):
    if len(b) < 4:
        raise apdu.ApduError("truncated")
    return {"type": "ConfirmedServiceError", "service": b[1], "error_type": b[2], "code": b[3]}


def _get_request(c, kind, d):
    if kind == 1:
        d["item"] = _descriptor(c)
        _access(c, d["item"])
    elif kind == 2:
        d["block_number"] = c.u32()
    elif kind == 3:
        d["items"] = []
        for _ in range(c.length()):
            it = _descriptor(c)
            _access(c, it)
            d["items"].append(it)
    else:
        raise apdu.ApduError("unknown GET-Request type %d" % kind)


def _set_request(c, kind, d):
    if kind != 1:
        raise apdu.ApduError("SET-Request type %d not decoded" % kind)
    d["item"] = _descriptor(c)
    _access(c, d["item"])
    d["value"] = c.data()


def _action_request(c, kind, d):
    if kind != 1:
        raise apdu.ApduError("ACTION-Request type %d not decoded" % kind)
    d["item"] = _descriptor(c, True)
    if c.u8():
        d["parameters"] = c.data()


def _set_action_response(c, kind, d):
    tag = c.b[0]
    if kind != 1:
        raise apdu.ApduError("%s type %d not decoded" % (APDU_NAMES[tag], kind))
    r = c.u8()
    d["result"] = r
    d["result_name"] = apdu.DAR_NAMES.get(r, "?")
    if tag == apdu.ACTION_RESPONSE and c.p < len(c.b) and c.u8():
        d["return"] = _get_result(c)


# tag -> (decoder, kind names); GET-Response needs the decoder's block state
_SERVICES = {apdu.GET_REQUEST: (_get_request, _GET_KINDS),
             apdu.SET_REQUEST: (_set_request, _SET_KINDS),
             apdu.ACTION_REQUEST: (_action_request, _ACTION_KINDS),
             apdu.GET_RESPONSE: (None, _GET_RESP_KINDS),
             apdu.SET_RESPONSE: (_set_action_response, _SET_KINDS),
             apdu.ACTION_RESPONSE: (_set_action_response, _ACTION_KINDS)}
_PLAIN = {apdu.AARQ: _aarq, apdu.AARE: _aare, apdu.RLRQ: _release, apdu.RLRE: _release,
          apdu.EXCEPTION_RESPONSE: _exception, apdu.CONFIRMED_SERVICE_ERROR: _service_error}


class ApduDecoder:
    """Stateful APDU decoder: keeps GET datablocks and general-block-transfer blocks across
    APDUs; ``key``/``auth_key`` (16 bytes) and ``system_title`` (8 bytes) for ciphered APDUs."""

    def __init__(self, key=None, auth_key=None, system_title=None):
        self.key = key
        self.auth_key = auth_key or b""
        self.system_title = system_title
        self.titles = {"client": None, "server": None}   # learned from AARQ A6 / AARE A4
        self._blocks = bytearray()
        self._gbt = bytearray()

    def apdu(self, buf):
        """Decode one complete APDU into a dict (never raises for bad APDU bytes)."""
        try:
            d = self._apdu(bytes(buf))
        except (apdu.ApduError, axdr.AxdrError, gbt.GbtError, security.SecurityError,
                ValueError, IndexError) as e:
            d = {"type": APDU_NAMES.get(buf[0], "unknown 0x%02X" % buf[0]) if buf else "empty",
                 "error": "malformed APDU: %s" % e}
        d["hex"] = bytes(buf).hex()
        return d

    def _apdu(self, b):
        if not b:
            raise apdu.ApduError("empty APDU")
        tag = b[0]
        if tag in (apdu.AARQ, apdu.AARE):
            return self._association(b)
        if tag in _PLAIN:
            return _PLAIN[tag](b)
        if tag == 0x0F:
            return self._notification(b)
        if tag == gbt.TAG:
            return self._gbt_block(b)
        if tag in (security.GENERAL_GLO, security.GENERAL_DED) or tag in security.SERVICE_TAGS:
            return self._ciphered(b)
        if tag not in _SERVICES:
            raise apdu.ApduError("unknown APDU tag 0x%02X" % tag)
        fn, kinds = _SERVICES[tag]
        c = _Cursor(b, 1)
        kind = c.u8()
        d = {"type": APDU_NAMES[tag] + "-" + kinds.get(kind, str(kind))}
        d.update(_invoke(c.u8()))
        (fn or self._get_response)(c, kind, d)
        if c.p != len(b):
            d["trailing_bytes"] = b[c.p:].hex()
        return d

    def _association(self, b):
        """AARQ/AARE: learn the system titles (HLS) and decipher a glo-initiate user-information."""
        if b[0] == apdu.AARQ:
            d = _aarq(b)
            title = apdu.parse_aarq(b)
            title, ui = title["calling_ap_title"], title["user_info"]
            side = "client"
        else:
            plain, title, ui = _aare_parts(b)
            d = _aare(plain)
            side = "server"
            if title is not None:
                d["responding_ap_title"] = title.hex()
        if title is not None and len(title) == 8:
            self.titles[side] = title
        if ui and ui[0] in (0x21, 0x28):
            d["user_information"] = self._ciphered(ui)
        return d

    def _get_response(self, c, kind, d):
        if kind == 1:
            d.update(_get_result(c))
        elif kind == 2:
            self._datablock(c, d)
        elif kind == 3:
            d["results"] = [_get_result(c) for _ in range(c.length())]
        else:
            raise apdu.ApduError("unknown GET-Response type %d" % kind)

    def _datablock(self, c, d):
        last = c.u8()
        d["last_block"] = bool(last)
        d["block_number"] = c.u32()
        if c.u8() != 0:
            dar = c.u8()
            d["data_access_result"] = dar
            d["result_name"] = apdu.DAR_NAMES.get(dar, "?")
            return
        raw = c.raw(c.length())
        d["raw_data_len"] = len(raw)
        if d["block_number"] == 1:
            self._blocks = bytearray()
        self._blocks += raw
        if last:
            whole = bytes(self._blocks)
            self._blocks = bytearray()
            d["reassembled_len"] = len(whole)
            try:
                d["data"], q = _data(whole)
            except axdr.AxdrError as e:
                d["data_error"] = "reassembled data undecodable (missing blocks?): %s" % e

    def _notification(self, b):
        c = _Cursor(b, 1)
        d = {"type": "DataNotification", "long_invoke_id_and_priority": "%08X" % c.u32()}
        n = c.length()                   # date-time: OPTIONAL octet-string, 0 = absent
        if n:
            if n != 12:
                raise apdu.ApduError("date-time must be 12 bytes")
            d["date_time"] = fmt.clock_iso(c.raw(12))
        d["body"] = c.data()
        return d

    def _gbt_block(self, b):
        blk = gbt.parse(b)
        d = {"type": "General-Block-Transfer", "last_block": blk.last, "streaming": blk.streaming,
             "window": blk.window, "block_number": blk.number, "block_number_ack": blk.ack,
             "data_len": len(blk.data)}
        if blk.number == 1:
            self._gbt = bytearray()
        self._gbt += blk.data
        if blk.last:
            inner = bytes(self._gbt)
            self._gbt = bytearray()
            d["reassembled"] = self.apdu(inner)
        return d

    def _ciphered(self, b):
        ct = security.parse(b)
        d = {"type": APDU_NAMES.get(ct.tag) or security.SERVICE_TAGS[ct.tag],
             "security_control": "%02X" % ct.sc, "authenticated": bool(ct.sc & security.SC_AUTH),
             "encrypted": bool(ct.sc & security.SC_ENC), "suite": ct.sc & 0x0F,
             "invocation_counter": ct.ic, "payload_len": len(ct.payload)}
        plain_tag = security.plain_tag(ct.tag)
        sender = "client" if plain_tag in (0x01, 0xC0, 0xC1, 0xC2, 0xC3) else "server"
        title = ct.system_title or self.system_title or self.titles[sender]
        if ct.system_title is not None:
            d["system_title"] = ct.system_title.hex()
        if self.key is None:
            d["note"] = "not decrypted (give --key and --auth-key)"
            return d
        if title is None:
            d["note"] = "not decrypted (no system title: give --system-title)"
            return d
        plain = decrypt(self.key, self.auth_key, title, ct)
        if plain is None:
            d["decrypt_error"] = "authentication tag mismatch (wrong key or damaged data)"
            return d
        d["plaintext"] = self.apdu(plain)
        return d


def decrypt(key, auth_key, system_title, ct):
    """AES-128-GCM (security suite 0) of a parsed ``security.Ciphered``: the plaintext APDU,
    or None when the tag does not verify. Uses the ``cryptography`` package (host only)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.exceptions import InvalidTag
    iv = security.nonce(system_title, ct.ic)
    sc = bytes((ct.sc,))
    payload = ct.payload
    if ct.sc & security.SC_AUTH:
        body, tag = payload[:-security.TAG_LEN], payload[-security.TAG_LEN:]
    else:
        body, tag = payload, None
    if ct.sc & security.SC_ENC:
        if tag is None:   # encryption only: GCM keystream (CTR starting at counter 2)
            ctr = modes.CTR(iv + b"\x00\x00\x00\x02")
            dec = Cipher(algorithms.AES(key), ctr).decryptor()
            return dec.update(body) + dec.finalize()
        dec = Cipher(algorithms.AES(key), modes.GCM(iv, tag, min_tag_length=12)).decryptor()
        dec.authenticate_additional_data(sc + auth_key)
        try:
            return dec.update(body) + dec.finalize()
        except InvalidTag:
            return None
    # authentication only: GMAC over SC || AK || data
    dec = Cipher(algorithms.AES(key), modes.GCM(iv, tag, min_tag_length=12)).decryptor()
    dec.authenticate_additional_data(sc + auth_key + body)
    try:
        dec.finalize()
    except InvalidTag:
        return None
    return body


def encrypt(key, auth_key, system_title, ic, plain, sc=0x30):
    """Build a general-glo-ciphering APDU (suite 0, SC 0x30 authenticated+encrypted) — for
    tests and bench tools."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    iv = security.nonce(system_title, ic)
    enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    enc.authenticate_additional_data(bytes((sc,)) + auth_key)
    ctext = enc.update(plain) + enc.finalize()
    content = bytes((sc,)) + ic.to_bytes(4, "big") + ctext + enc.tag[:12]
    return bytes((security.GENERAL_GLO,)) + axdr.encode_length(len(system_title)) + \
        bytes(system_title) + axdr.encode_length(len(content)) + content
