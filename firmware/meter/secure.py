"""Association security of the meter: the global key set, invocation counters, ciphered APDUs,
HLS pass 3/4 and the security setup methods (Green Book §9.2.7, security suite 0;
docs/CONTRACTS.md "Security").

Loaded only when config.json has a ``security`` section (per-meter secrets, provisioned by
``meterctl flash/provision``; there are no defaults), and then only while needed: at boot
(``load``: the key record), and from an HLS AARQ until that association ends
(``meter.acse.code``/``drop``: this module, ``protocol.security``/``gcm``/``aes`` and the
Suite0 leave the heap in between). What must survive is data in the resident key record
(``Keys``, functions here take it as ``k``; a class without methods keeps neither its
module nor code alive): keys as bytes, counters, limits::

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
import json
import os

from protocol import apdu
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
_OTHER = const(250)
_TYPE_UNMATCHED = const(12)
_SC = const(0x30)              # authenticated and encrypted
_EV_CONFIG = const(21)         # meter.events

# session record of an association (Association.sess): client title, StoC, CtoS, mechanism,
# ciphered context, HLS pass 3 still pending
PEER = const(0)
STOC = const(1)
CTOS = const(2)
MECH = const(3)
CIPH = const(4)
PENDING = const(5)


def _hex(d, k, n=16):
    v = d.get(k)
    if not v:
        return None
    b = bytes.fromhex(v)
    if len(b) != n:
        raise ValueError("security.%s: %d bytes wanted" % (k, n))
    return b


class Keys:
    """The resident key record (data only: keys as bytes, system title, mechanisms, policy,
    invocation counters and their reserved limits)."""


def load(meter, sec):
    """The key record (``Keys``) from the config ``security``
    section ``sec``: keys as bytes, ``tx`` next sender IC, ``rx`` lowest acceptable receive IC,
    their reserved limits (file ``ic`` written once per boot). Raises ValueError when EK, AK or
    the system title is missing or malformed."""
    k = Keys()
    k.meter = meter
    k.ek, k.ak = _hex(sec, "ek"), _hex(sec, "ak")
    k.title = _hex(sec, "title", 8)
    if k.ek is None or k.ak is None or k.title is None:
        raise ValueError("security: ek, ak and title are required")
    k.kek = _hex(sec, "kek")
    h = sec.get("hls")
    k.hls = bytes.fromhex(h) if h else None
    m = sec.get("mech") or {}
    k.mech = {1: int(m.get("1", 5)), 48: int(m.get("48", 5))}
    k.policy = int(sec.get("policy", 3))
    k.suite = None                 # protocol.security.Suite0 while this module is loaded
    k.new = None                   # key set to apply once the reply has left
    k.path = meter.board.path("ic")
    try:
        with open(k.path, "rb") as f:
            b = f.read(8)
        t = (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]
        r = (b[4] << 24) | (b[5] << 16) | (b[6] << 8) | b[7]
    except (OSError, IndexError):
        t, r = 1, 0
    k.tx, k.rx = t, r
    k.tx_lim, k.rx_lim = t, r
    k.saves = 0
    _reserve(k)
    return k


def suite(k):
    """``k.suite`` (built from the resident keys when this module was loaded again)."""
    if k.suite is None:
        k.suite = S.Suite0(k.ek, k.ak)
    return k.suite


def _reserve(k):
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
        raise S.SecurityError("sender invocation counter exhausted: change the keys")
    k.tx = ic + 1
    if k.tx >= k.tx_lim:
        _reserve(k)
    return ic


def accepted(k, ic):
    """Receive counter ``ic`` was used: only higher ones are accepted from now on."""
    k.rx = ic + 1
    if k.rx >= k.rx_lim:
        _reserve(k)


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
    if not a.open or client != a.client or sess is None or not sess[CIPH]:
        return apdu.exception_response(_SERVICE_NOT_ALLOWED, 1)
    b = buf
    try:
        b[0] = b[0]             # the link's reassembly buffer: deciphered in place
    except TypeError:
        b = bytearray(buf)      # a frame's bytes: copied
    s = suite(k)
    try:
        s.open(b, 0, len(b), sess[PEER], k.rx)
    except S.CounterError:
        r = k.rx
        return bytes((_EXCEPTION_RESPONSE, _SERVICE_NOT_ALLOWED, _IC_ERROR, r >> 24, (r >> 16) & 255,
                      (r >> 8) & 255, r & 255))
    except S.SecurityError:
        return bytes((_EXCEPTION_RESPONSE, _SERVICE_NOT_ALLOWED, _DECIPHERING_ERROR))
    accepted(k, s.ic)
    form = S.reply_form(s.tag)
    a.inner = True
    try:
        resp = a.handle(client, memoryview(b)[s.start:s.end])
    finally:
        a.inner = False
    if resp is None or resp[0] == _EXCEPTION_RESPONSE:
        return resp     # an ExceptionResponse has no ciphered form: sent in clear (Green Book 9.3.5)
    out = seal(k, resp, form)
    apply(k)
    return out


def apply(k):
    """Use the keys of a key transfer (after its reply was sealed with the old ones)."""
    if k.new is not None:
        ek, ak, kek = k.new
        k.new = None
        suite(k).set_keys(ek, ak)
        k.ek = ek or k.ek          # resident: the suite is built from them at the next load
        k.ak = ak or k.ak
        k.kek = kek


def open_initiate(k, title, ui):
    """Decipher a glo-initiate-request (AARQ user-information) from ``title``. Returns the
    InitiateRequest bytes, or None when it does not verify (wrong key, replayed IC)."""
    if not ui or ui[0] != 0x21 or title is None or len(title) != 8:
        return None
    b = bytearray(ui)
    s = suite(k)
    try:
        s.open(b, 0, len(b), title, k.rx)
    except S.SecurityError:
        return None
    accepted(k, s.ic)
    return bytes(b[s.start:s.end])


def initiate_response(k, conf, max_pdu):
    """The glo-initiate-response (bytes) of an accepted ciphered AARQ."""
    return bytes(seal(k, apdu.initiate_response(conf, max_pdu), S.FORM_GLO))


def challenge(k):
    """A fresh 16-byte StoC."""
    return os.urandom(16)


# ------------------------------------------------------------------ HLS pass 3/4

def pass3(k, a, value):
    """reply_to_HLS_authentication: the client's f(StoC) ``value`` -> (action-result,
    return data). Success: f(CtoS) and the association is up; failure: read-write-denied,
    the association is dropped and the failure counts towards the lock-out."""
    sess = a.sess
    e = None                       # mechanism 2: one AES object for f(StoC) and f(CtoS)
    if sess[MECH] == 5:
        ok = suite(k).hls_check(sess[PEER], sess[STOC], value, 0, len(value))
    else:
        e = S.ecb(k.hls) if k.hls is not None else None
        ok = e is not None and S.hls_ecb_check(e, sess[STOC], value)
    lk = getattr(k.meter, "lockout", None)
    if not ok:
        client = a.client
        a.reset()
        if lk is not None:
            lk.fail(client)
        return _DENIED, None
    if lk is not None:
        lk.ok(a.client)
    sess[PENDING] = False
    a.guard = bool(sess[CIPH])
    if sess[MECH] == 5:
        out = bytearray(S.HLS_LEN)
        suite(k).hls_gmac(k.title, next_ic(k), sess[CTOS], out)
    else:
        out = S.hls_ecb(e, sess[CTOS])
    return 0, b"\x09" + bytes((len(out),)) + bytes(out)


# ------------------------------------------------------------------ IC 64 methods

def method(k, m, tagged):
    """IC 64 v0: 1 security_activate(enum policy), 2 global_key_transfer(array of
    {key_id enum, wrapped key octet-string}) -> action-result. Keys are unwrapped with the
    KEK (RFC 3394), written to config.json in one rename (a power cut leaves the old or
    the new set) and used from the next APDU on."""
    if m == 1:
        return 0 if tagged is not None and tagged[1] == k.policy else _OTHER
    if tagged is None or tagged[0] != 1 or k.kek is None:
        return _TYPE_UNMATCHED if tagged is None or tagged[0] != 1 else _OTHER
    if not tagged[1]:
        return _OTHER       # nothing to transfer: no config write, no "keys changed" event
    from protocol import keywrap
    keys = [None, None, k.kek]           # ek, ak, kek
    try:
        for item in tagged[1]:
            kid, w = item[1][0][1], item[1][1][1]
            if kid not in (0, 2, 3):
                return _OTHER
            keys[(0, 0, 1, 2)[kid]] = keywrap.unwrap(k.kek, bytes(w))
    except (keywrap.KeyWrapError, ValueError, TypeError, IndexError):
        return _OTHER
    if any(x is not None and len(x) != 16 for x in keys):
        return _OTHER
    path = k.meter.board.path("config.json")
    with open(path) as f:
        cfg = json.load(f)
    sec = cfg.setdefault("security", {})
    for n, v in zip(("ek", "ak", "kek"), keys):
        if v is not None:
            sec[n] = v.hex()
    tmp = path + ".tmp"                     # beside it: a rename never crosses file systems
    with open(tmp, "w") as f:
        json.dump(cfg, f)
    os.rename(tmp, path)
    k.new = tuple(keys)
    k.meter.event(_EV_CONFIG, "keys changed", "keys")
    return 0
