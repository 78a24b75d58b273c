"""Modbus RTU frames on a byte stream, and the faults `hil.linenoise` applies to them.

Pure functions on bytes (no I/O): the CRC, the length of a request or reply from its first
bytes, `Framer` (a stream cut into frames by length and silence) and `corrupt` (a reply frame
with one fault applied, as parts with the silence before each).
"""

__all__ = ["crc16", "with_crc", "request_len", "reply_len", "index", "Framer", "corrupt"]


def crc16(data):
    """CRC-16/MODBUS of ``data`` (int; sent low byte first)."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body):
    """``body`` (bytes: address, function, data) followed by its CRC, low byte first."""
    crc = crc16(body)
    return bytes(body) + bytes((crc & 0xFF, crc >> 8))


def request_len(buf):
    """Length of the RTU request starting ``buf``: None (need more bytes), 0 (unknown)."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc in (1, 2, 3, 4, 5, 6):
        return 8
    if fc in (15, 16):
        return None if len(buf) < 7 else 9 + buf[6]
    return 4 if fc == 0x42 else 0


def reply_len(buf):
    """Length of the RTU reply starting ``buf``: None (need more bytes), 0 (unknown)."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc & 0x80:
        return 5
    if fc in (1, 2, 3, 4):
        return None if len(buf) < 3 else 5 + buf[2]
    if fc in (5, 6, 15, 16):
        return 8
    return 4 if fc == 0x42 else 0


def index(at, length, room=0):
    """Byte index for ``at`` (int index or float fraction) in a frame of ``length`` bytes,
    leaving ``room`` bytes after it."""
    hi = max(length - room, 0)
    i = int(at * length) if isinstance(at, float) else int(at)
    return min(max(i, 0), hi)


class Framer:
    """Cuts one direction's byte stream into frames (by length) and raw runs (unknown bytes,
    or an incomplete frame after a silence of ``gap`` s): ``Framer(length_fn, gap)`` with
    `request_len` or `reply_len`."""

    def __init__(self, length_fn, gap):
        self._len = length_fn
        self._gap = gap
        self.buf = bytearray()
        self.last = 0.0

    def feed(self, data, now):
        """-> [(is_frame, bytes)] in stream order."""
        out = []
        if self.buf and now - self.last > self._gap:
            out.append((False, bytes(self.buf)))
            del self.buf[:]
        self.last = now
        self.buf += data
        while self.buf:
            n = self._len(self.buf)
            if n is None or n > len(self.buf):
                break
            if n == 0:
                out.append((False, bytes(self.buf)))
                del self.buf[:]
                break
            out.append((True, bytes(self.buf[:n])))
            del self.buf[:n]
        return out

    def due(self):
        """Monotonic time at which a held incomplete frame is given up, or None."""
        return self.last + self._gap if self.buf else None

    def flush(self):
        """Take the held bytes (an incomplete frame) out of the framer; returns them."""
        data = bytes(self.buf)
        del self.buf[:]
        return data


def corrupt(kind, p, frame):
    """The reply ``frame`` (bytes, CRC included) with fault ``kind`` and parameters ``p`` (a
    dict, every key given; see `hil.linenoise`) applied: a list of (silence in s before this
    part, bytes) — [] for "silent". "wrong_unit" with ``p["unit"]`` None or the frame's own
    address writes the unit it used back into ``p``."""
    if kind == "stray":
        where = p["where"]
        if where == "before_reply":
            return [(0.0, p["data"] + frame)]
        if where == "after_reply":
            return [(0.0, frame + p["data"])]
        i = index(p["at"], len(frame))
        return [(0.0, frame[:i] + p["data"] + frame[i:])]
    if kind == "drop":
        i = index(p["at"], len(frame), p["n"])
        return [(0.0, frame[:i] + frame[i + p["n"]:])]
    if kind == "delay":
        return [(p["delay_s"], frame)]
    if kind == "split":
        i = min(max(index(p["at"], len(frame)), 1), len(frame) - 1)
        return [(0.0, frame[:i]), (p["gap_s"], frame[i:])]
    if kind == "crc":
        x = p["xor"]
        return [(0.0, frame[:-2] + bytes((frame[-2] ^ (x & 0xFF), frame[-1] ^ (x >> 8))))]
    if kind == "exception":
        return [(0.0, with_crc(bytes((frame[0], frame[1] | 0x80, p["code"]))))]
    if kind == "wrong_unit":
        unit = p["unit"]
        if unit is None or unit == frame[0]:
            unit = frame[0] % 247 + 1
            p["unit"] = unit
        return [(0.0, with_crc(bytes((unit,)) + frame[1:-2]))]
    return []  # silent

