"""Association security of the meter: the global key set, invocation counters, ciphered APDUs,
HLS pass 3/4 (Green Book §9.2.7, security suite 0; docs/CONTRACTS.md "Security"; the IC 64
methods are ``meter.keyxfer``'s).

Loaded only when config.json has a ``security`` section (per-meter secrets, provisioned by
``meterctl flash/provision``; there are no defaults), at boot (``meter.acse.keys``, with
``protocol.security`` and the suite ``k.suite``) and kept: loaded per association or per
request (sessions 11-13) its blocks did not find room in a fragmented 56 KiB heap. The key
record is ``meter.keyset.Keys`` (functions here take it as ``k``): keys (EK as ``protocol.aes.keyed``'s AES object and GHASH table,
built at boot), counters, limits::

    "security": {"ek": GUEK hex(16 B), "ak": GAK hex(16 B), "kek": master key hex(16 B),
                 "title": server system title hex(8 B), "hls": mechanism 2 secret hex (<=16 B),
                 "mech": {"1": 5, "48": 5} (HLS mechanism per client SAP: 5 GMAC, 2 AES-ECB),
                 "policy": 3 (IC 64 v0 security_policy: 0 none, 3 authenticated+encrypted)}

Invocation counters (one key set: one sender and one receiver counter), file ``ic`` = two u32
big-endian, ``tx_lim rx_lim``: the meter uses sender counters below ``tx_lim`` only, and every
receive counter below ``rx_lim`` is refused after a restart. Both limits are raised by
``_BLOCK`` at a time, so the file is written once per ``_BLOCK`` requests (and responses) and
once per boot, never per APDU: a power cut can neither repeat a sender counter nor let a
replayed request in (a restart skips at most ``_BLOCK`` values; clients re-read the frame
counter object, IC 1 0.0.43.1.x.255, as the DLMS UA practice is).
"""
from protocol import security as S

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_BLOCK = const(1024)
_U32 = const(0xFFFFFFFF)
_EXCEPTION_RESPONSE = const(0xD8)
_SERVICE_NOT_ALLOWED = const(1)
_DECIPHERING_ERROR = const(5)
_IC_ERROR = const(6)
_DENIED = const(3)             # action-result read-write-denied
_SC = const(0x30)              # authenticated and encrypted

# session record of an association (Association.sess): client title, StoC, CtoS, mechanism,
# ciphered context, HLS pass 3 still pending
_PEER = const(0)
_STOC = const(1)
_CTOS = const(2)
_MECH = const(3)
_CIPH = const(4)
_PENDING = const(5)


def suite(k):
    """``k.suite`` (built from the resident keys when this module was loaded again)."""
    if k.suite is None:
        k.suite = S.Suite0(k.ek, k.ak)
    return k.suite


def reserve(k):
    """Raise the reserved counter limits past ``tx``/``rx`` and write them (file ``ic``)."""
    if k.tx >= k.tx_lim:
        k.tx_lim = min(k.tx + _BLOCK, _U32)
    if k.rx >= k.rx_lim:
        k.rx_lim = min(k.rx + _BLOCK, _U32)
    t, r = k.tx_lim, k.rx_lim
    k.saves += 1
    with open(k.path, "wb") as f:
        f.write(bytes((t >> 24, (t >> 16) & 255, (t >> 8) & 255, t & 255,
                       r >> 24, (r >> 16) & 255, (r >> 8) & 255, r & 255)))


def next_ic(k):
    """The next sender invocation counter (never repeats, also across power cuts)."""
    ic = k.tx
    if ic >= _U32:
        raise ValueError("sender invocation counter exhausted: change the keys")
    k.tx = ic + 1
    if k.tx >= k.tx_lim:
        reserve(k)
    return ic


# ------------------------------------------------------------------ APDUs

def seal(k, resp, form):
    """Plaintext response APDU -> the ciphered APDU in ``form`` (security.reply_form). Sealed
    in place, no second buffer of the response's size: a memoryview (a GET block, built by
    ``meter.server`` with HEADROOM before and TAILROOM after the APDU) or a bytearray (the
    response buffer, its capacity kept: the room is added to it); bytes are copied."""
    n = len(resp)
    h = S.HEADROOM
    if isinstance(resp, memoryview):   # a GET block built with the room (meter.server)
        out = resp
        n -= h + S.TAILROOM
    elif isinstance(resp, bytearray):
        out = resp
        out[0:0] = bytes(h)
        out.extend(bytes(S.TAILROOM))
    else:
        out = bytearray(h + n + S.TAILROOM)
        out[h:h + n] = resp
    p = suite(k).seal(out, h, h + n, _SC, next_ic(k), k.title, form)
    return memoryview(out)[p:h + n + S.TAG_LEN]


