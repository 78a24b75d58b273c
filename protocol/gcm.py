"""AES-GCM-128 (NIST SP 800-38D) with a 96-bit IV, allocation-free after construction.

Only the AES block function comes from outside (``protocol.aes``: ``cryptolib`` on the device);
CTR (§6.5 GCTR, 32-bit counter ``inc32``) and GHASH (§6.4, GF(2^128) with R = 0xE1 || 0^120,
bit-reflected) are here. GHASH uses Shoup's 4-bit table: 16 multiples of H kept as one
``array('H')`` of 8 columns x 16 words (word k of n*H at [16*k + n]: 256 bytes per key, one
object rather than eight), so every value stays a small int on 32-bit ports (no big ints, no
heap traffic per block).

Streaming use (what the DLMS layer does; every call takes ``buf, off, n`` instead of a slice,
because slicing allocates on MicroPython)::

    g = Gcm(key)                   # 16-byte key
    g.start(iv, 0)                 # 12-byte IV at iv[0:12]; J0 = IV || 00000001
    g.aad(buf, off, n)             # any number of AAD pieces, all before data
    g.crypt(buf, off, n)           # CTR in place (same call encrypts and decrypts)
    g.hash(buf, off, n)            # GHASH the ciphertext (after crypt when encrypting,
                                   #  before crypt when decrypting)
    g.tag(out, off, tlen)          # write the tag (first tlen bytes)
    g.check(tag, off, tlen)        # -> bool, constant-time over tlen bytes

One-shot helpers on whole buffers (``encrypt``/``decrypt``) are the host's:
``protocol.security_client.Gcm``.
"""
from array import array

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_E1 = const(0xE100)   # reduction constant R, top 16 bits
# Shoup's reduction table: R * n for the 4 bits shifted out on the right, top 16 bits; its
# high bytes as a bytes literal (stays in the image), the low byte of entry n is (n & 7) << 5
_LAST4 = b"\x00\x1c\x38\x24\x70\x6c\x48\x54\xe1\xfd\xd9\xc5\x91\x8d\xa9\xb5"


def keyed(key):
    """(AES object, H table) under ``key`` (16 bytes; ValueError otherwise): what a ``Gcm`` keeps
    of its key. Plain objects (a ``cryptolib.aes`` and an ``array``): a caller may keep them while
    this module is unloaded and hand them to ``Gcm`` for the next message (``meter.keyset``: built
    at boot, while the heap is not fragmented, not per association; so ``protocol.aes`` is imported
    here, not with the module)."""
    from protocol import aes
    e = aes.new(key)
    h = bytearray(16)
    e.encrypt(h, h)                        # H = E_K(0^128)
    m = array("H", bytes(256))             # [16*k + n]: word k of n*H
    for k in range(8):
        m[16 * k + 8] = (h[2 * k] << 8) | h[2 * k + 1]   # index 8 (bit 0 of the nibble) = H
    i = 4
    while i:                               # M[i] = M[2i] * x (a right shift with reduction)
        lsb = m[112 + 2 * i] & 1
        for k in range(7, 0, -1):
            m[16 * k + i] = (m[16 * k + 2 * i] >> 1) | ((m[16 * k - 16 + 2 * i] & 1) << 15)
        m[i] = (m[2 * i] >> 1) ^ (_E1 if lsb else 0)
        i >>= 1
    for i in (2, 4, 8):
        for j in range(1, i):
            for k in range(8):
                m[16 * k + i + j] = m[16 * k + i] ^ m[16 * k + j]
    return e, m


