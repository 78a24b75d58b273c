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
from host_tools import decode_acse as acse
from host_tools.decode_blocks import Blocks
from host_tools import format as fmt
from host_tools.suite0 import decrypt, encrypt  # noqa: F401  (re-exported: host_tools.decode)

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
    choice = c.u8()
    if choice not in (0, 1):    # Get-Data-Result ::= CHOICE {data [0], data-access-result [1]}
        raise apdu.ApduError("invalid Get-Data-Result CHOICE 0x%02X at byte %d (0 data, "
                             "1 data-access-result)" % (choice, c.p - 1))
    if choice == 0:
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
_PLAIN = {apdu.AARQ: _aarq, apdu.INITIATE_REQUEST: acse.initiate_request,
          apdu.INITIATE_RESPONSE: acse.initiate_response, apdu.EXCEPTION_RESPONSE: _exception,
          apdu.CONFIRMED_SERVICE_ERROR: _service_error}
_PLAIN_LEN = {apdu.EXCEPTION_RESPONSE: 3, apdu.CONFIRMED_SERVICE_ERROR: 4}
_LLC_HEADERS = (b"\xe6\xe7\x00", b"\xe6\xe6\x00")
_NOTIFICATION_DATE_QUIRK = ("non-standard: an A-XDR octet-string tag 09 before the 12-byte "
                            "date-time (Kaifa MA304, early Kamstrup HAN pushes); decoded anyway")


