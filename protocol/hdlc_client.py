"""HDLC frame layer, client (host) side (IEC 62056-46, ISO/IEC 13239).

Host code imports this module only (``from protocol import hdlc_client as hdlc``): it
re-exports the meter side (``protocol.hdlc``: ``ctrl_i``, ``ctrl_rr``, ``kind``, ``ns``, ``nr``,
``decode_address``, ``split_server_address``, ``Frame``, ``encode_frame``, ``Receiver``,
``encode_params``/``decode_params``, ``HdlcError``, the K_* kinds) and adds what only a client
or a capture decoder needs, which the device image leaves out (``host_tools.build.HOST_ONLY``):
the command constants, ``encode_client_address``/``encode_server_address``, ``decode_frame``,
``ctrl_rnr``, ``pf``, ``frame_repr`` and ``Receiver.pending()``. Runs on CPython and MicroPython.
"""
from protocol import hdlc as _hdlc
from protocol.hdlc import *  # noqa: F401,F403  (the meter side, re-exported)
from protocol.crc import crc16_x25
from protocol.hdlc import HdlcError, _check

FLAG = 0x7E
# Unnumbered responses with the P/F bit set (§6.4.3).
UA = 0x73
DM = 0x1F
FRMR = 0x97
# LLC sub-layer header of a response (IEC 62056-46 §5; first segment of an I-frame only).
LLC_RESPONSE = b"\xE6\xE7\x00"
# kind() results
K_I = 1
K_RR = 2
K_RNR = 3
K_SNRM = 4
K_UA = 5
K_DISC = 6
K_DM = 7
K_FRMR = 8
K_UI = 9
# Unnumbered / supervisory commands and responses with the P/F bit set (§6.4.3).
SNRM = 0x93
DISC = 0x53
UI = 0x13
# LLC sub-layer header of a request (IEC 62056-46 §5; first segment of an I-frame only).
LLC_REQUEST = b"\xE6\xE6\x00"

MAX_FRAME_LEN = 2047
K_UNKNOWN = 0

_PF = 0x10
_MIN_LEN = 7  # format(2) + dest(1) + src(1) + ctrl(1) + FCS(2)


def ctrl_rnr(nr, pf=True):
    """Control byte of an RNR (receive not ready) S-frame: ``N(R)<<5 | P/F<<4 | 0x05``."""
    return ((nr & 7) << 5) | (_PF if pf else 0) | 0x05


def pf(ctrl):
    """Poll/final bit of a control byte (bool)."""
    return bool(ctrl & _PF)


def encode_client_address(sap):
    """Client (SAP) address as 1 byte: ``sap<<1 | 1``; sap 0..0x7F, e.g. 16 -> b'\\x21'."""
    if not 0 <= sap <= 0x7F:
        raise HdlcError("address", "client address out of range")
    return bytes(((sap << 1) | 1,))


def encode_server_address(logical, physical=None, size=None):
    """Server address as 1, 2 or 4 bytes.

    1 byte: logical only (0..0x7F). 2 bytes: upper = logical, lower = physical, 7 bits each.
    4 bytes: 14 bits each. ``size`` None picks the smallest that fits (1 byte when
    ``physical`` is None). Raises HdlcError('address') when out of range.
    """
    if physical is None and size in (None, 1):
        if not 0 <= logical <= 0x7F:
            raise HdlcError("address", "server address out of range")
        return bytes(((logical << 1) | 1,))
    if physical is None:
        physical = 0
    if size is None:
        size = 2 if (logical <= 0x7F and physical <= 0x7F) else 4
    if size == 2:
        lim = 0x7F
    elif size == 4:
        lim = 0x3FFF
    else:
        raise HdlcError("address", "server address size must be 1, 2 or 4")
    if not (0 <= logical <= lim and 0 <= physical <= lim):
        raise HdlcError("address", "server address out of range")
    if size == 2:
        return bytes((logical << 1, (physical << 1) | 1))
    return bytes(((logical >> 7) << 1, (logical & 0x7F) << 1,
                  (physical >> 7) << 1, ((physical & 0x7F) << 1) | 1))



