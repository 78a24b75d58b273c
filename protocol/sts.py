"""STS prepayment token codec (IEC 62055-41, "Standard Transfer Specification").

Sans-I/O, runs on MicroPython and CPython; host-only since issue 17 (not in a board image):
the meter runs ``protocol.sts_core``, the decoding half, which this module re-exports. Ciphers live in ``protocol.ea07`` (STA) and
``protocol.misty1`` (EA11); this module only knows the 64-bit data block, the CRC, the
class-bit transposition and the 20 decimal digits.

Shapes (bit 0 = LSB of the integer written in natural hex order):

* 64-bit data block of class 0 and the data-carrying class 2 tokens (IEC 62055-41 §6.1/6.2)::

      63..60 SubClass | 59..56 RND | 55..32 TID | 31..16 value (Amount) | 15..0 CRC

* class 1 (never encrypted): ``SubClass | Control(36) | MfrCode(8) | CRC`` (subclass 0) or
  ``SubClass | Control(28) | MfrCode(16) | CRC`` (subclass 1); other subclasses carry a
  raw 44-bit payload.
* class 2 key-change sections (no RND/TID): 1st ``KENHO4 KRN4 RO1 RES1 KT2 NKHO32``,
  2nd ``KENLO4 TI8 NKLO32``, 3rd ``SGCLO12 NKMO2_32``, 4th ``SGCHO12 NKMO1_32``.
* CRC (§6.3): CRC-16/MODBUS over ``Class(2) | bits 63..16`` (50 bits) right-aligned in 7
  bytes big-endian; stored byte-swapped in bits 15..0.
* 66-bit token (§6.4): bits 28/27 of the (encrypted) block move to 65/64, the class bits go
  to 28 (MSB) and 27 (LSB). Digits: decimal, zero-padded to 20.
* TID (§6.2.3): 24-bit minutes since the base date: 1993-01-01, 2014-01-01 or 2035-01-01 UTC
  (IEC 62055-41:2014 defines the three; each rolls over after 31.9 years). A TID rollover
  key change (RO = 1) moves a meter to the next base date.
* Amount (§6.2.4): exponent e = bits 15..14, mantissa m = bits 13..0,
  value (0.1 unit steps) = m*10**e + sum(16384*10**n for n < e); encoding rounds UP
  (in the customer's favour). This is the amount of the unit-based class 0 subclasses 0..3.
* Currency credit (class 0 subclasses 4..7, 10**-5 base currency units per the STS
  Association): the amount, S&E and CRC encoding of these subclasses is not implemented
  (no public source to verify it against); ``build_block`` / ``parse_block`` refuse them with
  StsError("currency") rather than encode them with the unit-based rules.

Errors: every bad input raises ``StsError`` whose ``reason`` is one of ``"format"``,
``"crc"``, ``"wrong_class"``, ``"amount"``, ``"tid"``, ``"field"``, ``"date"``,
``"currency"`` (class 0 subclasses 4..7, not implemented).
"""
from protocol.civil import days_from_civil, civil_from_days  # noqa: F401 (re-exported)
from protocol.sts_core import *  # noqa: F401,F403 (the decoding half: one codec for the host)
from protocol.sts_core import (StsError, TokenFields, amount_decode, crc_field,
                               is_currency, layout_of, normalise_digits)

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

CLASS_TRANSFER = const(0)
CLASS_NON_MERIT = const(1)
CLASS_MANAGEMENT = const(2)

# class 2 subclasses (the meter acts on them; private copies in protocol.sts_core, meter.tokens)
SUB_MPL = const(0)
SUB_CLEAR_CREDIT = const(1)
SUB_TARIFF_RATE = const(2)
SUB_KEY_1 = const(3)
SUB_KEY_2 = const(4)
SUB_CLEAR_TAMPER = const(5)
SUB_PHASE_UNBALANCE = const(6)
SUB_WATER_FACTOR = const(7)
SUB_KEY_3 = const(8)
SUB_KEY_4 = const(9)

# private consts in protocol.sts_core (no name, no globals slot on the board)
MASK64 = 0xFFFFFFFFFFFFFFFF
TOKEN66_MAX = (1 << 66) - 1
BASE_1993 = const(1993)
BASE_2014 = const(2014)
BASE_2035 = const(2035)
_AMT_OFF = (0, 16384, 180224, 1818624)   # amount encoding: offset and multiplier per exponent
_AMT_MUL = (1, 10, 100, 1000)


