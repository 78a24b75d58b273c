"""Decode captured DLMS/COSEM traffic from any meter (host only, CPython).

Input: hex text (any separators; ``#`` comments; a leading ``tx:``/``rx:``/``>``/``<`` per line
is ignored). If the first byte is ``7E`` the whole input is one HDLC byte stream (IEC 62056-46:
frames split by their length field, never by flags, so a 0x7E inside a value is fine);
otherwise every line is one bare APDU (e.g. a wrapper/TCP capture without the wrapper header).

Output (``decode_text(text, ...) -> list of records``), each a JSON-able dict:

- ``{"frame": {...}}`` for each HDLC frame: format (segmented, length), addresses (1/2/4 bytes,
  logical/physical), control (type, N(S)/N(R), P/F), ``"ok"``; a frame whose HCS/FCS/length is
  wrong is reported with ``"error"`` and its bytes, never decoded as if it were good.
- ``{"apdu": {...}}`` once the information fields of a segmented sequence (S bit) are
  complete (LLC header removed): AARQ/AARE/RLRQ/RLRE, GET/SET/ACTION requests and responses
  (normal, next, with-list, datablock; datablocks reassembled and the whole value decoded when
  the last one is seen), ExceptionResponse, ConfirmedServiceError, data-notification,
  general-block-transfer (reassembled, then the inner APDU decoded), general-glo/ded-ciphering
  and service-specific glo APDUs (decrypted with ``key`` [+ ``auth_key``], AES-128-GCM
  suite 0, then decoded). Values carry OBIS, date-time and scaler_unit hints.
- A malformed APDU yields ``{"apdu": {"error": ..., "hex": ...}}``.

``render(records) -> str`` prints the structure as indented text. Errors in the input text
itself raise ``DecodeError``.
"""
import re

from protocol import apdu_client as apdu
from protocol import hdlc_client as hdlc
from protocol import axdr_client as axdr
from protocol import gbt, obis, security_client as security
from host_tools import format as fmt


class DecodeError(ValueError):
    """Input that is not hex, or a key that is not 16 bytes."""


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
_DAR = {0: "success", 1: "hardware-fault", 2: "temporary-failure", 3: "read-write-denied",
        4: "object-undefined", 9: "object-class-inconsistent", 11: "object-unavailable",
        12: "type-unmatched", 13: "scope-of-access-violated", 14: "data-block-unavailable",
        15: "long-get-aborted", 16: "no-long-get-in-progress", 17: "long-set-aborted",
        18: "no-long-set-in-progress", 19: "data-block-number-invalid", 250: "other-reason"}
_DIAG = {0: "null", 1: "no-reason-given", 2: "application-context-name-not-supported",
         11: "authentication-mechanism-name-not-recognised",
         12: "authentication-mechanism-name-required", 13: "authentication-failure",
         14: "authentication-required"}
_MECH = {0: "none", 1: "LLS", 2: "HLS", 3: "HLS-MD5", 4: "HLS-SHA1", 5: "HLS-GMAC",
         6: "HLS-SHA256", 7: "HLS-ECDSA"}
_CONTEXT = {1: "LN", 2: "SN", 3: "LN-ciphered", 4: "SN-ciphered"}
_STATE = {1: "service-not-allowed", 2: "service-unknown"}
_SERVICE = {1: "operation-not-possible", 2: "service-not-supported", 3: "other-reason",
            4: "pdu-too-long", 5: "deciphering-error", 6: "invocation-counter-error"}
# Blue Book unit enumeration (subset)
UNITS = {1: "a", 2: "mo", 3: "wk", 4: "d", 5: "h", 6: "min", 7: "s", 8: "°", 9: "°C",
         10: "currency", 13: "m³", 27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh",
         32: "varh", 33: "A", 34: "C", 35: "V", 44: "Hz", 255: "count", 56: "%"}
