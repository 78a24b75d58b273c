"""The audit trail: events by category (IS 15959 event logs), each category its own persisted ring.

Categories (``cat``, the ``x`` of the IS 15959 profile 0.0.99.98.x.255 and of its event-code
object 0.0.96.11.x.255; ``../shared/reference/is15959-profiles.md`` §3), by event code
(``meter.events``):

====  ==============  =======================================================  ==========
cat   log             codes                                                    ring
====  ==============  =======================================================  ==========
2     power           1-9 (first boot, power down/up, watchdog)                 30
3     transaction     10-19 credit, 45-47 low/emergency credit, 50 token, 52-54  50 (config
                                                                                ``event_segments`` x 5)
4     other           20-29 clock/config, 64-99 billing, test tokens, errors,   30
                      and any other
5     tamper          60-61 cover (``tamper`` ring, 20) and 30-39 logins,       20 + 20
                      lock-outs, 51 token refused, 62-63 metering counter
                      re-based (``security`` ring, 20)
6     control         40-44, 48 relay/deferral, 55-59 max power limit           30
0     all events      every ring, merged in order of occurrence (read-only)      sum
====  ==============  =======================================================  ==========

A category is derived from the code alone, so a module that logs a new event only adds its code
to ``meter.events`` (e.g. a lock-out start in 30-39 lands in the security ring). The tamper
profile (IS 15959 slot 5, "non-rollover" there) merges two rings: the cover switch (no request
can write it, nor the Modbus line: a metering counter re-based, event 62, is in the other ring;
in the cover's ring 21 counter resets sent on the RS-485 bus evicted both cover records, attack
pass, session 14) and the security events (failed logins, lock-outs, refused tokens, counter
re-bases), so no sequence of requests by any client can evict a cover record; nor a top-up, whose
ring only a management client's own top-ups, tokens and credit changes write.

Coalescing: an event whose code is a refusal (30 LLS failure, 51 token refused, 90 DLMS error,
91 store error) or 80 (test token, key section pending: nothing changed) that repeats the newest
record of its ring (same code and detail; 51 and 80: any) within ``REPEAT_S`` s of that record's first
occurrence is counted in RAM, not written; the count reaches flash when the ring's next record is
written or at ``tick`` once the window is over (``flush``), so a flood costs at most two small
littlefs commits per window. A head-end sees the count as the third column of the category profiles,
capture object 0.0.96.15.x.255 (IC 1 "event counter", attribute 2): the occurrences an entry stands for.

The all-events view 0.0.99.98.0.255 (the meter's single log before; IS 15959 slot 0 is the
voltage log, and this meter has no voltage events) keeps its columns {clock, event code}.
``seq`` numbers the records across the rings, which is how the view is merged.

Storage: ``<dir>/<ring letter>/eNN`` (``meter.events.EventLog``). Migration: the records of the
single log of earlier firmware (``<dir>/eNN``) are copied into the rings of their codes at the
first boot, with their sequence numbers; a marker file makes it safe against power cuts.
"""
import os

from meter.events import EventLog, Reader

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

REPEAT_S = const(900)        # coalescing window (s)
_ALL = const(0)
# rings, index = ring number: category (_CATS), directory letter and segments of 5 (in
# Audit.__init__); literals stay in flash (a tuple of tuples would be built in RAM at import)
_CATS = b"\x02\x03\x04\x05\x05\x06"
# first code of each range -> ring number (pairs, ascending)
_EV_TOKEN_TEST = const(80)   # meter.events
_EV_TOKEN_REJECTED = const(51)   # (alternated reasons flushed the security ring: attack pass 15)
_REC = const(24)             # meter.events.REC
_REPEATED = b"\x1e\x33\x50\x5a\x5b"   # codes coalesced when repeated: 30, 51, 80, 90, 91


def ring_of(code):
    """Ring number (index of ``_CATS``) of an event code."""
    r = 2
    if code < 256:   # first code of each range -> ring number (pairs, ascending)
        t = (b"\x00\x02\x01\x00\x0a\x01\x14\x02\x1e\x04\x28\x05\x2d\x01\x30\x05\x32\x01"
             b"\x33\x04\x34\x01\x37\x05\x3c\x03\x3e\x04\x40\x02")
        for i in range(0, len(t), 2):
            if t[i] > code:
                break
            r = t[i + 1]
    return r


def category(code):
    """IS 15959 category (2 power, 3 transaction, 4 other, 5 tamper, 6 control) of a code."""
    return _CATS[ring_of(code)]


