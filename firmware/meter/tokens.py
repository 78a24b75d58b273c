"""Meter-side STS token acceptance (IEC 62055-41 §6, §8 "token acceptance" rules).

``TokenAcceptor.enter(digits, now) -> TokenResult`` is pure logic: no ``machine``, no file I/O,
time comes in as an argument (or ``now_fn``); the order of its checks, the lockout and the key
change are in docs/CONTRACTS.md "STS token acceptance". The meter's side is ``meter.tokgate``
(``Meter.enter_token``): it judges a credit or class 2 data token itself on the acceptor's record
(the credit path) and leaves the rest to ``judge`` here (the acceptor built from ``Meter.tokens``
for one entry, or for the boot check), applies the returned action to the account and persists
the record together with the credit before the acknowledgement.
"""
import time

from meter.tokres import CLASS2_ACTIONS, TokenResult

# protocol.sts_core is imported where it is used, never held by this module's globals: the meter's
# side drops it (and protocol.ea07) once the token is judged, before the journal write (meter.tokgate)

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_REC_MAGIC = b"TK"
_REC_VERSION = const(1)
_REC_HEAD = const(17)        # magic 2, ver, alg, keylen (5 before the key) + 12 after it
_ALG_EA07 = const(0)
_ALG_EA11 = const(1)

# token classes, class 2 subclasses (protocol.sts; private: no globals slot, no lookup)
_CLASS_TRANSFER = const(0)
_CLASS_NON_MERIT = const(1)
_CLASS_MANAGEMENT = const(2)
_SUB_MPL = const(0)
_SUB_PHASE_UNBALANCE = const(6)
_EV_STORE_ERROR = const(91)   # meter.events


def _alg_code(algorithm):
    a = str(algorithm).lower()
    if a == "ea07" or a == "sta":
        return _ALG_EA07
    if a == "ea11" or a == "misty1":
        return _ALG_EA11
    from protocol.sts_core import StsError
    raise StsError("field", "algorithm must be ea07 or ea11")


