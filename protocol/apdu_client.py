"""DLMS/COSEM application layer, host (client) side: LN referencing, no ciphering
(IEC 62056-5-3 §9 / DLMS UA 1000-2 "Green Book" §9.3-9.5; ACSE per ISO/IEC 8650 in BER).

Host code imports this module only (``from protocol import apdu_client as apdu``): it
re-exports the meter side (``protocol.apdu``: ``parse_aarq``, ``build_aare``, ``parse_rlrq``,
``build_rlre``, ``parse_request``, the response builders, ``ApduError``) and adds what only a
client needs, which the device image leaves out (``host_tools.build.HOST_ONLY``):

- ACSE (BER): ``build_aarq``, ``parse_aare``, ``build_rlrq``, ``parse_rlre``.
- xDLMS requests: GET normal/next/with-list, SET normal, ACTION normal.
- ``parse_response``: GET normal/block/with-list, SET, ACTION, ExceptionResponse,
  ConfirmedServiceError; ``get_response_list`` (GET-Response-With-List builder).
- every tag, result, diagnostic, Data-Access-Result and conformance constant, and the name
  tables of the results, diagnostics and errors (``DAR_NAMES``, ``AARE_DIAG_NAMES``, ...).

``invoke`` is always the whole Invoke-Id-And-Priority byte (e.g. 0xC1). Attribute/method
data are already-encoded A-XDR bytes (``protocol.axdr``). Errors: ``ApduError``.
Runs on CPython and MicroPython (the device tests use it to build requests).
"""
from protocol import apdu as _meter
from protocol import axdr
from protocol.apdu import *  # noqa: F401,F403  (the meter side, re-exported)
from protocol.apdu import (ApduError, _conf_bytes, _conformance, _context_name, _data_end,
                           _DLMS_OID, _oid_arc, _outer, _parse_release, _read_tl, _tlv, _u16,
                           _u32)

# indices of the meter's parse_aarq list (the keys of this module's parse_aarq dict: AARQ_KEYS)
AQ_CONTEXT = 0
AQ_MECHANISM = 1
AQ_AUTH_VALUE = 2
AQ_CALLING_AP_TITLE = 3
AQ_ACSE_REQUIREMENTS = 4
AQ_DLMS_VERSION = 5
AQ_CONFORMANCE = 6
AQ_MAX_PDU = 7
AQ_DEDICATED_KEY = 8
AQ_USER_INFO_OK = 9
AQ_USER_INFO = 10
AARQ_KEYS = ("context", "mechanism", "auth_value", "calling_ap_title", "acse_requirements",
             "dlms_version", "conformance", "max_pdu", "dedicated_key", "user_info_ok", "user_info")

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
SERVICE_PDU_TOO_LONG = 4
SERVICE_NOT_SUPPORTED = 2
SERVICE_OTHER_REASON = 3
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

# ---------------------------------------------------------------- names (host only: messages, decoder)

# Data-Access-Result (IEC 62056-6-2 / Blue Book "Data-Access-Result"; Action-Result shares them)
DAR_NAMES = {
    0: "success", 1: "hardware-fault", 2: "temporary-failure", 3: "read-write-denied",
    4: "object-undefined", 9: "object-class-inconsistent", 11: "object-unavailable",
    12: "type-unmatched", 13: "scope-of-access-violated", 14: "data-block-unavailable",
    15: "long-get-aborted", 16: "no-long-get-in-progress", 17: "long-set-aborted",
    18: "no-long-set-in-progress", 19: "data-block-number-invalid", 250: "other-reason",
}
# ACSE associate-source-diagnostic, acse-service-user (IEC 62056-5-3 §9, ISO/IEC 8650-1)
AARE_DIAG_NAMES = {
    0: "null", 1: "no-reason-given", 2: "application-context-name-not-supported",
    3: "calling-AP-title-not-recognized", 4: "calling-AP-invocation-identifier-not-recognized",
    5: "calling-AE-qualifier-not-recognized",
    6: "calling-AE-invocation-identifier-not-recognized", 7: "called-AP-title-not-recognized",
    8: "called-AP-invocation-identifier-not-recognized", 9: "called-AE-qualifier-not-recognized",
    10: "called-AE-invocation-identifier-not-recognized",
    11: "authentication-mechanism-name-not-recognised",
    12: "authentication-mechanism-name-required", 13: "authentication-failure",
    14: "authentication-required",
}
RESULT_NAMES = {0: "accepted", 1: "rejected-permanent", 2: "rejected-transient"}
# ExceptionResponse (IEC 62056-5-3 §8): state-error / service-error
STATE_ERROR_NAMES = {1: "service-not-allowed", 2: "service-unknown"}
SERVICE_ERROR_NAMES = {1: "operation-not-possible", 2: "service-not-supported", 3: "other-reason",
                       4: "pdu-too-long", 5: "deciphering-error", 6: "invocation-counter-error"}
