"""Power-fail-safe journal: the newest valid record wins at boot (DESIGN.md §5).

Two slot files ``<name>.a`` / ``<name>.b`` are written alternately; each holds one record::

    b"PJ" | version u8 | seq u32 BE | length u16 BE | payload (JSON, UTF-8) | CRC-32 u32 BE

CRC-32 (binascii.crc32, ISO-HDLC) covers everything before it. A write that a power cut tears
leaves that slot invalid and the other slot (the previous record) intact, so ``load`` always
returns the last record whose ``save`` completed. On littlefs (VfsLfs2) a file's new content is
only committed on close, which gives the same guarantee per slot.

Errors: ``load`` never raises for damaged data; it returns None when no valid record exists.
"""
import binascii
import json
import struct

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_MAGIC = b"PJ"
_VERSION = const(1)
_HDR = const(9)


def encode_record(seq, obj):
    payload = json.dumps(obj).encode()
    head = _MAGIC + struct.pack(">BIH", _VERSION, seq, len(payload))
    body = head + payload
    return body + struct.pack(">I", binascii.crc32(body) & 0xFFFFFFFF)


def decode_record(data):
    """Return (seq, obj) or None if the bytes are not one valid record."""
    if data is None or len(data) < _HDR + 4 or data[:2] != _MAGIC:
        return None
    ver, seq, n = struct.unpack(">BIH", data[2:_HDR])
    if ver != _VERSION or len(data) != _HDR + n + 4:
        return None
    crc = struct.unpack(">I", data[_HDR + n:])[0]
    if binascii.crc32(data[:_HDR + n]) & 0xFFFFFFFF != crc:
        return None
    try:
        return seq, json.loads(data[_HDR:_HDR + n])
    except ValueError:
        return None


class Journal:
    """Alternating two-slot journal of one JSON-able object under ``path_prefix``."""

    def __init__(self, path_prefix):
        self._paths = (path_prefix + ".a", path_prefix + ".b")
        self.seq = 0
        self.writes = 0

    def _read(self, path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def load(self):
        best = None
        for p in self._paths:
            r = decode_record(self._read(p))
            if r is not None and (best is None or r[0] > best[0]):
                best = r
        if best is None:
            return None
        self.seq = best[0]
        return best[1]

    def save(self, obj):
        """Write ``obj`` as the next record; returns when it is durable (file closed)."""
        self.seq += 1
        data = encode_record(self.seq, obj)
        with open(self._paths[self.seq & 1], "wb") as f:
            f.write(data)
            try:
                f.flush()
            except (AttributeError, OSError):
                pass
        self.writes += 1
