"""Rendering and parsing helpers for ``meterctl`` (host only, CPython).

- Money is integer paise, energy integer Wh: no floats anywhere on the way in or out.
  ``parse_rupees("500.00") -> 50000``; ``rupees(50000) -> "₹500.00"``; ``kwh(12345) -> "12.345 kWh"``.
- A-XDR values (IEC 62056-6-2 §4.1.5 / Blue Book "Data") travel as the ``(tag, value)`` pairs
  ``protocol.axdr.decode`` returns. ``describe()`` turns one into readable text, ``to_jsonable()``
  into plain JSON (with the type named), ``encode_typed("long-unsigned:42")`` builds one from the
  command line.
- ``clock_iso(b12)`` renders a COSEM date-time (octet-string of 12, Blue Book §4.1.6.1) as ISO 8601.
  ``iso_or_none(text)``: the same for JSON, None where the date-time is not specified.
"""

import re

from protocol import axdr_client as axdr
from protocol import obis

# A-XDR tag -> the name the Blue Book uses (kebab case, as on the command line).
TYPE_NAMES = {
    axdr.NULL: "null",
    axdr.ARRAY: "array",
    axdr.STRUCTURE: "structure",
    axdr.BOOLEAN: "boolean",
    axdr.BIT_STRING: "bit-string",
    axdr.DOUBLE_LONG: "double-long",
    axdr.DOUBLE_LONG_UNSIGNED: "double-long-unsigned",
    axdr.OCTET_STRING: "octet-string",
    axdr.VISIBLE_STRING: "visible-string",
    axdr.UTF8_STRING: "utf8-string",
    axdr.BCD: "bcd",
    axdr.INTEGER: "integer",
    axdr.LONG: "long",
    axdr.UNSIGNED: "unsigned",
    axdr.LONG_UNSIGNED: "long-unsigned",
    axdr.LONG64: "long64",
    axdr.LONG64_UNSIGNED: "long64-unsigned",
    axdr.ENUM: "enum",
    axdr.FLOAT32: "float32",
    axdr.FLOAT64: "float64",
    axdr.DATE_TIME: "date-time",
    axdr.DATE: "date",
    axdr.TIME: "time",
}

# integer types: name -> (writer method, min, max)
_INT_TYPES = {
    "integer": ("integer", -128, 127),
    "long": ("long", -32768, 32767),
    "unsigned": ("unsigned", 0, 255),
    "long-unsigned": ("long_unsigned", 0, 65535),
    "double-long": ("double_long", -(1 << 31), (1 << 31) - 1),
    "double-long-unsigned": ("double_long_unsigned", 0, (1 << 32) - 1),
    "long64": ("long64", -(1 << 63), (1 << 63) - 1),
    "long64-unsigned": ("long64_unsigned", 0, (1 << 64) - 1),
    "enum": ("enum", 0, 255),
}

# Value types accepted by ``encode_typed`` (for --help texts).
VALUE_TYPES = ("null", "boolean") + tuple(_INT_TYPES) + (
    "octet-string", "visible-string", "utf8-string", "bit-string", "date-time", "obis", "raw")

DOUBLE_LONG_MAX = (1 << 31) - 1

_AMOUNT_RE = re.compile(r"^(\d+)(?:\.(\d{1,2}))?$")


# --------------------------------------------------------------------------- money / energy

def parse_rupees(text, limit=DOUBLE_LONG_MAX):
    """Parse a rupee amount "500", "500.5", "500.00", "0.1" into integer paise (no floats).

    At most two decimals; must be > 0 and at most ``limit`` paise (default: a double-long, ≤
    21474836.47, the range of IC 112 update_amount; ``meterctl credit add`` gives the meter's
    credit register limit). Raises ValueError with a one-line reason otherwise.
    """
    t = str(text).strip().replace("_", "")
    if t.startswith("₹"):
        t = t[1:].strip()
    if t.startswith("-"):
        raise ValueError("amount must be positive, got %r" % (text,))
    m = _AMOUNT_RE.match(t)
    if m is None:
        if re.match(r"^\d+\.\d{3,}$", t):
            raise ValueError("amount %r has more than 2 decimals (1 paisa is the smallest unit)" % (text,))
        raise ValueError("amount %r is not a rupee amount like 500 or 500.00" % (text,))
    whole, frac = m.group(1), m.group(2) or ""
    paise = int(whole) * 100 + int((frac + "00")[:2])
    if paise <= 0:
        raise ValueError("amount must be greater than zero")
    if paise > limit:
        raise ValueError("amount %r is above the largest credit a meter holds (%s)" % (text, rupees(limit)))
    return paise


