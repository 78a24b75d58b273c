"""Event records on flash: the catalogue of event codes and ``EventLog``, one persisted ring of
fixed-size records (one category of the audit trail; ``meter.audit`` routes events to the rings
and serves the IC 7 profiles 0.0.99.98.x.255).

Read API (for IC 7 attribute 2 with selective access, Blue Book IC 7 "buffer"):

- ``count()`` -> entries_in_use (int); ``capacity`` -> profile_entries (int).
- ``entries(from_index=1, to_index=0)``: generator of ``(epoch, code, detail, count)`` for entry
  numbers ``from_index..to_index`` (1-based, oldest first, inclusive; ``to_index`` 0 = newest),
  as IC 7 entry_descriptor (access selector 2) counts them. Out-of-range indexes are clipped.
- ``by_time(t_from, t_to)``: the entries with ``t_from <= epoch <= t_to`` (epoch seconds, UTC),
  oldest first: IC 7 range_descriptor (access selector 1) on the clock column.
- ``records()``: generator of ``(seq, epoch, code, detail, count)``, oldest first (the merge key
  of ``meter.audit``'s all-events view is ``seq``).

``epoch`` is RTC seconds since 1970-01-01 UTC, stored unsigned 32-bit (valid to 2106-02-07), ``code``
an event code (``_EV_*`` below), ``detail`` an int (e.g. paise, a reason number) or a short str
(at most 8 bytes, e.g. "remote"), ``count`` how many times the event happened (> 1: a coalesced
repetition, see ``append``). The generators read one segment (120 bytes) at a time into their
own buffer: the ring is never loaded into RAM.

Write API: ``append(epoch, code, detail, seq, repeat_s=0)`` returns when the record is on flash
(or, for a repetition within ``repeat_s`` seconds of the newest record with the same code and
detail, after counting it in RAM: no flash write; ``flush()`` writes the count, rewriting the
newest record); ``clear()`` (IC 7 method 1 reset). ``seq`` numbers records across all rings.

Storage: ``segments`` files ``<dir>/eNN``, each holding up to 5 records of 24 bytes::

    seq u32 | epoch u32 | code u16 | kind u8 | n u8 | detail 8 bytes | CRC-32 u32

kind 0 none, 1 int (i32 in the first 4 detail bytes), 2 text (n bytes); a repeated event
(count > 1) is kind 3 int / 4 text (n <= 4) / 5 none with count u32 in the first 4 detail bytes
and the detail in the last 4. All big-endian; CRC-32 over the first 20 bytes. Kinds 0..2 are the
records of the firmware before the audit trail (read as they are: ``meter.audit`` migrates them).
120-byte files stay inline in littlefs metadata, so an event costs one small commit, not a block
erase. When the newest segment is full the next one (the oldest) is started afresh, dropping its
5 oldest events (ring). littlefs commits a file on close, so a power cut leaves each segment with
its old or its new content; a record that fails its CRC (or does not follow the previous one's
sequence number) ends that segment's valid entries.

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
_PER_SEG = const(5)
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
_EV_MD_RESET = const(65)              # maximum demand reset: billing entry captured [billing count]
_EV_METERING_FAULT = const(70)        # metering module fault [failed polls]
_EV_METERING_RECOVERED = const(71)    # metering module recovered [Wh counted during the fault]
_EV_TOKEN_TEST = const(80)            # STS token changing nothing: test, key section pending [control/reason]
_EV_DLMS_ERROR = const(90)            # DLMS error
_EV_STORE_ERROR = const(91)           # store error


class EventLogError(ValueError):
    """Bad argument to the event log (detail neither int, str, bytes nor None)."""


def encode_into(buf, pos, seq, epoch, code, detail, count=1):
    """Write one 24-byte record into ``buf`` at ``pos`` (``count`` > 1: a repeated event)."""
    struct.pack_into(">IIH", buf, pos, seq, epoch, code & 0xFFFF)   # seq, epoch: u32 (meter.store.TIME_MAX)
    for i in range(pos + 10, pos + 20):
        buf[i] = 0
    d = pos + 12
    kind = 0
    if count > 1:
        n = 32                 # a variable: mpy-cross folds (1 << 32) - 1 into a big-int constant
        struct.pack_into(">I", buf, d, count if not count >> n else (1 << n) - 1)
        d += 4
        kind = 3
    if detail is None:
        kind = 5 if kind else 0
    elif isinstance(detail, int):
        n = 31                 # i32; no big-int constant (an object per load on 32 bits)
        if not -1 <= detail >> n <= 0:
            detail = (1 << n) - 1 if detail > 0 else -(1 << n)
        kind = kind or 1
        struct.pack_into(">i", buf, d, detail)
    elif isinstance(detail, (str, bytes, bytearray)):
        b = detail.encode() if isinstance(detail, str) else detail
        m = pos + 20 - d
        n = len(b) if len(b) < m else m
        kind = 4 if kind else 2
        buf[pos + 11] = n
        for i in range(n):
            buf[d + i] = b[i]
    else:
        raise EventLogError("event detail must be int, str or None")
    buf[pos + 10] = kind
    struct.pack_into(">I", buf, pos + 20, binascii.crc32(memoryview(buf)[pos:pos + 20]))


def decode_at(buf, pos):
    """(seq, epoch, code, detail, count) of the record at ``pos``, or None if its CRC fails."""
    mv = memoryview(buf)
    if binascii.crc32(mv[pos:pos + 20]) != struct.unpack_from(">I", buf, pos + 20)[0]:
        return None
    seq, epoch, code = struct.unpack_from(">IIH", buf, pos)
    kind = buf[pos + 10]
    d = pos + 12
    count = 1
    if kind >= 3:
        count = struct.unpack_from(">I", buf, d)[0]
        d += 4
        kind -= 2
    if kind == 1:
        detail = struct.unpack_from(">i", buf, d)[0]
    elif kind == 2:
        n = buf[pos + 11]
        m = pos + 20 - d
        detail = bytes(mv[d:d + (n if n <= m else m)]).decode()
    else:
        detail = None
    return seq, epoch, code, detail, count


class Reader:
    """The IC 7 reads of anything with ``records(from_index, to_index)`` (a ring, a merged view)."""

    def entries(self, from_index=1, to_index=0):
        """(epoch, code, detail, count) for entries from_index..to_index (1-based, 0 = newest)."""
        for r in self.records(from_index, to_index):
            yield r[1:]

    def by_time(self, t_from, t_to):
        """(epoch, code, detail, count) of the entries with t_from <= epoch <= t_to, oldest first."""
        for r in self.records():
            if t_from <= r[1] <= t_to:
                yield r[1:]


class EventLog(Reader):
    """Ring of ``segments * 5`` events in directory ``path`` (created if missing). ``wbuf``: a
    120-byte write buffer (shared by the rings of one meter; one is made if None)."""

    def __init__(self, path, segments=20, wbuf=None):
        self.path = path
        self.segments = segments
        self.capacity = segments * _PER_SEG
        try:
            os.mkdir(path)
        except OSError:
            pass
        self._wb = wbuf if wbuf is not None else bytearray(_SEG_BYTES)
        self._n = bytearray(segments)         # valid records per segment
        self._rep = None                      # [code, detail, epoch, count, on flash?] of the newest
        self._scan()

    def _name(self, k):
        return "%s/e%02d" % (self.path, k)

    def _load(self, k, buf, f=None):
        """Read segment k into buf (from ``f``, its file open for update, if given); return the
        number of valid records (increasing seqs)."""
        if f is not None:
            got = f.readinto(buf)
        else:
            try:
                with open(self._name(k), "rb") as f:
                    got = f.readinto(buf)
            except OSError:
                return 0
        n = 0
        prev = None
        while n < _PER_SEG and (n + 1) * REC <= got:
            r = decode_at(buf, n * REC)
            if r is None or (prev is not None and r[0] <= prev):
                break
            prev = r[0]
            n += 1
        return n

    def _scan(self):
        order = []
        buf = self._wb
        self.last_seq = 0
        for k in range(self.segments):
            n = self._load(k, buf)
            self._n[k] = n
            if n:                              # (seq of its first record, segment)
                order.append((struct.unpack_from(">I", buf, 0)[0], k))
                last = struct.unpack_from(">I", buf, (n - 1) * REC)[0]
                if last > self.last_seq:
                    self.last_seq = last
        order.sort()
        self._order = [k for _, k in order]   # segment indexes, oldest first
        self._head = order[-1][1] if order else self.segments - 1
        self._count = 0
        for k in self._order:
            self._count += self._n[k]
        self._rep = None
        if order:                              # the newest record: a repetition may continue it
            n = self._load(self._head, buf)
            r = decode_at(buf, (n - 1) * REC) if n else None
            if r is not None:
                self._rep = [r[2], r[3], r[1], r[4], True]

    # -- write ---------------------------------------------------------------------------
    def append(self, epoch, code, detail=None, seq=None, repeat_s=0, any_detail=False):
        """Persist one event as record ``seq`` (default: after this ring's newest); returns its
        seq when it is on flash, or None when it repeats the newest record (same code and
        detail, or any detail with ``any_detail``: the record keeps the latest; at most
        ``repeat_s`` s after it: counted in RAM, written by ``flush``)."""
        r = self._rep
        if (repeat_s and r is not None and r[0] == code and (any_detail or r[1] == detail)
                and 0 <= epoch - r[2] <= repeat_s):
            r[1] = detail
            r[3] += 1
            r[4] = False
            return None
        self.flush()
        seq = self.last_seq + 1 if seq is None else seq
        k = self._head
        n = self._n[k]
        if n >= _PER_SEG or not self._order:
            k = (k + 1) % self.segments
            n = 0
        self._write(k, n, seq, epoch, code, detail, 1)
        # on flash: now update the RAM index
        if n == 0:
            self._count -= self._n[k]
            if k in self._order:
                self._order.remove(k)
            self._order.append(k)
        self._n[k] = n + 1
        self._head = k
        self._count += 1
        self.last_seq = seq
        self._rep = [code, detail, epoch, 1, True] if repeat_s else None
        return seq

    def _write(self, k, i, seq, epoch, code, detail, count):
        """Write segment k with record i (and the i records before it, read back from flash)."""
        buf = self._wb
        # one file object for the read-back and the write (on littlefs each is a ~256 B block with
        # its cache): committed on close as "wb" would be (a power cut leaves old or new)
        with open(self._name(k), "r+b" if i else "wb") as f:
            if i and self._load(k, buf, f) < i:
                raise OSError(5)               # the segment is not what the index says
            encode_into(buf, i * REC, seq, epoch, code, detail, count)
            f.seek(0)
            f.write(memoryview(buf)[:(i + 1) * REC])

    def pending(self):
        """Repetitions counted in RAM and not yet on flash (0 or the newest record's count)."""
        r = self._rep
        return 0 if r is None or r[4] else r[3]

    def flush(self):
        """Write the count of a coalesced repetition (rewrites the newest record in place)."""
        r = self._rep
        if r is None or r[4]:
            return
        k = self._head
        i = self._n[k] - 1
        self._write(k, i, self.last_seq, r[2], r[0], r[1], r[3])
        r[4] = True

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

    def records(self, from_index=1, to_index=0):
        """(seq, epoch, code, detail, count) for entries from_index..to_index (1-based, 0 = newest)."""
        last = self._count if to_index <= 0 or to_index > self._count else to_index
        buf = bytearray(REC)   # one record at a time
        for j in range((from_index if from_index > 1 else 1) - 1, last):
            r = self.at(j, buf)
            if r is not None:
                yield r

    def at(self, j, buf):
        """Record ``j`` (0: the oldest) as ``records`` gives it, read into ``buf`` (REC bytes), or
        None (damaged, or past the newest). A merged view (``meter.audit``) reads its rings with it:
        no generator per ring (~120 B each on 32 bits, six at once)."""
        for k in self._order:
            n = self._n[k]
            if j < n:
                r = self._read(k, j, buf)
                rep = self._rep
                if r is not None and rep is not None and not rep[4] and r[0] == self.last_seq:
                    r = (r[0], r[1], r[2], r[3], rep[3])   # the count not yet on flash
                return r
            j -= n
        return None

    def _read(self, k, i, buf):
        """Record i of segment k (decoded), or None; the file is closed before it is yielded."""
        try:
            with open(self._name(k), "rb") as f:
                f.seek(i * REC)
                if f.readinto(buf) < REC:
                    return None
        except OSError:
            return None
        return decode_at(buf, 0)
