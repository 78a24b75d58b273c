"""File-backed NOR flash model: a littlefs block device for the unix board, with power-cut injection.

NOR semantics: an erase sets a whole block (4096 bytes) to 0xFF; a program can only clear bits
(1 -> 0), so the stored byte becomes ``old & new``. A programmed byte that does not read back as
written (it needed a 0 -> 1) is counted in ``overprogrammed``: littlefs should never cause one.

Block-device protocol (MicroPython ``vfs.VfsLfs2``, extended interface): ``readblocks(blk, buf,
off)``, ``writeblocks(blk, buf, off)`` (program), ``ioctl(op, arg)``: 1 init, 2 deinit, 3 sync,
4 block count, 5 block size, 6 erase block ``arg``. ``writeblocks(blk, buf)`` without ``off``
erases then programs (simple interface).

Files: ``image`` (``blocks * 4096`` bytes) and ``image + ".wear"``: one u32 BE erase counter per
block, updated at every erase (so the counts survive a cut); ``hil.flash.read_wear`` reads them.

Power-cut injection: with ``cut_at=N`` the N-th program/erase operation since construction
(1-based) is interrupted: a program writes a random prefix of its data, the byte after the prefix
only partly (a random subset of its 0 bits); an erase sets a random prefix of the block to 0xFF.
Then ``die()`` is called (the unix board kills the process at once); if it returns, PowerCut is
raised, and every later operation fails with -EIO (no power, no flash access; littlefs turns that
into OSError). Returning an error code, not raising, keeps the dead device allocation-free when
a file finaliser runs with the heap locked.
The pseudo-random choices come from ``seed`` (xorshift32), so a cut is reproducible.

No slicing and no allocation in readblocks/writeblocks on MicroPython (reference pitfall:
littlefs can call them while the heap is locked).
"""
import sys

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

BLOCK_SIZE = const(4096)
_MPY = sys.implementation.name == "micropython"
_EIO = const(-5)
_CHUNK = const(256)      # scratch size: programs and erases go through it in chunks


class PowerCut(Exception):
    """Raised by the block device at and after an injected power cut."""


class NorFlash:
    """NOR flash of ``blocks`` x 4096 bytes stored in the file ``image`` (created erased).

    ``ops`` counts program + erase operations, ``erases``/``progs`` each kind,
    ``prog_bytes`` bytes programmed; ``erase_count(blk)`` the block's lifetime erases.
    """

    def __init__(self, image, blocks, cut_at=0, seed=1, die=None):
        self.blocks = blocks
        self.cut_at = cut_at
        self.dead = False
        self.ops = self.progs = self.erases = self.prog_bytes = self.overprogrammed = 0
        self._rng = (seed & 0xFFFFFFFF) or 0x9E3779B9
        self._die = die
        self._scratch = bytearray(_CHUNK)
        self._mv = memoryview(self._scratch)
        self._w4 = bytearray(4)
        size = blocks * BLOCK_SIZE
        try:
            f = open(image, "r+b")
            f.seek(0, 2)
            have = f.tell()
        except OSError:
            f = open(image, "w+b")
            have = 0
        if have < size:
            for i in range(_CHUNK):
                self._scratch[i] = 0xFF
            f.seek(have)
            while have < size:
                n = size - have if size - have < _CHUNK else _CHUNK
                if _MPY:
                    f.write(self._scratch, 0, n)
                else:
                    f.write(self._mv[:n])
                have += n
            f.flush()
        self._f = f
        try:
            w = open(image + ".wear", "r+b")
        except OSError:
            w = open(image + ".wear", "w+b")
        w.seek(0, 2)
        if w.tell() < 4 * blocks:
            w.write(bytes(4 * blocks - w.tell()))
            w.flush()
        self._wear = w

    # -- random ----------------------------------------------------------------------
    def _rand(self, n):
        """Pseudo-random int in [0, n) (xorshift32)."""
        x = self._rng
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rng = x
        return x % n if n > 0 else 0

    def _tick(self):
        """Count one program/erase op; True if this one is to be cut."""
        self.ops += 1
        return self.ops == self.cut_at

    def _cut(self):
        self.dead = True
        self._f.flush()
        self._wear.flush()
        if self._die is not None:
            self._die()
        raise PowerCut("power cut at op %d" % self.ops)

    # -- block device protocol ---------------------------------------------------------
    def readblocks(self, blk, buf, off=0):
        if self.dead:
            return _EIO
        f = self._f
        f.seek(blk * BLOCK_SIZE + off)
        if _MPY:
            f.readinto(buf)
        else:
            f.readinto(memoryview(buf).cast("B"))

    def _rmw(self, pos, buf, start, k, count):
        """AND ``buf[start:start+k]`` into the image at ``pos`` through the scratch buffer."""
        s = self._scratch
        f = self._f
        f.seek(pos)
        if _MPY:
            f.readinto(s, k)
        else:
            f.readinto(self._mv[:k])
        bad = 0
        for i in range(k):
            b = buf[start + i]
            if s[i] & b != b:   # a 0 bit cannot go back to 1 without an erase
                bad += 1
            s[i] &= b
        if count:
            self.overprogrammed += bad
        f.seek(pos)
        if _MPY:
            f.write(s, 0, k)
        else:
            f.write(self._mv[:k])

    def writeblocks(self, blk, buf, off=None):
        if self.dead:
            return _EIO
        if off is None:
            if self._erase(blk):
                return _EIO
            off = 0
        cut = self._tick()
        n = len(buf)
        upto = self._rand(n + 1) if cut else n
        pos = blk * BLOCK_SIZE + off
        done = 0
        while done < upto:
            k = upto - done if upto - done < _CHUNK else _CHUNK
            self._rmw(pos + done, buf, done, k, True)
            done += k
        if cut and upto < n:  # the byte in flight: some of its 0 bits made it
            w = self._w4
            w[0] = buf[upto] | self._rand(256)
            self._rmw(pos + upto, w, 0, 1, False)
            upto += 1
        self.progs += 1
        self.prog_bytes += upto
        if cut:
            self._cut()
        return 0

    def _erase(self, blk):
        if self.dead:
            return _EIO
        cut = self._tick()
        s = self._scratch
        upto = self._rand(BLOCK_SIZE) if cut else BLOCK_SIZE
        for i in range(_CHUNK):
            s[i] = 0xFF
        f = self._f
        f.seek(blk * BLOCK_SIZE)
        done = 0
        while done < upto:
            k = upto - done if upto - done < _CHUNK else _CHUNK
            if _MPY:
                f.write(s, 0, k)
            else:
                f.write(self._mv[:k])
            done += k
        self.erases += 1
        c = self.erase_count(blk) + 1
        w4 = self._w4
        w4[0] = c >> 24
        w4[1] = (c >> 16) & 0xFF
        w4[2] = (c >> 8) & 0xFF
        w4[3] = c & 0xFF
        self._wear.seek(4 * blk)
        self._wear.write(w4)
        if cut:
            self._cut()
        return 0

    def erase_count(self, blk):
        """Lifetime erases of block ``blk`` (from the .wear side file)."""
        w4 = self._w4
        self._wear.seek(4 * blk)
        self._wear.readinto(w4)
        return (w4[0] << 24) | (w4[1] << 16) | (w4[2] << 8) | w4[3]

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return BLOCK_SIZE
        if op == 6:
            return self._erase(arg)
        if op == 3 or op == 2:
            if not self.dead:
                self._f.flush()
                self._wear.flush()
        return 0

    def close(self):
        self._f.close()
        self._wear.close()