# ConfirmedServiceError, ServiceError choice 6 "initiate"
INITIATE_ERROR_NAMES = {0: "other", 1: "dlms-version-too-low", 2: "incompatible-conformance",
                        3: "pdu-size-too-short", 4: "refused-by-the-VDE-handler"}
MECHANISM_NAMES = {0: "none", 1: "LLS", 2: "HLS", 3: "HLS-MD5", 4: "HLS-SHA1", 5: "HLS-GMAC",
                   6: "HLS-SHA256", 7: "HLS-ECDSA"}
CONTEXT_NAMES = {1: "LN", 2: "SN", 3: "LN-ciphered", 4: "SN-ciphered"}
# conformance block bit n (0 = first bit sent), Green Book §9.4.6.1
CONFORMANCE_NAMES = (
    "reserved0", "general-protection", "general-block-transfer", "read", "write",
    "unconfirmed-write", "delta-value-encoding", "reserved7", "attribute0-set", "priority-mgmt",
    "attribute0-get", "block-transfer-with-get", "block-transfer-with-set",
    "block-transfer-with-action", "multiple-references", "information-report",
    "data-notification", "access", "parameterized-access", "get", "set", "selective-access",
    "event-notification", "action")


def conformance_names(conf):
    """The names of the bits set in a 24-bit conformance block (list of str)."""
    return [name for i, name in enumerate(CONFORMANCE_NAMES) if conf & (1 << (23 - i))]


# ---------------------------------------------------------------- ACSE, client side

def parse_aarq(buf):
    """``protocol.apdu.parse_aarq`` (the meter's list) as a dict keyed by ``AARQ_KEYS`` (context,
    mechanism, auth_value, calling_ap_title, acse_requirements, dlms_version, conformance,
    max_pdu, dedicated_key, user_info_ok, user_info). Raises ApduError."""
    return dict(zip(AARQ_KEYS, _meter.parse_aarq(buf)))


def parse_initiate_request(buf, out):
    """Parse an xDLMS InitiateRequest ``buf`` into the dict ``out``: dlms_version, conformance,
    max_pdu and, when the request has one, dedicated_key. Raises ApduError."""
    r = [None, None, None, None, 0, 0, 0, 0, None, False, None]
    _meter.parse_initiate_request(buf, r)
    for i in (AQ_DLMS_VERSION, AQ_CONFORMANCE, AQ_MAX_PDU, AQ_DEDICATED_KEY):
        if i != AQ_DEDICATED_KEY or r[i] is not None:
            out[AARQ_KEYS[i]] = r[i]


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


def initiate_response(conformance, max_pdu, dlms_version=6, vaa_name=0x0007):
    """xDLMS InitiateResponse (A-XDR): ``08 00 <ver> 5F 1F 04 00 <conf3> <maxpdu2> <vaa2>``."""
    return b"\x08\x00" + bytes((dlms_version,)) + _conf_bytes(conformance) + \
        bytes((max_pdu >> 8, max_pdu & 0xFF, vaa_name >> 8, vaa_name & 0xFF))


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


def build_rlrq(reason=0):
    """RLRQ with reason (0 normal): ``62 03 80 01 <reason>``."""
    return bytes((RLRQ, 3, 0x80, 1, reason))


def parse_rlre(buf):
    """Parse an RLRE: ``{"reason": int or None, "user_info": bytes or None}``."""
    return _parse_release(buf, RLRE)


# ---------------------------------------------------------------- xDLMS requests

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


# ---------------------------------------------------------------- xDLMS responses, client side

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