class Gcm:
    """AES-GCM-128 under one key (16 bytes, or the pair ``keyed`` made of it). Not re-entrant:
    one message at a time."""

    def __init__(self, key):
        self._z = array("H", bytes(16))        # GHASH accumulator, 8 big-endian 16-bit words
        self._ctr = bytearray(16)              # IV || counter
        self._ks = bytearray(16)               # keystream block / scratch
        self._ej0 = bytearray(16)              # E_K(J0), masks the tag
        self._kpos = 16                        # bytes of _ks used
        self._fill = 0                         # bytes in the current GHASH block
        self._alen = 0
        self._clen = 0
        self.set_key(key)

    def set_key(self, key):
        """Change the key: 16 bytes (ValueError otherwise; new AES object and H table) or the
        pair ``keyed`` returned (kept, not copied; ``(None, None)`` lets the old ones go before a
        new pair is made)."""
        self._aes, self._m = key if isinstance(key, tuple) else keyed(key)

    # -- GHASH ---------------------------------------------------------------------------------
    def _mul(self):
        """_z = _z * H in GF(2^128) (Shoup, 4 bits at a time, lowest nibble first)."""
        m = self._m
        r = _LAST4
        v = self._z
        z0 = z1 = z2 = z3 = z4 = z5 = z6 = z7 = 0
        for i in range(7, -1, -1):
            w = v[i]
            for _ in range(4):
                n = w & 15
                w >>= 4
                t = z7 & 15
                z7 = (z7 >> 4) ^ ((z6 & 15) << 12) ^ m[112 + n]
                z6 = (z6 >> 4) ^ ((z5 & 15) << 12) ^ m[96 + n]
                z5 = (z5 >> 4) ^ ((z4 & 15) << 12) ^ m[80 + n]
                z4 = (z4 >> 4) ^ ((z3 & 15) << 12) ^ m[64 + n]
                z3 = (z3 >> 4) ^ ((z2 & 15) << 12) ^ m[48 + n]
                z2 = (z2 >> 4) ^ ((z1 & 15) << 12) ^ m[32 + n]
                z1 = (z1 >> 4) ^ ((z0 & 15) << 12) ^ m[16 + n]
                z0 = (z0 >> 4) ^ (r[t] << 8) ^ ((t & 7) << 5) ^ m[n]
        v[0] = z0
        v[1] = z1
        v[2] = z2
        v[3] = z3
        v[4] = z4
        v[5] = z5
        v[6] = z6
        v[7] = z7

    def _feed(self, buf, off, n):
        """Absorb n bytes of buf[off:] into GHASH (blocks continue across calls)."""
        v = self._z
        f = self._fill
        end = off + n
        while off < end:
            if f == 0 and end - off >= 16:     # whole aligned block
                b = off
                v[0] ^= (buf[b] << 8) | buf[b + 1]
                v[1] ^= (buf[b + 2] << 8) | buf[b + 3]
                v[2] ^= (buf[b + 4] << 8) | buf[b + 5]
                v[3] ^= (buf[b + 6] << 8) | buf[b + 7]
                v[4] ^= (buf[b + 8] << 8) | buf[b + 9]
                v[5] ^= (buf[b + 10] << 8) | buf[b + 11]
                v[6] ^= (buf[b + 12] << 8) | buf[b + 13]
                v[7] ^= (buf[b + 14] << 8) | buf[b + 15]
                self._mul()
                off += 16
                continue
            v[f >> 1] ^= buf[off] << (0 if f & 1 else 8)
            off += 1
            f += 1
            if f == 16:
                self._mul()
                f = 0
        self._fill = f

    def _pad(self):
        if self._fill:
            self._mul()
            self._fill = 0

    # -- streaming API -------------------------------------------------------------------------
    def start(self, iv, off=0):
        """Begin a message: IV = iv[off:off+12] (96 bits; J0 = IV || 00000001)."""
        c = self._ctr
        for i in range(12):
            c[i] = iv[off + i]
        c[12] = c[13] = c[14] = 0
        c[15] = 1
        self._aes.encrypt(c, self._ej0)
        v = self._z
        for i in range(8):
            v[i] = 0
        self._kpos = 16
        self._fill = 0
        self._alen = 0
        self._clen = 0

    def aad(self, buf, off=0, n=-1):
        """Authenticate n bytes of buf[off:] (n < 0: to the end) as additional data.
        All AAD comes before any ``hash``."""
        if n < 0:
            n = len(buf) - off
        self._feed(buf, off, n)
        self._alen += n

    def hash(self, buf, off=0, n=-1):
        """Authenticate n bytes of ciphertext at buf[off:] (n < 0: to the end)."""
        if n < 0:
            n = len(buf) - off
        if self._clen == 0:
            self._pad()                        # AAD is zero-padded to a block boundary
        self._feed(buf, off, n)
        self._clen += n

    def crypt(self, buf, off=0, n=-1):
        """XOR n bytes of buf[off:] in place with the keystream (GCTR from inc32(J0))."""
        if n < 0:
            n = len(buf) - off
        c = self._ctr
        ks = self._ks
        k = self._kpos
        for p in range(off, off + n):
            if k == 16:
                i = 15
                while i >= 12:                 # inc32: the low 32 bits, modulo 2^32
                    c[i] = (c[i] + 1) & 0xFF
                    if c[i]:
                        break
                    i -= 1
                self._aes.encrypt(c, ks)
                k = 0
            buf[p] ^= ks[k]
            k += 1
        self._kpos = k

    def _final(self):
        """Finish GHASH with len(A)||len(C) (bits); S xor E_K(J0) into _ks."""
        self._pad()
        v = self._z
        a = self._alen << 3
        c = self._clen << 3
        # lengths < 2^29 bytes: the top two words of each 64-bit field stay zero
        v[2] ^= (a >> 16) & 0xFFFF
        v[3] ^= a & 0xFFFF
        v[6] ^= (c >> 16) & 0xFFFF
        v[7] ^= c & 0xFFFF
        self._mul()
        ks = self._ks
        e = self._ej0
        for i in range(8):
            w = v[i]
            ks[2 * i] = (w >> 8) ^ e[2 * i]
            ks[2 * i + 1] = (w & 0xFF) ^ e[2 * i + 1]
        self._kpos = 16                        # _ks no longer holds keystream

    def tag(self, out, off=0, tlen=16):
        """Write the first tlen (<= 16) bytes of the tag to out[off:]. Ends the message."""
        self._final()
        ks = self._ks
        for i in range(tlen):
            out[off + i] = ks[i]

    def check(self, tag, off=0, tlen=16):
        """True when tag[off:off+tlen] equals the computed tag (constant time over tlen bytes).
        Ends the message."""
        self._final()
        ks = self._ks
        d = 0
        for i in range(tlen):
            d |= ks[i] ^ tag[off + i]
        return d == 0
