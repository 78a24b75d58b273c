"""The meter's side of an STS token entry (IC 115 token gateway, ``Meter.enter_token``): the token
judged, its action applied to the account, the gateway's attributes, the journal write before the
acknowledgement.

The credit path: a class 0 (credit) or class 2 data token is judged here on the journaled acceptor
record alone (``_lean``: decrypt, CRC, subclass, KEN, the TID store, the amount; the record
rewritten as ``meter.tokens.TokenAcceptor.to_record`` would), with the same results and record as
the acceptor (tests/device/test_token_lean.py). Everything else (a test token, a key-change
section, no record or one the acceptor would rewrite) goes to the acceptor, ``meter.tokens``,
loaded only then (``_full``). A module of its own, loaded per entry and unloaded
after (``meter.app``): each loaded module's functions and constant table are heap, and a board's
heap is in holes of a few hundred bytes when a token comes (docs/MEMORY.md).
"""
from meter.tokres import CLASS2_ACTIONS, TokenResult

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# IC 115 token_status_code per STS reason (reason=digit); any other: 7 execution failure
_TOKEN_STATUS = (b" accepted=3 key_change_pending=2 format=4 wrong_class=4 crc=5 key_expired=6"
                 b" used=6 old=6 locked_out=6 overflow=6 ")
_EV_TOKEN_ACCEPTED = const(50)  # meter.events
_EV_TOKEN_REJECTED = const(51)
_EV_TOKEN_TEST = const(80)      # meter.events: a class 1 test token (the "other" ring, coalesced)
# Meter.token_gateway = [token, time, STS reason text, delivery method, token_status_code]
_GW_TOKEN = const(0)
_GW_TIME = const(1)
_GW_TEXT = const(2)
_GW_DELIVERY = const(3)
_GW_STATUS = const(4)
# the acceptor's record (TokenAcceptor.to_record): "TK" ver alg keylen key, then from j = 5 + keylen
_R_KEN = const(3)
_R_BASE = const(4)
_R_BAD = const(5)
_R_LOCK = const(6)       # lock_until, 4 bytes big-endian
_R_SIZE = const(10)
_R_N = const(11)
_R_TIDS = const(12)      # n TIDs, 3 bytes big-endian each


def _amount(field):
    # protocol.sts_core.amount_decode (0.1 units from the 16-bit field), without loading that module
    p = 10 ** (field >> 14)
    return (field & 0x3FFF) * p + 16384 * (p - 1) // 9


def _reject(s, r, j, now, reason, cls=None):
    # TokenAcceptor._reject: a wrong entry counted (record byte ``bad``), a lock-out started
    res = TokenResult(False, reason, cls, None)
    g = s[0].get
    after, d, top = g("lockout_after", 3), g("lockout_base_s", 10), g("lockout_max_s", 1280)
    if after > 0:
        bad = r[j + _R_BAD] + 1
        r[j + _R_BAD] = bad if bad < 255 else 255
        extra = bad - after
        if extra >= 0:
            while extra > 0 and d < top:
                d *= 2
                extra -= 1
            d = min(d, top)
            lu = now + d
            r[j + _R_LOCK:j + _R_TIDS - 2] = (lu - ((lu >> 32) << 32)).to_bytes(4, "big")
            res.lockout_s = d
    return res


