"""AES key wrap (RFC 3394 §2.2, default IV A6A6A6A6A6A6A6A6) under a 128-bit KEK.

Security suite 0 wraps keys this way for IC 64 ``key_transfer`` / ``global_key_transfer``
(Green Book §9.2.8; the KEK is the master key, key_id 3). A 16-byte key wraps to 24 bytes.

- ``wrap(kek, key) -> bytes``: ``key`` is 16..n*8 bytes, a multiple of 8, at least 16.
- ``unwrap(kek, wrapped) -> bytes``: raises ``KeyWrapError`` on a bad length or when the
  integrity check (the recovered IV) fails; nothing of the unwrapped key is returned then.

Runs once per key transfer, so it allocates freely (a few small buffers).
"""
from protocol import aes

_IV = b"\xa6\xa6\xa6\xa6\xa6\xa6\xa6\xa6"


class KeyWrapError(ValueError):
    """Wrapped key of a bad length, or the integrity check failed (wrong KEK or damaged data)."""


def _xor_t(b, t):
    """b[0:8] ^= t as a 64-bit big-endian integer."""
    i = 7
    while t:
        b[i] ^= t & 0xFF
        t >>= 8
        i -= 1


def wrap(kek, key):
    """RFC 3394 wrap of ``key`` (multiple of 8 bytes, >= 16) under ``kek`` (16 bytes)."""
    n = len(key) // 8
    if len(key) % 8 or n < 2:
        raise KeyWrapError("key to wrap must be a multiple of 8 bytes, at least 16")
    e = aes.new(kek)
    r = bytearray(8) + bytearray(key)            # r[0:8] is A; R[i] at r[8i:8i+8]
    r[0:8] = _IV
    b = bytearray(16)
    for j in range(6):
        for i in range(1, n + 1):
            b[0:8] = r[0:8]
            b[8:16] = r[8 * i:8 * i + 8]
            e.encrypt(b, b)                       # B = AES(K, A | R[i])
            _xor_t(b, n * j + i)                  # A = MSB64(B) ^ t
            r[0:8] = b[0:8]
            r[8 * i:8 * i + 8] = b[8:16]
    return bytes(r)


def unwrap(kek, wrapped):
    """RFC 3394 unwrap; returns the key (len(wrapped) - 8 bytes). Raises KeyWrapError."""
    n = len(wrapped) // 8 - 1
    if len(wrapped) % 8 or n < 2:
        raise KeyWrapError("wrapped key must be a multiple of 8 bytes, at least 24")
    d = aes.new(kek)
    r = bytearray(wrapped)
    b = bytearray(16)
    for j in range(5, -1, -1):
        for i in range(n, 0, -1):
            b[0:8] = r[0:8]
            _xor_t(b, n * j + i)                  # (A ^ t) | R[i]
            b[8:16] = r[8 * i:8 * i + 8]
            d.decrypt(b, b)
            r[0:8] = b[0:8]
            r[8 * i:8 * i + 8] = b[8:16]
    bad = 0
    for i in range(8):
        bad |= r[i] ^ _IV[i]
    if bad:
        raise KeyWrapError("key unwrap integrity check failed")
    return bytes(r[8:])