class ApduDecoder:
    """Stateful APDU decoder: keeps GET datablocks and general-block-transfer blocks across
    APDUs; ``key``/``auth_key`` (16 bytes) and ``system_title`` (8 bytes) for ciphered APDUs."""

    def __init__(self, key=None, auth_key=None, system_title=None):
        self.key = key
        self.auth_key = auth_key or b""
        self.system_title = system_title
        self.titles = {"client": None, "server": None}   # learned from AARQ A6 / AARE A4
        self._blocks = Blocks("GET datablock")
        self._gbt = Blocks("general-block-transfer block")
        self._end = None

    def apdu(self, buf):
        """Decode one complete APDU into a dict (never raises for bad APDU bytes). Bytes after
        the APDU are reported as ``trailing_bytes`` (see ``apdus`` for several APDUs)."""
        return self.apdus(buf)[0]

    def apdus(self, buf):
        """Decode the APDU(s) of one information field -> [dict]. Some meters put several
        APDUs in one frame, each after its own LLC header (L+G E450 pushes three
        data-notifications): each is decoded and marked; other bytes after an APDU are shown
        as ``trailing_bytes``, never dropped."""
        b = bytes(buf)
        out = []
        while True:
            d = self._one(b)
            out.append(d)
            end = self._end
            if end is None or end >= len(b):
                return out
            d["hex"] = b[:end].hex()
            rest = b[end:]
            if rest[:3] in _LLC_HEADERS and len(rest) > 3:
                d["note"] = ("another APDU follows in the same frame after an LLC header "
                             "(non-standard: one APDU per frame); decoded below")
                b = rest[3:]
                continue
            d["trailing_bytes"] = rest.hex()
            d["trailing_note"] = "%d bytes after the end of this APDU" % len(rest)
            return out

    def _one(self, b):
        self._end = None
        try:
            d = self._apdu(b)
        except (apdu.ApduError, axdr.AxdrError, gbt.GbtError, security.SecurityError,
                ValueError, IndexError) as e:
            d = {"type": APDU_NAMES.get(b[0], "unknown 0x%02X" % b[0]) if b else "empty",
                 "error": "malformed APDU: %s" % e}
            self._end = None
        d["hex"] = b.hex()
        return d

    def _apdu(self, b):
        if not b:
            raise apdu.ApduError("empty APDU")
        tag = b[0]
        if tag == apdu.AARQ:
            return self._association(b)
        if tag in _PLAIN:
            self._end = _PLAIN_LEN.get(tag)
            return _PLAIN[tag](b)
        if tag == apdu.AARE:
            return self._aare(b)
        if tag in (apdu.RLRQ, apdu.RLRE):
            self._end = acse._outer_end(b)
            return acse.release(b, self._deciphered)
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
        self._end = c.p
        return d

    def _association(self, b):
        """AARQ: learn the client's system title (HLS) and decipher a glo-initiate-request
        user-information."""
        self._end = acse._outer_end(b)
        d = _aarq(b)
        a = apdu.parse_aarq(b)
        title, ui = a["calling_ap_title"], a["user_info"]
        if title is not None and len(title) == 8:
            self.titles["client"] = title
        if ui and ui[0] in (0x21, 0x28):
            d["user_information"] = u = self._deciphered(ui, title)
            plain = u.get("plaintext") or {}
            if plain.get("type") == "InitiateRequest":     # the xDLMS proposal, once deciphered
                d.update({k: plain[k] for k in ("dlms_version", "conformance", "max_pdu")})
                d["user_information_ok"] = True
            else:                                          # still ciphered: no proposal to show
                for k in ("dlms_version", "conformance", "max_pdu", "user_information_ok"):
                    d.pop(k, None)
        return d

    def _aare(self, b):
        self._end = acse._outer_end(b)
        try:
            a = apdu.parse_aare(b)
        except apdu.ApduError as e:
            if e.args[:1] != ("unsupported user-information",):
                raise
            d = acse.aare_fallback(b, self._deciphered)
            self._learn_server_title(d)
            return d
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
        d.update(acse.aare_extras(b, self._deciphered))
        plain = (d.get("user_information") or {}).get("plaintext") or {}
        if plain.get("type") == "InitiateResponse" and "dlms_version" not in d:
            d.update({k: plain[k] for k in ("dlms_version", "conformance", "max_pdu", "vaa_name")})
        self._learn_server_title(d)
        return d

    def _learn_server_title(self, d):
        title = d.get("responding_ap_title")
        if title and len(title) == 16:                 # 8 bytes: the meter's system title (HLS)
            self.titles["server"] = bytes.fromhex(title)

    def _deciphered(self, x, title=None):
        """A service-specific ciphered APDU inside ACSE user-information -> its fields (and
        plaintext when a key is given); ``title``, the AP-title of the same ACSE APDU, is
        its sender's system title."""
        saved = self._end, self.system_title
        self.system_title = title or self.system_title
        try:
            return self._ciphered(x)
        except security.SecurityError as e:
            return {"error": "malformed ciphered user-information: %s" % e}
        finally:
            self._end, self.system_title = saved

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
        whole = self._blocks.add(d, d["block_number"], raw, last)
        if whole is not None:
            d["reassembled_len"] = len(whole)
            try:
                d["data"], q = _data(whole)
            except axdr.AxdrError as e:
                d["data_error"] = "reassembled data undecodable: %s" % e

    def _notification(self, b):
        c = _Cursor(b, 1)
        d = {"type": "DataNotification", "long_invoke_id_and_priority": "%08X" % c.u32()}
        n = c.length()                   # date-time: OPTIONAL octet-string, 0 = absent
        if n == 9 and c.p < len(b) and b[c.p] == 12:
            c.p += 1
            n = 12
            d["date_time_note"] = _NOTIFICATION_DATE_QUIRK
        if n:
            if n != 12:
                raise apdu.ApduError("date-time must be 12 bytes")
            d["date_time"] = fmt.clock_iso(c.raw(12))
        d["body"] = c.data()
        self._end = c.p
        return d

    def _gbt_block(self, b):
        blk = gbt.parse(b)
        d = {"type": "General-Block-Transfer", "last_block": blk.last, "streaming": blk.streaming,
             "window": blk.window, "block_number": blk.number, "block_number_ack": blk.ack,
             "data_len": len(blk.data)}
        inner = self._gbt.add(d, blk.number, blk.data, blk.last)
        if inner is not None:
            d["reassembled"] = self.apdu(inner)
        return d

    def _ciphered(self, b):
        ct = security.parse(b)
        self._end = acse.ber_end(b)
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
        end = self._end
        d["plaintext"] = self.apdu(plain)
        self._end = end                    # the ciphered APDU's end, not its plaintext's
        return d
