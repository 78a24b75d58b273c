"""The meter's side of an STS token entry (IC 115 token gateway, ``Meter.enter_token``): the token
judged, its action applied to the account, the gateway's attributes, the journal write before the
acknowledgement.

The credit path: a class 0 (credit) or class 2 data token is judged here on the journaled acceptor
record alone (``_lean``: decrypt, CRC, subclass, KEN, the TID store, the amount; the record
rewritten as ``meter.tokens.TokenAcceptor.to_record`` would), with the same results and record as
the acceptor (tests/host/test_token_lean.py). Everything else (a test token, a key-change
section, no record or one the acceptor would rewrite) goes to the acceptor, ``meter.tokens``,
loaded only then (``full``: ``meter.app._sts``). A module of its own, loaded per entry and unloaded
after (``meter.app``): each loaded module's functions and constant table are heap, and a board's
heap is in holes of a few hundred bytes when a token comes (docs/MEMORY.md).
"""
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
# class 2 subclass -> action: word ``sub`` (SUB_MPL 0 ... SUB_WATER_FACTOR 7, protocol.sts; "-": a key
# section, the acceptor's). One str, no dict or tuple built per load (meter.tokens reads it too)
CLASS2_ACTIONS = "mpl clear_credit tariff - - clear_tamper phase_unbalance water_factor"


class TokenResult:
    """Outcome of one token entry: ``ok``, ``reason``, ``action``, ``value`` ... (the fields
    and their values: docs/CONTRACTS.md "STS token acceptance")."""

    def __init__(self, ok, reason, token_class=None, subclass=None, tid=None, amount=0,
                 action=None, value=None):
        self.ok, self.reason, self.token_class, self.subclass = ok, reason, token_class, subclass
        self.tid, self.amount, self.action, self.value = tid, amount, action, value
        self.tests = ()
        self.mfr_code = None
        self.lockout_s = 0

    def text(self):
        """The reason as a display line, with how long a keypad lock-out lasts ("locked_out:
        wait 40 s"; "crc: keypad locked for 10 s" for the entry that started it)."""
        if self.reason == "locked_out" and self.value:
            return "locked_out: wait %d s" % self.value
        return "%s: keypad locked for %d s" % (self.reason, self.lockout_s) if self.lockout_s else self.reason


def _amount(field):
    # protocol.sts_core.amount_decode (0.1 units from the 16-bit field), without loading that module
    p = 10 ** (field >> 14)
    return (field & 0x3FFF) * p + 16384 * (p - 1) // 9


def _record(s):
    # (record, j, alg) when the journaled record is one the acceptor would keep as it is; else None
    g = s[0].get
    r = s[1]
    a = str(g("algorithm", "ea07")).lower()
    alg = 0 if a == "ea07" or a == "sta" else (1 if a == "ea11" or a == "misty1" else 9)
    j = 13 if alg == 0 else 21
    size = g("store_size", 50)
    if r is None or alg == 9 or (alg == 0 and s[4] is None) or len(r) < j + _R_TIDS:
        return None
    n = r[j + _R_N]
    if r[0] != 84 or r[1] != 75 or r[2] != 1 or r[3] != alg or r[4] != j - 5 or r[j + _R_BASE] > 2 \
            or r[j + _R_SIZE] != size or n > size or len(r) != j + _R_TIDS + 3 * n:
        return None
    return r, j, alg


def _reject(s, r, j, now, reason, cls=None):
    # TokenAcceptor._reject: a wrong entry counted (record byte ``bad``), a lock-out started
    res = TokenResult(False, reason, cls, None)
    g = s[0].get
    after, d, top = g("lockout_after", 3), g("lockout_base_s", 10), g("lockout_max_s", 1280)
    if after > 0:
        out = bytearray(r)
        bad = r[j + _R_BAD] + 1
        out[j + _R_BAD] = bad if bad < 255 else 255
        extra = bad - after
        if extra >= 0:
            while extra > 0 and d < top:
                d *= 2
                extra -= 1
            d = min(d, top)
            lu = now + d
            out[j + _R_LOCK:j + _R_TIDS - 2] = (lu - ((lu >> 32) << 32)).to_bytes(4, "big")
            res.lockout_s = d
        s[1] = bytes(out)
    return res