def crc_ok(cls, block):
    """True if bits 15..0 of the (decrypted) ``block`` hold the right CRC for ``cls``."""
    return (block & 0xFFFF) == crc_field(cls, block)


def amount_of(f):
    """The ``value`` of TokenFields ``f`` decoded for the amount-encoded tokens (class 0: 0.1
    units; MPL and phase-unbalance limit: watts); else the raw 16-bit value."""
    if f.cls == 0 or (f.cls == 2 and f.subclass in (SUB_MPL, SUB_PHASE_UNBALANCE)):
        return amount_decode(f.value)
    return f.value


def _check(v, bits, name):
    if not isinstance(v, int) or v < 0 or v >> bits:
        raise StsError("field", "%s must be an integer 0..%d" % (name, (1 << bits) - 1))
    return v


# class 0 subclasses (IEC 62055-41 Table "TransferCredit" tokens)
SUB_ELECTRICITY = const(0)
SUB_WATER = const(1)
SUB_GAS = const(2)
SUB_TIME = const(3)
SUB_CURRENCY_ELECTRICITY = const(4)
SUB_CURRENCY_WATER = const(5)
SUB_CURRENCY_GAS = const(6)
SUB_CURRENCY_TIME = const(7)

# class 1 subclasses
SUB_TEST_2DIGIT_MFR = const(0)
SUB_TEST_4DIGIT_MFR = const(1)

EPOCH_1993 = const(725846400)    # 1993-01-01T00:00:00Z in Unix seconds
EPOCH_2014 = const(1388534400)   # 2014-01-01T00:00:00Z in Unix seconds
EPOCH_2035 = const(2051222400)   # 2035-01-01T00:00:00Z in Unix seconds
TID_MAX = const(0xFFFFFF)

AMOUNT_MAX = 18201624  # 1820162.4 kWh in 0.1 kWh steps (e = 3, m = 16383)

CLEAR_ALL_REGISTERS = const(0xFFFF)


def int_to_digits(n):
    """66-bit int -> 20-digit string (zero-padded)."""
    if not isinstance(n, int) or n < 0 or n > TOKEN66_MAX:
        raise StsError("format", "token number must be 0..2**66-1")
    s = str(n)
    return "0" * (20 - len(s)) + s


def group_digits(text, sep=" "):
    """'51043465443420856213' -> '5104 3465 4434 2085 6213' (4-4-4-4-4)."""
    s = normalise_digits(text)
    return sep.join((s[0:4], s[4:8], s[8:12], s[12:16], s[16:20]))


def transpose(cls, block):
    """(class 0..3, 64-bit block, encrypted unless class 1) -> 66-bit token number."""
    _check(cls, 2, "class")
    _check(block, 64, "block")
    hi = (block >> 27) & 3          # E28, E27 -> 65, 64
    return (hi << 64) | (block & ~(3 << 27) & MASK64) | (cls << 27)


def join_token(cls, block):
    """(class, block: encrypted for classes 0/2) -> 20 digits."""
    return int_to_digits(transpose(cls, block))


def with_crc(cls, block):
    """``block`` with its CRC field (bits 15..0) filled in."""
    return (block & ~0xFFFF & MASK64) | crc_field(cls, block)


def amount_encode(value):
    """Amount in 0.1-unit steps (int, e.g. 256 = 25.6 kWh) -> 16-bit field (e|m).
    Rounds UP to the next representable value (customer's favour). IEC 62055-41 §6.2.4.
    StsError("amount") if negative or above AMOUNT_MAX."""
    if not isinstance(value, int) or value < 0 or value > AMOUNT_MAX:
        raise StsError("amount", "amount must be an integer 0..%d (0.1 units)" % AMOUNT_MAX)
    for e in range(4):
        off = _AMT_OFF[e]
        mul = _AMT_MUL[e]
        if value <= off + 16383 * mul:
            m = (value - off + mul - 1) // mul
            if m < 0:
                m = 0
            return (e << 14) | m
    raise StsError("amount")  # unreachable


def base_epoch(base):
    """Base year 1993, 2014 or 2035 (or 93/14/35) -> Unix seconds of its 1 January 00:00 UTC.
    StsError("field") for any other year. IEC 62055-41 §6.2.3."""
    if base == BASE_1993 or base == 93:
        return EPOCH_1993
    if base == BASE_2014 or base == 14:
        return EPOCH_2014
    if base == BASE_2035 or base == 35:
        return EPOCH_2035
    raise StsError("field", "base date must be 1993, 2014 or 2035")


