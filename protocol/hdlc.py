"""HDLC frame layer of the DLMS/COSEM three-layer profile (IEC 62056-46, ISO/IEC 13239).

Frame (format type 3, no byte stuffing, delimited by the 11-bit length field)::

    7E | format(2) | dest(1,2,4) | src(1,2,4) | ctrl | [HCS(2) | info] | FCS(2) | 7E

- format = ``0xA0 | S(0x08) | len[10:8]``, ``len[7:0]``; len counts the bytes between the
  flags (max 2047). S marks a segment with more to follow (IEC 62056-46 §6.4.1).
- HCS (only when there is an information field) covers format..ctrl; FCS covers
  format..end of info. Both are CRC-16/X.25, sent LSB first (``protocol.crc``).
- Addresses (§6.4.2): 7 bits per byte shifted left, LSB=1 marks the last byte. The client
  address is 1 byte; the server address 1, 2 (upper = logical, lower = physical, 7 bits
  each) or 4 bytes (14 bits each).

This module is the meter's side (in the device image; every name costs heap there): control
helpers (``ctrl_i``, ``ctrl_rr``, ``kind``, ``ns``, ``nr``), address decoding
(``decode_address``, ``split_server_address``), ``encode_frame``, the streaming ``Receiver``
and the SNRM/UA parameter codec (``encode_params``/``decode_params``). The client side
(``encode_client_address``, ``encode_server_address``, ``decode_frame``, ``ctrl_rnr``, ``pf``,
the command constants) is ``protocol.hdlc_client``, which re-exports this module.
Every error is an ``HdlcError`` whose ``.reason`` is one of 'flag', 'format', 'length',
'address', 'hcs', 'fcs'.
"""
from protocol.crc import crc16_x25

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# kind() results: private, folded by mpy-cross (public in protocol.hdlc_client with the
# UA/DM/FRMR responses and LLC headers; meter.server keeps its own copies)
_K_I = const(1)
_K_RR = const(2)
_K_RNR = const(3)
_K_SNRM = const(4)
_K_UA = const(5)
_K_DISC = const(6)
_K_DM = const(7)
_K_FRMR = const(8)
_K_UI = const(9)

_K_UNKNOWN = const(0)
_FLAG = const(0x7E)
_MAX_FRAME_LEN = const(2047)
_PF = const(0x10)
_MIN_LEN = const(7)  # format(2) + dest(1) + src(1) + ctrl(1) + FCS(2)

try:
    from time import ticks_diff as _ticks_diff
except ImportError:  # CPython: plain milliseconds
    def _ticks_diff(a, b):
        return a - b


class HdlcError(ValueError):
    """Bad HDLC frame or field. ``.reason`` in ('flag', 'format', 'length', 'address',
    'hcs', 'fcs')."""

    def __init__(self, reason, msg=None):
        super().__init__(msg or reason)
        self.reason = reason


# ---------------------------------------------------------------- control field (§6.4.3)

def ctrl_i(ns, nr, pf=True):
    """Control byte of an I-frame: ``N(R)<<5 | P/F<<4 | N(S)<<1``; ns, nr in 0..7."""
    return ((nr & 7) << 5) | (_PF if pf else 0) | ((ns & 7) << 1)


def ctrl_rr(nr, pf=True):
    """Control byte of an RR (receive ready) S-frame: ``N(R)<<5 | P/F<<4 | 0x01``."""
    return ((nr & 7) << 5) | (_PF if pf else 0) | 0x01


