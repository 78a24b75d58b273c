"""AES-128 block cipher (FIPS 197), one 16-byte block at a time, for GCM and key wrap.

``new(key)`` returns an object with ``encrypt(src, dst)`` and ``decrypt(src, dst)``: ``src``
is a 16-byte buffer, ``dst`` a writable 16-byte buffer (may be ``src``); nothing is allocated.
``key`` is 16 bytes (ValueError otherwise: AES-192/256 are not used by security suite 0).

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
