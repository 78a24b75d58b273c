"""AES key unwrap (RFC 3394 §2.2, default IV A6A6A6A6A6A6A6A6) under a 128-bit KEK: the meter's half.

Security suite 0 wraps keys this way for IC 64 ``key_transfer`` / ``global_key_transfer``
(Green Book §9.2.8; the KEK is the master key, key_id 3). A 16-byte key wraps to 24 bytes.

- ``unwrap(kek, wrapped, w) -> bytes``: raises ValueError ("wrap") on a bad length or when the
  integrity check (the recovered IV) fails; nothing of the unwrapped key is returned then. ``w``:
  208 bytes of scratch (a bytearray), the round keys and two blocks (the meter passes its
  association's response buffer, free while an ACTION runs: no 176 B block to find).

``wrap`` and ``KeyWrapError`` (an ``unwrap`` raising it) are the host's:
``protocol.security_client`` (loaded per key transfer, this module keeps one error class and
one-word texts: no class object, no str object per load).

Runs once per key transfer, so it allocates freely (a few small buffers), but no block over
~40 bytes: ``unwrap`` deciphers with the AES-128 inverse cipher below (FIPS 197 §5.3, its
S-boxes bytes literals: in the image, not the heap), not a ``cryptolib.aes`` object (528 B on
the 32-bit VM's axTLS: at 56k the heap's largest hole during an association is ~300 B; 36 blocks
per key transfer, so speed does not matter).
"""
_IV = b"\xa6\xa6\xa6\xa6\xa6\xa6\xa6\xa6"
_RCON = b"\x01\x02\x04\x08\x10\x20\x40\x80\x1b\x36"
_SBOX = (
    b"\x63\x7c\x77\x7b\xf2\x6b\x6f\xc5\x30\x01\x67\x2b\xfe\xd7\xab\x76\xca\x82\xc9\x7d\xfa\x59\x47\xf0"
    b"\xad\xd4\xa2\xaf\x9c\xa4\x72\xc0\xb7\xfd\x93\x26\x36\x3f\xf7\xcc\x34\xa5\xe5\xf1\x71\xd8\x31\x15"
    b"\x04\xc7\x23\xc3\x18\x96\x05\x9a\x07\x12\x80\xe2\xeb\x27\xb2\x75\x09\x83\x2c\x1a\x1b\x6e\x5a\xa0"
    b"\x52\x3b\xd6\xb3\x29\xe3\x2f\x84\x53\xd1\x00\xed\x20\xfc\xb1\x5b\x6a\xcb\xbe\x39\x4a\x4c\x58\xcf"
    b"\xd0\xef\xaa\xfb\x43\x4d\x33\x85\x45\xf9\x02\x7f\x50\x3c\x9f\xa8\x51\xa3\x40\x8f\x92\x9d\x38\xf5"
    b"\xbc\xb6\xda\x21\x10\xff\xf3\xd2\xcd\x0c\x13\xec\x5f\x97\x44\x17\xc4\xa7\x7e\x3d\x64\x5d\x19\x73"
    b"\x60\x81\x4f\xdc\x22\x2a\x90\x88\x46\xee\xb8\x14\xde\x5e\x0b\xdb\xe0\x32\x3a\x0a\x49\x06\x24\x5c"
    b"\xc2\xd3\xac\x62\x91\x95\xe4\x79\xe7\xc8\x37\x6d\x8d\xd5\x4e\xa9\x6c\x56\xf4\xea\x65\x7a\xae\x08"
    b"\xba\x78\x25\x2e\x1c\xa6\xb4\xc6\xe8\xdd\x74\x1f\x4b\xbd\x8b\x8a\x70\x3e\xb5\x66\x48\x03\xf6\x0e"
    b"\x61\x35\x57\xb9\x86\xc1\x1d\x9e\xe1\xf8\x98\x11\x69\xd9\x8e\x94\x9b\x1e\x87\xe9\xce\x55\x28\xdf"
    b"\x8c\xa1\x89\x0d\xbf\xe6\x42\x68\x41\x99\x2d\x0f\xb0\x54\xbb\x16")