def _lean(meter, digits, now):
    """A class 0 or class 2 data token, or a class 1 test token, judged on the journaled record
    (``meter.tokens[1]``) in the acceptor's order of checks (docs/CONTRACTS.md "STS token
    acceptance"): a TokenResult, the record updated; None when the acceptor must judge it (a
    key-change section; no record, or one the acceptor would not keep as it is)."""
    s = meter.tokens
    g = s[0].get
    r = s[1]
    a = str(g("algorithm", "ea07")).lower()
    alg = 0 if a == "ea07" or a == "sta" else (1 if a == "ea11" or a == "misty1" else 9)
    j = 13 if alg == 0 else 21      # 5 + key length
    a = g("store_size", 50)
    if r is None or alg == 9 or (alg == 0 and s[4] is None) or len(r) < j + _R_TIDS:
        return None
    n = r[j + _R_N]
    if r[0] != 84 or r[1] != 75 or r[2] != 1 or r[3] != alg or r[4] != j - 5 or r[j + _R_BASE] > 2 \
            or r[j + _R_SIZE] != a or n > a or len(r) != j + _R_TIDS + 3 * n:     # "TK", version 1
        return None
    if not isinstance(r, bytearray):   # then updated in place, entry after entry (no copy each)
        r = s[1] = bytearray(r)
    t = int(digits) if len(digits) == 20 and digits.isdigit() else -1
    if t < 0 or t >> 66:
        return _reject(s, r, j, now, "format")
    cls = (t >> 27) & 3
    if cls == 3:
        return _reject(s, r, j, now, "wrong_class", 3)
    a = int.from_bytes(r[j + _R_LOCK:j + _R_TIDS - 2], "big")
    if cls != 1 and now < a:     # a test token is accepted while locked out
        return TokenResult(False, "locked_out", cls, None, None, 0, None, a - now)
    a = t >> 64
    b = bytearray(1) + (((t - (a << 64)) & ~(3 << 27)) | (a << 27)).to_bytes(8, "big")
    if cls != 1:                 # a test token is not encrypted
        a = r[5:j]
        if alg == 0:
            from protocol.ea07 import Ea07
            Ea07(a, s[4]).decrypt_into(memoryview(b)[1:])
        else:
            from protocol.misty1 import Misty1
            Misty1(a).decrypt_into(memoryview(b)[1:])
    # the CRC: byte-swapped CRC-16/MODBUS of the class and block bits 63..16 (protocol.sts_core.crc_field)
    b[0] = cls
    from protocol.crc import crc16_modbus
    a = crc16_modbus(b, 0, 7)
    if b[7] != a & 0xFF or b[8] != a >> 8:
        return _reject(s, r, j, now, "crc", cls)
    sub = b[1] >> 4
    if cls == 2 and (sub == 3 or sub == 4 or sub == 8 or sub == 9):
        return None      # a key-change section
    if sub > 7 or (cls < 2 and sub > cls):    # no data (class 1: test) layout; class 0: electricity only
        return TokenResult(False, "wrong_subclass", cls, sub)
    if cls == 1:         # control bits 59..24 (subclass 0) or 59..32 (1), manufacturer code
        a = int.from_bytes(b[1:6 - sub], "big")
        if sub:
            a &= 0xFFFFFFF
        res = TokenResult(True, "accepted", 1, sub, None, 0, "test", a)
        t = "load_switch display total_energy krn_kt ti b5 mpl".split()    # protocol.sts_core.test_names
        res.tests = tuple(t[i] for i in range(7) if (a >> i) & 1)
        res.mfr_code = (b[5] << 8) | b[6] if sub else b[6]
        return res
    return _store(meter, r, j, cls, sub, (b[2] << 16) | (b[3] << 8) | b[4], (b[5] << 8) | b[6])


def _store(meter, r, j, cls, sub, tid, v):
    # KEN, the TID store (used, old), the credit ceiling; accepted: the TID stored, the count reset
    if (tid >> 16) > r[j + _R_KEN]:
        return TokenResult(False, "key_expired", cls, sub, tid)
    n = r[j + _R_N]
    t = j + _R_TIDS
    k = lo = -1
    for i in range(n):
        x = (r[t + 3 * i] << 16) | (r[t + 3 * i + 1] << 8) | r[t + 3 * i + 2]
        if x == tid:
            return TokenResult(False, "used", cls, sub, tid)
        if k < 0 or x < lo:
            k, lo = i, x
    if n < r[j + _R_SIZE]:
        k = n
    elif tid < lo:
        return TokenResult(False, "old", cls, sub, tid)
    if cls == 0:
        v = _amount(v)
        room = meter.token_room()
        if room is not None and v > room:
            return TokenResult(False, "overflow", cls, sub, tid)
    if k == n:
        r.extend(b"\0\0\0")
        r[j + _R_N] = n + 1
    r[j + _R_BAD] = 0
    t += 3 * k
    r[t], r[t + 1], r[t + 2] = tid >> 16, (tid >> 8) & 0xFF, tid & 0xFF
    if cls == 0:
        return TokenResult(True, "accepted", 0, sub, tid, v, "credit", v)
    if sub == 0 or sub == 6:     # SUB_MPL, SUB_PHASE_UNBALANCE: watts as an amount
        v = _amount(v)
    return TokenResult(True, "accepted", 2, sub, tid, 0, CLASS2_ACTIONS.split()[sub], v)