def kind(ctrl):
    """Classify a control byte: 1 I, 2 RR, 3 RNR, 4 SNRM, 5 UA, 6 DISC, 7 DM, 8 FRMR, 9 UI,
    or 0 unknown (P/F ignored); names K_I ... K_UI, K_UNKNOWN in protocol.hdlc_client."""
    if not ctrl & 1:
        return _K_I
    if ctrl & 3 == 1:
        low = ctrl & 0x0F
        if low == 0x01:
            return _K_RR
        if low == 0x05:
            return _K_RNR
        return _K_UNKNOWN
    u = ctrl & 0xEF
    if u == 0x83:
        return _K_SNRM
    if u == 0x63:
        return _K_UA
    if u == 0x43:
        return _K_DISC
    if u == 0x0F:
        return _K_DM
    if u == 0x87:
        return _K_FRMR
    if u == 0x03:
        return _K_UI
    return _K_UNKNOWN


def ns(ctrl):
    """Send sequence number N(S) of an I-frame control byte (0..7)."""
    return (ctrl >> 1) & 7


def nr(ctrl):
    """Receive sequence number N(R) of an I- or S-frame control byte (0..7)."""
    return (ctrl >> 5) & 7


# ---------------------------------------------------------------- addresses (§6.4.2)

def decode_address(buf, pos, end=None):
    """Decode an HDLC address starting at ``buf[pos]``.

    Returns ``(value, nbytes, newpos)`` where value concatenates the 7-bit groups
    (MSB first). Raises HdlcError('address') if the address runs off ``end`` (default
    ``len(buf)``) or is 3 or more than 4 bytes long (only 1, 2, 4 are legal).
    """
    if end is None:
        end = len(buf)
    v = 0
    n = 0
    while True:
        if pos >= end or n >= 4:
            raise HdlcError("address")
        b = buf[pos]
        pos += 1
        n += 1
        v = (v << 7) | (b >> 1)
        if b & 1:
            break
    if n == 3:
        raise HdlcError("address")
    return v, n, pos


def split_server_address(value, nbytes):
    """Split a decoded server address: ``(logical, physical_or_None)``.

    nbytes 1 -> (value, None); 2 -> 7+7 bits; 4 -> 14+14 bits. Other sizes: HdlcError.
    """
    if nbytes == 1:
        return value, None
    if nbytes == 2:
        return value >> 7, value & 0x7F
    if nbytes == 4:
        return value >> 14, value & 0x3FFF
    raise HdlcError("address")


# ---------------------------------------------------------------- frames (§6.4.1, §6.4.4)

class Frame:
    """One decoded HDLC frame: ``segmented`` (bool, S bit), ``dest``/``src`` (address
    bytes as on the wire), ``ctrl`` (int), ``info`` (bytes, b'' when absent), ``length``
    (the format field's frame length, bytes between the flags)."""

    def __init__(self, segmented, dest, src, ctrl, info, length):
        self.segmented = segmented
        self.dest = dest
        self.src = src
        self.ctrl = ctrl
        self.info = info
        self.length = length

def encode_frame(dest, src, ctrl, info=b"", segmented=False):
    """Build a whole frame (both flags included).

    ``dest``/``src`` are encoded address bytes; ``info`` the information field (an LLC
    header, if any, is part of it). HCS is present only when info is non-empty.
    Raises HdlcError('length') if the frame would exceed 2047 bytes.
    """
    if not 0 <= ctrl <= 0xFF:
        raise HdlcError("format")
    hl = 2 + len(dest) + len(src) + 1
    n = hl + 2
    if info:
        n += 2 + len(info)
    if n > _MAX_FRAME_LEN:
        raise HdlcError("length")
    out = bytearray(n + 2)
    out[0] = _FLAG
    out[1] = 0xA0 | (0x08 if segmented else 0) | (n >> 8)
    out[2] = n & 0xFF
    p = 3
    for b in dest:
        out[p] = b
        p += 1
    for b in src:
        out[p] = b
        p += 1
    out[p] = ctrl
    p += 1
    if info:
        c = crc16_x25(out, 1, p)
        out[p] = c & 0xFF
        out[p + 1] = c >> 8
        p += 2
        out[p:p + len(info)] = info
        p += len(info)
    c = crc16_x25(out, 1, p)
    out[p] = c & 0xFF
    out[p + 1] = c >> 8
    out[p + 2] = _FLAG
    return bytes(out)


