"""STS token codec, the half a meter runs (IEC 62055-41): 20 digits -> class + block, the CRC,
the amount field and the data block's fields (``parse_block``). The ciphers' int interface
(``Block64``: ``encrypt_block``/``decrypt_block``) is the host's (``protocol.sts``): the meter
decrypts in place (``decrypt_into``).

The shapes of the block, digits, CRC, TID and amount are in ``protocol.sts``, the host's full
codec (vending: ``build_block``, ``key_sections``, amount encoding, TID dates), which re-exports
everything here; a board image carries only this module (heap, docs/MEMORY.md: every function
and public name of a loaded module costs RAM). Sans-I/O, MicroPython and CPython.

Errors: ``StsError`` with ``reason`` "format", "crc", "wrong_class", "amount", "tid", "field",
"date" or "currency".
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# No constant above 2**30 in this module: on a 32-bit port each is a big-int object built at every
# load (~32 B; the meter loads this module per token entry): masks of 32 bits and more are written
# as shifts (``x >> 64`` for ``x > 2**64 - 1``, ``x - (x >> n << n)`` for ``x & (2**n - 1)``).

# token classes and class 2 subclasses: public in protocol.sts (the host half)
_CLASS_TRANSFER = const(0)
_CLASS_NON_MERIT = const(1)
_CLASS_MANAGEMENT = const(2)
_SUB_MPL = const(0)
_SUB_CLEAR_CREDIT = const(1)
_SUB_TARIFF_RATE = const(2)
_SUB_KEY_1 = const(3)
_SUB_KEY_2 = const(4)
_SUB_CLEAR_TAMPER = const(5)
_SUB_PHASE_UNBALANCE = const(6)
_SUB_WATER_FACTOR = const(7)
_SUB_KEY_3 = const(8)
_SUB_KEY_4 = const(9)

_BASE_1993 = const(1993)
_BASE_2014 = const(2014)
_BASE_2035 = const(2035)
BASE_DATES = (1993, 2014, 2035)



# At most 17 module globals: a key-change section loads this module (meter.tokens), and an 18th
# grows the globals table to 23 slots (184 B, one block to find in a fragmented heap); so the CRC's
# function and its 7-byte buffer are the function's own.


class StsError(ValueError):
    """Bad token input. ``reason`` is a short machine word, ``str(e)`` a readable line."""

    def __init__(self, reason, msg=None):
        super().__init__(msg or reason)
        self.reason = reason


def normalise_digits(text):
    """Strip spaces and dashes; return the 20-digit string. StsError("format") otherwise."""
    if not isinstance(text, str):
        raise StsError("format", "token must be a string of 20 digits")
    s = text.replace(" ", "").replace("-", "")
    if len(s) != 20 or not s.isdigit():
        raise StsError("format", "token must be 20 digits")
    return s


def digits_to_int(text):
    """20 decimal digits (spaces/dashes allowed) -> 66-bit int. IEC 62055-41 §6.4."""
    n = int(normalise_digits(text))
    if n >> 66:
        raise StsError("format", "token number exceeds 66 bits")
    return n


def untranspose(n):
    """66-bit token number -> (class, 64-bit block with bits 28/27 restored)."""
    if not isinstance(n, int) or n < 0 or n >> 66:
        raise StsError("format", "token number must be 0..2**66-1")
    cls = (n >> 27) & 3
    top = n >> 64
    block = ((n - (top << 64)) & ~(3 << 27)) | (top << 27)
    return cls, block


def split_token(text):
    """20 digits -> (class, block as received: still encrypted for classes 0 and 2)."""
    return untranspose(digits_to_int(text))


def crc_field(cls, block):
    """Stored CRC field (byte-swapped CRC-16/MODBUS) for class + bits 63..16 of ``block``.
    IEC 62055-41 §6.3."""
    from protocol.crc import crc16_modbus
    b = bytearray(7)
    b[0] = cls & 3
    # bits 63..16 in 6 bytes, big-endian, as two 24-bit halves (small ints on every port)
    top = (block >> 40) & 0xFFFFFF
    low = (block >> 16) & 0xFFFFFF
    b[1] = (top >> 16) & 0xFF
    b[2] = (top >> 8) & 0xFF
    b[3] = top & 0xFF
    b[4] = (low >> 16) & 0xFF
    b[5] = (low >> 8) & 0xFF
    b[6] = low & 0xFF
    c = crc16_modbus(b)
    return ((c & 0xFF) << 8) | (c >> 8)


def amount_decode(field):
    """16-bit amount field -> value in 0.1-unit steps. IEC 62055-41 §6.2.4."""
    if not isinstance(field, int) or field < 0 or field >> 16:
        raise StsError("field")
    p = 10 ** (field >> 14)
    # m * 10**e + sum(16384 * 10**n for n < e), the offset being 16384 * (10**e - 1) / 9
    return (field & 0x3FFF) * p + 16384 * (p - 1) // 9


def next_base_date(base):
    """The base date a TID rollover key change (RO = 1) moves to: 1993 -> 2014 -> 2035;
    2035 is the last one STS defines and stays."""
    if base == _BASE_1993 or base == 93:
        return _BASE_2014
    return _BASE_2035


def is_currency(cls, subclass):
    """True for the currency credit tokens (class 0 subclasses 4..7)."""
    return cls == _CLASS_TRANSFER and 4 <= subclass <= 7


class TokenFields:
    """Decoded (or to-be-encoded) fields of one 64-bit data block.

    Common: ``cls`` (0..2), ``subclass`` (0..15), ``crc`` (stored field), ``crc_ok``.
    Data layout (class 0, class 2 subclasses 0,1,2,5,6,7): ``rnd`` (4 bits), ``tid``
    (24 bits), ``value`` (raw 16-bit field; see ``amount``).
    Class 1 subclass 0/1: ``control`` (36/28 bits), ``mfr_code`` (8/16 bits).
    Key sections (class 2 subclasses 3,4,8,9): ``ken_half`` (4 bits: KENHO in the 1st,
    KENLO in the 2nd), ``krn``, ``ro``, ``res``, ``kt`` (1st), ``ti`` (2nd), ``sgc_half``
    (12 bits, 3rd = low, 4th = high), ``key_part`` (32 bits of the new key).
    Other class 1/2 subclasses: ``payload`` (44 bits).
    Fields not set read as their defaults (0, ``crc_ok`` True; ``__getattr__``): a parsed block's
    instance holds only its layout's fields (on a board: a small attribute table per token, not one
    of 18), and the class's own table stays at 6 entries (with 16 defaults as class attributes it
    was 20: a 184 B table, one block to find whenever a key-change section loads this module).
    """

    def __init__(self, cls=0, subclass=0, **kw):
        self.cls = cls
        self.subclass = subclass
        for k in kw:
            if not hasattr(self, k):
                raise StsError("field", k)
            setattr(self, k, kw[k])

    def __getattr__(self, name):
        if name == "crc_ok":
            return True
        if name in "rnd tid value control mfr_code ken_half krn ro res kt ti sgc_half key_part payload crc".split():
            return 0
        raise AttributeError(name)

    @property
    def layout(self):
        """'data', 'test', 'key1'..'key4' or 'raw'."""
        return layout_of(self.cls, self.subclass)


def layout_of(cls, subclass):
    """Block layout name for a class/subclass pair; StsError("wrong_class") for class 3."""
    if cls == _CLASS_TRANSFER:
        return "data" if subclass < 8 else "raw"
    if cls == _CLASS_NON_MERIT:
        return "test" if subclass < 2 else "raw"
    if cls == _CLASS_MANAGEMENT:
        if subclass == _SUB_KEY_1:
            return "key1"
        if subclass == _SUB_KEY_2:
            return "key2"
        if subclass == _SUB_KEY_3:
            return "key3"
        if subclass == _SUB_KEY_4:
            return "key4"
        return "data" if subclass < 8 else "raw"
    raise StsError("wrong_class")


def parse_block(cls, block):
    """(class, 64-bit plaintext block) -> TokenFields (``crc_ok`` says whether it checks).
    StsError("wrong_class") for class 3, StsError("format") for a bad block. A currency
    subclass (class 0, 4..7) parses with the unit-based layout, ``crc_ok`` as the unit-based
    CRC says: callers check ``is_currency`` before they trust the amount."""
    if not isinstance(block, int) or block < 0 or block >> 64:
        raise StsError("format")
    sub = block >> 60
    f = TokenFields(cls, sub)
    lay = layout_of(cls, sub)
    f.crc = block & 0xFFFF
    f.crc_ok = f.crc == crc_field(cls, block)
    if lay == "data":
        f.rnd = (block >> 56) & 0xF
        f.tid = (block >> 32) & 0xFFFFFF
        f.value = (block >> 16) & 0xFFFF
    elif lay == "test":
        if sub == 0:
            f.control = block >> 24     # 36 bits: bits 63..60 are the subclass, 0 here
            f.mfr_code = (block >> 16) & 0xFF
        else:
            f.control = (block >> 32) & 0xFFFFFFF
            f.mfr_code = (block >> 16) & 0xFFFF
    elif lay == "key1":
        f.ken_half = (block >> 56) & 0xF
        f.krn = (block >> 52) & 0xF
        f.ro = (block >> 51) & 1
        f.res = (block >> 50) & 1
        f.kt = (block >> 48) & 3
        f.key_part = (block >> 16) - ((block >> 48) << 32)   # bits 47..16
    elif lay == "key2":
        f.ken_half = (block >> 56) & 0xF
        f.ti = (block >> 48) & 0xFF
        f.key_part = (block >> 16) - ((block >> 48) << 32)   # bits 47..16
    elif lay == "key3" or lay == "key4":
        f.sgc_half = (block >> 48) & 0xFFF
        f.key_part = (block >> 16) - ((block >> 48) << 32)   # bits 47..16
    else:
        f.payload = (block >> 16) - (sub << 44)    # bits 59..16
    return f


def test_names(control):
    """Class 1 control bits -> tuple of test names (known bits only; IEC 62055-41)."""
    # class 1 control bits (IEC 62055-41 InitiateMeterTest/Display; b5 and b7+ unverified)
    names = ("load_switch", "display", "total_energy", "krn_kt", "ti", "b5", "mpl")
    out = []
    for i in range(len(names)):
        if (control >> i) & 1:
            out.append(names[i])
    return tuple(out)