class TokenAcceptor:
    """The meter's token acceptance state machine (IEC 62055-41).

    ``decoder_key``: bytes(8) for EA07, bytes(16) for EA11 (IEC order);
    ``algorithm``: 'ea07' | 'ea11'; ``tables``: EA07 tables (``protocol.ea07.Tables``, a
    dict or a JSON path: loaded once); ``ken`` key expiry number (255 = never);
    ``krn``/``kt``/``ti``/``base_date`` describe the current key (reported, updated by key
    change); ``key_change_window_s`` window for all sections of a key change;
    ``lockout_after``/``lockout_base_s``/``lockout_max_s`` wrong-entry lockout (0 = off); ``store_size`` TID store entries (>= 50 recommended, max 255);
    ``now_fn`` returns Unix seconds when ``enter`` gets no time;
    ``credit_subclasses``: class 0 subclasses this meter accepts (0 = electricity).
    Raises StsError("key"/"tables"/"field") on bad configuration.
    """

    def __init__(self, decoder_key, algorithm="ea07", tables=None, ken=255, store_size=50,
                 now_fn=None, krn=1, kt=2, ti=1, base_date=1993, key_change_window_s=90,
                 lockout_after=3, lockout_base_s=10, lockout_max_s=1280,
                 credit_subclasses=(0,)):
        self._alg = _alg_code(algorithm)
        if self._alg == _ALG_EA07:
            if tables is None:
                from protocol.sts_core import StsError
                raise StsError("tables", "EA07 needs tables")
            from protocol.ea07 import load_tables
            self._tables = load_tables(tables)
        else:
            self._tables = None
        if not 1 <= store_size <= 255:
            from protocol.sts_core import StsError
            raise StsError("field", "store_size must be 1..255")
        self._tids = bytearray(3 * store_size)    # its length: the store size
        self._n = 0
        # settings in two tuples: at most 17 attributes, a 136 B table (23: 184 B, one block to find
        # at every token entry on a board, where the acceptor is built per entry)
        self._opt = (now_fn, key_change_window_s, credit_subclasses)
        self._lock = (lockout_after, lockout_base_s, lockout_max_s)
        self._bad = self._lock_until = 0
        self._kc = [None, None, None, None]
        self._kc_t = 0
        self._set_key(decoder_key, ken, krn, kt, ti, base_date)

    # -- key ---------------------------------------------------------------------------
    def _set_key(self, key, ken, krn, kt, ti, base_date):
        n = 8 if self._alg == _ALG_EA07 else 16
        if not isinstance(key, (bytes, bytearray)) or len(key) != n:
            from protocol.sts_core import StsError
            raise StsError("key", "decoder key must be %d bytes for this algorithm" % n)
        self._cipher = None   # built at the first block: from_record sets the key again
        self._key = bytes(key)
        self.ken, self.krn, self.kt, self.ti, self.base_date = ken & 0xFF, krn, kt, ti, base_date

    # -- TID store ------------------------------------------------------------------------
    def _tid_at(self, i):
        b = self._tids
        j = 3 * i
        return (b[j] << 16) | (b[j + 1] << 8) | b[j + 2]

    def _put_tid(self, i, tid):
        b = self._tids
        j = 3 * i
        b[j], b[j + 1], b[j + 2] = (tid >> 16) & 0xFF, (tid >> 8) & 0xFF, tid & 0xFF

    # -- lockout --------------------------------------------------------------------------
    def _reject(self, now, reason, cls=None, sub=None):
        res = TokenResult(False, reason, cls, sub)
        after, d, top = self._lock
        if (reason == "format" or reason == "crc" or reason == "wrong_class") and after > 0:
            self._bad += 1
            extra = self._bad - after
            if extra >= 0:
                while extra > 0 and d < top:
                    d *= 2
                    extra -= 1
                d = min(d, top)
                self._lock_until = now + d
                res.lockout_s = d
        return res

    # -- entry ------------------------------------------------------------------------------
    def enter(self, digits, now_s=None, room=None):
        """Enter one token (20 digits; spaces/dashes allowed) at Unix time ``now_s``; a class 0 amount
        over ``room`` (0.1 kWh; None: no ceiling) is "overflow". Returns a TokenResult, never raises."""
        from protocol import sts_core as sts
        # (no helper methods for the time and the oldest TID: 12 entries in the class dict, no 17-slot
        # table to find when the acceptor is loaded for a key-change section)
        now = int(now_s) if now_s is not None else int(self._opt[0]() if self._opt[0] is not None else time.time())
        try:
            cls, block = sts.split_token(digits)
        except sts.StsError:
            cls = -1
        if cls != _CLASS_NON_MERIT and now < self._lock_until:    # nothing but a test token counts
            return TokenResult(False, "locked_out", None if cls < 0 else cls, None, None, 0, None,
                               self._lock_until - now)
        if cls < 0:
            return self._reject(now, "format")
        if cls == 3:
            return self._reject(now, "wrong_class", cls)
        if cls == _CLASS_NON_MERIT:
            return self._test_token(now, block)
        buf = bytearray(block.to_bytes(8, "big"))
        if self._alg == _ALG_EA07:     # a function, no cipher object (protocol.sts.Ea07 is the host's)
            from protocol.ea07 import decrypt
            decrypt(self._key, self._tables, buf, None, None)
        else:
            c = self._cipher
            if c is None:
                from protocol.misty1 import Misty1
                c = self._cipher = Misty1(self._key)
            c.decrypt_into(buf)
        f = sts.parse_block(cls, int.from_bytes(buf, "big"))
        if not f.crc_ok:
            return self._reject(now, "crc", cls)
        sub = f.subclass
        lay = f.layout
        if cls == _CLASS_MANAGEMENT and lay[0] == "k":    # "key1".."key4"
            return self._key_section(now, buf, sub, ord(lay[3]) - 49)
        if lay != "data" or (cls == _CLASS_TRANSFER and (
                sub not in self._opt[2] or sts.is_currency(cls, sub))):
            return TokenResult(False, "wrong_subclass", cls, sub)
        tid = f.tid
        if (tid >> 16) > self.ken:
            return TokenResult(False, "key_expired", cls, sub, tid)
        n = self._n
        for i in range(n):
            if self._tid_at(i) == tid:
                return TokenResult(False, "used", cls, sub, tid)
        k = n
        if 3 * n >= len(self._tids):     # full: the index of the smallest TID
            k = 0
            for i in range(1, n):
                if self._tid_at(i) < self._tid_at(k):
                    k = i
        if k < n and tid < self._tid_at(k):
            return TokenResult(False, "old", cls, sub, tid)
        if cls == _CLASS_TRANSFER and room is not None and sts.amount_decode(f.value) > room:
            return TokenResult(False, "overflow", cls, sub, tid)
        self._put_tid(k, tid)
        self._n = n + 1 if k == n else n
        self._bad = 0
        if cls == _CLASS_TRANSFER:
            amt = sts.amount_decode(f.value)
            return TokenResult(True, "accepted", cls, sub, tid, amt, "credit", amt)
        action = CLASS2_ACTIONS.split()[sub]
        value = f.value
        if sub == _SUB_MPL or sub == _SUB_PHASE_UNBALANCE:
            value = sts.amount_decode(value)
        return TokenResult(True, "accepted", cls, sub, tid, 0, action, value)

    def _test_token(self, now, block):
        from protocol import sts_core as sts
        f = sts.parse_block(_CLASS_NON_MERIT, block)
        if not f.crc_ok:                 # locked out: class 1 bits, no test token, count nothing
            if now < self._lock_until:
                return TokenResult(False, "locked_out", 1, None, None, 0, None, self._lock_until - now)
            return self._reject(now, "crc", 1)
        if f.layout != "test":
            return TokenResult(False, "wrong_subclass", 1, f.subclass)
        res = TokenResult(True, "accepted", 1, f.subclass, None, 0, "test", f.control)
        res.tests = sts.test_names(f.control)
        res.mfr_code = f.mfr_code
        return res

    def _key_section(self, now, buf, sub, idx):
        # a pending section is kept as the 6 bytes of bits 63..16 of its decrypted block ``buf``
        # (key1's reserved bit 50 cleared: never compared), as meter.tokkey keeps them: the meter's
        # key-change path shares them (Meter.tokens[2]) and holds no TokenFields between sections
        need = 2 if self._alg == _ALG_EA07 else 4
        if idx >= need:
            return TokenResult(False, "wrong_subclass", 2, sub)
        kc = self._kc
        started = kc[0] is not None or kc[1] is not None or kc[2] is not None or kc[3] is not None
        if not started or now - self._kc_t > self._opt[1] or now < self._kc_t:
            kc[0] = kc[1] = kc[2] = kc[3] = None
            self._kc_t = now
        if idx == 0:
            buf[1] &= 0xFB
        from meter.tokkey import take, key_of
        r = take(kc, idx, need, bytes(buf[0:6]), sub)
        if r is not None:
            if r.value and not r.ok:    # another set restarted: its window from now
                self._kc_t = now
            return r
        s1, s2 = kc[0], kc[1]      # KENHO KRN RO KT key / KENLO TI key
        key = key_of(kc, need)
        krn, kt, ro = s1[1] >> 4, s1[1] & 3, s1[1] & 8
        if key == self._key and krn == self.krn and kt == self.kt and s2[1] == self.ti:
            # the key in use: a replayed set (with RO it cleared the TID store: every used
            # credit token accepted again); a key change installs a new key or a new revision
            return TokenResult(False, "used", 2, sub)
        from protocol.sts_core import next_base_date
        base = next_base_date(self.base_date) if ro else self.base_date
        self._set_key(key, ((s1[0] & 15) << 4) | (s2[0] & 15), krn, kt, s2[1], base)
        if ro:
            self._n = 0
        self._bad = self._lock_until = 0
        return TokenResult(True, "accepted", 2, sub, None, 0, "key_change", krn)

    # -- persistence ----------------------------------------------------------------------
    def to_record(self):
        """State as compact bytes for power-fail-safe persistence (with the credit):
        ``"TK" ver alg keylen key krn kt ti ken base(0=1993,1=2014,2=2035) bad lock_until(u32 BE)
        store_size n TID*n (3 bytes BE each)``. Contains the decoder key: keep it private."""
        kl = len(self._key)
        out = bytearray(_REC_HEAD + kl + 3 * self._n)
        out[0:2] = _REC_MAGIC
        out[2], out[3], out[4] = _REC_VERSION, self._alg, kl
        out[5:5 + kl] = self._key
        j = 5 + kl
        out[j], out[j + 1] = self.krn & 0xFF, self.kt & 0xFF
        out[j + 2], out[j + 3] = self.ti & 0xFF, self.ken & 0xFF
        out[j + 4] = 2 if self.base_date == 2035 else (1 if self.base_date == 2014 else 0)
        out[j + 5] = self._bad if self._bad < 255 else 255
        lu = self._lock_until if self._lock_until > 0 else 0
        out[j + 6:j + 10] = (lu - ((lu >> 32) << 32)).to_bytes(4, "big")   # no 2**32 constant object
        out[j + 10] = len(self._tids) // 3
        out[j + 11] = self._n
        out[j + 12:] = self._tids[:3 * self._n]
        return bytes(out)

    def from_record(self, data):
        """Restore the state written by ``to_record`` (key, KRN/KT/TI/KEN, base date, TID
        store, lockout). Returns self. StsError("record") if the bytes are not a record of
        this acceptor's algorithm; the acceptor is unchanged then."""
        from protocol import sts_core as sts
        try:
            ok = bytes(data[0:2]) == _REC_MAGIC and data[2] == _REC_VERSION
            alg = data[3]
            kl = data[4]
            j = 5 + kl
            n = data[j + 11]
            ok = ok and alg == self._alg and kl == (8 if alg == _ALG_EA07 else 16) and \
                len(data) == _REC_HEAD + kl + 3 * n
        except (IndexError, TypeError):
            ok = False
        if not ok:
            raise sts.StsError("record", "not a token-acceptor record for ea%s" % ("07" if self._alg == _ALG_EA07 else "11"))
        key = bytes(data[5:j])
        tids = memoryview(data)[j + 12:]   # read in place: no copy of the TID store
        self._set_key(key, data[j + 3], data[j], data[j + 1], data[j + 2],
                      sts.BASE_DATES[data[j + 4]] if data[j + 4] < 3 else 1993)
        self._bad = data[j + 5]
        self._lock_until = (data[j + 6] << 24) | (data[j + 7] << 16) | (data[j + 8] << 8) | data[j + 9]
        size = len(self._tids) // 3
        if n > size:   # keep the newest TIDs if the store shrank
            lst = [(tids[3 * i] << 16) | (tids[3 * i + 1] << 8) | tids[3 * i + 2] for i in range(n)]
            lst.sort()
            lst = lst[n - size:]
            n = size
            for i in range(n):
                self._put_tid(i, lst[i])
        else:
            self._tids[0:3 * n] = tids
        self._n = n
        self._kc[0] = self._kc[1] = self._kc[2] = self._kc[3] = None
        return self