def refuse_currency(cls, sub):
    """StsError("currency") for a currency credit token (class 0 subclasses 4..7): one line
    saying they are not implemented. Returns None for every other class/subclass."""
    if is_currency(cls, sub):
        raise StsError("currency", "class 0 subclass %d (currency) tokens are not implemented: "
                       "their amount and CRC encoding is not verified against a public source" % sub)


def tid_from_unix(unix_s, base=BASE_1993):
    """Unix seconds -> 24-bit TID (whole minutes since the base date). StsError("tid")
    when the time is before the base date or past its 31.9-year rollover."""
    m = (int(unix_s) - base_epoch(base)) // 60
    if m < 0 or m > TID_MAX:
        raise StsError("tid", "time outside the TID range of base %d" % base)
    return m


def tid_to_unix(tid, base=BASE_1993):
    """24-bit TID -> Unix seconds."""
    _check(tid, 24, "TID")
    return base_epoch(base) + tid * 60


def civil_from_unix(unix_s):
    """Unix seconds -> (year, month, day, hour, minute, second), UTC."""
    days, secs = divmod(int(unix_s), 86400)
    y, m, d = civil_from_days(days)
    return (y, m, d, secs // 3600, (secs // 60) % 60, secs % 60)


def unix_from_civil(y, mo, d, hh=0, mi=0, ss=0):
    """(year, month, day[, h, m, s]) UTC -> Unix seconds. StsError("date") if out of range."""
    if not (1 <= mo <= 12 and 1 <= d <= 31 and 0 <= hh < 24 and 0 <= mi < 60 and 0 <= ss < 61):
        raise StsError("date", "bad date/time")
    return days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss


def tid_to_text(tid, base=BASE_1993):
    """TID -> 'YYYY-MM-DD HH:MM' (UTC)."""
    t = civil_from_unix(tid_to_unix(tid, base))
    return "%04d-%02d-%02d %02d:%02d" % t[:5]


def build_block(f):
    """TokenFields -> 64-bit plaintext block with CRC. StsError("field") on out-of-range."""
    cls = _check(f.cls, 2, "class")
    sub = _check(f.subclass, 4, "subclass")
    refuse_currency(cls, sub)
    lay = layout_of(cls, sub)
    if lay == "data":
        body = (_check(f.rnd, 4, "RND") << 40) | (_check(f.tid, 24, "TID") << 16) | \
            _check(f.value, 16, "value")
        body <<= 16
    elif lay == "test":
        if sub == 0:
            body = (_check(f.control, 36, "control") << 8) | _check(f.mfr_code, 8, "mfr code")
        else:
            body = (_check(f.control, 28, "control") << 16) | _check(f.mfr_code, 16, "mfr code")
        body <<= 16
    elif lay == "key1":
        body = (_check(f.ken_half, 4, "KENHO") << 44) | (_check(f.krn, 4, "KRN") << 40) | \
            (_check(f.ro, 1, "RO") << 39) | (_check(f.res, 1, "RES") << 38) | \
            (_check(f.kt, 2, "KT") << 36) | (_check(f.key_part, 32, "NKHO") << 4)
        body <<= 12
    elif lay == "key2":
        body = (_check(f.ken_half, 4, "KENLO") << 44) | (_check(f.ti, 8, "TI") << 36) | \
            (_check(f.key_part, 32, "NKLO") << 4)
        body <<= 12
    elif lay == "key3" or lay == "key4":
        body = (_check(f.sgc_half, 12, "SGC half") << 32) | _check(f.key_part, 32, "key part")
        body <<= 16
    else:
        body = _check(f.payload, 44, "payload") << 16
    return with_crc(cls, (sub << 60) | body)


def key_sections(new_key, ken, krn, kt, ti, ro=0, sgc=0):
    """New decoder key (bytes of 8 or 16) -> list of TokenFields for the key-change
    sections (IEC 62055-41 §6.2 Set1st..Set4thSectionDecoderKey): 2 for a 64-bit key,
    4 for a 128-bit (MISTY1) key, in the order 1st, 2nd[, 3rd, 4th].
    128-bit layout (NKHO = key bits 127..96, 4th = 95..64, 3rd = 63..32, 2nd = 31..0;
    SGC as a 24-bit binary number split 12/12) follows NectarAPI, not checked against a vector."""
    if not isinstance(new_key, (bytes, bytearray)) or len(new_key) not in (8, 16):
        raise StsError("field", "new key must be 8 or 16 bytes")
    _check(ken, 8, "KEN")
    k = int.from_bytes(new_key, "big")
    if len(new_key) == 8:
        hi = k >> 32
        lo = k & 0xFFFFFFFF
    else:
        hi = k >> 96
        lo = k & 0xFFFFFFFF
    out = [
        TokenFields(2, SUB_KEY_1, ken_half=ken >> 4, krn=krn, ro=ro, kt=kt, key_part=hi),
        TokenFields(2, SUB_KEY_2, ken_half=ken & 0xF, ti=ti, key_part=lo),
    ]
    if len(new_key) == 16:
        _check(sgc, 24, "SGC")
        out.append(TokenFields(2, SUB_KEY_3, sgc_half=sgc & 0xFFF, key_part=(k >> 32) & 0xFFFFFFFF))
        out.append(TokenFields(2, SUB_KEY_4, sgc_half=sgc >> 12, key_part=(k >> 64) & 0xFFFFFFFF))
    for f in out:
        build_block(f)  # range checks now, not at encryption time
    return out


# -- ciphers, host side: the int interface and EA07 encryption ------------------------------
# The meter decrypts in place with protocol.ea07.decrypt / protocol.misty1.Misty1 (decrypt_into);
# vending and tests also encrypt, and take blocks as ints. Import the ciphers from here.

from protocol import ea07 as _ea07, misty1 as _misty1  # noqa: E402
from protocol.ea07 import Tables, load_tables  # noqa: E402,F401 (re-exported)


class Block64:
    """Mixin for the STS ciphers: 64-bit int <-> the 8-byte buffer that ``encrypt_into`` /
    ``decrypt_into`` work on in place (big-endian, IEC 62055-41 bit 0 = LSB).
    StsError("format") for anything but a non-negative 64-bit int."""

    def _run(self, block, fn):
        if not isinstance(block, int) or block < 0 or block >> 64:
            raise StsError("format", "block must be a 64-bit integer")
        b = bytearray(block.to_bytes(8, "big"))
        fn(b)
        return int.from_bytes(b, "big")

    def encrypt_block(self, block):
        """64-bit int -> 64-bit int."""
        return self._run(block, self.encrypt_into)

    def decrypt_block(self, block):
        """64-bit int -> 64-bit int."""
        return self._run(block, self.decrypt_into)


def _spread(out, base, value, nib, perm):
    # OR into out[base..base+3] the permuted image of ``value`` placed at nibble ``nib``
    for b in range(4):
        if (value >> b) & 1:
            p = perm[4 * nib + b]
            out[base + (p >> 4)] |= 1 << (p & 15)


def ea07_tables(t):
    """(sub1, sub2, perm) of the EA07 Tables ``t`` (the meter keeps only their inverses)."""
    from protocol.ea07tab import invert
    return invert(t.isub[:16]), invert(t.isub[16:]), invert(t.iperm)


def ea07_encrypt_table(t):
    """enc[((sel*16 + i)*16 + v)*4 + k] = word k of P(S_sel[v] << 4i), built once per Tables
    ``t`` (array('H', 2048), kept as ``t.enc``)."""
    enc = getattr(t, "enc", None)
    if enc is None:
        from array import array
        enc = array("H", bytes(4096))
        sub1, sub2, perm = ea07_tables(t)
        subs = (sub1, sub2)
        for sel in range(2):
            s = subs[sel]
            for i in range(16):
                for v in range(16):
                    _spread(enc, ((sel * 16 + i) * 16 + v) * 4, s[v], i, perm)
        t.enc = enc
    return enc


def ea07_decrypt_tables(t):
    """(ip0, isip) for ``Ea07.decrypt_into_fast``: ip0[(i*16 + v)*4 + k] = word k of
    P^-1(v << 4i); isip[((sel*16 + i)*16 + v)*4 + k] = word k of P^-1(S_sel^-1[v] << 4i).
    Built once per Tables ``t`` (6 KB, kept as ``t.ip0``/``t.isip``)."""
    if getattr(t, "isip", None) is None:
        from array import array
        ip0 = array("H", bytes(2048))
        isip = array("H", bytes(4096))
        for i in range(16):
            for v in range(16):
                _spread(ip0, (i * 16 + v) * 4, v, i, t.iperm)
                for sel in range(2):
                    _spread(isip, ((sel * 16 + i) * 16 + v) * 4, t.isub[sel * 16 + v], i, t.iperm)
        t.ip0 = ip0
        t.isip = isip
    return t.ip0, t.isip


def _pass(w, t, key, r):
    # one combined substitute+permute step over the 4 x 16-bit words in w (in place); table
    # row of nibble i: sel*1024 + i*64 (sel of round r; key None: sel 0)
    o0 = o1 = o2 = o3 = 0
    for i in range(16):
        k = (i << 6) + (((w[i >> 2] >> ((i & 3) << 2)) & 15) << 2)
        if key is not None:
            k += _ea07._sel(key, r, i) << 10
        o0 |= t[k]
        o1 |= t[k + 1]
        o2 |= t[k + 2]
        o3 |= t[k + 3]
    w[0] = o0
    w[1] = o1
    w[2] = o2
    w[3] = o3


class Ea07(Block64):
    """EA07 with one decoder key (the meter calls ``protocol.ea07.decrypt`` itself: no object):
    decryption, encryption, the int interface and a table-driven decryption for hosts and
    benchmarks. ``key``: bytes(8) in IEC order (first byte most significant) or an int
    0..2**64-1; ``tables``: Tables (or anything ``load_tables`` takes)."""

    def __init__(self, key, tables):
        self.tables = load_tables(tables)
        if isinstance(key, int):
            key = key.to_bytes(8, "big") if key >= 0 and not key >> 64 else b""
        if not isinstance(key, (bytes, bytearray)) or len(key) != 8:
            raise StsError("key")
        self._key = bytes(key)
        from array import array
        self._w = array("H", bytes(8))
        self._o = array("H", bytes(8))

    def decrypt_into(self, buf):
        """Decrypt the 8-byte big-endian block in ``buf`` (bytearray) in place, bit by bit
        (``protocol.ea07.decrypt``: no derived tables). Allocates nothing."""
        _ea07.decrypt(self._key, self.tables, buf, self._w, self._o)

    def encrypt_into(self, buf):
        """Encrypt the 8-byte big-endian block in ``buf`` (bytearray) in place."""
        t = ea07_encrypt_table(self.tables)
        _ea07._io(self._w, buf, False)
        w = self._w
        key = self._key
        for r in range(16):
            _pass(w, t, key, r)
        _ea07._io(w, buf, True)

    def decrypt_into_fast(self, buf):
        """``decrypt_into`` through the derived tables (``ea07_decrypt_tables``, 6 KB, built
        on first use)."""
        tb = self.tables
        ip0, isip = ea07_decrypt_tables(tb)
        _ea07._io(self._w, buf, False)
        w = self._w
        key = self._key
        _pass(w, ip0, None, 0)
        for j in range(15):
            _pass(w, isip, key, 15 - j)
        _ea07._inv_pass(w, self._o, None, tb.isub, key, 0)     # S^-1 of round 1
        _ea07._io(w, buf, True)


class Misty1(Block64, _misty1.Misty1):
    """MISTY1 (EA11, ``protocol.misty1.Misty1``: the meter's decrypting half) with encryption,
    the int interface and the RFC 2994 key check value."""

    def expanded_key(self):
        """K' = EK[8..15] as 16 bytes (RFC 2994 Appendix A check value)."""
        out = bytearray(16)
        for i in range(8):
            out[2 * i] = self.ek[8 + i] >> 8
            out[2 * i + 1] = self.ek[8 + i] & 0xFF
        return bytes(out)

    def encrypt_into(self, buf):
        """Encrypt 8 bytes in ``buf`` (bytearray) in place. RFC 2994 §2.1."""
        self._load(buf)
        s = self._s
        ko = self._ko
        kl = self._kl
        for r in range(0, 8, 2):
            _misty1._fl(s, 0, kl, r)
            _misty1._fl(s, 2, kl, r + 1)
            _misty1._fo(s, 0, 2, ko, r)
            _misty1._fo(s, 2, 0, ko, r + 1)
        _misty1._fl(s, 0, kl, 8)
        _misty1._fl(s, 2, kl, 9)
        # ciphertext = D1 || D0
        buf[0] = s[2] >> 8
        buf[1] = s[2] & 0xFF
        buf[2] = s[3] >> 8
        buf[3] = s[3] & 0xFF
        buf[4] = s[0] >> 8
        buf[5] = s[0] & 0xFF
        buf[6] = s[1] >> 8
        buf[7] = s[1] & 0xFF
