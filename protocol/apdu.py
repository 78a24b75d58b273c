"""DLMS/COSEM application layer APDUs, logical-name referencing, no ciphering
(IEC 62056-5-3 §9 / DLMS UA 1000-2 "Green Book" §9.3-9.5; ACSE per ISO/IEC 8650 in BER).

- ACSE (BER): ``parse_aarq``/``build_aarq``, ``parse_aare``/``build_aare``,
  ``parse_rlrq``/``build_rlrq``, ``parse_rlre``/``build_rlre``. The xDLMS InitiateRequest /
  InitiateResponse / ConfirmedServiceError inside user-information is A-XDR.
- xDLMS requests (host builds, meter parses with ``parse_request``): GET normal/next/
  with-list, SET normal, ACTION normal.
- xDLMS responses (meter builds, host parses with ``parse_response``): GET normal/
  block/with-list, SET, ACTION, ExceptionResponse, ConfirmedServiceError.

``invoke`` is always the whole Invoke-Id-And-Priority byte (e.g. 0xC1), echoed by the
meter. Attribute/method data are already-encoded A-XDR bytes (``protocol.axdr``).
Errors: ``ApduError`` (a ValueError) with ``.service_error``, the ExceptionResponse
service-error a server should answer with (2 service-not-supported, 3 other-reason).
"""
from protocol import axdr

AARQ = 0x60
AARE = 0x61
RLRQ = 0x62
RLRE = 0x63
GET_REQUEST = 0xC0
SET_REQUEST = 0xC1
ACTION_REQUEST = 0xC3
GET_RESPONSE = 0xC4
SET_RESPONSE = 0xC5
ACTION_RESPONSE = 0xC7
EXCEPTION_RESPONSE = 0xD8
CONFIRMED_SERVICE_ERROR = 0x0E
INITIATE_REQUEST = 0x01
INITIATE_RESPONSE = 0x08

# application-context-name 2.16.756.5.8.1.x and mechanism-name 2.16.756.5.8.2.x
CONTEXT_LN = 1
CONTEXT_SN = 2
CONTEXT_LN_CIPHER = 3
CONTEXT_SN_CIPHER = 4
MECH_NONE = 0
MECH_LLS = 1
MECH_HLS = 2
MECH_HLS_MD5 = 3
MECH_HLS_SHA1 = 4
MECH_HLS_GMAC = 5
MECH_HLS_SHA256 = 6
MECH_HLS_ECDSA = 7

# association-result and acse-service-user / -provider diagnostics (ISO/IEC 8650-1)
RESULT_ACCEPTED = 0
RESULT_REJECTED_PERMANENT = 1
RESULT_REJECTED_TRANSIENT = 2
DIAG_NULL = 0
DIAG_NO_REASON = 1
DIAG_CONTEXT_NOT_SUPPORTED = 2
DIAG_MECH_NOT_RECOGNISED = 11
DIAG_MECH_REQUIRED = 12
DIAG_AUTH_FAILURE = 13
DIAG_AUTH_REQUIRED = 14

# Data-Access-Result (Green Book §9.3.x)
DAR_SUCCESS = 0
DAR_HARDWARE_FAULT = 1
DAR_TEMPORARY_FAILURE = 2
DAR_READ_WRITE_DENIED = 3
DAR_OBJECT_UNDEFINED = 4
DAR_OBJECT_CLASS_INCONSISTENT = 9
DAR_OBJECT_UNAVAILABLE = 11
DAR_TYPE_UNMATCHED = 12
DAR_SCOPE_OF_ACCESS_VIOLATED = 13
DAR_DATA_BLOCK_UNAVAILABLE = 14
DAR_LONG_GET_ABORTED = 15
DAR_NO_LONG_GET_IN_PROGRESS = 16
DAR_LONG_SET_ABORTED = 17
DAR_NO_LONG_SET_IN_PROGRESS = 18
DAR_DATA_BLOCK_NUMBER_INVALID = 19
DAR_OTHER_REASON = 250

# Action-Result
AR_SUCCESS = 0
AR_HARDWARE_FAULT = 1
AR_TEMPORARY_FAILURE = 2
AR_READ_WRITE_DENIED = 3
AR_OBJECT_UNDEFINED = 4
AR_OBJECT_CLASS_INCONSISTENT = 9
AR_OBJECT_UNAVAILABLE = 11
AR_TYPE_UNMATCHED = 12
AR_SCOPE_OF_ACCESS_VIOLATED = 13
AR_OTHER_REASON = 250