def acceptor(meter):
    """The TokenAcceptor of ``meter.tokens`` = [config.json's ``sts`` section (docs/CONTRACTS.md
    "config.json"), its state (``to_record``) or None, key-change sections, their
    time, EA07 tables (96 bytes: read from their JSON file once)], built for one token entry or
    the boot check; ``keep`` stores its state back and ``meter.app`` unloads this module after
    (the acceptor is heap only while it runs)."""
    s = meter.tokens
    g = s[0].get
    alg = g("algorithm", "ea07")
    t = s[4]
    if alg == "ea07" and t is None:   # else the inverse tables kept: no JSON, no check per entry
        t = meter.board.path(g("tables", "sts_tables.json"))
    a = TokenAcceptor(bytes.fromhex(s[0]["decoder_key"]), alg, t,
                      ken=g("ken", 255), store_size=g("store_size", 50), krn=g("krn", 1),
                      kt=g("kt", 2), ti=g("ti", 1), base_date=g("base_date", 1993),
                      lockout_after=g("lockout_after", 3), lockout_base_s=g("lockout_base_s", 10),
                      lockout_max_s=g("lockout_max_s", 1280))
    r = s[1]
    if r is not None:
        from protocol.sts_core import StsError
        try:
            a.from_record(r)
        except StsError:
            meter.event(_EV_STORE_ERROR, "token store record unreadable", "tok")
    a._kc, a._kc_t = s[2], s[3]
    return a