def _full(meter, digits, now):
    # the acceptor (meter.tokens) in a frame of its own: nothing on enter's value stack keeps it
    from meter.tokens import judge
    return judge(meter, digits, now)


def enter(meter, raw, delivery):
    """For ``Meter.enter_token``: judge the token (``_lean``, else the acceptor: ``_full``; no STS
    key: refused), apply its action, update ``meter.token_gateway`` (IC 115) -> (TokenResult,
    event, journal?): the caller journals (TID store + credit) with the event, once this module
    is unloaded, and only then returns: an acknowledgement follows the flash write. A refusal
    starting no keypad lock-out is not journaled: the wrong-entry count stays in RAM (a power cut
    resets at most ``lockout_after - 1`` entries; a lock-out is journaled when it starts)."""
    text = raw
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode()
        except Exception:
            text = ""
    digits = "".join(c for c in text if c not in " -")
    now = meter.board.time()
    g = meter.token_gateway
    g[_GW_TOKEN] = digits.encode()
    g[_GW_TIME] = now
    g[_GW_DELIVERY] = delivery
    if meter.tokens is None:   # no STS key provisioned: the meter cannot judge any token
        r = TokenResult(False, "no_sts_key")
    else:
        r = _lean(meter, digits, now)
        if r is None:
            r = _full(meter, digits, now)
        # judged: its cipher, meter.tokens and protocol.sts_core/ea07 (those loaded) leave the heap
        # before the rest; a board with heap to spare keeps them (board.sts_resident)
        if not getattr(meter.board, "sts_resident", False):
            import gc
            from meter.acse import unload
            unload(("meter.tokens", "protocol.sts_core", "protocol.ea07"))
            gc.collect()
    if r.ok and r.reason == "accepted":          # the action on account, tariff, limiter
        a = meter.account
        act = r.action
        if act == "credit":
            # an electricity token (0.1 kWh units) on a currency register: amount x tariff, rounded
            # up to the paisa in the customer's favour (as STS rounds amounts, IEC 62055-41 §6.3.5)
            paise = -((-r.amount * a.rate) // 10)
            if paise > 0:
                try:
                    meter.policy.top_up(meter, paise, meter.board.time())
                except ValueError:
                    pass
        elif act == "clear_credit":
            a.credit = a.rem = 0
        elif act == "tariff":
            a.rate = r.value
            meter.tariff.set_rate(r.value)          # the flat tariff the engine charges from now
        elif act == "mpl":
            meter.policy.limiter.set_mpl(r.value)    # IC 71 threshold
    d = r.reason.encode()
    i = _TOKEN_STATUS.find(b" " + d + b"=")
    g[_GW_STATUS] = _TOKEN_STATUS[i + len(d) + 2] - 48 if i >= 0 else 7
    g[_GW_TEXT] = r.text().encode()   # IC 115 description: the reason (and a lock-out's wait)
    meter.evaluate()
    if r.action == "test":    # changes nothing: not journaled, not a transaction, repeats coalesced
        ev = (_EV_TOKEN_TEST, "token test %s" % r.value, r.value)
    elif r.ok:
        ev = (_EV_TOKEN_ACCEPTED, "token %s %s tid %s" % (r.action, r.value, r.tid), r.tid)
    else:
        ev = (_EV_TOKEN_REJECTED, "token rejected: %s" % r.reason, r.reason)
    # journaled: a change, or a keypad lock-out starts; else nothing on flash changes
    return r, ev, ev[0] == _EV_TOKEN_ACCEPTED or r.lockout_s > 0
