"""Power-fail-safe state journal: the newest valid record wins at boot (DESIGN.md §5).

Two kinds of record, each in two alternating slot files (a torn write leaves the other slot):

- full record, ``<prefix>.a`` / ``<prefix>.b``: the whole state::

      b"PJ" | version u8 (3) | seq u32 BE | length u16 BE | payload JSON | hot (4 x i32, u32 BE) | CRC-32 BE

- hot record, ``<prefix>.ha`` / ``<prefix>.hb``, 30 bytes, for consumption only::

      b"PU" | seq u32 BE | hot (4 x i32, u32 BE) | CRC-32 BE

``hot`` is a tuple of 5 ints that change with every metering cycle: four signed 32-bit (the app
uses credit, carried remainder, import Wh, module Wh) and the time, unsigned 32-bit seconds since
1970-01-01 UTC (the RTC: valid to 2106-02-07T06:28:15Z). Records of the firmware before (full
version 2, hot magic b"PH") carried the time as a signed 32-bit value; they are read as they are
(a negative time as 0), so a meter upgraded in the field keeps its state. ``payload`` is any JSON-able dict of the
rest (settings, relay, TID store as a hex string, ...). ``save(obj, hot)`` writes a full record when
``obj`` differs from the last full record, else only a hot record: a hot record is so small that
littlefs keeps it inline in the directory's metadata (one small commit, no block erase), which is
what keeps the consumption cadence cheap in flash wear (see bench/bench_wear.py).

Both kinds share one sequence counter. ``load()`` takes the newest valid full record F and the
newest valid hot record H; if H.seq > F.seq, H's values replace F's hot values. A change written
as a full record is therefore atomic with the hot values of that moment (e.g. a top-up: credit and
the TID store together). CRC-32 is binascii.crc32 (ISO-HDLC). On littlefs (VfsLfs2) a file's new
content is committed on close, so each slot holds the old or the new record, never a mix; the CRC
also rejects any damage that gets through.

Errors: ``load`` never raises for damaged data (None when no valid full record exists);
``save`` raises OSError if the filesystem fails and JournalError for out-of-range values (then
nothing is written).
"""
import binascii
import gc
import json
import os
import struct

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# magics b"PJ" (full), b"PU" (hot), b"PH" (hot, signed time: firmware before version 3) and the hot
# formats ">4iI" (">5i" before version 3) are written where used: a module-level name costs heap
_VERSION = const(3)
_VERSION_I32 = const(2)
_HDR = const(9)
_HOT_N = const(5)
_EV_DLMS_ERROR = const(90)   # meter.events
TIME_MAX = const(0xFFFFFFFF)   # the last second a record can hold: 2106-02-07T06:28:15Z
_HOT_LEN = const(20)
_HREC = const(30)          # 2 + 4 + 20 + 4
_ROOM_WORDS = const(62)    # words of Journal.room: 256 B on 32 bits, the hole of a littlefs file object (252 B)


class JournalError(ValueError):
    """A value does not fit the record format (hot values: 4 x signed 32-bit, time u32)."""


def _crc(data):
    return binascii.crc32(data)    # unsigned on MicroPython and CPython 3


def _check_hot(hot):
    if len(hot) != _HOT_N:
        raise JournalError("hot record needs %d values" % _HOT_N)
    for i in range(_HOT_N - 1):
        if not -1 <= hot[i] >> 31 <= 0:    # i32 (no big-int constants: 32 B objects on 32 bits)
            raise JournalError("hot value out of i32 range: %r" % (hot[i],))
    if hot[_HOT_N - 1] >> 32:          # u32: negative or above TIME_MAX
        raise JournalError("time out of u32 range: %r" % (hot[_HOT_N - 1],))


def _utf8(text):
    """The UTF-8 bytes of str ``text``: a view of it on MicroPython (no copy), encoded on CPython."""
    try:
        return memoryview(text)
    except TypeError:
        return text.encode()


def _pieces(rec):
    """The JSON payload of ``rec`` (a dict, or a function -> an iterator of (key, value): no dict
    built) as UTF-8 pieces, each small: ``json.dumps`` per key and value, a bytes value as its hex
    text in 96-character pieces (read back as that str). No piece is the whole payload: a board's heap is
    in holes of a few hundred bytes when a token entry journals (~600 B of JSON, its TID store ~350 of
    them). (Short str constants: names, no object per load.)"""
    sep = "{"
    for k, v in (rec.items() if isinstance(rec, dict) else rec()):
        yield _utf8(sep)
        yield _utf8(json.dumps(str(k)))
        yield _utf8(": ")
        sep = ", "
        if isinstance(v, (bytes, bytearray)):
            yield _utf8('"')
            for i in range(0, len(v), 48):
                yield binascii.hexlify(memoryview(v)[i:i + 48])
            yield _utf8('"')
        else:
            yield _utf8(json.dumps(v))
    yield _utf8("{}" if sep == "{" else "}")


