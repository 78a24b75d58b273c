"""A persisted ring of fixed-size records on littlefs (the IS 15959 profiles, ``meter.profiles``).

``Ring(path, size, n, segments, extra=0)``: ``n`` records per file, ``segments`` files
``<path>/G/N`` (file k in directory k // 16 as k % 16: littlefs keeps a directory's inline
files in its own metadata pair, and a pair that holds few files has room for more commits before
it is compacted: fewer erases per append than one directory of 337 files, bench/bench_wear.py),
each::

    first seq u32 | extra (``extra`` bytes) | n records of ``size`` bytes | CRC-32 u32

big-endian; the CRC covers everything before it, ``n`` is what the file length says (1 ..
``n``). Records are numbered (seq) from 1 across the ring. ``extra`` is a per-file header
the owner sets with each append (``meter.profiles`` keeps there the cumulative counters at its
newest record, so the open interval continues after a power cut from what is on flash).

Power-cut safety: an append rewrites the newest file with its records plus the new one (or
starts the oldest file afresh, dropping its records: the ring). littlefs commits a file on close,
so a cut leaves the file with its old or its new content, never a torn record; a file whose CRC
fails is empty. Keep ``4 + extra + n * size + 4 <= 128`` bytes: littlefs then keeps the
file inline in the directory's metadata (a small commit, no block erase per append; see
bench/bench_wear.py). Reads take one file at a time into a buffer: the ring is never in RAM.

API: ``append(payload, extra=b"")`` (``size`` and ``extra`` bytes; returns the seq once on flash;
OSError from the filesystem), ``count()`` entries in use, ``capacity`` (``segments * n``:
once full, between ``capacity - n + 1`` and ``capacity`` entries are kept), ``records(a,
b)``: generator of the payloads of entries a..b (1-based, oldest first, b 0 = newest; a
memoryview into a buffer reused for the next one: copy what you keep), ``last()`` newest payload
(bytes) or None, ``extra`` the newest file's extra header (bytes, empty ring: None), ``clear()``.
"""
import os
import struct
import binascii


class Ring:
    def __init__(self, path, size, n, segments, extra=0):
        self.path = path
        self.size = size
        self._seg = n                  # records per file
        self.segments = segments
        self.capacity = segments * n
        self._e = extra
        try:
            os.mkdir(path)
        except OSError:
            pass
        self._n = bytearray(segments)      # records per file
        self._scan()

    def _name(self, k):
        return "%s/%d" % ("%s/%d" % (self.path, k >> 4), k & 15)

    def _load(self, k, buf):
        """Read file k into buf; its record count (0 if missing or its CRC fails)."""
        try:
            with open(self._name(k), "rb") as f:
                got = f.readinto(buf)
        except OSError:
            return 0
        h = 4 + self._e
        n = (got - h - 4) // self.size
        if n < 1 or n > self._seg or got != h + n * self.size + 4:
            return 0
        if binascii.crc32(memoryview(buf)[:got - 4]) != struct.unpack_from(">I", buf, got - 4)[0]:
            return 0
        return n

    def _buf(self):
        return bytearray(8 + self._e + self._seg * self.size)

    def _scan(self):
        """Files are filled in turn (k, k + 1, ... modulo segments), so the newest one (the
        highest seq) is the head and the oldest follows it (``records``): no list in RAM, only
        the counts."""
        buf = self._buf()
        self.last_seq = 0
        self.extra = None
        self._head = self.segments - 1
        self._count = 0
        for k in range(self.segments):
            n = self._n[k] = self._load(k, buf)
            if n:
                self._count += n
                last = struct.unpack_from(">I", buf, 0)[0] + n - 1
                if last > self.last_seq:
                    self.last_seq = last
                    self._head = k
                    self.extra = bytes(buf[4:4 + self._e])

    def append(self, payload, extra=b""):
        """Persist one record (and the new extra header); returns its seq when on flash."""
        k = self._head
        n = self._n[k]
        if n >= self._seg or not self._count:
            k = (k + 1) % self.segments
            n = 0
        buf = self._buf()
        if n and self._load(k, buf) != n:
            raise OSError(5)                          # the file is not what the index says
        seq = self.last_seq + 1
        if n == 0:
            struct.pack_into(">I", buf, 0, seq)
        h = 4 + self._e
        buf[4:h] = extra
        p = h + n * self.size
        buf[p:p + self.size] = payload
        p += self.size
        struct.pack_into(">I", buf, p, binascii.crc32(memoryview(buf)[:p]))
        try:
            f = open(self._name(k), "wb")
        except OSError:                               # its directory is made on first use
            os.mkdir("%s/%d" % (self.path, k >> 4))
            f = open(self._name(k), "wb")
        with f:
            f.write(memoryview(buf)[:p + 4])
        if n == 0:                                    # on flash: now the RAM index
            self._count -= self._n[k]
        self._n[k] = n + 1
        self._head = k
        self._count += 1
        self.last_seq = seq
        self.extra = bytes(extra)
        return seq

    def count(self):
        return self._count

    def records(self, a=1, b=0):
        """Payloads of entries a..b (1-based, oldest first; b 0 = newest), clipped. The files
        oldest first (the one after the head) by index, and one buffer sized for the files read
        (the newest record's file: not a full one): a small generator, no generator per file list."""
        b = self._count if b <= 0 or b > self._count else b
        first = 1
        mv = None
        k = self._head
        for _ in range(self.segments):
            k = k + 1 if k + 1 < self.segments else 0
            n = self._n[k]
            if n and first + n > a and first <= b:
                s = self.size
                h = 4 + self._e
                if mv is None or len(mv) < h + n * s + 4:
                    mv = memoryview(bytearray(h + n * s + 4))
                self._load(k, mv)
                for i in range(n):
                    if a <= first + i <= b:
                        yield mv[h + i * s:h + i * s + s]
            first += n

    def last(self):
        for r in self.records(self._count, self._count):
            return bytes(r)
        return None

    def clear(self):
        for k in range(self.segments):
            try:
                os.remove(self._name(k))
            except OSError:
                pass
        self._n = bytearray(self.segments)
        self._scan()