def _rupee_symbol():
    """"₹" where stdout can print it, else "Rs " (an ASCII terminal or PYTHONIOENCODING=ascii)."""
    import sys
    enc = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "₹".encode(enc)
        return "₹"
    except (UnicodeEncodeError, LookupError):
        return "Rs "


def indian_digits(n):
    """Non-negative int -> digits in Indian grouping (lakh, crore): 2000000 -> "20,00,000"."""
    s = str(int(n))
    if len(s) <= 3:
        return s
    head, tail = s[:-3], s[-3:]
    groups = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    return ",".join(([head] if head else []) + groups + [tail])


def rupees(paise, symbol=None):
    """Integer paise -> "₹1,234.56", Indian grouping above a lakh ("₹20,00,000.00"; negative as
    "-₹12.00"); None -> "-"."""
    if symbol is None:
        symbol = _rupee_symbol()
    if paise is None:
        return "-"
    paise = int(paise)
    sign = "-" if paise < 0 else ""
    p = abs(paise)
    return "%s%s%s.%02d" % (sign, symbol, indian_digits(p // 100), p % 100)


def kwh(wh):
    """Integer Wh -> "12.345 kWh" (exact, three decimals); None -> "-"."""
    if wh is None:
        return "-"
    wh = int(wh)
    sign = "-" if wh < 0 else ""
    w = abs(wh)
    return "%s%s.%03d kWh" % (sign, "{:,}".format(w // 1000), w % 1000)


def hexs(data):
    """bytes -> "7E A0 07 ..." (upper-case, space separated)."""
    return " ".join("%02X" % b for b in bytes(data))


# --------------------------------------------------------------------------- date-time

_WEEKDAYS = ("", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def clock_iso(b12):
    """COSEM date-time (12 bytes, Blue Book §4.1.6.1) -> ISO 8601 text.

    "Not specified" fields (0xFF / 0xFFFF) are rendered as "??"/"????". The deviation is
    minutes from local time to UTC (UTC = local + deviation), so IST (UTC+05:30) is -330 and is
    rendered "+05:30"; an unspecified deviation (0x8000) gives no offset. Raises ValueError if
    ``b12`` is not 12 bytes.
    """
    b12 = bytes(b12)
    if len(b12) != 12:
        raise ValueError("date-time must be 12 bytes, got %d" % len(b12))
    y = (b12[0] << 8) | b12[1]
    mo, d, _wd, h, mi, s, _hs = b12[2], b12[3], b12[4], b12[5], b12[6], b12[7], b12[8]
    dev = (b12[9] << 8) | b12[10]
    if dev >= 0x8000:
        dev -= 0x10000

    def f(v, width, nspec):
        return "?" * width if v in nspec else "%0*d" % (width, v)

    text = "%s-%s-%sT%s:%s:%s" % (
        f(y, 4, (0xFFFF,)), f(mo, 2, (0xFF, 0xFD, 0xFE)), f(d, 2, (0xFF, 0xFD, 0xFE, 0)),
        f(h, 2, (0xFF,)), f(mi, 2, (0xFF,)), f(s, 2, (0xFF,)))
    if dev != -32768:
        off = -dev
        sign = "+" if off >= 0 else "-"
        text += "%s%02d:%02d" % (sign, abs(off) // 60, abs(off) % 60)
    return text


_ISO_PATTERN = re.compile(r"[0-9?]{4}-[0-9?]{2}-[0-9?]{2}T[0-9?]{2}:[0-9?]{2}:[0-9?]{2}([+-][0-9]{2}:[0-9]{2})?")


def iso_or_none(value):
    """A cell for a JSON consumer: a ``clock_iso`` text with a field "not specified" ("????",
    "??": an IS 15959 maximum demand time before any demand, all 0xFF) -> None, since it is no
    date a JSON consumer can parse; anything else unchanged. Tables and CSV keep the "????"
    form: it is how DLMS tools show a date-time's not-specified fields."""
    if isinstance(value, str) and "?" in value and _ISO_PATTERN.fullmatch(value):
        return None
    return value


def looks_like_datetime(b):
    """True if 12 bytes are a plausible COSEM date-time (each field in range or "not
    specified"), so an octet-string can be shown as a date without lying about random data."""
    if len(b) != 12:
        return False
    mo, d, wd, h, mi, s, hs = b[2], b[3], b[4], b[5], b[6], b[7], b[8]
    dev = (b[9] << 8) | b[10]
    if dev >= 0x8000:
        dev -= 0x10000
    return ((1 <= mo <= 12 or mo in (0xFD, 0xFE, 0xFF)) and (1 <= d <= 31 or d in (0xFD, 0xFE, 0xFF))
            and (1 <= wd <= 7 or wd == 0xFF) and (h < 24 or h == 0xFF) and (mi < 60 or mi == 0xFF)
            and (s < 60 or s == 0xFF) and (hs < 100 or hs == 0xFF)
            and (-720 <= dev <= 840 or dev == -32768))


def parse_iso_datetime(text):
    """"2026-01-01T00:00:00[+05:30|Z]" -> COSEM date-time 12 bytes (weekday filled in).

    Without an offset the deviation is "not specified" (0x8000). Raises ValueError.
    """
    import datetime as _dt

    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    try:
        d = _dt.datetime.fromisoformat(t)
    except ValueError:
        raise ValueError("bad date-time %r (want e.g. 2026-01-01T00:00:00+05:30)" % (text,))
    dev = -32768
    if d.tzinfo is not None:
        off = d.utcoffset()
        dev = -int(off.total_seconds() // 60)
    return bytes(axdr.datetime_bytes(d.year, d.month, d.day, d.hour, d.minute, d.second,
                                     d.microsecond // 10000, dev, 0, d.isoweekday()))


# --------------------------------------------------------------------------- values out

def _is_printable(b):
    return len(b) > 0 and all(32 <= c < 127 for c in b)


def _bits(value):
    """bit-string value from axdr -> "0101..." text (tolerates (bytes, nbits) or str)."""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        data, nbits = value
        if isinstance(data, int):
            data, nbits = nbits, data
        data = bytes(data)
        return "".join("1" if data[i // 8] & (0x80 >> (i % 8)) else "0" for i in range(nbits))
    return str(value)


def describe(tagged, indent=0):
    """Readable multi-line text for one decoded A-XDR value ``(tag, value)``.

    Octet-strings of 12 bytes that look like a date-time are shown as ISO text too, 6-byte
    ones as an OBIS code too (a hint: the type on the wire stays octet-string).
    """
    tag, value = tagged
    name = TYPE_NAMES.get(tag, "tag-%d" % tag)
    pad = "  " * indent
    if tag in (axdr.STRUCTURE, axdr.ARRAY):
        items = list(value)
        lines = ["%s%s[%d]" % (pad, name, len(items))]
        for item in items:
            lines.append(describe(item, indent + 1))
        return "\n".join(lines)
    if tag in (axdr.OCTET_STRING, axdr.DATE_TIME, axdr.DATE, axdr.TIME):
        b = bytes(value)
        text = "%s%s %s" % (pad, name, b.hex() if b else "(empty)")
        hint = None
        if len(b) == 12 and (tag == axdr.DATE_TIME or looks_like_datetime(b)):
            hint = clock_iso(b)
        elif len(b) == 6 and tag == axdr.OCTET_STRING:
            hint = "OBIS " + obis.to_str(b)
        elif tag == axdr.OCTET_STRING and _is_printable(b):
            hint = repr(b.decode("ascii"))
        if hint:
            text += "  (%s)" % hint
        return text
    if tag in (axdr.VISIBLE_STRING, axdr.UTF8_STRING):
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        return "%s%s %r" % (pad, name, value)
    if tag == axdr.BIT_STRING:
        return "%s%s %s" % (pad, name, _bits(value))
    if tag == axdr.BOOLEAN:
        return "%s%s %s" % (pad, name, "true" if value else "false")
    if tag == axdr.NULL:
        return "%snull" % pad
    return "%s%s %s" % (pad, name, value)


def to_jsonable(tagged):
    """One decoded A-XDR value -> {"type": name, "value": ...} (nested for structure/array;
    octet-strings as hex, with "iso"/"obis"/"text" hints where they apply)."""
    tag, value = tagged
    name = TYPE_NAMES.get(tag, "tag-%d" % tag)
    if tag in (axdr.STRUCTURE, axdr.ARRAY):
        return {"type": name, "value": [to_jsonable(v) for v in value]}
    if tag in (axdr.OCTET_STRING, axdr.DATE_TIME, axdr.DATE, axdr.TIME):
        b = bytes(value)
        out = {"type": name, "value": b.hex()}
        if len(b) == 12 and (tag == axdr.DATE_TIME or looks_like_datetime(b)):
            out["iso"] = iso_or_none(clock_iso(b))      # null: not specified (the hex says how)
        elif len(b) == 6 and tag == axdr.OCTET_STRING:
            out["obis"] = obis.to_str(b)
        elif tag == axdr.OCTET_STRING and _is_printable(b):
            out["text"] = b.decode("ascii")
        return out
    if tag in (axdr.VISIBLE_STRING, axdr.UTF8_STRING):
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        return {"type": name, "value": value}
    if tag == axdr.BIT_STRING:
        return {"type": name, "value": _bits(value)}
    if tag == axdr.BOOLEAN:
        return {"type": name, "value": bool(value)}
    if tag == axdr.NULL:
        return {"type": name, "value": None}
    if tag in (axdr.FLOAT32, axdr.FLOAT64):
        return {"type": name, "value": value}
    return {"type": name, "value": int(value)}


# --------------------------------------------------------------------------- values in

def encode_typed(text):
    """"TYPE:VALUE" from the command line -> A-XDR bytes (tag + content).

    TYPE is one of ``VALUE_TYPES``: integers (range-checked, decimal or 0x hex), boolean
    (true/false/1/0), octet-string (hex), visible-string/utf8-string (text), bit-string
    ("0101..."), date-time (ISO 8601 or 24 hex digits), obis (octet-string of 6 from an OBIS
    code), raw (hex of complete A-XDR, for structures/arrays). "null" needs no value.
    Raises ValueError with a one-line reason.
    """
    if text is None:
        raise ValueError("missing value")
    t = str(text)
    if t.strip().lower() == "null":
        return bytes(axdr.Writer().null().getvalue())
    if ":" not in t:
        raise ValueError("value %r must be TYPE:VALUE, e.g. long-unsigned:42 (types: %s)"
                         % (text, ", ".join(VALUE_TYPES)))
    typ, val = t.split(":", 1)
    typ = typ.strip().lower().replace("_", "-")
    w = axdr.Writer()
    if typ in _INT_TYPES:
        meth, lo, hi = _INT_TYPES[typ]
        try:
            n = int(val.strip(), 0)
        except ValueError:
            raise ValueError("%s needs an integer, got %r" % (typ, val))
        if not lo <= n <= hi:
            raise ValueError("%s must be in %d..%d, got %d" % (typ, lo, hi, n))
        getattr(w, meth)(n)
    elif typ == "boolean":
        w.boolean(_boolean(val))
    elif typ == "raw":
        return _raw(_hex(typ, val))
    elif typ == "octet-string":
        w.octet_string(_hex(typ, val))
    elif typ == "visible-string":
        try:
            w.visible_string(val.encode("ascii"))
        except UnicodeEncodeError:
            raise ValueError("visible-string must be ASCII; use utf8-string")
    elif typ == "utf8-string":
        w.utf8_string(val.encode("utf-8"))
    elif typ == "bit-string":
        bits = val.strip()
        if not bits or any(c not in "01" for c in bits):
            raise ValueError("bit-string needs 0/1 digits, got %r" % (val,))
        data = bytearray((len(bits) + 7) // 8)
        for i, c in enumerate(bits):
            if c == "1":
                data[i // 8] |= 0x80 >> (i % 8)
        w.bit_string(bytes(data), len(bits))
    elif typ == "date-time":
        v = val.strip()
        if re.match(r"^[0-9a-fA-F]{24}$", v):
            w.octet_string(bytes.fromhex(v))
        else:
            w.octet_string(parse_iso_datetime(v))
    elif typ == "obis":
        w.octet_string(obis.parse(val.strip()))
    else:
        raise ValueError("unknown type %r (types: %s)" % (typ, ", ".join(VALUE_TYPES)))
    return bytes(w.getvalue())


def _boolean(val):
    v = val.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError("boolean must be true/false, got %r" % (val,))


def _hex(typ, val):
    h = val.strip().replace(" ", "")
    if h.lower().startswith("0x"):
        h = h[2:]
    try:
        return bytes.fromhex(h)
    except ValueError:
        raise ValueError("%s needs hex digits, got %r" % (typ, val))


def _raw(b):
    """Complete A-XDR bytes, checked to be exactly one value."""
    try:
        _, end = axdr.decode(b, 0)
    except Exception as e:
        raise ValueError("raw value is not one complete A-XDR value: %s" % (e,))
    if end != len(b):
        raise ValueError("raw value has %d trailing bytes" % (len(b) - end))
    return b
