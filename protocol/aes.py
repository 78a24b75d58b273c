"""AES-128 block cipher (FIPS 197), one 16-byte block at a time, for GCM and key wrap.

``new(key)`` returns an object with ``encrypt(src, dst)`` and ``decrypt(src, dst)``: ``src``
is a 16-byte buffer, ``dst`` a writable 16-byte buffer (may be ``src``); nothing is allocated.
``key`` is 16 bytes (ValueError otherwise: AES-192/256 are not used by security suite 0).
``keyed(key, m)``: the AES object and GHASH table ``protocol.security.Suite0`` keeps of EK.

On MicroPython this is ``cryptolib.aes(key, 1)`` (ECB; unix, esp32 and rp2 ports all have it,
over mbedtls). One ``cryptolib.aes`` object either encrypts or decrypts, never both: use one
object per direction. On CPython (host tests, host tools) a small adapter over the
``cryptography`` package stands in; it is imported only when ``cryptolib`` is missing, so the
device never loads it.
"""
try:
    from cryptolib import aes as _aes

    def new(key):
        """AES-128-ECB object for ``key`` (16 bytes)."""
        if len(key) != 16:
            raise ValueError("AES-128 key must be 16 bytes")
        return _aes(key, 1)
except ImportError:            # CPython: the host path
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    class _Ecb:
        def __init__(self, key):
            c = Cipher(algorithms.AES(bytes(key)), modes.ECB())
            self._enc = c.encryptor()
            self._dec = c.decryptor()

        def encrypt(self, src, dst):
            dst[0:16] = self._enc.update(bytes(src[0:16]))

        def decrypt(self, src, dst):
            dst[0:16] = self._dec.update(bytes(src[0:16]))

    def new(key):
        """AES-128-ECB object for ``key`` (16 bytes)."""
        if len(key) != 16:
            raise ValueError("AES-128 key must be 16 bytes")
        return _Ecb(key)


def keyed(key, m):
    """(AES object, H table) under ``key`` (16 bytes; ValueError otherwise): what a ``Suite0`` keeps
    of its key. Plain objects (a ``cryptolib.aes`` and an ``array``): a caller may keep them while
    ``protocol.security`` is unloaded and hand them to its ``Suite0`` for the next message
    (``meter.keyset``: built at boot, while the heap is not fragmented, not per association; here,
    in a module loaded at boot and for a key transfer only, not in the resident security code). ``m``: an
    ``array("H")`` of 128 words to fill with the GHASH table (``meter.keyxfer.rekey`` makes it before
    this call's frame takes heap), or None (made here). ``key`` may also be an AES
    object from ``new`` (``meter.keyxfer.rekey`` makes it before this call's frame takes heap)."""
    from array import array
    e = key if hasattr(key, "encrypt") else new(key)
    h = bytearray(16)
    e.encrypt(h, h)                        # H = E_K(0^128)
    if m is None:                          # [16*k + n]: word k of n*H
        m = array("H", range(128))         # one 256 B block (from bytes(256): a second one)
    for i in range(128):
        m[i] = 0
    for k in range(8):
        m[16 * k + 8] = (h[2 * k] << 8) | h[2 * k + 1]   # index 8 (bit 0 of the nibble) = H
    i = 4
    while i:                               # M[i] = M[2i] * x (a right shift with reduction)
        lsb = m[112 + 2 * i] & 1
        for k in range(7, 0, -1):
            m[16 * k + i] = (m[16 * k + 2 * i] >> 1) | ((m[16 * k - 16 + 2 * i] & 1) << 15)
        m[i] = (m[2 * i] >> 1) ^ (0xE100 if lsb else 0)   # the reduction constant R, top 16 bits
        i >>= 1
    for i in (2, 4, 8):
        for j in range(1, i):
            for k in range(8):
                m[16 * k + i + j] = m[16 * k + i] ^ m[16 * k + j]
    return e, m
