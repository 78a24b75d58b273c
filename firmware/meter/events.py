"""Persisted event log: a ring of fixed-size records on flash, the backing store of the
Profile generic (IC 7) event log 0.0.99.98.0.255 (buffer, entries_in_use, profile_entries).

Read API (for IC 7 attribute 2 with selective access, Blue Book IC 7 "buffer"):

- ``count()`` -> entries_in_use (int).
- ``capacity`` -> profile_entries (int).
- ``entries(from_index=1, to_index=0)``: generator of ``(epoch, code, detail)`` for entry
  numbers ``from_index..to_index`` (1-based, oldest first, inclusive; ``to_index`` 0 = newest),
  as IC 7 entry_descriptor (access selector 2) counts them. Out-of-range indexes are clipped.
- ``by_time(t_from, t_to)``: generator of the entries with ``t_from <= epoch <= t_to`` (epoch
  seconds, UTC), oldest first: IC 7 range_descriptor (access selector 1) on the clock column.

``epoch`` is RTC seconds (UTC), ``code`` an event code (``_EV_*`` below), ``detail`` an int (e.g. paise,
a reason number) or a short str (at most 8 bytes, e.g. "remote"). Both generators read one
segment (120 bytes) at a time into a preallocated buffer: the ring is never loaded into RAM.

Write API: ``append(epoch, code, detail=None)`` returns when the record is on flash; ``clear()``
(IC 7 method 1 reset).

Storage: ``segments`` files ``<dir>/eNN``, each holding up to 5 records of 24 bytes::

    seq u32 | epoch u32 | code u16 | kind u8 (0 none, 1 int, 2 text) | n u8 | detail 8 bytes | CRC-32 u32

(all big-endian; CRC-32 over the first 20 bytes). 120-byte files stay inline in littlefs metadata,
so an event costs one small commit, not a block erase. When the newest segment is full the next
one (the oldest) is started afresh, dropping its 5 oldest events (ring). littlefs commits a file on
close, so a power cut leaves each segment with its old or its new content; a record that fails
its CRC (or breaks the sequence) ends that segment's valid entries.

Errors: EventLogError for an unknown detail type; OSError from the filesystem on append.
"""
import os
import struct
import binascii

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

REC = const(24)
PER_SEG = const(5)
_SEG_BYTES = const(120)

# Event codes: the meter's one catalogue (its own numbering). Each line is ``code  # text
# [detail]``: the text is the event's one name (the host reads it: host_tools.objects.event_names,
# meterctl's event log), the bracket what ``detail`` holds. The names are private consts, so
# they cost no heap (docs/MEMORY.md rule 2): each module that logs an event keeps its own private
# copy, and tests/host/test_checked_copies.py checks every copy against this table.
_EV_FIRST_BOOT = const(1)             # first boot
_EV_POWER_DOWN = const(2)             # power down [epoch = last time the meter was known alive]
_EV_POWER_UP = const(3)               # power up
_EV_WATCHDOG = const(4)               # watchdog reset
_EV_CREDIT = const(10)                # credit added [paise]
_EV_CLOCK_SET = const(20)             # clock set [old epoch]
_EV_CONFIG = const(21)                # configuration changed [short name of the setting]
_EV_AUTH_FAIL = const(30)             # LLS authentication failure
_EV_LOCKOUT = const(31)               # association locked out after failed logins [failures counted]
_EV_UNPROVISIONED = const(32)         # no secrets provisioned: public client only
_EV_RELAY_OPEN_CREDIT = const(40)     # relay open: credit exhausted
_EV_RELAY_CLOSE_CREDIT = const(41)    # relay closed: credit restored
_EV_RELAY_OPEN = const(42)            # relay open [cause: "remote", "manual", ...]
_EV_RELAY_CLOSE = const(43)           # relay closed [cause]
_EV_LOW_CREDIT = const(45)            # low credit
_EV_EC_ON = const(46)                 # emergency credit on
_EV_EC_END = const(47)                # emergency credit ended
_EV_DISCONNECT_DEFERRED = const(48)   # disconnection deferred (no-disconnection period)
_EV_TOKEN_ACCEPTED = const(50)        # token accepted [TID]
_EV_TOKEN_REJECTED = const(51)        # token rejected [reason]
_EV_MPL_TRIP = const(55)              # max power limit trip
_EV_MPL_RECLOSE = const(56)           # max power limit reclose
_EV_MPL_LOCKOUT = const(57)           # max power limit lock-out
_EV_COVER_OPEN = const(60)            # cover opened (tamper)
_EV_COVER_CLOSED = const(61)          # cover closed
_EV_METERING_RESET = const(62)        # tamper: metering module counter went backwards [new counter Wh]
_EV_BILL = const(64)                  # billing month closed [energy + fixed + duty paise]
_EV_METERING_FAULT = const(70)        # metering module fault [failed polls]
_EV_METERING_RECOVERED = const(71)    # metering module recovered [Wh counted during the fault]
_EV_DLMS_ERROR = const(90)            # DLMS error
_EV_STORE_ERROR = const(91)           # store error


class EventLogError(ValueError):
    """Bad argument to the event log (detail neither int, str, bytes nor None)."""


