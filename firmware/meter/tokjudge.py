"""An STS token judged for ``meter.tokgate`` (loaded per entry, unloaded before its action is applied).

The credit path: a class 0 (credit) or class 2 data token, or a class 1 test token, is judged here
on the journaled acceptor record alone (``judge``: decrypt, CRC, subclass, KEN, the TID store, the
amount; the record updated in place as ``meter.tokens.TokenAcceptor.to_record`` would write it),
with the same results and record as the acceptor (tests/device/test_token_lean.py); a key-change
section too, by ``meter.tokkey`` (loaded for it). No record, or one the acceptor would not keep as
it is, is left to the acceptor (``judge`` returns None: ``meter.tokgate`` unloads this module and
loads ``meter.tokens``). No ``protocol.sts_core`` on the credit path.
"""
from meter.tokres import CLASS2_ACTIONS, TokenResult

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

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


def judge(meter, digits, now):
    """A class 0 or class 2 data token, or a class 1 test token, judged on the journaled record
    (``meter.tokens[1]``) in the acceptor's order of checks (docs/CONTRACTS.md "STS token
    acceptance"): a TokenResult, the record updated; None when the acceptor must judge it (no
    record, or one the acceptor would not keep as it is). A key-change section: ``meter.tokkey``."""
    s = meter.tokens
    g = s[0].get
    r = s[1]
    # the configured algorithm: EA07 keeps its inverse tables (s[4], from the boot check), EA11 none
    # (a meter with another algorithm does not boot: the acceptor refuses it)
    alg = 0 if s[4] is not None else 1
    j = 13 if alg == 0 else 21      # 5 + key length
    a = g("store_size", 50)
    if r is None or len(r) < j + _R_TIDS:
        return None
    n = r[j + _R_N]
    if r[0] != 84 or r[1] != 75 or r[2] != 1 or r[3] != alg or r[4] != j - 5 or r[j + _R_BASE] > 2 \
            or r[j + _R_SIZE] != a or n > a or len(r) != j + _R_TIDS + 3 * n:     # "TK", version 1
        return None
    if not isinstance(r, bytearray):   # then updated in place, entry after entry (no copy each)
        r = s[1] = bytearray(r)
    t = int(digits) if len(digits) == 20 and digits.isdigit() else -1
    cls = -1 if t < 0 or t >> 66 else (t >> 27) & 3
    lu = int.from_bytes(r[j + _R_LOCK:j + _R_TIDS - 2], "big")    # the keypad locked until
    if cls != 1 and now < lu:    # a test token is accepted while locked out; nothing else counts
        return TokenResult(False, "locked_out", None if cls < 0 else cls, None, None, 0, None, lu - now)
    if cls < 0:
        return _reject(s, r, j, now, "format")
    if cls == 3:
        return _reject(s, r, j, now, "wrong_class", 3)
    a = t >> 64
    b = bytearray(1) + (((t - (a << 64)) & ~(3 << 27)) | (a << 27)).to_bytes(8, "big")
    if cls != 1:                 # a test token is not encrypted
        a = r[5:j]
        if alg == 0:
            from protocol.ea07 import decrypt
            decrypt(a, s[4], memoryview(b)[1:], None, None)
        else:
            from protocol.misty1 import Misty1
            Misty1(a).decrypt_into(memoryview(b)[1:])
    # the CRC: byte-swapped CRC-16/MODBUS of the class and block bits 63..16 (protocol.sts_core.crc_field)
    b[0] = cls
    from protocol.crc import crc16_modbus
    a = crc16_modbus(b, 0, 7)
    if b[7] != a & 0xFF or b[8] != a >> 8:
        if now < lu:             # class 1 bits, no test token: locked out, counts nothing
            return TokenResult(False, "locked_out", cls, None, None, 0, None, lu - now)
        return _reject(s, r, j, now, "crc", cls)
    sub = b[1] >> 4
    if cls == 2 and (sub == 3 or sub == 4 or sub == 8 or sub == 9):
        from meter.tokkey import section     # a key-change section: that module for it alone
        return section(meter, r, j, b, now)
    if sub > 7 or (cls < 2 and sub > cls):    # no data (class 1: test) layout; class 0: electricity only
        return TokenResult(False, "wrong_subclass", cls, sub)
    if cls == 1:         # control bits 59..24 (subclass 0) or 59..32 (1), manufacturer code
        a = int.from_bytes(b[1:6 - sub], "big")
        if sub:
            a &= 0xFFFFFFF
        res = TokenResult(True, "accepted", 1, sub, None, 0, "test", a)
        t = "load_switch display total_energy krn_kt ti b5 mpl".split()    # protocol.sts_core.test_names
        res.tests = ()
        for i in range(7):
            if (a >> i) & 1:
                res.tests += (t[i],)
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