def frame_repr(f):
    """One-line description of a ``Frame`` (for logs and test messages)."""
    return "Frame(seg=%r dest=%s src=%s ctrl=0x%02X info=%d B)" % (
        f.segmented, _hex(f.dest), _hex(f.src), f.ctrl, len(f.info))


def _hex(b):
    return "".join("%02X" % x for x in b)



def decode_frame(buf):
    """Decode exactly one whole frame ``7E ... 7E`` into a ``Frame``.

    Raises HdlcError: 'flag' (missing opening/closing 0x7E), 'format' (type nibble not
    0xA), 'length' (length field disagrees with the buffer or is too short), 'address',
    'hcs', 'fcs'.
    """
    n = len(buf)
    if n < 2 or buf[0] != FLAG or buf[n - 1] != FLAG:
        raise HdlcError("flag")
    if n < 3 or buf[1] & 0xF0 != 0xA0:
        raise HdlcError("format")
    ln = ((buf[1] & 0x07) << 8) | buf[2]
    if ln != n - 2 or ln < _MIN_LEN:
        raise HdlcError("length")
    return _check(buf, 0, n)


# ---------------------------------------------------------------- host-side framing and reassembly
# Shared by the client link (protocol.client_link) and the capture decoder (host_tools.decode).

class FrameStream:
    """Byte stream -> frames, reporting what it rejects (IEC 62056-46 §6.4.1: frames are
    delimited by their length field, so a 0x7E inside an information field is fine).

    ``feed(data)`` appends bytes; ``pop(final=False)`` returns the next item or None when more
    bytes are needed. An item is ``(raw, Frame, None)`` for a valid frame or ``(raw, None,
    reason)`` for rejected bytes, reason one of 'garbage' (bytes outside any frame),
    'length', 'address', 'hcs', 'fcs', 'flag', 'format' or, with ``final`` (end of a
    capture), 'truncated'. Back-to-back frames may share a flag; idle flags are skipped.

    ``skip_bad`` True (captures) skips a rejected candidate by its length field; False (a live
    line) resumes the search at its next byte and gives up early on a candidate whose header
    is wrong before the rest arrives. ``dropped``/``last_error`` count rejected candidates.
    """

    def __init__(self, skip_bad=False):
        self.skip_bad = skip_bad
        self.dropped = 0
        self.last_error = None
        self.reset()

    def reset(self):
        """Forget buffered bytes (counters are kept)."""
        self._buf = bytearray()
        self._p = 0
        self._junk = None          # start index of bytes outside any frame
        self._shared = False       # buf[p] is the closing flag of the previous frame

    def feed(self, data):
        """Append received bytes."""
        if self._p > 4096 and self._junk is None:
            self._buf = self._buf[self._p:]
            self._p = 0
        self._buf += data

    def _reject(self, raw, reason, skip):
        if reason != "garbage":
            self.dropped += 1
            self.last_error = reason
        self._p += skip
        return bytes(raw), None, reason

    def _take_junk(self, end):
        s, self._junk = self._junk, None
        return bytes(self._buf[s:end]), None, "garbage"

    def pop(self, final=False):
        """The next ``(raw, frame_or_None, reason_or_None)``, or None (need more bytes)."""
        buf = self._buf
        n = len(buf)
        while self._p < n:
            p = self._p
            b = buf[p]
            if self._shared:               # buf[p] ended the previous candidate
                if p + 1 >= n and not final:
                    break
                self._shared = False
                if p + 1 >= n or buf[p + 1] & 0xF0 != 0xA0:
                    self._p += 1           # ... and opens no frame: consumed
                    continue
            if b == FLAG and p + 1 < n and buf[p + 1] == FLAG:
                self._p += 1               # idle flags
                continue
            if b == FLAG and p + 2 >= n and not final and (p + 1 >= n or buf[p + 1] & 0xF0 == 0xA0):
                break                      # maybe a frame start: wait for its length field
            if b != FLAG or p + 2 >= n or buf[p + 1] & 0xF0 != 0xA0:
                if self._junk is None:
                    self._junk = p
                self._p += 1
                continue
            if self._junk is not None:
                return self._take_junk(p)
            return self._candidate(buf, p, n, final)
        if self._junk is not None:
            return self._take_junk(self._p)
        return None

    def _candidate(self, buf, p, n, final):
        ln = ((buf[p + 1] & 0x07) << 8) | buf[p + 2]
        end = p + ln + 2
        if ln < _MIN_LEN:
            return self._reject(buf[p:p + 3], "length", 1)
        if end > n:
            if final:
                return self._reject(buf[p:], "truncated", n - p)
            if not self.skip_bad:
                reason = _header_error(buf, p, n, end)
                if reason is not None:
                    return self._reject(buf[p:n], reason, 1)
            return None
        raw = bytes(buf[p:end])
        try:
            f = decode_frame(raw)
        except HdlcError as e:
            if not self.skip_bad:
                return self._reject(raw, e.reason, 1)
            item = self._reject(raw, e.reason, 0)
            f = None
        else:
            item = (raw, f, None)
        # the closing flag may open the next frame too
        self._p = end - 1
        self._shared = True
        return item