def keep(meter, a):
    s = meter.tokens
    s[1], s[2], s[3] = a.to_record(), a._kc, a._kc_t
    if a._tables is not None and s[4] is None:   # protocol.ea07.Tables keeps the inverse tables
        s[4] = a._tables.isub + a._tables.iperm


def judge(meter, digits, now):
    """The acceptor's turn (``meter.tokgate``: what its credit path leaves; no ``digits``: the boot
    check): the TokenResult (None for the boot check), its state kept in ``meter.tokens``."""
    if digits is None:
        _modules_room()
    a = acceptor(meter)
    r = None if digits is None else a.enter(digits, now, meter.token_room())   # the credit ceiling
    keep(meter, a)
    return r


def _modules_room():
    # at the boot check, while the heap is whole: sys.modules grown past 37 slots now (to 47: 376 B
    # on 32 bits), not at the first token entry. An STS+HLS meter holds 33 modules and an entry loads
    # 4 (a key section 5): the 38th grew the table in a heap of holes (the 376 B MemoryError of a
    # top-up token over HLS at 56k). MicroPython's dicts never shrink: keys added, then deleted,
    # leave the room (docs/MEMORY.md)
    import sys
    if sys.implementation.name == "micropython":
        m = sys.modules
        n = 38 - len(m)
        for i in range(n):
            m[i] = None
        for i in range(n):
            del m[i]
