"""A-XDR encoding of DLMS ``Data`` (IEC 62056-6-2 §4.1.5, DLMS UA 1000-2 "Green Book" §9.5).

Every value is ``tag`` + content; lengths (array/structure element counts, octet/visible
string byte counts, bit-string bit counts) use the A-XDR length form: ``n`` (<128),
``81 nn``, ``82 nnnn`` (``83``/``84`` accepted on decode).

- ``Writer``: appends tagged values to a bytearray (``.buf``); methods are chainable and
  range-check their argument (``AxdrError`` on overflow).
- ``decode(buf, pos) -> ((tag, value), newpos)``; ``skip(buf, pos) -> newpos`` walks one
  value without building it (for measuring request parameters on the device).
- ``datetime_bytes``/``parse_datetime`` handle the 12-byte COSEM date-time (Blue Book
  §4.1.6.1).
- Errors: ``AxdrError`` with a one-word text ("truncated", "format" (unknown tag, compact-array,
  nesting deeper than 16, bad length form), "range", "int", "bytes", "nbits", "encoding"): names
  the board has anyway, not str objects in its heap.

This module is what the meter needs (it is in the device image, where every name costs heap):
the tag constants the meter's code reads are public, the rest are folded by mpy-cross.
``protocol.axdr_client`` (host side) re-exports it with every tag constant, ``to_python`` and
a ``Writer`` that adds ``getvalue``, ``raw``, ``long64``, ``long64_unsigned``, ``visible_string`` and
``date_time``.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# tags (the full set, public: protocol.axdr_client; the meter's modules keep their own private
# copies, so no tag is a module global here)
_DOUBLE_LONG = const(5)
_DOUBLE_LONG_UNSIGNED = const(6)
_OCTET_STRING = const(9)
_LONG = const(16)
_LONG_UNSIGNED = const(18)
_STRUCTURE = const(2)
_ENUM = const(22)
_DATE_TIME = const(25)

_NULL = const(0)
_ARRAY = const(1)
_BOOLEAN = const(3)
_BIT_STRING = const(4)
_VISIBLE_STRING = const(10)
_UTF8_STRING = const(12)
_INTEGER = const(15)
_UNSIGNED = const(17)
_COMPACT_ARRAY = const(19)
_FLOAT32 = const(23)
_FLOAT64 = const(24)
_LAST_TAG = const(27)
_MAX_DEPTH = const(16)

# fixed-size types by tag 0..27 (a bytes literal: stays in flash): size in the low nibble,
# 0x10 = signed integer, 0x20 = raw octets (date-time 12, date 5, time 4, float32 4, float64 8),
# 0 = not fixed-size. boolean 1, double-long(-unsigned) 4, bcd 1, integer 1, long 2, unsigned 1,
# long-unsigned 2, long64(-unsigned) 8, enum 1.
_FIXED = (b"\x00\x00\x00\x01\x00\x14\x04\x00\x00\x00\x00\x00\x00\x01"
          b"\x00\x11\x12\x01\x02\x00\x18\x08\x01\x24\x28\x2c\x25\x24")


class AxdrError(ValueError):
    """Malformed, truncated, unsupported or out-of-range A-XDR data."""


def encode_length(n):
    """A-XDR length: n < 128 -> 1 byte; <= 0xFF -> 81 nn; <= 0xFFFF -> 82 nnnn."""
    if n < 0:
        raise AxdrError("format")
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    if n <= 0xFFFF:
        return bytes((0x82, n >> 8, n & 0xFF))
    if not n >> 32:
        return bytes((0x84, n >> 24, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF))
    raise AxdrError("format")


def decode_length(buf, pos):
    """Decode an A-XDR length at ``buf[pos]``; returns ``(n, newpos)``. AxdrError if truncated."""
    if pos >= len(buf):
        raise AxdrError("truncated")
    b = buf[pos]
    pos += 1
    if b < 0x80:
        return b, pos
    k = b & 0x7F
    if k == 0 or k > 4:
        raise AxdrError("format")
    if pos + k > len(buf):
        raise AxdrError("truncated")
    n = 0
    for i in range(k):
        n = (n << 8) | buf[pos + i]
    return n, pos + k


class Writer:
    """A-XDR encoder appending tagged values into ``self.buf`` (a bytearray).

    Integer methods raise AxdrError when the value does not fit the type. All methods
    return ``self``.
    """

    def __init__(self, buf=None):
        self.buf = bytearray() if buf is None else buf

    def reset(self):
        """Empty the buffer (keeps the same bytearray object)."""
        self.buf[:] = b""
        return self

    def _int(self, tag, v, size, signed):
        if not isinstance(v, int):
            raise AxdrError("int")
        if signed:
            lo = -(1 << (8 * size - 1))
            hi = (1 << (8 * size - 1)) - 1
        else:
            lo = 0
            hi = (1 << (8 * size)) - 1
        if v < lo or v > hi:
            raise AxdrError("range")
        if v < 0:
            v += 1 << (8 * size)
        b = self.buf
        b.append(tag)
        for i in range(size - 1, -1, -1):
            b.append((v >> (8 * i)) & 0xFF)
        return self

    def null(self):
        """null-data (tag 0)."""
        self.buf.append(_NULL)
        return self

    def boolean(self, v):
        """boolean (tag 3): 01 for any true value, 00 otherwise."""
        self.buf.append(_BOOLEAN)
        self.buf.append(1 if v else 0)
        return self

    def integer(self, v):
        """int8 (tag 15)."""
        return self._int(_INTEGER, v, 1, True)

    def long(self, v):
        """int16 (tag 16)."""
        return self._int(_LONG, v, 2, True)

    def unsigned(self, v):
        """uint8 (tag 17)."""
        return self._int(_UNSIGNED, v, 1, False)

    def long_unsigned(self, v):
        """uint16 (tag 18)."""
        return self._int(_LONG_UNSIGNED, v, 2, False)

    def double_long(self, v):
        """int32 (tag 5)."""
        return self._int(_DOUBLE_LONG, v, 4, True)

    def double_long_unsigned(self, v):
        """uint32 (tag 6)."""
        return self._int(_DOUBLE_LONG_UNSIGNED, v, 4, False)

    def enum(self, v):
        """enum 0..255 (tag 22)."""
        return self._int(_ENUM, v, 1, False)

    def _bytes(self, tag, b):
        self.buf.append(tag)
        self.buf.extend(encode_length(len(b)))
        self.buf.extend(b)
        return self

    def octet_string(self, b):
        """octet-string (tag 9): length + bytes."""
        if isinstance(b, str):
            raise AxdrError("bytes")
        return self._bytes(_OCTET_STRING, b)

    def utf8_string(self, s):
        """utf8-string (tag 12) from str or bytes."""
        if isinstance(s, str):
            s = s.encode()
        return self._bytes(_UTF8_STRING, s)

    def bit_string(self, value, nbits):
        """bit-string (tag 4) of ``nbits`` bits, MSB first on the wire.

        ``value`` is an int whose bit ``nbits-1`` is the first bit sent (the most
        significant bit of the first byte), or the already-packed bytes.
        """
        if nbits < 0:
            raise AxdrError("nbits")
        nb = (nbits + 7) // 8
        if isinstance(value, int):
            if value < 0 or value >> nbits:
                raise AxdrError("nbits")
            v = value << (nb * 8 - nbits)
            data = bytes((v >> (8 * i)) & 0xFF for i in range(nb - 1, -1, -1))
        else:
            data = bytes(value)
            if len(data) != nb:
                raise AxdrError("nbits")
        self.buf.append(_BIT_STRING)
        self.buf.extend(encode_length(nbits))
        self.buf.extend(data)
        return self

    def array(self, n):
        """array header (tag 1) with n elements; append the elements after it."""
        self.buf.append(_ARRAY)
        self.buf.extend(encode_length(n))
        return self

    def structure(self, n):
        """structure header (tag 2) with n elements; append the elements after it."""
        self.buf.append(_STRUCTURE)
        self.buf.extend(encode_length(n))
        return self

def _need(buf, pos, n):
    if pos + n > len(buf):
        raise AxdrError("truncated")


def _uint(buf, pos, size):
    v = 0
    for i in range(size):
        v = (v << 8) | buf[pos + i]
    return v


def decode(buf, pos=0, _depth=0):
    """Decode one tagged value at ``buf[pos]``.

    Returns ``((tag, value), newpos)``: integers/enum -> int, boolean -> bool, null ->
    None, octet-string -> bytes, visible/utf8-string -> str, bit-string -> (nbits, bytes),
    array/structure -> list of (tag, value), date-time/date/time -> raw bytes,
    float32/64 -> float. Raises AxdrError on truncation, unknown tags, compact-array
    ('unsupported') or nesting deeper than 16 levels.
    """
    if _depth > _MAX_DEPTH:
        raise AxdrError("format")
    _need(buf, pos, 1)
    tag = buf[pos]
    pos += 1
    if tag == _NULL:
        return (tag, None), pos
    f = _FIXED[tag] if tag <= _LAST_TAG else 0
    if f and not f & 0x20:
        size = f & 0x0F
        _need(buf, pos, size)
        v = _uint(buf, pos, size)
        if tag == _BOOLEAN:
            return (tag, v != 0), pos + 1
        if f & 0x10 and v >> (8 * size - 1):
            v -= 1 << (8 * size)
        return (tag, v), pos + size
    if tag == _OCTET_STRING or tag == _VISIBLE_STRING or tag == _UTF8_STRING:
        n, pos = decode_length(buf, pos)
        _need(buf, pos, n)
        b = bytes(buf[pos:pos + n])
        if tag != _OCTET_STRING:
            try:
                b = b.decode()
            except Exception:
                raise AxdrError("encoding")
        return (tag, b), pos + n
    if tag == _BIT_STRING:
        n, pos = decode_length(buf, pos)
        nb = (n + 7) // 8
        _need(buf, pos, nb)
        return (tag, (n, bytes(buf[pos:pos + nb]))), pos + nb
    if tag == _ARRAY or tag == _STRUCTURE:
        n, pos = decode_length(buf, pos)
        if n > len(buf) - pos:  # each element takes at least one byte
            raise AxdrError("truncated")
        items = []
        for _ in range(n):
            item, pos = decode(buf, pos, _depth + 1)
            items.append(item)
        return (tag, items), pos
    if f:
        size = f & 0x0F
        _need(buf, pos, size)
        b = bytes(buf[pos:pos + size])
        if tag == _FLOAT32 or tag == _FLOAT64:
            import struct
            return (tag, struct.unpack(">f" if size == 4 else ">d", b)[0]), pos + size
        return (tag, b), pos + size
    if tag == _COMPACT_ARRAY:
        raise AxdrError("format")
    raise AxdrError("format")


def skip(buf, pos=0, _depth=0):
    """Return the position just after the tagged value at ``buf[pos]`` without building
    it. Same errors as ``decode``."""
    if _depth > _MAX_DEPTH:
        raise AxdrError("format")
    _need(buf, pos, 1)
    tag = buf[pos]
    pos += 1
    if tag == _NULL:
        return pos
    f = _FIXED[tag] if tag <= _LAST_TAG else 0
    if f:
        _need(buf, pos, f & 0x0F)
        return pos + (f & 0x0F)
    if tag == _OCTET_STRING or tag == _VISIBLE_STRING or tag == _UTF8_STRING or tag == _BIT_STRING:
        n, pos = decode_length(buf, pos)
        if tag == _BIT_STRING:
            n = (n + 7) // 8
        _need(buf, pos, n)
        return pos + n
    if tag == _ARRAY or tag == _STRUCTURE:
        n, pos = decode_length(buf, pos)
        if n > len(buf) - pos:
            raise AxdrError("truncated")
        for _ in range(n):
            pos = skip(buf, pos, _depth + 1)
        return pos
    if tag == _COMPACT_ARRAY:
        raise AxdrError("format")
    raise AxdrError("format")


def _weekday(year, month, day):
    """ISO weekday 1=Monday..7=Sunday (Sakamoto's method)."""
    t = b"\x00\x03\x02\x05\x00\x03\x05\x01\x04\x06\x02\x04"
    y = year - 1 if month < 3 else year
    w = (y + y // 4 - y // 100 + y // 400 + t[month - 1] + day) % 7  # 0=Sunday
    return 7 if w == 0 else w


def datetime_bytes(year, month, day, hour, minute, second, hundredths=0,
                   deviation=-32768, status=0, weekday=None):
    """COSEM date-time, 12 bytes (Blue Book §4.1.6.1):
    year(2, BE) month day weekday hour minute second hundredths deviation(int16 BE,
    minutes, -32768 = 0x8000 not specified) clock-status.

    ``weekday`` None -> computed (1=Monday..7=Sunday) when year/month/day are concrete,
    else 0xFF. Not-specified fields take 0xFF (year 0xFFFF). Raises AxdrError on range.
    """
    if weekday is None:
        if 0 < year < 0xFFFF and 1 <= month <= 12 and 1 <= day <= 31:
            weekday = _weekday(year, month, day)
        else:
            weekday = 0xFF
    for v in (month, day, weekday, hour, minute, second, hundredths, status):
        if not 0 <= v <= 0xFF:
            raise AxdrError("range")
    if not 0 <= year <= 0xFFFF or not -32768 <= deviation <= 32767:
        raise AxdrError("range")
    d = deviation & 0xFFFF
    return bytes((year >> 8, year & 0xFF, month, day, weekday, hour, minute, second,
                  hundredths, d >> 8, d & 0xFF, status))


def parse_datetime(b12):
    """Split 12 date-time bytes into ``(year, month, day, weekday, hour, minute, second,
    hundredths, deviation, status)``; deviation is signed (-32768 = not specified)."""
    if len(b12) != 12:
        raise AxdrError("range")
    dev = (b12[9] << 8) | b12[10]
    if dev & 0x8000:
        dev -= 0x10000
    return ((b12[0] << 8) | b12[1], b12[2], b12[3], b12[4], b12[5], b12[6], b12[7],
            b12[8], dev, b12[11])
