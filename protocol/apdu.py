"""DLMS/COSEM application layer, meter side: LN referencing, no ciphering
(IEC 62056-5-3 §9 / DLMS UA 1000-2 "Green Book" §9.3-9.5; ACSE per ISO/IEC 8650 in BER).

What the meter needs and nothing more (the device image holds this module; every name here
costs heap on the board): ``parse_aarq``/``build_aare``, ``parse_rlrq``/``build_rlre``,
``parse_request`` (GET normal/next/with-list, SET normal, ACTION normal) and the response
builders. The host side (``build_aarq``, ``parse_aare``, request builders, ``parse_response``
and the full set of tag/result constants) is ``protocol.apdu_client``, which re-exports this
module, so host code imports ``apdu_client`` only.

``invoke`` is always the whole Invoke-Id-And-Priority byte (e.g. 0xC1), echoed by the
meter. Attribute/method data are already-encoded A-XDR bytes (``protocol.axdr``).
Errors: ``ApduError`` (a ValueError) with ``.service_error``, the ExceptionResponse
service-error a server should answer with (2 service-not-supported, 3 other-reason); its
text is one word: "truncated", "format" (malformed) or "request" (unsupported service): a
literal of at most 10 characters is a name in the image, not a str object in the board's heap,
and these three are names the board has anyway (docs/MEMORY.md).
"""
from protocol import axdr

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# private, folded by mpy-cross (public in protocol.apdu_client; meter.server keeps its own copies)
_AARQ = const(0x60)
_RLRQ = const(0x62)
_GET_REQUEST = const(0xC0)
_SET_REQUEST = const(0xC1)
_ACTION_REQUEST = const(0xC3)
_GET_RESPONSE = const(0xC4)
_CONTEXT_LN = const(1)          # application-context-name 2.16.756.5.8.1.x
_MECH_NONE = const(0)           # mechanism-name 2.16.756.5.8.2.x
_MECH_LLS = const(1)
_DAR_LONG_GET_ABORTED = const(15)
_DAR_NO_LONG_GET_IN_PROGRESS = const(16)
_DAR_DATA_BLOCK_NUMBER_INVALID = const(19)
_SERVICE_PDU_TOO_LONG = const(4)
# conformance block (Green Book §9.4.6.1): bit n (0 = first bit sent) -> 1 << (23 - n)
_CONF_BLOCK_TRANSFER_WITH_GET = const(1 << (23 - 11))
_CONF_MULTIPLE_REFERENCES = const(1 << (23 - 14))
_CONF_GET = const(1 << (23 - 19))
_CONF_SET = const(1 << (23 - 20))
_CONF_SELECTIVE_ACCESS = const(1 << (23 - 21))
_CONF_ACTION = const(1 << (23 - 23))

_AARE = const(0x61)
_RLRE = const(0x63)
_SET_RESPONSE = const(0xC5)
_ACTION_RESPONSE = const(0xC7)
_EXCEPTION_RESPONSE = const(0xD8)
_CONFIRMED_SERVICE_ERROR = const(0x0E)
_INITIATE_REQUEST = const(0x01)
_SERVICE_NOT_SUPPORTED = const(2)
_SERVICE_OTHER_REASON = const(3)

_DLMS_OID = b"\x60\x85\x74\x05\x08"   # 2.16.756.5.8
# parse_aarq's list (no dict: its keys were str objects resident on the board and its table ~150 B
# per AARQ); protocol.apdu_client names them AQ_* and gives the host a dict
_AQ_CONTEXT = const(0)
_AQ_MECHANISM = const(1)
_AQ_AUTH_VALUE = const(2)
_AQ_CALLING_AP_TITLE = const(3)
_AQ_ACSE_REQUIREMENTS = const(4)
_AQ_DLMS_VERSION = const(5)
_AQ_CONFORMANCE = const(6)
_AQ_MAX_PDU = const(7)
_AQ_DEDICATED_KEY = const(8)
_AQ_USER_INFO_OK = const(9)
_AQ_USER_INFO = const(10)