def _check(buf, s, total):
    """Validate a candidate frame at buf[s:s+total] (flags included) and return a Frame.

    ``total`` = length field + 2. Raises HdlcError.
    """
    e = s + total - 1          # index of the closing flag
    if buf[e] != _FLAG:
        raise HdlcError("flag")
    ln = total - 2
    p = s + 3
    _, _, p = decode_address(buf, p, e)
    da = p
    _, _, p = decode_address(buf, p, e)
    sa = p
    if p >= e:
        raise HdlcError("length")
    ctrl = buf[p]
    p += 1
    rest = e - p               # bytes after ctrl up to the closing flag
    if rest == 2:
        info_s = info_e = p
    elif rest >= 4:
        c = crc16_x25(buf, s + 1, p)
        if buf[p] != (c & 0xFF) or buf[p + 1] != (c >> 8):
            raise HdlcError("hcs")
        info_s = p + 2
        info_e = e - 2
    else:
        raise HdlcError("length")
    c = crc16_x25(buf, s + 1, e - 2)
    if buf[e - 2] != (c & 0xFF) or buf[e - 1] != (c >> 8):
        raise HdlcError("fcs")
    return Frame(bool(buf[s + 1] & 0x08), bytes(buf[s + 3:da]), bytes(buf[da:sa]), ctrl,
                 bytes(buf[info_s:info_e]), ln)