def _header_error(buf, p, n, end):
    """What is already wrong with the header of an incomplete frame at buf[p:n] (``end`` its
    announced end): 'address', 'length', 'hcs', or None (fine so far / need more bytes)."""
    q = p + 3
    for _ in range(2):
        k = 0
        while True:
            if q >= n:
                return None
            k += 1
            q += 1
            if buf[q - 1] & 1:
                break
            if k >= 4:
                return "address"
        if k == 3:
            return "address"
    rest = end - 1 - (q + 1)       # bytes after the control byte up to the closing flag
    if rest == 2:
        return None
    if rest < 4:
        return "length"
    if q + 3 > n:
        return None
    c = crc16_x25(buf, p + 1, q + 1)
    if buf[q + 1] != (c & 0xFF) or buf[q + 2] != (c >> 8):
        return "hcs"
    return None


def split_frames(buf):
    """Split a whole captured HDLC byte stream: yields ``(raw, Frame or None, reason or
    None)`` as ``FrameStream(skip_bad=True).pop(final=True)`` does."""
    s = FrameStream(skip_bad=True)
    s.feed(buf)
    while True:
        item = s.pop(final=True)
        if item is None:
            return
        yield item


def strip_llc(data):
    """``(llc, apdu)``: the LLC header (IEC 62056-46 §5) removed from the start of a
    reassembled information field; llc is 'request', 'response' or None (no header)."""
    head = bytes(data[:3])
    if head == LLC_REQUEST:
        return "request", bytes(data[3:])
    if head == LLC_RESPONSE:
        return "response", bytes(data[3:])
    return None, bytes(data)


class Reassembler:
    """Joins the information fields of a segmented I/UI sequence (S bit of the format field,
    IEC 62056-46 §6.4.4.5), one sequence per (dest, src) address pair.

    ``add(frame)`` -> None while segments follow, else ``(llc, apdu)`` (see ``strip_llc``).
    ``pending()`` the address pairs with an unfinished sequence; ``reset()`` forgets them.
    """

    def __init__(self):
        self._seg = {}

    def reset(self):
        self._seg = {}

    def pending(self):
        return list(self._seg)

    def add(self, f):
        key = (f.dest, f.src)
        acc = self._seg.get(key)
        if acc is None:
            acc = self._seg[key] = bytearray()
        acc += f.info
        if f.segmented:
            return None
        del self._seg[key]
        return strip_llc(acc)


class Receiver(_hdlc.Receiver):
    """``protocol.hdlc.Receiver`` (the meter's) plus ``pending()``, for clients and tests."""

    def pending(self):
        """Number of buffered, not yet framed bytes."""
        return self._e - self._s