_CONF_NAMES = ["reserved0", "general-protection", "general-block-transfer", "read", "write",
               "unconfirmed-write", "delta-value-encoding", "reserved7", "attribute0-set",
               "priority-mgmt", "attribute0-get", "block-transfer-with-get",
               "block-transfer-with-set", "block-transfer-with-action", "multiple-references",
               "information-report", "data-notification", "access", "parameterized-access",
               "get", "set", "selective-access", "event-notification", "action"]


# ---------------------------------------------------------------- input

_LINE_PREFIX = re.compile(r"^\s*(tx|rx|>|<|->|<-)\s*:?\s*", re.I)


def parse_hex_lines(text):
    """Text -> list of byte strings, one per non-empty line (comments and prefixes removed).
    Raises DecodeError on characters that are not hex."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0]
        line = _LINE_PREFIX.sub("", line)
        h = re.sub(r"[\s:,\-]|0x", "", line)
        if not h:
            continue
        if not re.fullmatch(r"[0-9A-Fa-f]*", h) or len(h) % 2:
            raise DecodeError("line %d is not hex: %r" % (n, line.strip()[:40]))
        out.append(bytes.fromhex(h))
    return out


# ---------------------------------------------------------------- HDLC

def _address(raw):
    try:
        value, n, _ = hdlc.decode_address(raw, 0)
    except hdlc.HdlcError:
        return {"hex": raw.hex(), "error": "address"}
    out = {"hex": raw.hex(), "bytes": n, "value": value}
    if n > 1:
        lg, ph = hdlc.split_server_address(value, n)
        out["logical"], out["physical"] = lg, ph
    return out


_KIND_NAMES = {hdlc.K_I: "I", hdlc.K_RR: "RR", hdlc.K_RNR: "RNR", hdlc.K_SNRM: "SNRM",
               hdlc.K_UA: "UA", hdlc.K_DISC: "DISC", hdlc.K_DM: "DM", hdlc.K_FRMR: "FRMR",
               hdlc.K_UI: "UI", hdlc.K_UNKNOWN: "unknown"}


def _control(c):
    k = hdlc.kind(c)
    out = {"hex": "%02X" % c, "type": _KIND_NAMES[k], "pf": hdlc.pf(c)}
    if k == hdlc.K_I:
        out["ns"], out["nr"] = hdlc.ns(c), hdlc.nr(c)
    elif k in (hdlc.K_RR, hdlc.K_RNR):
        out["nr"] = hdlc.nr(c)
    return out


def split_frames(buf):
    """Split an HDLC byte stream by the length field: yields (raw bytes, Frame or None,
    error reason or None). Garbage between frames is reported as one 'garbage' item."""
    p, n = 0, len(buf)
    junk_start = None
    while p < n:
        if buf[p] == 0x7E and p + 1 < n and buf[p + 1] == 0x7E:
            p += 1                         # idle flags / shared flag
            continue
        if buf[p] != 0x7E or p + 2 >= n or buf[p + 1] & 0xF0 != 0xA0:
            if junk_start is None:
                junk_start = p
            p += 1
            continue
        if junk_start is not None:
            yield bytes(buf[junk_start:p]), None, "garbage"
            junk_start = None
        ln = ((buf[p + 1] & 0x07) << 8) | buf[p + 2]
        end = p + ln + 2
        if ln < 7:
            yield bytes(buf[p:p + 3]), None, "length"
            p += 1
            continue
        if end > n:
            yield bytes(buf[p:]), None, "truncated"
            return
        raw = bytes(buf[p:end])
        try:
            yield raw, hdlc.decode_frame(raw), None
        except hdlc.HdlcError as e:
            yield raw, None, e.reason
        p = end
        if p < n and buf[p] & 0xF0 == 0xA0:
            p -= 1                         # the closing flag opens the next frame too
    if junk_start is not None:
        yield bytes(buf[junk_start:]), None, "garbage"


def _frame_record(raw, f, err):
    rec = {"hex": raw.hex(), "ok": err is None}
    if err is not None:
        rec["error"] = {"hcs": "bad HCS (header check sequence)", "fcs": "bad FCS (frame check sequence)",
                        "garbage": "bytes outside any frame", "truncated": "frame runs past the end of the capture",
                        "length": "impossible length field", "address": "bad address field",
                        "flag": "no closing flag where the length field says",
                        "format": "bad format field"}.get(err, err)
        rec["reason"] = err
        return rec
    rec.update({"length": f.length, "segmented": f.segmented, "dest": _address(f.dest),
                "src": _address(f.src), "control": _control(f.ctrl)})
    k = hdlc.kind(f.ctrl)
    if f.info:
        rec["info_len"] = len(f.info)
        if k in (hdlc.K_SNRM, hdlc.K_UA):
            try:
                tx, rx, wtx, wrx = hdlc.decode_params(f.info)
                rec["parameters"] = {"max_info_tx": tx, "max_info_rx": rx, "window_tx": wtx,
                                     "window_rx": wrx}
            except hdlc.HdlcError as e:
                rec["parameters"] = {"error": str(e)}
        elif k == hdlc.K_FRMR:
            rec["frmr"] = f.info.hex()
    elif k == hdlc.K_SNRM:
        rec["parameters"] = {"max_info_tx": 128, "max_info_rx": 128, "window_tx": 1,
                             "window_rx": 1, "default": True}
    return rec


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


def _conformance(c):
    return [name for i, name in enumerate(_CONF_NAMES) if c & (1 << (23 - i))]


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
    return {"data_access_result": dar, "result_name": _DAR.get(dar, "?")}


class Decoder:
    """Stateful decoder: keeps reassembly of HDLC segments (per address pair), GET datablocks
    and general-block-transfer blocks across records."""

    def __init__(self, key=None, auth_key=None, system_title=None):
        for k, name in ((key, "key"), (auth_key, "auth key")):
            if k is not None and len(k) != 16:
                raise DecodeError("%s must be 16 bytes (32 hex digits)" % name)
        self.key = key
        self.auth_key = auth_key or b""
        self.system_title = system_title
        self._seg = {}
        self._tainted = set()
        self._after_error = False
        self._blocks = bytearray()
        self._gbt = bytearray()

    # --- HDLC stream
    def hdlc(self, buf):
        out = []
        for raw, f, err in split_frames(buf):
            rec = {"frame": _frame_record(raw, f, err)}
            out.append(rec)
            if f is None:
                # a sequence with a lost/corrupt segment must not be decoded as if whole
                self._tainted.update(self._seg)
                self._after_error = True
                continue
            k = hdlc.kind(f.ctrl)
            if k not in (hdlc.K_I, hdlc.K_UI) or not f.info:
                continue
            key = (f.dest, f.src)
            acc = self._seg.get(key)
            if acc is None:
                acc = self._seg[key] = bytearray()
                if self._after_error and f.info[:2] not in (b"\xe6\xe6", b"\xe6\xe7"):
                    self._tainted.add(key)      # may be a continuation of a lost first segment
                self._after_error = False
            acc += f.info
            if f.segmented:
                rec["frame"]["segment"] = "more follow"
                continue
            del self._seg[key]
            data = bytes(acc)
            if key in self._tainted:
                self._tainted.discard(key)
                out.append({"apdu": {"error": "incomplete: a segment of this APDU was lost or "
                                              "corrupted; not decoded", "hex": data.hex()}})
                continue
            llc = None
            if data[:3] in (hdlc.LLC_REQUEST, hdlc.LLC_RESPONSE):
                llc = "request" if data[:3] == hdlc.LLC_REQUEST else "response"
                data = data[3:]
            a = self.apdu(data)
            if llc:
                a["llc"] = llc
            out.append({"apdu": a})
        return out

    # --- APDUs
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
        if tag == apdu.AARQ:
            a = apdu.parse_aarq(b)
            d = {"type": "AARQ", "application_context": _CONTEXT.get(a["context"], a["context"]),
                 "mechanism": _MECH.get(a["mechanism"], a["mechanism"]),
                 "dlms_version": a["dlms_version"], "conformance": _conformance(a["conformance"]),
                 "max_pdu": a["max_pdu"], "user_information_ok": a["user_info_ok"]}
            if a["auth_value"] is not None:
                d["authentication_value"] = a["auth_value"].hex()
            if a["calling_ap_title"] is not None:
                d["calling_ap_title"] = a["calling_ap_title"].hex()
            return d
        if tag == apdu.AARE:
            a = apdu.parse_aare(b)
            d = {"type": "AARE", "application_context": _CONTEXT.get(a["context"], a["context"]),
                 "result": {0: "accepted", 1: "rejected-permanent", 2: "rejected-transient"}.get(a["result"], a["result"]),
                 "diagnostic": _DIAG.get(a["diagnostic"], a["diagnostic"]) if not a["diag_provider"] else a["diagnostic"],
                 "mechanism": _MECH.get(a["mechanism"], a["mechanism"])}
            if a["vaa_name"] is not None:
                d.update({"dlms_version": a["dlms_version"], "conformance": _conformance(a["conformance"]),
                          "max_pdu": a["max_pdu"], "vaa_name": a["vaa_name"]})
            if a["service_error"]:
                d["confirmed_service_error"] = list(a["service_error"])
            return d
        if tag in (apdu.RLRQ, apdu.RLRE):
            r = apdu.parse_rlrq(b) if tag == apdu.RLRQ else apdu.parse_rlre(b)
            d = {"type": APDU_NAMES[tag], "reason": r["reason"]}
            if r["user_info"]:
                d["user_information"] = r["user_info"].hex()
            return d
        if tag == apdu.EXCEPTION_RESPONSE:
            if len(b) < 3:
                raise apdu.ApduError("truncated")
            return {"type": "ExceptionResponse", "state_error": _STATE.get(b[1], b[1]),
                    "service_error": _SERVICE.get(b[2], b[2])}
        if tag == apdu.CONFIRMED_SERVICE_ERROR:
            if len(b) < 4:
                raise apdu.ApduError("truncated")
            return {"type": "ConfirmedServiceError", "service": b[1], "error_type": b[2], "code": b[3]}
        if tag == 0x0F:
            return self._notification(b)
        if tag == gbt.TAG:
            return self._gbt_block(b)
        if tag in (security.GENERAL_GLO, security.GENERAL_DED) or tag in security.SERVICE_TAGS:
            return self._ciphered(b)
        c = _Cursor(b, 1)
        kind = c.u8()
        if tag == apdu.GET_REQUEST:
            d = {"type": "GET-Request-" + _GET_KINDS.get(kind, str(kind))}
            d.update(_invoke(c.u8()))
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
        elif tag == apdu.SET_REQUEST:
            d = {"type": "SET-Request-" + _SET_KINDS.get(kind, str(kind))}
            d.update(_invoke(c.u8()))
            if kind != 1:
                raise apdu.ApduError("SET-Request type %d not decoded" % kind)
            d["item"] = _descriptor(c)
            _access(c, d["item"])
            d["value"] = c.data()
        elif tag == apdu.ACTION_REQUEST:
            d = {"type": "ACTION-Request-" + _ACTION_KINDS.get(kind, str(kind))}
            d.update(_invoke(c.u8()))
            if kind != 1:
                raise apdu.ApduError("ACTION-Request type %d not decoded" % kind)
            d["item"] = _descriptor(c, True)
            if c.u8():
                d["parameters"] = c.data()
        elif tag == apdu.GET_RESPONSE:
            d = {"type": "GET-Response-" + _GET_RESP_KINDS.get(kind, str(kind))}
            d.update(_invoke(c.u8()))
            if kind == 1:
                d.update(_get_result(c))
            elif kind == 2:
                last = c.u8()
                d["last_block"] = bool(last)
                d["block_number"] = c.u32()
                if c.u8() == 0:
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
                else:
                    dar = c.u8()
                    d["data_access_result"] = dar
                    d["result_name"] = _DAR.get(dar, "?")
            elif kind == 3:
                d["results"] = [_get_result(c) for _ in range(c.length())]
            else:
                raise apdu.ApduError("unknown GET-Response type %d" % kind)
        elif tag in (apdu.SET_RESPONSE, apdu.ACTION_RESPONSE):
            d = {"type": APDU_NAMES[tag] + "-" + (_SET_KINDS if tag == apdu.SET_RESPONSE else _ACTION_KINDS).get(kind, str(kind))}
            d.update(_invoke(c.u8()))
            if kind != 1:
                raise apdu.ApduError("%s type %d not decoded" % (APDU_NAMES[tag], kind))
            r = c.u8()
            d["result"] = r
            d["result_name"] = _DAR.get(r, "?")
            if tag == apdu.ACTION_RESPONSE and c.p < len(b) and c.u8():
                d["return"] = _get_result(c)
        else:
            raise apdu.ApduError("unknown APDU tag 0x%02X" % tag)
        if c.p != len(b):
            d["trailing_bytes"] = b[c.p:].hex()
        return d

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
        title = ct.system_title or self.system_title
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


def decode_text(text, key=None, auth_key=None, system_title=None):
    """Hex text / capture file -> list of records (see module doc). Raises DecodeError."""
    chunks = parse_hex_lines(text)
    dec = Decoder(key, auth_key, system_title)
    if not chunks:
        raise DecodeError("no hex data in the input")
    if chunks[0][:1] == b"\x7e":
        return dec.hdlc(b"".join(chunks))
    return [{"apdu": dec.apdu(c)} for c in chunks]


# ---------------------------------------------------------------- text rendering

def _render_value(v, pad, lines, label=""):
    t = v.get("type")
    hint = ""
    for k in ("obis", "iso", "text", "scaler_unit"):
        if k in v:
            hint = "  (%s)" % v[k]
    if t in ("structure", "array"):
        lines.append("%s%s%s[%d]%s" % (pad, label, t, len(v["value"]), hint))
        for x in v["value"]:
            _render_value(x, pad + "  ", lines)
    else:
        lines.append("%s%s%s %s%s" % (pad, label, t, v.get("value"), hint))


def _render_dict(d, pad, lines):
    for k, v in d.items():
        if k == "hex":
            continue
        if isinstance(v, dict) and "type" in v and "value" in v:
            _render_value(v, pad, lines, k + ": ")
        elif isinstance(v, dict):
            lines.append("%s%s:" % (pad, k))
            _render_dict(v, pad + "  ", lines)
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            lines.append("%s%s:" % (pad, k))
            for i, x in enumerate(v):
                lines.append("%s  [%d]" % (pad, i))
                _render_dict(x, pad + "    ", lines)
        else:
            lines.append("%s%s: %s" % (pad, k, v))


def render(records):
    """Records -> readable indented text."""
    lines = []
    for r in records:
        if "frame" in r:
            f = r["frame"]
            if not f["ok"]:
                lines.append("FRAME INVALID (%s): %s" % (f["error"], fmt.hexs(bytes.fromhex(f["hex"]))))
                continue
            ctl = f["control"]
            extra = ""
            if "ns" in ctl:
                extra += " N(S)=%d" % ctl["ns"]
            if "nr" in ctl:
                extra += " N(R)=%d" % ctl["nr"]
            lines.append("HDLC %s%s%s  %s -> %s  len %d%s" % (
                ctl["type"], extra, " P/F" if ctl["pf"] else "", f["src"]["hex"], f["dest"]["hex"],
                f["length"], "  SEGMENT (more follow)" if f["segmented"] else ""))
            for side in ("dest", "src"):
                a = f[side]
                if a.get("bytes", 1) > 1:
                    lines.append("  %s address %s: logical %s, physical %s" % (
                        side, a["hex"], a["logical"], a["physical"]))
            if "parameters" in f:
                lines.append("  parameters: %s" % f["parameters"])
        else:
            a = r["apdu"]
            lines.append("APDU %s" % a.get("type"))
            _render_dict({k: v for k, v in a.items() if k != "type"}, "  ", lines)
    return "\n".join(lines)