# ExceptionResponse state-error / service-error
STATE_SERVICE_NOT_ALLOWED = 1
STATE_SERVICE_UNKNOWN = 2
SERVICE_OPERATION_NOT_POSSIBLE = 1
SERVICE_NOT_SUPPORTED = 2
SERVICE_OTHER_REASON = 3
SERVICE_PDU_TOO_LONG = 4
SERVICE_DECIPHERING_ERROR = 5
SERVICE_INVOCATION_COUNTER_ERROR = 6

# ConfirmedServiceError ServiceError choice 6 "initiate" codes
INITIATE_OTHER = 0
INITIATE_DLMS_VERSION_TOO_LOW = 1
INITIATE_INCOMPATIBLE_CONFORMANCE = 2
INITIATE_PDU_SIZE_TOO_SHORT = 3
INITIATE_REFUSED_BY_VDE_HANDLER = 4

# Conformance block (Green Book §9.4.6.1): bit n (0 = first bit sent) -> 1 << (23 - n)
CONF_GENERAL_PROTECTION = 1 << (23 - 1)
CONF_GENERAL_BLOCK_TRANSFER = 1 << (23 - 2)
CONF_READ = 1 << (23 - 3)
CONF_WRITE = 1 << (23 - 4)
CONF_UNCONFIRMED_WRITE = 1 << (23 - 5)
CONF_DELTA_VALUE_ENCODING = 1 << (23 - 6)
CONF_ATTRIBUTE0_SET = 1 << (23 - 8)
CONF_PRIORITY_MGMT = 1 << (23 - 9)
CONF_ATTRIBUTE0_GET = 1 << (23 - 10)
CONF_BLOCK_TRANSFER_WITH_GET = 1 << (23 - 11)
CONF_BLOCK_TRANSFER_WITH_SET = 1 << (23 - 12)
CONF_BLOCK_TRANSFER_WITH_ACTION = 1 << (23 - 13)
CONF_MULTIPLE_REFERENCES = 1 << (23 - 14)
CONF_INFORMATION_REPORT = 1 << (23 - 15)
CONF_DATA_NOTIFICATION = 1 << (23 - 16)
CONF_ACCESS = 1 << (23 - 17)
CONF_PARAMETERIZED_ACCESS = 1 << (23 - 18)
CONF_GET = 1 << (23 - 19)
CONF_SET = 1 << (23 - 20)
CONF_SELECTIVE_ACCESS = 1 << (23 - 21)
CONF_EVENT_NOTIFICATION = 1 << (23 - 22)
CONF_ACTION = 1 << (23 - 23)
# what gurux proposes (dlms.md: 5F 1F 04 00 40 1E 5D)
DEFAULT_CONFORMANCE = 0x401E5D

_DLMS_OID = b"\x60\x85\x74\x05\x08"   # 2.16.756.5.8


class ApduError(ValueError):
    """Malformed, truncated or unsupported APDU. ``service_error`` is the ExceptionResponse
    service-error to answer with (default 3 other-reason; 2 for unsupported services)."""

    def __init__(self, msg, service_error=SERVICE_OTHER_REASON):
        super().__init__(msg)
        self.service_error = service_error


# ---------------------------------------------------------------- BER helpers

def _ber_len(n):
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    if n <= 0xFFFF:
        return bytes((0x82, n >> 8, n & 0xFF))
    raise ApduError("BER length too large")


def _tlv(tag, value):
    return bytes((tag,)) + _ber_len(len(value)) + bytes(value)