def unwrap(k, a, client, buf):
    """A ciphered request on association ``a`` -> the ciphered response (or an
    ExceptionResponse: deciphering-error, invocation-counter-error + expected IC)."""
    sess = a.sess
    if not a.open or client != a.client or sess is None or not sess[_CIPH]:
        return bytes((_EXCEPTION_RESPONSE, _SERVICE_NOT_ALLOWED, 1))
    b = buf
    try:
        b[0] = b[0]             # the link's frame/reassembly buffer: deciphered in place
    except TypeError:
        b = bytearray(buf)      # bytes (a host test's): copied
    s = suite(k)
    try:
        s.open(b, 0, len(b), sess[_PEER], k.rx)
        if b[s.start - 5] & _SC != _SC:     # policy 3: a request not authenticated AND encrypted
            raise ValueError("sc")          # (encryption only: no tag, its bits flip freely)
    except ValueError as e:
        if e.args[0] != "ic":      # a replay (protocol.security raises ValueError, its text says which)
            return bytes((_EXCEPTION_RESPONSE, _SERVICE_NOT_ALLOWED, _DECIPHERING_ERROR))
        r = k.rx
        return bytes((_EXCEPTION_RESPONSE, _SERVICE_NOT_ALLOWED, _IC_ERROR, r >> 24, (r >> 16) & 255,
                      (r >> 8) & 255, r & 255))
    k.rx = s.ic + 1                # only higher receive counters are accepted from now on
    if k.rx >= k.rx_lim:
        reserve(k)
    form = S.reply_form(s.tag)
    if s.end > s.start and b[s.start] == 0xC3:     # an ACTION (a token, a top-up: its journal write; rare, unlike reads):
        import gc                  # the garbage of the requests before freed first, so that its decoding
        gc.collect()               # fills small holes, not the runs its code's tables need (56k, docs/MEMORY.md)
    a.inner = True
    try:
        resp = a.handle(client, memoryview(b)[s.start:s.end])
    finally:
        a.inner = False
    if resp is None or resp[0] == _EXCEPTION_RESPONSE:
        return resp     # an ExceptionResponse has no ciphered form: sent in clear (Green Book 9.3.5)
    out = seal(k, resp, form)
    if k.new is not None:          # a key transfer's keys, used once its reply is sealed with the
        k.new[3](k, s)             # old ones: k.new = (EK, AK, KEK, meter.keyxfer.rekey)
    return out


def open_initiate(k, title, ui):
    """Decipher a glo-initiate-request (AARQ user-information) from ``title``. Returns the
    InitiateRequest bytes, or None when it does not verify (wrong key, replayed IC)."""
    if not ui or ui[0] != 0x21 or title is None or len(title) != 8:
        return None
    b = bytearray(ui)
    s = suite(k)
    try:
        s.open(b, 0, len(b), title, k.rx)
    except ValueError:
        return None
    if b[s.start - 5] & _SC != _SC:     # not authenticated and encrypted (policy 3)
        return None
    k.rx = s.ic + 1
    if k.rx >= k.rx_lim:
        reserve(k)
    return bytes(b[s.start:s.end])


# ------------------------------------------------------------------ HLS pass 3/4

def pass3(k, a, value):
    """reply_to_HLS_authentication: the client's f(StoC) ``value`` -> (action-result,
    return data). Success: f(CtoS) and the association is up; failure: read-write-denied,
    the association is dropped and the failure counts towards the lock-out."""
    sess = a.sess
    e = None                       # mechanism 2: one AES object for f(StoC) and f(CtoS)
    if sess[_MECH] == 5:
        ok = suite(k).hls_check(sess[_PEER], sess[_STOC], value, 0, len(value))
    else:
        from protocol import hlsecb as E
        e = k.hls
        if e is not None and not hasattr(e, "encrypt"):
            e = E.ecb(e)
        ok = e is not None and E.hls_ecb_check(e, sess[_STOC], value)
    lk = getattr(k.meter, "lockout", None)
    if not ok:
        client = a.client
        a.reset()
        if lk is not None:
            lk.fail(client)
        return _DENIED, None
    if lk is not None:
        lk.ok(a.client)
    sess[_PENDING] = False
    a.guard = bool(sess[_CIPH])
    if sess[_MECH] == 5:
        out = bytearray(S.HLS_LEN)
        suite(k).hls_gmac(k.title, next_ic(k), sess[_CTOS], out, 0)
    else:
        out = E.hls_ecb(e, sess[_CTOS])
    return 0, b"\x09" + bytes((len(out),)) + bytes(out)