class Receiver:
    """Byte-stream to frame reassembler (IEC 62056-46 §6.4.1: frames are delimited by the
    length field; 0x7E may occur inside the information field).

    ``feed(data, now_ms=None, backlog=False)`` copies bytes into a preallocated buffer of
    ``maxlen`` bytes (a server sizes it from its negotiated ``max_info`` plus the frame
    overhead: no fixed 2 KB buffer); ``pop()`` returns the next valid ``Frame`` or None. Garbage is skipped by
    scanning for ``7E`` followed by a format byte ``0xA?``. A candidate with a bad address, HCS,
    FCS, closing flag or an impossible length is dropped (``dropped`` += 1, ``last_error`` =
    reason) and scanning resumes at the next byte. Back-to-back frames may share a flag.
    If a single ``feed`` does not fit, complete frames are parsed out into a small queue.

    A server passes ``accept(value, nbytes) -> bool`` (the decoded destination address): once
    the header of a frame with an information field is verified (addresses, HCS), a frame for
    another station is skipped by its length, unbuffered (``skipped`` += 1), and a frame for us
    longer than ``maxlen`` is dropped at once ('length'). Without ``accept`` (a client) a
    frame longer than ``maxlen`` is dropped at once.

    Inter-character time-out (IEC 62056-46 §6.4.4 / IC 23 HDLC setup ``inter_octet_time_out``,
    default 25 ms): given ``now_ms`` (a ticks_ms value), a feed that comes more than ``ict_ms``
    after the previous one discards the partial frame first (complete frames already buffered
    are kept; a skip ends): ``timeouts`` += 1, ``last_error`` 'timeout'. ``feed(b"", now_ms)``
    applies the time-out alone. ``backlog=True``: this read filled the caller's buffer, so more
    bytes were waiting and the next feed's gap is not an inter-character gap.
    """

    def __init__(self, maxlen=2050, accept=None, ict_ms=25):
        if maxlen < 16:
            maxlen = 16
        self._buf = bytearray(maxlen)
        self._mv = memoryview(self._buf)
        self._max = maxlen
        self._accept = accept
        self.ict_ms = ict_ms
        self._t = None               # ticks of the last timed feed
        self._backlog = False
        self._ready = []
        self.dropped = 0
        self.skipped = 0
        self.timeouts = 0
        self.last_error = None
        self.reset()

    def reset(self):
        """Forget all buffered bytes and queued frames (counters are kept)."""
        self._s = 0
        self._e = 0
        self._skip = 0               # bytes of a frame for another station still to come
        self._hdr_ok = False
        self._ready = []

    def feed(self, data, now_ms=None, backlog=False):
        """Append received bytes (bytes, bytearray or memoryview); ``now_ms``: ticks_ms at
        reception (None: no inter-character time-out); ``backlog``: see the class."""
        if now_ms is not None:
            t = self._t
            if t is not None and not self._backlog and _ticks_diff(now_ms, t) > self.ict_ms:
                # the line was silent longer than ict_ms: keep complete frames, drop the rest
                stale = self._skip
                self._skip = 0
                while True:
                    f = self._next()
                    if f is not None:
                        self._ready.append(f)
                        continue
                    if self._skip:
                        self._skip = 0
                        stale = 1
                    if self._e - self._s < 2:  # nothing, or one flag that may open the next frame
                        break
                    stale = 1
                    self._drop("timeout")
                if stale:
                    self.timeouts += 1
                    self.last_error = "timeout"
            self._t = now_ms
            self._backlog = backlog
        n = len(data)
        off = 0
        while off < n:
            if self._skip:
                k = self._skip if self._skip < n - off else n - off
                self._skip -= k
                off += k
                continue
            if self._e == self._max:
                self._compact()
                if self._e == self._max:
                    # buffer full: pull out complete frames, then make room
                    f = self._next()
                    while f is not None:
                        self._ready.append(f)
                        f = self._next()
                    self._compact()
                    if self._e == self._max:  # cannot happen: a candidate fits or is dropped
                        self._s += 1
                        self._hdr_ok = False
                        self._compact()
                    continue
            k = self._max - self._e
            if k > n - off:
                k = n - off
            if off == 0 and k == n:
                self._mv[self._e:self._e + k] = data
            else:
                self._mv[self._e:self._e + k] = memoryview(data)[off:off + k]
            self._e += k
            off += k

    def _compact(self):
        s = self._s
        if s == 0:
            return
        e = self._e
        buf = self._buf
        for i in range(e - s):
            buf[i] = buf[s + i]
        self._s = 0
        self._e = e - s

    def pop(self):
        """Return the next complete, valid Frame, or None if more bytes are needed."""
        if self._ready:
            return self._ready.pop(0)
        return self._next()

    def _drop(self, reason):
        self.dropped += 1
        self.last_error = reason
        self._s += 1
        self._hdr_ok = False

    def _next(self):
        buf = self._buf
        while True:
            s = self._s
            e = self._e
            # scan for a frame start: 7E followed by a format byte 0xA?
            while s < e:
                if buf[s] == _FLAG:
                    if s + 1 >= e or buf[s + 1] & 0xF0 == 0xA0:
                        break
                s += 1
            if s != self._s:
                self._s = s
                self._hdr_ok = False
            if s >= e:
                self._s = self._e = 0
                return None
            if e - s < 3:
                return None
            ln = ((buf[s + 1] & 0x07) << 8) | buf[s + 2]
            total = ln + 2
            if ln < _MIN_LEN or (total > self._max and self._accept is None):
                self._drop("length")
                continue
            avail = e - s
            if avail < total:
                if not self._hdr_ok:
                    r = self._early(s, e, total)
                    if r == "skip":         # for another station: skip it by its length
                        self.skipped += 1
                        self._skip = total - 1 - avail   # its closing flag may open the next
                        self._s = e
                        continue
                    if r is not None:
                        self._drop(r)
                        continue
                return None
            try:
                f = _check(buf, s, total)
            except HdlcError as err:
                self._drop(err.reason)
                continue
            except MemoryError:     # no room for its fields (a full heap): dropped whole, unanswered, as
                self._drop("memory")    # if lost on the line (the client repeats it); it ended the meter's loop
                self._s = s + total - 1
                continue
            # keep the closing flag: it may be the opening flag of the next frame
            self._s = s + total - 1
            self._hdr_ok = False
            return f

    def _early(self, s, e, total):
        """Check what can be checked of an incomplete candidate (addresses, HCS, and with
        ``accept``: whose it is and whether it fits).

        Returns an error reason, 'skip' (another station's frame, header verified), or None
        (and sets _hdr_ok once the header is verified)."""
        buf = self._buf
        lim = s + total - 1
        if lim > e:
            lim = e
        p = s + 3
        for _ in range(2):
            n = 0
            while True:
                if p >= lim:
                    if lim < s + total - 1:
                        return None  # need more bytes
                    return "address"
                b = buf[p]
                p += 1
                n += 1
                if b & 1:
                    break
                if n >= 4:
                    return "address"
            if n == 3:
                return "address"
        # p -> ctrl
        rest = s + total - 1 - (p + 1)
        if rest == 2:
            self._hdr_ok = True
            return None
        if rest < 4:
            return "length"
        if p + 3 > e:
            return None
        c = crc16_x25(buf, s + 1, p + 1)
        if buf[p + 1] != (c & 0xFF) or buf[p + 2] != (c >> 8):
            return "hcs"
        acc = self._accept
        if acc is not None:
            v, n, _ = decode_address(buf, s + 3, p)
            if not acc(v, n):
                return "skip"
            if total > self._max:
                return "length"
        self._hdr_ok = True
        return None


