"""Association control of the meter: AARQ -> AARE for every association, HLS pass 3, the
security policy gate, and the wiring of secrets at boot (Green Book §9.4.2; docs/CONTRACTS.md
"DLMS server" and "Security").

Associations (client SAP -> role): 16 public (no security), 32 reader (LLS), 1 management and
48 utility settings: HLS (mechanism 5 GMAC, or 2 AES-ECB, per ``security.mech``) with the
ciphered context when a ``security`` section is provisioned, else LLS when a password is.
A client whose secret is not provisioned is refused outright (no defaults): AARE
rejected-permanent, no-reason-given. Rejections: application-context-name-not-supported (2),
calling-AP-title-not-recognized (3), mechanism-name-not-recognised (11),
authentication-required (14), authentication-failure (13, also for a glo-initiate-request
that does not verify), rejected-transient + authentication-failure while locked out
(``meter.lockout``).

``setup(meter, cfg)`` sets ``meter._pw`` (LLS passwords by client SAP), ``meter.lockout`` and
``meter.security`` (the key record from ``meter.keyset.load``, or None) from the config, and
logs when nothing is provisioned. The security code (``meter.secure`` and the protocol modules
under it) is loaded at boot and stays (``code()``); ``drop(meter)`` unloads the code of a key
transfer when an association ends (``meter.server.Association.reset``). ``aarq(assoc, client, buf)`` answers one AARQ; ``guard(assoc, tag, req)`` runs
before GET/SET/ACTION while ``assoc.guard`` is set (HLS pending: only reply_to_HLS_
authentication; protected association: plaintext requests get read-write-denied).
"""
from protocol import apdu, axdr
from meter.lockout import Lockout

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_MECH_LLS = const(1)
_CONF_GET = const(0x10)
_CONF_SET = const(0x08)
_CONF_ACTION = const(0x01)
# supported: GET, SET, ACTION, selective access, block GET, multiple references (bits 19-23, 11, 14)
_SUPPORTED_CONFORMANCE = const(0x121D)
_SERVER_MAX_PDU = const(1024)  # largest APDU we receive (announced in the AARE; cosem IC 15 attr 5)
_MIN_PDU = const(64)
_CIPHER_OVERHEAD = const(30)   # general-glo header (ST, lengths, SC, IC) + GCM tag
_GET_REQUEST = const(0xC0)
_SET_REQUEST = const(0xC1)
_DENIED = const(3)
_T_OCTET_STRING = const(9)
_EV_CONFIG = const(21)         # meter.events
_EV_AUTH_FAIL = const(30)      # meter.events
_EV_UNPROVISIONED = const(32)  # meter.events
_CURRENT_ASSOCIATION = b"\x00\x00\x28\x00\x00\xff"
# protocol.apdu.parse_aarq's list
_AQ_CONTEXT = const(0)
_AQ_MECHANISM = const(1)
_AQ_AUTH_VALUE = const(2)
_AQ_CALLING_AP_TITLE = const(3)
_AQ_DLMS_VERSION = const(5)
_AQ_CONFORMANCE = const(6)
_AQ_MAX_PDU = const(7)
_AQ_USER_INFO_OK = const(9)
_AQ_USER_INFO = const(10)


def keys(meter, sec):
    """``meter.security`` from the config ``security`` section ``sec`` (``meter.keyset.load``)
    and its suite: ``Meter.__init__`` runs this first, while nothing else of the meter is live,
    so the security code (``meter.secure``, ``protocol.security``; ``protocol.hlsecb`` for
    mechanism 2) and the suite stay where the heap is whole; ``meter.keyset`` is unloaded.
    Returns the refusal (an exception) or None."""
    meter.security = None
    if not sec:
        return None
    from meter.keyset import load
    try:
        k = meter.security = load(meter, sec)
        code()                            # resident: loaded while the heap is whole
        e = None
    except (ValueError, TypeError, AttributeError) as x:
        e = x
        unload(_SEC_CODE)
    unload(_KEYS_CODE)
    return e