class ApduError(ValueError):
    """Malformed, truncated or unsupported APDU. ``service_error`` is the ExceptionResponse
    service-error to answer with (default 3 other-reason; 2 for unsupported services)."""

    def __init__(self, msg, service_error=_SERVICE_OTHER_REASON):
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
    raise ApduError("format")


def _tlv(tag, value):
    return bytes((tag,)) + _ber_len(len(value)) + bytes(value)


def _read_tl(buf, pos, end):
    """Read a BER tag and length at pos; returns (tag, vstart, vend). Multi-byte tags
    (low bits 0x1F) are returned as the first byte | 0x100 * number."""
    if pos >= end:
        raise ApduError("truncated")
    tag = buf[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        num = 0
        while True:
            if pos >= end:
                raise ApduError("truncated")
            b = buf[pos]
            pos += 1
            num = (num << 7) | (b & 0x7F)
            if not b & 0x80:
                break
            if num > 0xFFFF:
                raise ApduError("format")
        tag = tag | (num << 8)
    if pos >= end:
        raise ApduError("truncated")
    n = buf[pos]
    pos += 1
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 2 or pos + k > end:
            raise ApduError("format")
        n = 0
        for i in range(k):
            n = (n << 8) | buf[pos + i]
        pos += k
    if pos + n > end:
        raise ApduError("truncated")
    return tag, pos, pos + n


def _outer(buf, tag):
    """Check the outer APDU tag and length; returns (pos, end) of its contents."""
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise ApduError("format")
    n = len(buf)
    if n < 2 or buf[0] != tag:
        raise ApduError("format")
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
    return bytes((0x5F, 0x1F, 4, 0, (conf >> 16) & 0xFF, (conf >> 8) & 0xFF, conf & 0xFF))


def _conformance(buf, p, end):
    """Parse ``5F 1F 04 <unused> c c c`` at p; returns (conformance, newpos)."""
    if p + 7 > end or buf[p] != 0x5F or buf[p + 1] != 0x1F or buf[p + 2] != 0x04:
        raise ApduError("format")
    c = (buf[p + 4] << 16) | (buf[p + 5] << 8) | buf[p + 6]
    return c, p + 7


def _context_name(context):
    return b"\xA1\x09\x06\x07" + _DLMS_OID + bytes((1, context))


# ---------------------------------------------------------------- _AARQ / AARE

def _parse_initiate_request(buf, s, e, out):
    p = s
    if p >= e or buf[p] != _INITIATE_REQUEST:
        raise ApduError("format")
    p += 1
    if p >= e:
        raise ApduError("truncated")
    if buf[p]:                                   # dedicated-key OPTIONAL
        n, p = axdr.decode_length(buf, p + 1)
        if p + n > e:
            raise ApduError("truncated")
        out[_AQ_DEDICATED_KEY] = bytes(buf[p:p + n])
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
    out[_AQ_DLMS_VERSION] = version
    out[_AQ_CONFORMANCE] = conf
    out[_AQ_MAX_PDU] = _u16(buf, p)


def parse_initiate_request(buf, out):
    """Parse an xDLMS InitiateRequest ``buf`` (e.g. a deciphered glo-initiate-request) into the
    list ``out`` (parse_aarq's: dedicated_key, dlms_version, conformance, max_pdu). Raises
    ApduError."""
    try:
        _parse_initiate_request(buf, 0, len(buf), out)
    except axdr.AxdrError:
        raise ApduError("format")


def parse_aarq(buf):
    """Parse an _AARQ (Green Book §9.4.2, ISO/IEC 8650 BER) into a list (indices ``_AQ_*``;
    ``protocol.apdu_client.parse_aarq`` gives the host a dict with these names as keys):

    context (last arc of 2.16.756.5.8.1.x or None), mechanism (last arc of
    2.16.756.5.8.2.x or None), auth_value (bytes or None), calling_ap_title (bytes or
    None), acse_requirements (int, bit 0 = authentication functional unit), dlms_version,
    conformance (24-bit int), max_pdu (0 when no usable InitiateRequest), dedicated_key
    (bytes or None), user_info_ok (InitiateRequest present and parseable), user_info (the
    user-information octets, bytes or None: a glo-initiate-request for ``parse_initiate_request``
    once deciphered).
    Unknown elements are skipped. Raises ApduError if the BER structure is malformed.
    """
    p, end = _outer(buf, _AARQ)
    out = [None, None, None, None, 0, 0, 0, 0, None, False, None]
    while p < end:
        tag, s, e = _read_tl(buf, p, end)
        p = e
        if tag == 0xA1:                          # application-context-name
            t, s2, e2 = _read_tl(buf, s, e)
            if t == 0x06:
                out[_AQ_CONTEXT] = _oid_arc(buf, s2, e2, 1)
        elif tag == 0x8A:                        # sender-acse-requirements (BIT STRING)
            out[_AQ_ACSE_REQUIREMENTS] = 1 if (e - s >= 2 and buf[s + 1] & 0x80) else 0
        elif tag == 0x8B:                        # mechanism-name (implicit OID)
            out[_AQ_MECHANISM] = _oid_arc(buf, s, e, 2)
        elif tag == 0xAC:                        # calling-authentication-value
            t, s2, e2 = _read_tl(buf, s, e)
            if t == 0x80 or t == 0x81:
                out[_AQ_AUTH_VALUE] = bytes(buf[s2:e2])
        elif tag == 0xA6:                        # calling-AP-title
            t, s2, e2 = _read_tl(buf, s, e)
            if t == 0x04:
                out[_AQ_CALLING_AP_TITLE] = bytes(buf[s2:e2])
        elif tag == 0xBE:                        # user-information
            t, s2, e2 = _read_tl(buf, s, e)
            if t == 0x04:
                out[_AQ_USER_INFO] = bytes(buf[s2:e2])
                try:
                    _parse_initiate_request(buf, s2, e2, out)
                    out[_AQ_USER_INFO_OK] = True
                except (ApduError, axdr.AxdrError):
                    out[_AQ_USER_INFO_OK] = False
    return out


def initiate_response(conformance, max_pdu, dlms_version=6, vaa_name=0x0007):
    """xDLMS InitiateResponse ``08 00 <ver> 5F 1F 04 00 <conf3> <maxpdu2> <vaa2>`` (bytes)."""
    return bytes((8, 0, dlms_version)) + _conf_bytes(conformance) + \
        bytes((max_pdu >> 8, max_pdu & 0xFF, vaa_name >> 8, vaa_name & 0xFF))


def build_aare(result, diagnostic, context=_CONTEXT_LN, conformance=0, max_pdu=256,
               mechanism=None, diag_provider=False, dlms_version=6, vaa_name=0x0007,
               initiate_error=None, ap_title=None, auth_value=None, user_info=None):
    """Build an AARE (Green Book §9.4.2).

    result: 0 accepted, 1 rejected-permanent, 2 rejected-transient. diagnostic: an
    acse-service-user value (DIAG_*) or, with ``diag_provider``, acse-service-provider.
    ``mechanism`` (e.g. _MECH_LLS) adds responder-acse-requirements (88) and
    mechanism-name (89). user-information is always present: a ConfirmedServiceError
    ``0E 01 a b`` when ``initiate_error=(a, b)`` (e.g. (6, 1) DLMS version too low), else an
    xDLMS InitiateResponse ``08 00 <ver> 5F 1F 04 00 <conf3> <maxpdu2> <vaa2>`` with
    ``conformance``/``max_pdu``/``vaa_name``; or ``user_info`` as given (bytes, e.g. a
    glo-initiate-response). HLS adds ``ap_title`` (responding-AP-title A4, 8 bytes) and
    ``auth_value`` (responding-authentication-value AA, the server's challenge StoC).
    """
    body = bytearray(_context_name(context))
    # built from ints, not bytes literals: each literal is an object in the board's heap
    body.extend(bytes((0xA2, 3, 2, 1, result, 0xA3, 5, 0xA2 if diag_provider else 0xA1, 3, 2, 1,
                       diagnostic)))
    if ap_title is not None:
        body.extend(_tlv(0xA4, _tlv(0x04, ap_title)))
    if mechanism is not None:
        body.extend(b"\x88\x02\x07\x80\x89\x07" + _DLMS_OID + bytes((2, mechanism)))
    if auth_value is not None:
        body.extend(_tlv(0xAA, _tlv(0x80, auth_value)))
    if user_info is not None:
        ui = user_info
    elif initiate_error is not None:
        ui = bytes((_CONFIRMED_SERVICE_ERROR, 1, initiate_error[0], initiate_error[1]))
    else:
        ui = initiate_response(conformance, max_pdu, dlms_version, vaa_name)
    body.extend(_tlv(0xBE, _tlv(0x04, ui)))
    return _tlv(_AARE, body)


# ---------------------------------------------------------------- _RLRQ / RLRE

def build_rlre(reason=0):
    """RLRE with reason (0 normal): ``63 03 80 01 <reason>``."""
    return bytes((_RLRE, 3, 0x80, 1, reason))


def _parse_release(buf, tag):
    p, end = _outer(buf, tag)
    out = {"reason": None, "user_info": None}
    while p < end:
        t, s, e = _read_tl(buf, p, end)
        p = e
        if t == 0x80:
            if e - s != 1:
                raise ApduError("format")
            out["reason"] = buf[s]
        elif t == 0xBE:
            out["user_info"] = bytes(buf[s:e])
    return out


def parse_rlrq(buf):
    """Parse an _RLRQ: ``{"reason": int or None, "user_info": bytes or None}``; tolerates
    user-information (dlms-cosem sends ``62 15 80 01 00 BE 10 ...``)."""
    return _parse_release(buf, _RLRQ)


# ---------------------------------------------------------------- xDLMS requests

class Request:
    """A parsed xDLMS request: ``tag`` (0xC0/0xC1/0xC3), ``kind`` (subtype), ``invoke``
    (byte to echo), ``items`` (list of (class_id, obis6, index, selector or None,
    params bytes or None: GET/SET access parameters are a slice of ``buf``, a GET-Request-Normal's
    to the APDU's end)), ``value`` (SET normal, A-XDR bytes: a slice of ``buf``), ``block_no`` (GET next)."""

    def __init__(self, tag, kind, invoke):
        self.tag = tag
        self.kind = kind
        self.invoke = invoke
        self.items = []
        self.value = None
        self.block_no = None


def _data_end(buf, p):
    try:
        return axdr.skip(buf, p)
    except axdr.AxdrError:
        raise ApduError("format")


def _item(buf, p, n, method):
    if p + 9 > n:
        raise ApduError("truncated")
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
        raise ApduError("format")
    if flag:
        if method:
            q = _data_end(buf, p)
            params = buf[p:q]           # a view too (meter.cosem.act decodes it at once): no copy
            p = q
        else:
            if p >= n:
                raise ApduError("truncated")
            selector = buf[p]
            q = _data_end(buf, p + 1)
            params = buf[p + 1:q]       # a view of the request (a memoryview's): no copy
            p = q
    return (class_id, obis6, index, selector, params), p


def parse_request(buf):
    """Parse a GET (normal 1, next 2, with-list 3), SET (normal 1) or ACTION (normal 1)
    request into a ``Request``. Other services/subtypes -> ApduError(service_error=2);
    truncated or malformed -> ApduError(service_error=3)."""
    n = len(buf)
    if n < 3:
        if n >= 1 and buf[0] != _GET_REQUEST and buf[0] != _SET_REQUEST and buf[0] != _ACTION_REQUEST:
            raise ApduError("request", _SERVICE_NOT_SUPPORTED)
        raise ApduError("truncated")
    tag = buf[0]
    kind = buf[1]
    r = Request(tag, kind, buf[2])
    p = 3
    if tag == _GET_REQUEST:
        if kind == 1:
            item, p = _item(buf, p, n, False)
            if p < n and item[3] is not None:
                # bytes after the access parameters go with them: the object refuses such a
                # parameter (IC 7: type-unmatched) instead of reading it without them
                item = item[:4] + (buf[p - len(item[4]):n],)
            r.items.append(item)
        elif kind == 2:
            if p + 4 > n:
                raise ApduError("truncated")
            r.block_no = _u32(buf, p)
            p += 4
        elif kind == 3:
            try:
                cnt, p = axdr.decode_length(buf, p)
            except axdr.AxdrError:
                raise ApduError("truncated")
            if cnt * 10 > n - p:
                raise ApduError("truncated")
            for _ in range(cnt):
                item, p = _item(buf, p, n, False)
                r.items.append(item)
        else:
            raise ApduError("request", _SERVICE_NOT_SUPPORTED)
    elif tag == _SET_REQUEST:
        if kind != 1:
            raise ApduError("request", _SERVICE_NOT_SUPPORTED)
        item, p = _item(buf, p, n, False)
        r.items.append(item)
        q = _data_end(buf, p)
        r.value = buf[p:q]              # a view of the request (a memoryview's): no copy
        p = q
    elif tag == _ACTION_REQUEST:
        if kind != 1:
            raise ApduError("request", _SERVICE_NOT_SUPPORTED)
        item, p = _item(buf, p, n, True)
        r.items.append(item)
    else:
        raise ApduError("request", _SERVICE_NOT_SUPPORTED)
    return r


# ---------------------------------------------------------------- xDLMS responses

def _block_head(invoke, last, block_no):
    return bytes((_GET_RESPONSE, 2, invoke, 1 if last else 0, (block_no >> 24) & 0xFF,
                  (block_no >> 16) & 0xFF, (block_no >> 8) & 0xFF, block_no & 0xFF))


def get_response(invoke, data):
    """GET-Response-Normal with data: ``C4 01 <invoke> 00 <data>``."""
    return bytes((_GET_RESPONSE, 1, invoke, 0)) + bytes(data)


def get_response_error(invoke, dar):
    """GET-Response-Normal with a Data-Access-Result: ``C4 01 <invoke> 01 <dar>``."""
    return bytes((_GET_RESPONSE, 1, invoke, 1, dar))


def get_response_block(invoke, last, block_no, raw):
    """GET-Response-With-Datablock: ``C4 02 <invoke> <last> <block u32> 00 <len> <raw>``."""
    return _block_head(invoke, last, block_no) + bytes(1) + axdr.encode_length(len(raw)) + \
        bytes(raw)


def get_response_block_error(invoke, block_no, dar):
    """GET-Response-With-Datablock ending in an error: ``C4 02 <invoke> 01 <block> 01 <dar>``."""
    return _block_head(invoke, True, block_no) + bytes((1, dar))


def set_response(invoke, dar):
    """SET-Response-Normal ``C5 01 <invoke> <dar>``."""
    return bytes((_SET_RESPONSE, 1, invoke, dar))


def action_response(invoke, result, data=None):
    """ACTION-Response-Normal: ``C7 01 <invoke> <result> 00`` or with return data
    ``C7 01 <invoke> <result> 01 00 <data>``."""
    if data is None:
        return bytes((_ACTION_RESPONSE, 1, invoke, result, 0))
    return bytes((_ACTION_RESPONSE, 1, invoke, result, 1, 0)) + bytes(data)


def exception_response(state_error, service_error):
    """ExceptionResponse ``D8 <state-error> <service-error>``."""
    return bytes((_EXCEPTION_RESPONSE, state_error, service_error))