def _read_tl(buf, pos, end):
    """Read a BER tag and length at pos; returns (tag, vstart, vend). Multi-byte tags
    (low bits 0x1F) are returned as the first byte | 0x100 * number."""
    if pos >= end:
        raise ApduError("truncated BER")
    tag = buf[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        num = 0
        while True:
            if pos >= end:
                raise ApduError("truncated BER tag")
            b = buf[pos]
            pos += 1
            num = (num << 7) | (b & 0x7F)
            if not b & 0x80:
                break
            if num > 0xFFFF:
                raise ApduError("BER tag too large")
        tag = tag | (num << 8)
    if pos >= end:
        raise ApduError("truncated BER length")
    n = buf[pos]
    pos += 1
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 2 or pos + k > end:
            raise ApduError("bad BER length")
        n = 0
        for i in range(k):
            n = (n << 8) | buf[pos + i]
        pos += k
    if pos + n > end:
        raise ApduError("truncated BER value")
    return tag, pos, pos + n


def _outer(buf, tag):
    """Check the outer APDU tag and length; returns (pos, end) of its contents."""
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise ApduError("bytes expected")
    n = len(buf)
    if n < 2 or buf[0] != tag:
        raise ApduError("not the expected APDU")
    t, s, e = _read_tl(buf, 0, n)
    return s, e


def _oid_arc(buf, s, e, kind):
    """Last arc of a 2.16.756.5.8.<kind>.x OID body buf[s:e], or None."""
    if e - s != 7 or bytes(buf[s:s + 5]) != _DLMS_OID or buf[s + 5] != kind:
        return None
    return buf[s + 6]


def _u16(buf, p):
    return (buf[p] << 8) | buf[p + 1]


def _u32(buf, p):
    return (buf[p] << 24) | (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]


def _conf_bytes(conf):
    return b"\x5F\x1F\x04\x00" + bytes(((conf >> 16) & 0xFF, (conf >> 8) & 0xFF, conf & 0xFF))


def _conformance(buf, p, end):
    """Parse ``5F 1F 04 <unused> c c c`` at p; returns (conformance, newpos)."""
    if p + 7 > end or buf[p] != 0x5F or buf[p + 1] != 0x1F or buf[p + 2] != 0x04:
        raise ApduError("bad conformance block")
    c = (buf[p + 4] << 16) | (buf[p + 5] << 8) | buf[p + 6]
    return c, p + 7


# ---------------------------------------------------------------- AARQ

def _parse_initiate_request(buf, s, e, out):
    p = s
    if p >= e or buf[p] != INITIATE_REQUEST:
        raise ApduError("not an InitiateRequest")
    p += 1
    if p >= e:
        raise ApduError("truncated")
    if buf[p]:                                   # dedicated-key OPTIONAL
        n, p = axdr.decode_length(buf, p + 1)
        if p + n > e:
            raise ApduError("truncated")
        out["dedicated_key"] = bytes(buf[p:p + n])
        p += n
    else:
        p += 1
    for _ in range(2):                           # response-allowed, proposed-quality-of-service
        if p >= e:
            raise ApduError("truncated")
        p += 2 if buf[p] else 1
    if p >= e:
        raise ApduError("truncated")
    version = buf[p]
    conf, p = _conformance(buf, p + 1, e)
    if p + 2 > e:
        raise ApduError("truncated")
    out["dlms_version"] = version
    out["conformance"] = conf
    out["max_pdu"] = _u16(buf, p)


def parse_aarq(buf):
    """Parse an AARQ (Green Book §9.4.2, ISO/IEC 8650 BER) into a dict.

    Keys: context (last arc of 2.16.756.5.8.1.x or None), mechanism (last arc of
    2.16.756.5.8.2.x or None), auth_value (bytes or None), calling_ap_title (bytes or
    None), acse_requirements (int, bit 0 = authentication functional unit), dlms_version,
    conformance (24-bit int), max_pdu (0 when no usable InitiateRequest), dedicated_key
    (bytes or None), user_info_ok (InitiateRequest present and parseable).
    Unknown elements are skipped. Raises ApduError if the BER structure is malformed.
    """
    p, end = _outer(buf, AARQ)
    out = {"context": None, "mechanism": None, "auth_value": None, "calling_ap_title": None,
           "acse_requirements": 0, "dlms_version": 0, "conformance": 0, "max_pdu": 0,
           "dedicated_key": None, "user_info_ok": False}
    while p < end:
        tag, s, e = _read_tl(buf, p, end)
        p = e
        if tag == 0xA1:                          # application-context-name
            t, s2, e2 = _read_tl(buf, s, e)
            if t == 0x06:
                out["context"] = _oid_arc(buf, s2, e2, 1)
        elif tag == 0x8A:                        # sender-acse-requirements (BIT STRING)
            out["acse_requirements"] = 1 if (e - s >= 2 and buf[s + 1] & 0x80) else 0
        elif tag == 0x8B:                        # mechanism-name (implicit OID)
            out["mechanism"] = _oid_arc(buf, s, e, 2)
        elif tag == 0xAC:                        # calling-authentication-value
            t, s2, e2 = _read_tl(buf, s, e)
            if t == 0x80 or t == 0x81:
                out["auth_value"] = bytes(buf[s2:e2])
        elif tag == 0xA6:                        # calling-AP-title
            t, s2, e2 = _read_tl(buf, s, e)
            if t == 0x04:
                out["calling_ap_title"] = bytes(buf[s2:e2])
        elif tag == 0xBE:                        # user-information
            t, s2, e2 = _read_tl(buf, s, e)
            if t == 0x04:
                try:
                    _parse_initiate_request(buf, s2, e2, out)
                    out["user_info_ok"] = True
                except (ApduError, axdr.AxdrError):
                    out["user_info_ok"] = False
    return out


def _context_name(context):
    return b"\xA1\x09\x06\x07" + _DLMS_OID + bytes((1, context))


def build_aarq(context=CONTEXT_LN, mechanism=None, auth_value=None,
               conformance=DEFAULT_CONFORMANCE, max_pdu=0xFFFF, dlms_version=6):
    """Build an AARQ with an xDLMS InitiateRequest (no dedicated key).

    ``mechanism`` None -> no acse-requirements/mechanism-name; else both (e.g. MECH_LLS).
    ``auth_value`` (bytes) -> calling-authentication-value as GraphicString (``AC .. 80``).
    """
    body = bytearray(_context_name(context))
    if mechanism is not None:
        body.extend(b"\x8A\x02\x07\x80\x8B\x07" + _DLMS_OID + bytes((2, mechanism)))
    if auth_value is not None:
        body.extend(_tlv(0xAC, _tlv(0x80, auth_value)))
    ini = b"\x01\x00\x00\x00" + bytes((dlms_version,)) + _conf_bytes(conformance) + \
        bytes((max_pdu >> 8, max_pdu & 0xFF))
    body.extend(_tlv(0xBE, _tlv(0x04, ini)))
    return _tlv(AARQ, body)


# ---------------------------------------------------------------- AARE

def initiate_response(conformance, max_pdu, dlms_version=6, vaa_name=0x0007):
    """xDLMS InitiateResponse (A-XDR): ``08 00 <ver> 5F 1F 04 00 <conf3> <maxpdu2> <vaa2>``."""
    return b"\x08\x00" + bytes((dlms_version,)) + _conf_bytes(conformance) + \
        bytes((max_pdu >> 8, max_pdu & 0xFF, vaa_name >> 8, vaa_name & 0xFF))


def build_aare(result, diagnostic, context=CONTEXT_LN, conformance=0, max_pdu=256,
               mechanism=None, diag_provider=False, dlms_version=6, vaa_name=0x0007,
               initiate_error=None):
    """Build an AARE (Green Book §9.4.2).

    result: 0 accepted, 1 rejected-permanent, 2 rejected-transient. diagnostic: an
    acse-service-user value (DIAG_*) or, with ``diag_provider``, acse-service-provider.
    ``mechanism`` (e.g. MECH_LLS) adds responder-acse-requirements (88) and
    mechanism-name (89). user-information is always present: a ConfirmedServiceError
    ``0E 01 a b`` when ``initiate_error=(a, b)`` (e.g. (6, 1) DLMS version too low), else an
    InitiateResponse with ``conformance``/``max_pdu``/``vaa_name``.
    """
    body = bytearray(_context_name(context))
    body.extend(b"\xA2\x03\x02\x01" + bytes((result,)))
    body.extend(b"\xA3\x05" + (b"\xA2" if diag_provider else b"\xA1") + b"\x03\x02\x01" +
                bytes((diagnostic,)))
    if mechanism is not None:
        body.extend(b"\x88\x02\x07\x80\x89\x07" + _DLMS_OID + bytes((2, mechanism)))
    if initiate_error is not None:
        ui = bytes((CONFIRMED_SERVICE_ERROR, 1, initiate_error[0], initiate_error[1]))
    else:
        ui = initiate_response(conformance, max_pdu, dlms_version, vaa_name)
    body.extend(_tlv(0xBE, _tlv(0x04, ui)))
    return _tlv(AARE, body)


def parse_aare(buf):
    """Parse an AARE into a dict: context, result, diagnostic, diag_provider (bool),
    mechanism, dlms_version, conformance, max_pdu, vaa_name (None when no
    InitiateResponse), service_error ((choice, code) from a ConfirmedServiceError, else
    None). Raises ApduError when malformed or when result is missing."""
    p, end = _outer(buf, AARE)
    out = {"context": None, "result": None, "diagnostic": None, "diag_provider": False,
           "mechanism": None, "dlms_version": None, "conformance": None, "max_pdu": None,
           "vaa_name": None, "service_error": None}
    while p < end:
        tag, s, e = _read_tl(buf, p, end)
        p = e
        if tag == 0xA1:
            t, s2, e2 = _read_tl(buf, s, e)
            if t == 0x06:
                out["context"] = _oid_arc(buf, s2, e2, 1)
        elif tag == 0xA2:
            t, s2, e2 = _read_tl(buf, s, e)
            if t != 0x02 or e2 - s2 != 1:
                raise ApduError("bad association-result")
            out["result"] = buf[s2]
        elif tag == 0xA3:
            t, s2, e2 = _read_tl(buf, s, e)
            if t not in (0xA1, 0xA2):
                raise ApduError("bad result-source-diagnostic")
            t3, s3, e3 = _read_tl(buf, s2, e2)
            if t3 != 0x02 or e3 - s3 != 1:
                raise ApduError("bad result-source-diagnostic")
            out["diag_provider"] = t == 0xA2
            out["diagnostic"] = buf[s3]
        elif tag == 0x89:
            out["mechanism"] = _oid_arc(buf, s, e, 2)
        elif tag == 0xBE:
            t, s2, e2 = _read_tl(buf, s, e)
            if t != 0x04 or s2 >= e2:
                raise ApduError("bad user-information")
            if buf[s2] == INITIATE_RESPONSE:
                q = s2 + 1
                if q < e2 and buf[q]:            # negotiated-quality-of-service OPTIONAL
                    q += 1
                q += 1
                if q >= e2:
                    raise ApduError("truncated InitiateResponse")
                out["dlms_version"] = buf[q]
                conf, q = _conformance(buf, q + 1, e2)
                if q + 4 > e2:
                    raise ApduError("truncated InitiateResponse")
                out["conformance"] = conf
                out["max_pdu"] = _u16(buf, q)
                out["vaa_name"] = _u16(buf, q + 2)
            elif buf[s2] == CONFIRMED_SERVICE_ERROR:
                if e2 - s2 < 4:
                    raise ApduError("truncated ConfirmedServiceError")
                out["service_error"] = (buf[s2 + 2], buf[s2 + 3])
            else:
                raise ApduError("unsupported user-information", SERVICE_NOT_SUPPORTED)
    if out["result"] is None:
        raise ApduError("AARE without result")
    return out


# ---------------------------------------------------------------- RLRQ / RLRE

def build_rlrq(reason=0):
    """RLRQ with reason (0 normal): ``62 03 80 01 <reason>``."""
    return bytes((RLRQ, 3, 0x80, 1, reason))


def build_rlre(reason=0):
    """RLRE with reason (0 normal): ``63 03 80 01 <reason>``."""
    return bytes((RLRE, 3, 0x80, 1, reason))


def _parse_release(buf, tag):
    p, end = _outer(buf, tag)
    out = {"reason": None, "user_info": None}
    while p < end:
        t, s, e = _read_tl(buf, p, end)
        p = e
        if t == 0x80:
            if e - s != 1:
                raise ApduError("bad release reason")
            out["reason"] = buf[s]
        elif t == 0xBE:
            out["user_info"] = bytes(buf[s:e])
    return out


def parse_rlrq(buf):
    """Parse an RLRQ: ``{"reason": int or None, "user_info": bytes or None}``; tolerates
    user-information (dlms-cosem sends ``62 15 80 01 00 BE 10 ...``)."""
    return _parse_release(buf, RLRQ)


def parse_rlre(buf):
    """Parse an RLRE: ``{"reason": int or None, "user_info": bytes or None}``."""
    return _parse_release(buf, RLRE)


# ---------------------------------------------------------------- xDLMS requests (host side)

def _descriptor(class_id, obis6, index):
    if len(obis6) != 6:
        raise ApduError("OBIS code must be 6 bytes")
    if not 0 <= class_id <= 0xFFFF or not -128 <= index <= 255:
        raise ApduError("class id / index out of range")
    return bytes((class_id >> 8, class_id & 0xFF)) + bytes(obis6) + bytes((index & 0xFF,))


def _access(selector, params):
    if selector is None:
        return b"\x00"
    return bytes((1, selector)) + bytes(params or b"")


def get_request(invoke, class_id, obis6, attr, selector=None, params=b""):
    """GET-Request-Normal ``C0 01 <invoke> <class u16> <obis 6> <attr> <access-selection>``."""
    return bytes((GET_REQUEST, 1, invoke)) + _descriptor(class_id, obis6, attr) + \
        _access(selector, params)


def get_next_request(invoke, block_no):
    """GET-Request-Next ``C0 02 <invoke> <block-number u32>``."""
    return bytes((GET_REQUEST, 2, invoke, (block_no >> 24) & 0xFF, (block_no >> 16) & 0xFF,
                  (block_no >> 8) & 0xFF, block_no & 0xFF))


def get_with_list_request(invoke, items):
    """GET-Request-With-List ``C0 03 <invoke> <count>`` + descriptors; items are
    ``(class_id, obis6, attr, selector, params)``."""
    out = bytearray((GET_REQUEST, 3, invoke))
    out.extend(axdr.encode_length(len(items)))
    for class_id, obis6, attr, selector, params in items:
        out.extend(_descriptor(class_id, obis6, attr))
        out.extend(_access(selector, params))
    return bytes(out)


def set_request(invoke, class_id, obis6, attr, value_bytes, selector=None, params=b""):
    """SET-Request-Normal ``C1 01 <invoke> <descriptor> <access-selection> <value>``."""
    return bytes((SET_REQUEST, 1, invoke)) + _descriptor(class_id, obis6, attr) + \
        _access(selector, params) + bytes(value_bytes)


def action_request(invoke, class_id, obis6, method, params_bytes=None):
    """ACTION-Request-Normal ``C3 01 <invoke> <descriptor> (00 | 01 <params>)``."""
    tail = b"\x00" if params_bytes is None else b"\x01" + bytes(params_bytes)
    return bytes((ACTION_REQUEST, 1, invoke)) + _descriptor(class_id, obis6, method) + tail


# ---------------------------------------------------------------- xDLMS requests (meter side)

class Request:
    """A parsed xDLMS request: ``tag`` (0xC0/0xC1/0xC3), ``kind`` (subtype), ``invoke``
    (byte to echo), ``items`` (list of (class_id, obis6, index, selector or None,
    params bytes or None)), ``value`` (SET normal, A-XDR bytes), ``block_no`` (GET next)."""

    def __init__(self, tag, kind, invoke):
        self.tag = tag
        self.kind = kind
        self.invoke = invoke
        self.items = []
        self.value = None
        self.block_no = None

    def __repr__(self):
        return "Request(tag=0x%02X kind=%d invoke=0x%02X items=%r)" % (
            self.tag, self.kind, self.invoke, self.items)


def _data_end(buf, p):
    try:
        return axdr.skip(buf, p)
    except axdr.AxdrError as e:
        raise ApduError("bad A-XDR data: %s" % e)


def _item(buf, p, n, method):
    if p + 9 > n:
        raise ApduError("truncated descriptor")
    class_id = _u16(buf, p)
    obis6 = bytes(buf[p + 2:p + 8])
    index = buf[p + 8]
    p += 9
    if p >= n:
        raise ApduError("truncated")
    flag = buf[p]
    p += 1
    selector = params = None
    if flag > 1:
        raise ApduError("bad optional flag")
    if flag:
        if method:
            q = _data_end(buf, p)
            params = bytes(buf[p:q])
            p = q
        else:
            if p >= n:
                raise ApduError("truncated access-selection")
            selector = buf[p]
            q = _data_end(buf, p + 1)
            params = bytes(buf[p + 1:q])
            p = q
    return (class_id, obis6, index, selector, params), p


def parse_request(buf):
    """Parse a GET (normal 1, next 2, with-list 3), SET (normal 1) or ACTION (normal 1)
    request. Other services/subtypes -> ApduError(service_error=2); truncated or
    malformed -> ApduError(service_error=3)."""
    n = len(buf)
    if n < 3:
        if n >= 1 and buf[0] not in (GET_REQUEST, SET_REQUEST, ACTION_REQUEST):
            raise ApduError("unsupported service", SERVICE_NOT_SUPPORTED)
        raise ApduError("truncated request")
    tag = buf[0]
    kind = buf[1]
    r = Request(tag, kind, buf[2])
    p = 3
    if tag == GET_REQUEST:
        if kind == 1:
            item, p = _item(buf, p, n, False)
            r.items.append(item)
        elif kind == 2:
            if p + 4 > n:
                raise ApduError("truncated block number")
            r.block_no = _u32(buf, p)
            p += 4
        elif kind == 3:
            try:
                cnt, p = axdr.decode_length(buf, p)
            except axdr.AxdrError:
                raise ApduError("truncated list")
            if cnt * 10 > n - p:
                raise ApduError("truncated list")
            for _ in range(cnt):
                item, p = _item(buf, p, n, False)
                r.items.append(item)
        else:
            raise ApduError("unsupported GET subtype", SERVICE_NOT_SUPPORTED)
    elif tag == SET_REQUEST:
        if kind != 1:
            raise ApduError("unsupported SET subtype", SERVICE_NOT_SUPPORTED)
        item, p = _item(buf, p, n, False)
        r.items.append(item)
        q = _data_end(buf, p)
        r.value = bytes(buf[p:q])
        p = q
    elif tag == ACTION_REQUEST:
        if kind != 1:
            raise ApduError("unsupported ACTION subtype", SERVICE_NOT_SUPPORTED)
        item, p = _item(buf, p, n, True)
        r.items.append(item)
    else:
        raise ApduError("unsupported service 0x%02X" % tag, SERVICE_NOT_SUPPORTED)
    return r


# ---------------------------------------------------------------- xDLMS responses (meter side)

def get_response(invoke, data):
    """GET-Response-Normal with data: ``C4 01 <invoke> 00 <data>``."""
    return bytes((GET_RESPONSE, 1, invoke, 0)) + bytes(data)


def get_response_error(invoke, dar):
    """GET-Response-Normal with a Data-Access-Result: ``C4 01 <invoke> 01 <dar>``."""
    return bytes((GET_RESPONSE, 1, invoke, 1, dar))


def get_response_block(invoke, last, block_no, raw):
    """GET-Response-With-Datablock: ``C4 02 <invoke> <last> <block u32> 00 <len> <raw>``."""
    return bytes((GET_RESPONSE, 2, invoke, 1 if last else 0, (block_no >> 24) & 0xFF,
                  (block_no >> 16) & 0xFF, (block_no >> 8) & 0xFF, block_no & 0xFF, 0)) + \
        axdr.encode_length(len(raw)) + bytes(raw)


def get_response_block_error(invoke, block_no, dar):
    """GET-Response-With-Datablock ending in an error: ``C4 02 <invoke> 01 <block> 01 <dar>``."""
    return bytes((GET_RESPONSE, 2, invoke, 1, (block_no >> 24) & 0xFF, (block_no >> 16) & 0xFF,
                  (block_no >> 8) & 0xFF, block_no & 0xFF, 1, dar))


def get_response_list(invoke, results):
    """GET-Response-With-List: results are ``(0, data_bytes)`` or ``(1, dar)``."""
    out = bytearray((GET_RESPONSE, 3, invoke))
    out.extend(axdr.encode_length(len(results)))
    for choice, v in results:
        if choice == 0:
            out.append(0)
            out.extend(v)
        else:
            out.append(1)
            out.append(v)
    return bytes(out)


def set_response(invoke, dar):
    """SET-Response-Normal ``C5 01 <invoke> <dar>``."""
    return bytes((SET_RESPONSE, 1, invoke, dar))


def action_response(invoke, result, data=None):
    """ACTION-Response-Normal: ``C7 01 <invoke> <result> 00`` or with return data
    ``C7 01 <invoke> <result> 01 00 <data>``."""
    head = bytes((ACTION_RESPONSE, 1, invoke, result))
    if data is None:
        return head + b"\x00"
    return head + b"\x01\x00" + bytes(data)


def exception_response(state_error, service_error):
    """ExceptionResponse ``D8 <state-error> <service-error>``."""
    return bytes((EXCEPTION_RESPONSE, state_error, service_error))


# ---------------------------------------------------------------- xDLMS responses (host side)

class Response:
    """A parsed xDLMS response. ``tag``, ``kind`` (subtype; for ConfirmedServiceError the
    service choice, e.g. 1 initiateError, 5 read, 6 write), ``invoke``, ``dar`` (None on
    success), ``data`` (raw A-XDR result bytes or None), ``last`` / ``block_no`` / ``raw``
    (GET datablock), ``results`` (GET with-list: (0, data_bytes) | (1, dar)),
    ``state_error`` / ``service_error`` (ExceptionResponse ints; ConfirmedServiceError
    ``service_error`` = (type, code))."""

    def __init__(self, tag):
        self.tag = tag
        self.kind = None
        self.invoke = None
        self.dar = None
        self.data = None
        self.last = True
        self.block_no = None
        self.raw = None
        self.results = None
        self.state_error = None
        self.service_error = None

    def __repr__(self):
        return "Response(tag=0x%02X kind=%r invoke=%r dar=%r data=%r)" % (
            self.tag, self.kind, self.invoke, self.dar, self.data)


def _get_data_result(buf, p, n):
    """Get-Data-Result CHOICE at p: returns (dar or None, data or None, newpos)."""
    if p >= n:
        raise ApduError("truncated result")
    c = buf[p]
    if c == 0:
        q = _data_end(buf, p + 1)
        return None, bytes(buf[p + 1:q]), q
    if c == 1:
        if p + 2 > n:
            raise ApduError("truncated result")
        return buf[p + 1], None, p + 2
    raise ApduError("bad result choice")


def parse_response(buf):
    """Parse a GET (1 normal, 2 datablock, 3 with-list), SET (1), ACTION (1) response,
    an ExceptionResponse or a ConfirmedServiceError. Raises ApduError."""
    n = len(buf)
    if n < 3:
        raise ApduError("truncated response")
    tag = buf[0]
    r = Response(tag)
    if tag == EXCEPTION_RESPONSE:
        r.state_error = buf[1]
        r.service_error = buf[2]
        return r
    if tag == CONFIRMED_SERVICE_ERROR:
        if n < 4:
            raise ApduError("truncated ConfirmedServiceError")
        r.kind = buf[1]
        r.service_error = (buf[2], buf[3])
        return r
    r.kind = buf[1]
    r.invoke = buf[2]
    p = 3
    if tag == GET_RESPONSE:
        if r.kind == 1:
            r.dar, r.data, p = _get_data_result(buf, p, n)
        elif r.kind == 2:
            if p + 6 > n:
                raise ApduError("truncated datablock")
            r.last = buf[p] != 0
            r.block_no = _u32(buf, p + 1)
            p += 5
            if buf[p] == 0:
                try:
                    ln, p = axdr.decode_length(buf, p + 1)
                except axdr.AxdrError:
                    raise ApduError("truncated datablock")
                if p + ln > n:
                    raise ApduError("truncated datablock")
                r.raw = bytes(buf[p:p + ln])
            elif buf[p] == 1:
                if p + 2 > n:
                    raise ApduError("truncated datablock")
                r.dar = buf[p + 1]
            else:
                raise ApduError("bad datablock choice")
        elif r.kind == 3:
            try:
                cnt, p = axdr.decode_length(buf, p)
            except axdr.AxdrError:
                raise ApduError("truncated list")
            if cnt * 2 > n - p:
                raise ApduError("truncated list")
            r.results = []
            for _ in range(cnt):
                dar, data, p = _get_data_result(buf, p, n)
                r.results.append((0, data) if dar is None else (1, dar))
        else:
            raise ApduError("unsupported GET response", SERVICE_NOT_SUPPORTED)
    elif tag == SET_RESPONSE:
        if r.kind != 1:
            raise ApduError("unsupported SET response", SERVICE_NOT_SUPPORTED)
        if n < 4:
            raise ApduError("truncated SET response")
        r.dar = buf[3] or None
    elif tag == ACTION_RESPONSE:
        if r.kind != 1:
            raise ApduError("unsupported ACTION response", SERVICE_NOT_SUPPORTED)
        if n < 4:
            raise ApduError("truncated ACTION response")
        r.dar = buf[3] or None
        if n > 4 and buf[4]:
            dar, data, p = _get_data_result(buf, 5, n)
            r.data = data
            if r.dar is None:
                r.dar = dar
    else:
        raise ApduError("unsupported response 0x%02X" % tag, SERVICE_NOT_SUPPORTED)
    return r