def setup(meter, cfg, err=0):
    """Secrets and lock-out from the config dict ``cfg`` (after the event log exists); ``err``:
    what ``keys`` returned when it ran before (0: run it now)."""
    if err == 0:
        err = keys(meter, cfg.get("security"))
    meter._pw = cfg.get("passwords") or {}
    meter.lockout = Lockout(meter, cfg.get("lockout"))
    if err is not None:
        meter.event(_EV_CONFIG, "security refused: %s" % err, "security")
    if meter.security is None and not meter._pw:
        meter.event(_EV_UNPROVISIONED, "no secrets provisioned: public client only")


# resident on a meter with keys (loaded at boot, when the heap is whole): measured at 56k, loading
# it per association or per request failed on its 136-196 B blocks in the fragmented heap. Each
# list one str, split at unload (a tuple is a tuple and a str object per name on every board)
_SEC_CODE = "meter.secure protocol.security"
# boot, key transfers and mechanism 2 only (AES objects are made at boot, and kept; a mechanism 2
# login loads protocol.hlsecb and protocol.aes again): unloaded after boot and when an association ends
_KEYS_CODE = "meter.keyset meter.keyxfer protocol.keywrap protocol.aes protocol.hlsecb"


def unload(names):
    """Drop modules ``names`` (a str of names separated by spaces, or a tuple) from ``sys.modules``
    and their packages: on MicroPython their
    code leaves the heap until the next import. CPython keeps them (one class per exception
    type for host code)."""
    import sys
    if sys.implementation.name != "micropython":
        return
    for n in names.split() if isinstance(names, str) else names:
        sys.modules.pop(n, None)
        p, c = n.split(".")
        try:
            delattr(sys.modules[p], c)
        except (KeyError, AttributeError):
            pass


def code():
    """``meter.secure`` (resident on a meter with keys: ~2 KiB with ``protocol.security`` and the
    Suite0 on 32 bits)."""
    from meter import secure
    return secure


def drop(m):
    """An association ended: the code of a key transfer (``meter.keyxfer``, ``protocol.keywrap``)
    leaves the heap; the security code, the suite and the key record stay."""
    if getattr(m, "security", None) is not None:
        unload(_KEYS_CODE)


def _reject(diag, initiate_error=None, mech=None, result=1):
    return apdu.build_aare(result, diag, max_pdu=_SERVER_MAX_PDU, mechanism=mech,
                           initiate_error=initiate_error)


def _mechanism(m, client, role):
    """The mechanism association ``client`` requires: 0 none, 1 LLS, 2/5 HLS; None when its
    secret is not provisioned."""
    if not role:
        return 0
    sec = getattr(m, "security", None)
    if sec is not None and role == 2:
        return sec.mech.get(client, 5)
    pw = getattr(m, "_pw", None)
    return 1 if pw is None or str(client) in pw else None


def _failed(m, client):
    lk = getattr(m, "lockout", None)
    if lk is not None:
        lk.fail(client)
    rep = getattr(m.board, "report", None)
    if rep is not None:                          # reported, not logged: no flash write
        rep("event %d authentication failure, client %d" % (_EV_AUTH_FAIL, client))