def _digest(rec):
    """(CRC-32, length) of ``rec``'s payload (``_pieces``)."""
    c = n = 0
    for p in _pieces(rec):
        c = binascii.crc32(p, c)
        n += len(p)
    return c, n


def _hot_of(data, f):
    h = struct.unpack(f, data)
    return h if h[4] >= 0 else (h[0], h[1], h[2], h[3], 0)


def decode_full(data):
    """(seq, obj, hot) from full-record bytes, or None if they are not one valid record."""
    if data is None or len(data) < _HDR + _HOT_LEN + 4 or data[0] != 0x50 or data[1] != 0x4A:   # PJ
        return None
    ver, seq, n = struct.unpack(">BIH", data[2:_HDR])
    end = _HDR + _HOT_LEN + n
    if ver != _VERSION and ver != _VERSION_I32 or len(data) != end + 4:
        return None
    if _crc(memoryview(data)[:end]) != struct.unpack_from(">I", data, end)[0]:
        return None
    try:
        obj = json.loads(data[_HDR:_HDR + n])
    except ValueError:
        return None
    return seq, obj, _hot_of(data[_HDR + n:end], ">4iI" if ver == _VERSION else ">5i")


def encode_hot(seq, hot):
    """Hot record bytes (30)."""
    _check_hot(hot)
    body = bytes((0x50, 0x55)) + struct.pack(">I", seq) + struct.pack(">4iI", *hot)   # PU
    return body + struct.pack(">I", _crc(body))


def decode_hot(data):
    """(seq, hot) from hot-record bytes, or None."""
    # magic b"PU" or b"PH" read as ints (a tuple of bytes literals is three objects per load)
    if data is None or len(data) != _HREC or data[0] != 0x50 or data[1] != 0x55 and data[1] != 0x48:
        return None
    if _crc(memoryview(data)[:_HREC - 4]) != struct.unpack_from(">I", data, _HREC - 4)[0]:
        return None
    return struct.unpack(">I", data[2:6])[0], _hot_of(data[6:_HREC - 4],
                                                      ">4iI" if data[1] == 0x55 else ">5i")