# ---------------------------------------------------------------- SNRM/UA parameters (§6.4.4.4.3.2)

_P_TX = const(5)
_P_RX = const(6)
_P_WTX = const(7)
_P_WRX = const(8)


def encode_params(max_info_tx=128, max_info_rx=128, window_tx=1, window_rx=1):
    """SNRM/UA information field: ``81 80 LL 05 02 tx 06 02 rx 07 04 wtx 08 04 wrx``.

    Values are the sender's view. Info sizes are written as 2 bytes (1..0xFFFF),
    windows as 4 bytes (1..7 legal, any u32 accepted); a window of None is omitted.
    Raises HdlcError('format') on out-of-range values.
    """
    out = bytearray(3)                    # 81 80 LL (no bytes literal: an object in the heap)
    out[0] = 0x81
    out[1] = 0x80
    for pid, v, size in ((_P_TX, max_info_tx, 2), (_P_RX, max_info_rx, 2),
                         (_P_WTX, window_tx, 4), (_P_WRX, window_rx, 4)):
        if v is None:
            continue
        if not 0 <= v < (1 << (8 * size)):
            raise HdlcError("format")
        out.append(pid)
        out.append(size)
        for i in range(size - 1, -1, -1):
            out.append((v >> (8 * i)) & 0xFF)
    out[2] = len(out) - 3
    return bytes(out)


def decode_params(info):
    """Parse an SNRM/UA information field.

    Returns ``(max_info_tx, max_info_rx, window_tx, window_rx)`` in the sender's view;
    absent parameters default to 128, 128, 1, 1 (empty info -> all defaults). Values may
    be 1..4 bytes; unknown parameter ids are skipped. Raises HdlcError('format').
    """
    vals = [128, 128, 1, 1]
    n = len(info)
    if n == 0:
        return tuple(vals)
    if n < 3 or info[0] != 0x81 or info[1] != 0x80:
        raise HdlcError("format")
    gl = info[2]
    end = 3 + gl
    if end > n:
        raise HdlcError("format")
    p = 3
    while p < end:
        if p + 2 > end:
            raise HdlcError("format")
        pid = info[p]
        size = info[p + 1]
        p += 2
        if p + size > end:
            raise HdlcError("format")
        if _P_TX <= pid <= _P_WRX:
            if size < 1 or size > 4:
                raise HdlcError("format")
            v = 0
            for i in range(size):
                v = (v << 8) | info[p + i]
            vals[pid - _P_TX] = v
        p += size
    return tuple(vals)