def aarq(a, client, buf):
    """AARQ ``buf`` from ``client`` -> AARE bytes; on success ``a`` is open (HLS: pending)."""
    m = a.meter
    try:
        req = apdu.parse_aarq(buf)
    except apdu.ApduError:
        return _reject(1)
    role = 0 if client == 16 else (1 if client == 32 else (2 if client == 1 or client == 48 else -1))
    if role < 0:
        return _reject(1)
    want = _mechanism(m, client, role)
    if want is None:
        return _reject(1)                        # not provisioned: public client only
    lk = getattr(m, "lockout", None)
    if role and lk is not None and lk.left(client):
        return _reject(13, result=2)             # locked out: rejected-transient
    sec = m.security if want >= 2 else None
    if sec is not None:
        S = code()
        if sec.new is not None:                  # a key transfer's keys not yet in use
            sec.new[3](sec, S.suite(sec))
    ciph = 1 if sec is not None and sec.policy else 0
    if req[_AQ_CONTEXT] != (3 if ciph else 1):
        return apdu.build_aare(1, 2, context=req[_AQ_CONTEXT] or 1, max_pdu=_SERVER_MAX_PDU)
    mech = req[_AQ_MECHANISM]
    title = req[_AQ_CALLING_AP_TITLE]
    if role:
        if not mech:                             # None or 0 (lowest level security)
            return _reject(14)                   # authentication-required
        if mech != want:
            return _reject(11)                   # mechanism-name not recognised
        if mech == _MECH_LLS:
            if not m.check_password(client, req[_AQ_AUTH_VALUE]):
                _failed(m, client)
                return _reject(13, mech=_MECH_LLS)   # authentication-failure
            if lk is not None:
                lk.ok(client)
        else:
            ctos = req[_AQ_AUTH_VALUE]
            if ctos is None or not 8 <= len(ctos) <= 64:
                return _reject(13, mech=mech)
            if (mech == 5 or ciph) and (title is None or len(title) != 8):
                return _reject(3)                # calling-AP-title not recognized
    elif mech:
        return _reject(11)
    if ciph:
        ui = S.open_initiate(sec, title, req[_AQ_USER_INFO])
        if ui is None:
            _failed(m, client)
            return _reject(13, mech=mech)        # wrong GUEK/GAK, or a replayed counter
        try:
            apdu.parse_initiate_request(ui, req)
        except apdu.ApduError:
            return _reject(1)
    elif not req[_AQ_USER_INFO_OK]:
        return _reject(1)
    if req[_AQ_DLMS_VERSION] < 6:
        return _reject(1, (6, 1))               # DLMS version too low
    conf = req[_AQ_CONFORMANCE] & _SUPPORTED_CONFORMANCE
    if not conf & (_CONF_GET | _CONF_SET | _CONF_ACTION):
        return _reject(1, (6, 2))               # incompatible conformance
    mp = req[_AQ_MAX_PDU] or 0xFFFF                # 0: no limit (Green Book)
    if mp < _MIN_PDU:
        return _reject(1, (6, 3))               # PDU size too short
    a.max_pdu = mp - _CIPHER_OVERHEAD if ciph else mp
    a.conformance = conf
    a.role, a.client = role, client              # (two: no tuple built)
    a.mechanism = want
    a.open = True
    if want < 2:
        return apdu.build_aare(0, 0, conformance=conf, max_pdu=_SERVER_MAX_PDU,
                               mechanism=_MECH_LLS if role else None)
    import os
    stoc = os.urandom(16)                        # StoC
    a.sess = [title, stoc, bytes(ctos), mech, ciph, True]
    a.guard = True
    return apdu.build_aare(0, 14, context=req[_AQ_CONTEXT], conformance=conf, max_pdu=_SERVER_MAX_PDU,
                           mechanism=mech, ap_title=sec.title, auth_value=stoc,
                           user_info=bytes(S.seal(sec, apdu.initiate_response(conf, _SERVER_MAX_PDU), 1))
                           if ciph else None)      # the glo-initiate-response (FORM_GLO)


def guard(a, tag, req):
    """GET/SET/ACTION ``req`` on an HLS association: the reply when it may not run (None: it
    may). While pass 3 is pending only ACTION IC 15 method 1 on 0.0.40.0.0.255 runs
    (reply_to_HLS_authentication); others get ExceptionResponse service-not-allowed. On a
    ciphered association a plaintext request is refused with read-write-denied."""
    sess = a.sess
    inv = req.invoke
    if sess[5]:                                  # meter.secure's _PENDING
        it = req.items[0]
        if (tag == _GET_REQUEST or tag == _SET_REQUEST or req.kind != 1 or it[0] != 15
                or bytes(it[1]) != _CURRENT_ASSOCIATION or it[2] != 1):
            return apdu.exception_response(1, 2)
        try:
            t, v = axdr.decode(it[4], 0)[0] if it[4] else (0, None)
        except axdr.AxdrError:
            t = 0
        m = a.meter
        r, data = code().pass3(m.security, a, v if t == _T_OCTET_STRING else b"")
        return apdu.action_response(inv, r, data)
    if a.inner:
        return None
    if tag == _GET_REQUEST:
        return apdu.get_response_error(inv, _DENIED)
    if tag == _SET_REQUEST:
        return apdu.set_response(inv, _DENIED)
    return apdu.action_response(inv, _DENIED, None)