_INV = (
    b"\x52\x09\x6a\xd5\x30\x36\xa5\x38\xbf\x40\xa3\x9e\x81\xf3\xd7\xfb\x7c\xe3\x39\x82\x9b\x2f\xff\x87"
    b"\x34\x8e\x43\x44\xc4\xde\xe9\xcb\x54\x7b\x94\x32\xa6\xc2\x23\x3d\xee\x4c\x95\x0b\x42\xfa\xc3\x4e"
    b"\x08\x2e\xa1\x66\x28\xd9\x24\xb2\x76\x5b\xa2\x49\x6d\x8b\xd1\x25\x72\xf8\xf6\x64\x86\x68\x98\x16"
    b"\xd4\xa4\x5c\xcc\x5d\x65\xb6\x92\x6c\x70\x48\x50\xfd\xed\xb9\xda\x5e\x15\x46\x57\xa7\x8d\x9d\x84"
    b"\x90\xd8\xab\x00\x8c\xbc\xd3\x0a\xf7\xe4\x58\x05\xb8\xb3\x45\x06\xd0\x2c\x1e\x8f\xca\x3f\x0f\x02"
    b"\xc1\xaf\xbd\x03\x01\x13\x8a\x6b\x3a\x91\x11\x41\x4f\x67\xdc\xea\x97\xf2\xcf\xce\xf0\xb4\xe6\x73"
    b"\x96\xac\x74\x22\xe7\xad\x35\x85\xe2\xf9\x37\xe8\x1c\x75\xdf\x6e\x47\xf1\x1a\x71\x1d\x29\xc5\x89"
    b"\x6f\xb7\x62\x0e\xaa\x18\xbe\x1b\xfc\x56\x3e\x4b\xc6\xd2\x79\x20\x9a\xdb\xc0\xfe\x78\xcd\x5a\xf4"
    b"\x1f\xdd\xa8\x33\x88\x07\xc7\x31\xb1\x12\x10\x59\x27\x80\xec\x5f\x60\x51\x7f\xa9\x19\xb5\x4a\x0d"
    b"\x2d\xe5\x7a\x9f\x93\xc9\x9c\xef\xa0\xe0\x3b\x4d\xae\x2a\xf5\xb0\xc8\xeb\xbb\x3c\x83\x53\x99\x61"
    b"\x17\x2b\x04\x7e\xba\x77\xd6\x26\xe1\x69\x14\x63\x55\x21\x0c\x7d")


def _xor_t(b, t):
    """b[0:8] ^= t as a 64-bit big-endian integer."""
    i = 7
    while t:
        b[i] ^= t & 0xFF
        t >>= 8
        i -= 1


def _xt(a):
    return ((a << 1) ^ 0x1B) & 0xFF if a & 0x80 else a << 1


def _schedule(kek, w):
    """The 11 round keys of AES-128 ``kek`` (16 bytes; ValueError otherwise) into w[0:176]."""
    if len(kek) != 16:
        raise ValueError("key")
    for i in range(16):
        w[i] = kek[i]
    for i in range(16, 176, 4):
        a, b, c, d = w[i - 4], w[i - 3], w[i - 2], w[i - 1]
        if i % 16 == 0:                        # RotWord, SubWord, Rcon
            a, b, c, d = _SBOX[b] ^ _RCON[i // 16 - 1], _SBOX[c], _SBOX[d], _SBOX[a]
        w[i], w[i + 1], w[i + 2], w[i + 3] = w[i - 16] ^ a, w[i - 15] ^ b, w[i - 14] ^ c, w[i - 13] ^ d
    return w


def _decrypt(w, b, t):
    """b[0:16] = AES-128^-1(b) under the round keys ``w`` (``t``: 16 bytes of scratch)."""
    for i in range(16):
        b[i] ^= w[160 + i]
    for r in range(9, -1, -1):
        for c in range(4):                     # InvShiftRows + InvSubBytes (b[row + 4 * column])
            for j in range(4):
                t[j + 4 * c] = _INV[b[j + 4 * ((c - j) & 3)]]
        k = 16 * r
        for i in range(16):
            b[i] = t[i] ^ w[k + i]
        if r:
            for c in range(0, 16, 4):          # InvMixColumns: a pre-step, then MixColumns
                a0, a1, a2, a3 = b[c], b[c + 1], b[c + 2], b[c + 3]
                u = _xt(_xt(a0 ^ a2))
                v = _xt(_xt(a1 ^ a3))
                a0 ^= u
                a1 ^= v
                a2 ^= u
                a3 ^= v
                x = a0 ^ a1 ^ a2 ^ a3
                b[c] = a0 ^ x ^ _xt(a0 ^ a1)
                b[c + 1] = a1 ^ x ^ _xt(a1 ^ a2)
                b[c + 2] = a2 ^ x ^ _xt(a2 ^ a3)
                b[c + 3] = a3 ^ x ^ _xt(a3 ^ a0)


def unwrap(kek, wrapped, w):
    """RFC 3394 unwrap; returns the key (len(wrapped) - 8 bytes). Raises ValueError ("wrap").
    ``w``: 208 bytes of scratch (round keys, then the block and the cipher's scratch)."""
    n = len(wrapped) // 8 - 1
    if len(wrapped) % 8 or n < 2 or len(w) < 208:
        raise ValueError("wrap")
    _schedule(kek, w)
    r = bytearray(wrapped)
    w = memoryview(w)
    b = w[176:192]
    t = w[192:208]
    for j in range(5, -1, -1):
        for i in range(n, 0, -1):
            b[0:8] = r[0:8]
            _xor_t(b, n * j + i)                  # (A ^ t) | R[i]
            b[8:16] = r[8 * i:8 * i + 8]
            _decrypt(w, b, t)
            r[0:8] = b[0:8]
            r[8 * i:8 * i + 8] = b[8:16]
    bad = 0
    for i in range(8):
        bad |= r[i] ^ _IV[i]
    if bad:
        raise ValueError("wrap")
    return bytes(r[8:])