class Journal:
    """State journal under the prefix ``path`` (full + hot records, two slots each).

    ``seq``: sequence number of the newest record; ``writes`` / ``full_writes``: records written
    since construction; ``hot``: hot values of the newest record (after load/save).
    """

    def __init__(self, path):
        i = path.rfind("/")
        if i > 0:
            try:
                os.mkdir(path[:i])   # its own directory: small littlefs metadata commits
            except OSError:
                pass
        self._path = path         # slots: <prefix>.a/.b (full), .ha/.hb (hot), named per use
        self.seq = 0
        self.writes = 0
        self.full_writes = 0
        self.hot = None
        self._last = None         # CRC-32 of the newest full record's JSON (not the text: RAM)
        self._fslot = 1           # slot the next full record goes to (.b first, as v1 did)
        self._hslot = 0
        self.room = False         # False: none wanted (meter.server: wanted while an association is open)

    def keep(self):
        """Hold a hole for the next file, if wanted (``room``: 256 B on 32 bits, a littlefs file object's 252 B),
        given up (``free``) just before a journal write, the command's event or a log read (meter.server), held
        again after it (the file's block is garbage then): a request's transients go to a fragmented heap's
        small holes, its file finds its block (a 56 KiB board inside an HLS association: 4-6 KiB free after
        gc in holes of at most 240 B, docs/MEMORY.md "Session 16")."""
        if self.room is None:
            try:
                self.room = (0,) * _ROOM_WORDS
            except MemoryError:
                pass

    def free(self):
        if self.room:
            self.room = None

    @staticmethod
    def _read(path):
        try:
            with open(path, "rb") as f:
                return f.read(os.stat(path)[6])   # one block of its size (read() grows 256 -> 512 ..)
        except OSError:
            return None

    def load(self):
        """Return the newest valid state's ``obj`` (its hot values in ``self.hot``), or None."""
        best = None
        for i in range(2):
            r = decode_full(self._read(self._path + (".b" if i else ".a")))
            if r is not None and (best is None or r[0] > best[0]):
                best = r
                self._fslot = 1 - i
        if best is None:
            return None
        seq, obj, hot = best
        for i in range(2):
            r = decode_hot(self._read(self._path + (".hb" if i else ".ha")))
            if r is not None and r[0] > seq:
                seq, hot = r
                self._hslot = 1 - i
        self.seq = seq
        self.hot = hot
        self._last = _digest(obj)[0]
        return obj

    def save(self, obj, hot=None):
        """Journal ``obj`` (a dict of JSON-able values or bytes, the bytes written as hex text; or a function
        -> an iterator of its (key, value) pairs, called twice: the record is never a dict) with
        ``hot`` (5 ints); returns when it is durable (file closed).

        Writes a full record if ``obj`` changed since the last full record (or ``hot`` is None:
        then the previous hot values are kept), else a hot record. Returns True for a full record.
        """
        full = hot is None
        if full:
            hot = self.hot or [0] * _HOT_N
        _check_hot(hot)
        hot = tuple(hot)          # allocated before the write: none after the record is durable
        key, n = _digest(obj)
        full = full or key != self._last
        seq = self.seq + 1
        self.free()               # its hole for the file object (freed by the collection the open triggers)
        if full:   # written in pieces, the CRC chained over them: the payload is never one string
            head = bytes((0x50, 0x4A)) + struct.pack(">BIH", _VERSION, seq, n)   # PJ
            with open(self._path + (".b" if self._fslot else ".a"), "wb") as f:
                c = binascii.crc32(head)
                f.write(head)
                for p in _pieces(obj):
                    c = binascii.crc32(p, c)
                    f.write(p)
                p = struct.pack(">4iI", *hot)
                f.write(p)
                f.write(struct.pack(">I", binascii.crc32(p, c)))
        else:
            with open(self._path + (".hb" if self._hslot else ".ha"), "wb") as f:
                f.write(encode_hot(seq, hot))
        # durable now (littlefs commits on close); only then advance
        self.seq = seq
        self.hot = hot
        self.writes += 1
        if full:
            self._last = key
            self._fslot ^= 1
            self.full_writes += 1
        else:
            self._hslot ^= 1
        return full


def undo(meter, e, q=None):
    """``e`` raised by a ``meter.app.Meter`` command or metering tick before or in its journal write: RAM
    back to the journal (``reload``), a MemoryError logged (event 90, coalesced); raised again (MemoryError:
    OSError ENOMEM, 12, meter.cosem's temporary-failure: nothing changed) unless the journal holds a
    record newer than ``q`` (the journal's sequence number before the write; None: now) was written after
    all (then out of memory): then the change is in, RAM with it."""
    if meter.stale:          # a record found now is an older command's
        q = -1
    elif q is None:
        q = meter.journal.seq
    reload(meter)
    if isinstance(e, MemoryError):
        meter._log(meter.board.time(), _EV_DLMS_ERROR, "mem")
        e = OSError(12)
    if meter.stale or meter.journal.seq == q:
        raise e


def fresh(meter):
    """Before a command or a metering tick: a reload that ran out of memory (``meter.stale``) tried again;
    still out: OSError ENOMEM (12), nothing judged on a RAM state ahead of the journal (a TID used in RAM).
    True when it reloaded now (a tick then charges nothing: its reading's Wh were taken against the baseline
    before the reload; the next reading charges them from the journal's, attack pass 15: charged twice)."""
    if meter.stale:
        reload(meter)
        if meter.stale:
            raise OSError(12)
        return True


def reload(meter):
    """The meter's RAM state and metrology baseline (the Wh since the journal: charged again, judged as
    after a boot) from its journal, the failed command's garbage freed first. Out of memory: ``meter.stale``
    stays True: ``Meter.persist`` writes nothing (it reloads, raises), commands and ticks call ``fresh``."""
    meter.stale = True
    gc.collect()
    j = meter.journal
    try:
        s = j.load()
        if s is not None:
            meter._apply(s, j.hot)
            if meter.tokens and not s.get("tok"):
                meter.tokens[1] = None    # none journaled: the acceptor's new record (meter.tokens)
            if meter.metro:
                h = meter.metro.health
                h.baseline_wh, h.t_base = meter.module_wh, None
    except MemoryError:
        return
    meter.stale = False
