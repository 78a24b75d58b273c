"""A-XDR encoding of DLMS ``Data``, host side (IEC 62056-6-2 §4.1.5, Green Book §9.5).

Host code imports this module only (``from protocol import axdr_client as axdr``): it
re-exports the meter side (``protocol.axdr``: ``decode``, ``skip``, the length codec,
``datetime_bytes``/``parse_datetime``, ``AxdrError``) and adds what the device image leaves
out (``host_tools.build.HOST_ONLY``): every tag constant, ``to_python`` and a ``Writer`` with
``raw``, ``long64``, ``long64_unsigned``, ``visible_string`` and ``date_time`` on top of the
meter's. Runs on CPython and MicroPython.
"""
from protocol import axdr as _axdr
from protocol.axdr import *  # noqa: F401,F403  (the meter side, re-exported)
from protocol.axdr import AxdrError

NULL = 0
ARRAY = 1
STRUCTURE = 2
DOUBLE_LONG = 5
DOUBLE_LONG_UNSIGNED = 6
OCTET_STRING = 9
LONG = 16
LONG_UNSIGNED = 18
ENUM = 22
DATE_TIME = 25
BOOLEAN = 3
BIT_STRING = 4
VISIBLE_STRING = 10
UTF8_STRING = 12
BCD = 13
INTEGER = 15
UNSIGNED = 17
COMPACT_ARRAY = 19
LONG64 = 20
LONG64_UNSIGNED = 21
FLOAT32 = 23
FLOAT64 = 24
DATE = 26
TIME = 27

MAX_DEPTH = 16


class Writer(_axdr.Writer):
    """``protocol.axdr.Writer`` plus the encoders only a client needs. All methods return
    ``self``; integer methods raise AxdrError when the value does not fit the type."""

    def getvalue(self):
        """The encoded bytes so far (a copy; the meter reads ``buf``)."""
        return bytes(self.buf)

    def raw(self, b):
        """Append already-encoded bytes."""
        self.buf.extend(b)
        return self

    def long64(self, v):
        """int64 (tag 20)."""
        return self._int(LONG64, v, 8, True)

    def long64_unsigned(self, v):
        """uint64 (tag 21)."""
        return self._int(LONG64_UNSIGNED, v, 8, False)

    def visible_string(self, s):
        """visible-string (tag 10) from str or bytes."""
        if isinstance(s, str):
            s = s.encode()
        return self._bytes(VISIBLE_STRING, s)

    def date_time(self, b12):
        """date-time (tag 25) + 12 raw bytes (see ``datetime_bytes``)."""
        if len(b12) != 12:
            raise AxdrError("date-time must be 12 bytes")
        self.buf.append(DATE_TIME)
        self.buf.extend(b12)
        return self



def to_python(tagged):
    """Strip tags recursively: ``(tag, value)`` -> value, lists of tagged -> lists."""
    tag, value = tagged
    if tag == ARRAY or tag == STRUCTURE:
        return [to_python(x) for x in value]
    return value