def _lean(meter, digits, now):
    """A class 0 or class 2 data token judged on the journaled record (``meter.tokens[1]``) in the
    acceptor's order of checks (docs/CONTRACTS.md "STS token acceptance"): a TokenResult, the
    record updated; None when the acceptor must judge it."""
    s = meter.tokens
    x = _record(s)
    if x is None:
        return None
    r, j, alg = x
    t = int(digits) if len(digits) == 20 and digits.isdigit() else -1
    if t < 0 or t >> 66:
        return _reject(s, r, j, now, "format")
    cls = (t >> 27) & 3
    if cls == 3:
        return _reject(s, r, j, now, "wrong_class", 3)
    if cls == 1:
        return None      # a test token: accepted even while locked out
    lock = int.from_bytes(r[j + _R_LOCK:j + _R_TIDS - 2], "big")
    if now < lock:
        return TokenResult(False, "locked_out", cls, None, None, 0, None, lock - now)
    top = t >> 64
    b = bytearray(1) + (((t - (top << 64)) & ~(3 << 27)) | (top << 27)).to_bytes(8, "big")
    key = r[5:j]
    if alg == 0:
        from protocol.ea07 import Ea07
        Ea07(key, s[4]).decrypt_into(memoryview(b)[1:])
    else:
        from protocol.misty1 import Misty1
        Misty1(key).decrypt_into(memoryview(b)[1:])
    # the CRC: byte-swapped CRC-16/MODBUS of the class and block bits 63..16 (protocol.sts_core.crc_field)
    b[0] = cls
    from protocol.crc import crc16_modbus
    c = crc16_modbus(b, 0, 7)
    if b[7] != c & 0xFF or b[8] != c >> 8:
        return _reject(s, r, j, now, "crc", cls)
    sub = b[1] >> 4
    if cls == 2 and (sub == 3 or sub == 4 or sub == 8 or sub == 9):
        return None      # a key-change section
    if sub > 7 or (cls == 0 and sub != 0):   # not a data layout; class 0: electricity only
        return TokenResult(False, "wrong_subclass", cls, sub)
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
    out = bytearray(r)
    if k == n:
        out.extend(bytes(3))
        out[j + _R_N] = n + 1
    out[j + _R_BAD] = 0
    t += 3 * k
    out[t], out[t + 1], out[t + 2] = tid >> 16, (tid >> 8) & 0xFF, tid & 0xFF
    meter.tokens[1] = bytes(out)
    if cls == 0:
        return TokenResult(True, "accepted", 0, sub, tid, v, "credit", v)
    if sub == 0 or sub == 6:     # SUB_MPL, SUB_PHASE_UNBALANCE: watts as an amount
        v = _amount(v)
    return TokenResult(True, "accepted", 2, sub, tid, 0, CLASS2_ACTIONS.split()[sub], v)


def _drop(board):
    """The token is judged: its cipher, ``meter.tokens`` and ``protocol.sts_core``/``ea07`` (those the
    entry loaded) leave the heap before the journal write, the entry's largest allocations
    (``meter.app`` unloads this module when the entry returns). A board with heap to spare keeps
    them (``board.sts_resident``)."""
    if not getattr(board, "sts_resident", False):
        import gc
        from meter.acse import unload
        unload(("meter.tokens", "protocol.sts_core", "protocol.ea07"))
        gc.collect()


def enter(meter, raw, delivery, full):
    """``Meter.enter_token``: judge the token (``_lean``, else ``full(meter, digits, now)``: the
    acceptor, ``meter.tokens.judge``, in a frame of its own; no STS key: refused), apply
    its action, update ``meter.token_gateway`` (IC 115), journal (TID store + credit) and only
    then return the TokenResult: an acknowledgement follows the flash write. A refusal starting no
    keypad lock-out journals nothing: the wrong-entry count stays in RAM (a power cut resets at most
    ``lockout_after - 1`` entries; a lock-out is journaled when it starts)."""
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
            r = full(meter, digits, now)
        _drop(meter.board)
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
    if ev[0] == _EV_TOKEN_ACCEPTED or r.lockout_s:   # a change, or a keypad lock-out starts
        meter.persist(ev)
    else:                     # nothing on flash changes: the wrong-entry count stays in RAM
        meter.event(*ev)
    return r