def encode_into(buf, pos, seq, epoch, code, detail):
    """Write one 24-byte record into ``buf`` at ``pos``."""
    struct.pack_into(">IIH", buf, pos, seq & 0xFFFFFFFF, epoch & 0xFFFFFFFF, code & 0xFFFF)
    for i in range(pos + 10, pos + 20):
        buf[i] = 0
    if detail is None:
        pass
    elif isinstance(detail, int):
        if not -0x80000000 <= detail <= 0x7FFFFFFF:
            detail = 0x7FFFFFFF if detail > 0 else -0x80000000
        buf[pos + 10] = 1
        struct.pack_into(">i", buf, pos + 12, detail)
    elif isinstance(detail, (str, bytes, bytearray)):
        b = detail.encode() if isinstance(detail, str) else detail
        n = len(b) if len(b) < 8 else 8
        buf[pos + 10] = 2
        buf[pos + 11] = n
        for i in range(n):
            buf[pos + 12 + i] = b[i]
    else:
        raise EventLogError("event detail must be int, str or None")
    struct.pack_into(">I", buf, pos + 20, binascii.crc32(memoryview(buf)[pos:pos + 20]) & 0xFFFFFFFF)


def decode_at(buf, pos):
    """(seq, epoch, code, detail) of the record at ``pos``, or None if its CRC fails."""
    mv = memoryview(buf)
    if binascii.crc32(mv[pos:pos + 20]) & 0xFFFFFFFF != struct.unpack_from(">I", buf, pos + 20)[0]:
        return None
    seq, epoch, code = struct.unpack_from(">IIH", buf, pos)
    kind = buf[pos + 10]
    if kind == 1:
        detail = struct.unpack_from(">i", buf, pos + 12)[0]
    elif kind == 2:
        n = buf[pos + 11]
        detail = bytes(mv[pos + 12:pos + 12 + (n if n <= 8 else 8)]).decode()
    else:
        detail = None
    return seq, epoch, code, detail


class EventLog:
    """Ring of ``segments * 5`` events in directory ``path`` (created if missing)."""

    def __init__(self, path, segments=20):
        self.path = path
        self.segments = segments
        self.capacity = segments * PER_SEG
        try:
            os.mkdir(path)
        except OSError:
            pass
        self._buf = bytearray(_SEG_BYTES)     # the head segment
        self._rd = bytearray(_SEG_BYTES)      # reader scratch
        self._n = [0] * segments              # valid records per segment
        self._first = [0] * segments          # seq of each segment's first record
        self._scan()

    def _name(self, k):
        return "%s/e%02d" % (self.path, k)

    def _load(self, k, buf):
        """Read segment k into buf; return the number of valid records (consecutive seqs)."""
        try:
            with open(self._name(k), "rb") as f:
                got = f.readinto(buf)
        except OSError:
            return 0
        n = 0
        prev = None
        while n < PER_SEG and (n + 1) * REC <= got:
            r = decode_at(buf, n * REC)
            if r is None or (prev is not None and r[0] != (prev + 1) & 0xFFFFFFFF):
                break
            prev = r[0]
            n += 1
        return n

    def _scan(self):
        order = []
        for k in range(self.segments):
            n = self._load(k, self._rd)
            self._n[k] = n
            if n:
                self._first[k] = struct.unpack_from(">I", self._rd, 0)[0]
                order.append((self._first[k], k))
        order.sort()
        self._order = [k for _, k in order]   # segment indexes, oldest first
        if order:
            k = order[-1][1]
            self._head = k
            self._load(k, self._buf)
            self.next_seq = self._first[k] + self._n[k]
        else:
            self._head = self.segments - 1
            self.next_seq = 1
        self._count = 0
        for k in self._order:
            self._count += self._n[k]

    # -- write ---------------------------------------------------------------------------
    def append(self, epoch, code, detail=None):
        """Persist one event; returns its sequence number when it is on flash."""
        k = self._head
        n = self._n[k]
        if n >= PER_SEG or not self._order:
            k = (k + 1) % self.segments
            n = 0
        seq = self.next_seq
        buf = self._buf
        try:
            encode_into(buf, n * REC, seq, epoch, code, detail)
            with open(self._name(k), "wb") as f:
                f.write(memoryview(buf)[:(n + 1) * REC])
        except Exception:
            self._load(self._head, buf)   # the head buffer stays what is on flash
            raise
        # on flash: now update the RAM index
        if n == 0:
            self._count -= self._n[k]
            if k in self._order:
                self._order.remove(k)
            self._order.append(k)
            self._first[k] = seq
        self._n[k] = n + 1
        self._head = k
        self._count += 1
        self.next_seq = seq + 1
        return seq

    def clear(self):
        """Delete every event (IC 7 reset)."""
        for k in range(self.segments):
            try:
                os.remove(self._name(k))
            except OSError:
                pass
        self._scan()

    # -- read ----------------------------------------------------------------------------
    def count(self):
        """Entries in use."""
        return self._count

    def _segments(self):
        """(segment, index of its first entry) oldest first (a snapshot of the order)."""
        idx = 1
        for k in list(self._order):
            yield k, idx
            idx += self._n[k]

    def _read_seg(self, k):
        if k == self._head:
            return self._buf
        self._load(k, self._rd)
        return self._rd

    def entries(self, from_index=1, to_index=0):
        """(epoch, code, detail) for entries from_index..to_index (1-based, 0 = newest)."""
        last = self._count if to_index <= 0 or to_index > self._count else to_index
        if from_index < 1:
            from_index = 1
        for k, first in self._segments():
            n = self._n[k]
            if first + n <= from_index:
                continue
            if first > last:
                break
            buf = self._read_seg(k)
            for i in range(n):
                if from_index <= first + i <= last:
                    r = decode_at(buf, i * REC)
                    if r is not None:
                        yield r[1], r[2], r[3]

    def by_time(self, t_from, t_to):
        """(epoch, code, detail) of the entries with t_from <= epoch <= t_to, oldest first."""
        for k, _ in self._segments():
            buf = self._read_seg(k)
            for i in range(self._n[k]):
                r = decode_at(buf, i * REC)
                if r is not None and t_from <= r[1] <= t_to:
                    yield r[1], r[2], r[3]
