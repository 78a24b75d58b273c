"""File-backed NOR flash model: a littlefs block device for the unix board, with power-cut injection.

NOR semantics: an erase sets a whole block (4096 bytes) to 0xFF; a program can only clear bits
(1 -> 0), so the stored byte becomes ``old & new``. A programmed byte that does not read back as
written (it needed a 0 -> 1) is counted in ``overprogrammed``: littlefs should never cause one.

Block-device protocol (MicroPython ``vfs.VfsLfs2``, extended interface): ``readblocks(blk, buf,
off)``, ``writeblocks(blk, buf, off)`` (program), ``ioctl(op, arg)``: 1 init, 2 deinit, 3 sync,
4 block count, 5 block size, 6 erase block ``arg``. ``writeblocks(blk, buf)`` without ``off``
erases then programs (simple interface); ``writeblocks(blk, None, 0)`` is the erase. Deinit
(``ioctl(2, 0)``, which littlefs never sends) closes the files: tests and tools end a device so.

Files: ``image`` (``blocks * 4096`` bytes) and ``image + ".wear"``: one u32 BE erase counter per
block, updated at every erase (so the counts survive a cut); ``hil.norimage.read_wear`` reads them.

Power-cut injection: with ``cut_at=N`` the N-th program/erase operation since construction
(1-based) is interrupted: a program writes a random prefix of its data, the byte after the prefix
only partly (a random subset of its 0 bits); an erase sets a random prefix of the block to 0xFF.
Then ``die()`` is called (the unix board kills the process at once); if it returns, PowerCut is
raised, and every later operation fails with -EIO (no power, no flash access; littlefs turns that
into OSError). Returning an error code, not raising, keeps the dead device allocation-free when
a file finaliser runs with the heap locked.
The pseudo-random choices come from ``seed`` (one xorshift16 step, small ints only), so a cut is
reproducible.

Heap (on a board the flash device is C, so all of this is the rig's, not the meter's): the three
protocol methods and ``erase_count``, nine attributes, a 64-byte scratch; nothing allocated per
call on MicroPython (reference pitfall: littlefs can call the device while the heap is locked).
"""
try:
    from micropython import const
except ImportError:   # CPython (host tests, tools): MicroPython's readinto(buf, n), write(buf, off, n)
    import builtins

    def const(x):
        return x

    class _File:
        def __init__(self, f):
            self.f = f

        def readinto(self, buf, n=None):
            return self.f.readinto(memoryview(buf).cast("B")[:n])

        def write(self, buf, off=0, n=None):
            return self.f.write(memoryview(buf)[off:None if n is None else off + n])

        def __getattr__(self, name):
            return getattr(self.f, name)

    def open(name, mode):   # CPython only: a MicroPython file does both already
        return _File(builtins.open(name, mode))

BLOCK_SIZE = const(4096)
_EIO = const(-5)
_CHUNK = const(64)       # scratch size: programs and erases go through it in chunks (resident: small)


class PowerCut(Exception):
    """Raised by the block device at and after an injected power cut."""


class NorFlash:
    """NOR flash of ``blocks`` x 4096 bytes stored in the file ``image`` (created erased).

    ``ops`` counts program + erase operations, ``erases`` the erases (programs: ``ops - erases``);
    ``erase_count(blk)`` the block's lifetime erases.
    """

    def __init__(self, image, blocks, cut_at=0, seed=1, die=None):
        self.cut_at = cut_at
        self.ops = self.erases = self.overprogrammed = 0
        self._rng = (seed & 0xFFFF) or 0xACE1
        self._die = die
        s = self._s = bytearray(_CHUNK)
        size = blocks * BLOCK_SIZE
        try:
            f = open(image, "r+b")
            have = f.seek(0, 2)
        except OSError:
            f = open(image, "w+b")
            have = 0
        for i in range(_CHUNK):
            s[i] = 0xFF
        while have < size:
            n = size - have if size - have < _CHUNK else _CHUNK
            f.write(s, 0, n)
            have += n
        f.flush()
        self._f = f
        try:
            w = open(image + ".wear", "r+b")
        except OSError:
            w = open(image + ".wear", "w+b")
        n = w.seek(0, 2)
        if n < 4 * blocks:
            w.write(bytes(4 * blocks - n))
            w.flush()
        self._w = w

    def readblocks(self, blk, buf, off=0):
        if self.cut_at and self.ops >= self.cut_at:
            return _EIO
        self._f.seek(blk * BLOCK_SIZE + off)
        self._f.readinto(buf)

    def writeblocks(self, blk, buf, off=None):
        if self.cut_at and self.ops >= self.cut_at:   # no power since the cut
            return _EIO
        if off is None:
            self.writeblocks(blk, None, 0)            # simple interface: erase, then program
            off = 0
        self.ops += 1
        cut = self.ops == self.cut_at
        n = BLOCK_SIZE if buf is None else len(buf)
        upto = n
        if cut:
            x = self._rng
            x ^= (x << 7) & 0xFFFF
            x ^= x >> 9
            x ^= (x << 8) & 0xFFFF
            upto = x % n if buf is None else x % (n + 1)
        s = self._s
        f = self._f
        w = self._w
        pos = blk * BLOCK_SIZE + off
        if buf is None:
            for i in range(_CHUNK):
                s[i] = 0xFF
        done = 0
        while done < upto:
            k = upto - done if upto - done < _CHUNK else _CHUNK
            f.seek(pos + done)
            if buf is not None:          # program: AND into the image through the scratch
                f.readinto(s, k)
                for i in range(k):
                    b = buf[done + i]
                    if s[i] & b != b:    # a 0 bit cannot go back to 1 without an erase
                        self.overprogrammed += 1
                    s[i] &= b
                f.seek(pos + done)
            f.write(s, 0, k)
            done += k
        if buf is None:
            self.erases += 1
            n = self.erase_count(blk) + 1
            s[0] = n >> 24
            s[1] = (n >> 16) & 0xFF
            s[2] = (n >> 8) & 0xFF
            s[3] = n & 0xFF
            w.seek(4 * blk)
            w.write(s, 0, 4)
        elif upto < n:                   # cut: the byte in flight, some of its 0 bits made it
            f.seek(pos + upto)
            f.readinto(s, 1)
            s[0] &= buf[upto] | x >> 8
            f.seek(pos + upto)
            f.write(s, 0, 1)
        if cut:                          # dead from here: this flush is the last access
            f.flush()
            w.flush()
            if self._die is not None:
                self._die()
            raise PowerCut(self.cut_at)
        return 0

    def erase_count(self, blk):
        """Lifetime erases of block ``blk`` (from the .wear side file)."""
        s = self._s
        self._w.seek(4 * blk)
        self._w.readinto(s, 4)
        return (s[0] << 24) | (s[1] << 16) | (s[2] << 8) | s[3]

    def ioctl(self, op, arg):
        if op == 6:
            return self.writeblocks(arg, None, 0)
        if op == 4:
            return self._w.seek(0, 2) >> 2
        if op == 5:
            return BLOCK_SIZE
        if (op == 3 or op == 2) and not (self.cut_at and self.ops >= self.cut_at):
            self._f.flush()
            self._w.flush()
        if op == 2:      # deinit (littlefs never asks it: the tests and tools end a device with it)
            self._f.close()
            self._w.close()
        return 0