class Audit(Reader):
    """The meter's event log (``Meter.event_log``): rings under ``path``; ``segments``
    sizes the transaction ring (config ``event_segments``). ``Audit(rings)`` (a list) is a
    read-only IC 7 view over some rings, merged by sequence number (the EventLog read API;
    ``view``): one class, not two (a class is ~130 B resident on 32 bits)."""

    def __init__(self, path, segments=10):
        if isinstance(path, list):
            rings = path
        else:
            try:
                os.mkdir(path)
            except OSError:
                pass
            wbuf = bytearray(120)
            rings = []
            for i in range(6):       # p power, t transaction, o other, k cover, s security, c control
                rings.append(EventLog(path + "/" + chr(b"ptoksc"[i]),
                                      segments if i == 1 else b"\x06\x0a\x06\x04\x04\x06"[i], wbuf))
        self._rings = rings
        self.capacity = 0
        for r in rings:
            self.capacity += r.capacity
        if rings is not path:
            self.path = path
            self._migrate()
            self._seq()

    def count(self):
        n = 0
        for r in self._rings:
            n += r.count()
        return n

    def records(self, from_index=1, to_index=0):
        rings = self._rings
        if len(rings) == 1:
            for r in rings[0].records(from_index, to_index):
                yield r
            return
        # a cursor per ring (its next record's index) and the head read at it: no generator per
        # ring (a 120 B block each: an HLS association's heap at 56k had no six of them)
        n = len(rings)
        buf = bytearray(_REC)
        cur = [0] * n
        heads = [False] * n            # False: ring j's next record still to be read
        i = 0
        while True:
            k = -1
            for j in range(n):
                h = heads[j]
                if h is False:
                    r = rings[j]
                    h = None
                    while h is None and cur[j] < r.count():
                        h = r.at(cur[j], buf)   # a damaged record is skipped
                        cur[j] += 1
                    heads[j] = h
                if h is not None and (k < 0 or h[0] < heads[k][0]):
                    k = j
            if k < 0:
                return
            i += 1
            if to_index and i > to_index:
                return
            if i >= from_index:
                yield heads[k]
            heads[k] = False

    def last(self):
        """(epoch, code, detail, count) of the newest entry, or None."""
        best = None
        buf = bytearray(_REC)
        for ring in self._rings:
            n = ring.count()
            r = ring.at(n - 1, buf) if n else None
            if r is not None and (best is None or r[0] > best[0]):
                best = r
        return None if best is None else best[1:]


    def _seq(self):
        s = 0
        for r in self._rings:
            if r.last_seq > s:
                s = r.last_seq
        self.next_seq = s + 1

    def view(self, n):
        """The IC 7 view of category ``n`` (0 all, 2..6), or None if there is none."""
        if n == _ALL:
            return self
        rings = [self._rings[i] for i in range(6) if _CATS[i] == n]
        return Audit(rings) if rings else None

    def append(self, epoch, code, detail=None):
        """Log one event in the ring of its code; returns its seq once on flash, or None if it
        was coalesced with the ring's newest record (counted in RAM)."""
        ring = self._rings[ring_of(code)]
        rep = REPEAT_S if code < 256 and _REPEATED.find(bytes((code,))) >= 0 else 0
        # 51, 80 whatever their detail: two refusal reasons (test tokens) alternated flushed the ring
        s = ring.append(epoch, code, detail, self.next_seq, rep,
                        code == _EV_TOKEN_TEST or code == _EV_TOKEN_REJECTED)
        if s is not None:
            self.next_seq = s + 1
        return s

    def coalesced(self, code, detail):
        """True if an event of this code and detail would be (or was) coalesced with the newest
        record of its ring: the boot-time repair of a journaled event (``Meter._restore``) must
        not log it again."""
        r = self._rings[ring_of(code)]._rep
        if r is None or r[0] != code or code > 255 or _REPEATED.find(bytes((code,))) < 0:
            return False
        if code == _EV_TOKEN_TEST or code == _EV_TOKEN_REJECTED:
            return True
        d = r[1]    # a repeated record on flash keeps 4 bytes of a text detail
        return d == detail or (isinstance(d, str) and isinstance(detail, str) and detail.startswith(d))

    def tick(self, now):
        """Write the counts of repetitions whose window is over (call once a metering cycle)."""
        for ring in self._rings:
            r = ring._rep
            if r is not None and not r[4] and not 0 <= now - r[2] <= REPEAT_S:
                ring.flush()

    def flush(self):
        for ring in self._rings:
            ring.flush()

    def clear(self):
        for ring in self._rings:
            ring.clear()
        self._seq()

    # -- migration from the single log of earlier firmware ----------------------------------
    def _migrate(self):
        old = [n for n in os.listdir(self.path) if len(n) == 3 and n[0] == "e"]
        mark = self.path + "/migrated"
        if not old:
            return
        if "migrated" not in os.listdir(self.path):
            for ring in self._rings:
                ring.clear()
            nseg = 0
            for n in old:
                k = int(n[1:]) + 1
                nseg = k if k > nseg else nseg
            legacy = EventLog(self.path, nseg, bytearray(120))
            for seq, epoch, code, detail, _count in legacy.records():
                self._rings[ring_of(code)].append(epoch, code, detail, seq)
            with open(mark, "w") as f:
                f.write("1")
        for n in old:
            os.remove(self.path + "/" + n)
        os.remove(mark)
