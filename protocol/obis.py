"""OBIS codes (IEC 62056-61 §4): six value groups A.B.C.D.E.F, one byte each.

- ``parse(text) -> bytes`` (6 bytes). Accepts "1.0.1.8.0.255", "1-0:1.8.0.255",
  "1-0:1.8.0*255", "1-0:1.8.0" (F defaults to 255 in the A-B:C.D.E form only) and
  12 hex digits ("0100010800FF"). Raises ``ValueError`` on anything else.
- ``to_str(b6) -> "1.0.1.8.0.255"`` (dotted decimal, as gurux and the Blue Book write it).
"""

_HEX = "0123456789abcdefABCDEF"


def _group(s, text):
    if not s or len(s) > 3:
        raise ValueError("bad OBIS code %r" % (text,))
    v = 0
    for ch in s:
        o = ord(ch) - 48
        if o < 0 or o > 9:
            raise ValueError("bad OBIS code %r" % (text,))
        v = v * 10 + o
    if v > 255:
        raise ValueError("bad OBIS code %r" % (text,))
    return v


def parse(text):
    """Parse an OBIS code in one of the accepted notations; returns 6 bytes.

    Raises ValueError (bad type, wrong group count, group out of 0..255, bad hex).
    """
    if isinstance(text, (bytes, bytearray)):
        if len(text) == 6:
            return bytes(text)
        try:
            text = bytes(text).decode()
        except Exception:
            raise ValueError("bad OBIS code")
    if not isinstance(text, str):
        raise ValueError("bad OBIS code %r" % (text,))
    t = text.strip()
    if len(t) == 12:
        ok = True
        for ch in t:
            if ch not in _HEX:
                ok = False
                break
        if ok:
            return bytes(int(t[i:i + 2], 16) for i in range(0, 12, 2))
    if "-" in t or ":" in t:
        # A-B:C.D.E[.F|*F]
        dash = t.find("-")
        colon = t.find(":")
        if dash < 1 or colon < dash + 2:
            raise ValueError("bad OBIS code %r" % (text,))
        a = _group(t[:dash], text)
        b = _group(t[dash + 1:colon], text)
        rest = t[colon + 1:]
        star = rest.find("*")
        f = 255
        if star >= 0:
            f = _group(rest[star + 1:], text)
            rest = rest[:star]
            parts = rest.split(".")
            if len(parts) != 3:
                raise ValueError("bad OBIS code %r" % (text,))
        else:
            parts = rest.split(".")
            if len(parts) == 4:
                f = _group(parts.pop(), text)
            elif len(parts) != 3:
                raise ValueError("bad OBIS code %r" % (text,))
        return bytes([a, b] + [_group(p, text) for p in parts] + [f])
    parts = t.split(".")
    if len(parts) != 6:
        raise ValueError("bad OBIS code %r" % (text,))
    return bytes([_group(p, text) for p in parts])


def to_str(b6):
    """Format 6 bytes as dotted decimal "A.B.C.D.E.F". Raises ValueError if not 6 bytes."""
    if not isinstance(b6, (bytes, bytearray, memoryview)) or len(b6) != 6:
        raise ValueError("OBIS code must be 6 bytes")
    return "%d.%d.%d.%d.%d.%d" % (b6[0], b6[1], b6[2], b6[3], b6[4], b6[5])
