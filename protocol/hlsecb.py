"""HLS mechanism 2 (the IS 15959-2 US association's): f(challenge) = AES-128-ECB under the
secret, as gurux (Authentication.HIGH) computes it (DLMS UA 1000-2 "Green Book" §9.2.7.4).

A module of its own: a meter loads it only when a client uses mechanism 2 (``meter.keyset`` at
boot for the AES object, ``meter.secure.pass3``); mechanism 5 (GMAC) is ``protocol.security``.
The host re-exports it from ``protocol.security_client``.
"""
from protocol import aes


def ecb(secret):
    """The AES-128-ECB object of HLS mechanism 2 for ``secret`` (zero-padded to 16 bytes;
    longer: ValueError): ``cryptolib.aes`` is ~500 B on the 32-bit VM (axTLS), so the meter makes
    it once, at boot (``meter.keyset.load``)."""
    if len(secret) > 16:
        raise ValueError("secret")
    k = bytearray(16)
    k[0:len(secret)] = secret
    return aes.new(k)


def hls_ecb(secret, challenge):
    """HLS mechanism 2 (the IS 15959-2 US association's, 16-byte secret), as gurux
    (Authentication.HIGH) computes it: AES-128-ECB under ``secret`` zero-padded to 16 bytes
    (longer: ValueError) of ``challenge`` zero-padded to a multiple of 16 bytes (16 at least).
    dlms-cosem pads nothing, so it agrees for 16/32/48/64-byte challenges (the only ones it
    can answer). ``secret`` may also be ``ecb(secret)`` (one AES object for pass 3 and 4).
    Returns bytes (16, 32, ... long); allocates (once per association)."""
    e = secret if hasattr(secret, "encrypt") else ecb(secret)
    n = max(16, (len(challenge) + 15) & ~15)
    out = bytearray(n)
    out[0:len(challenge)] = challenge
    mv = memoryview(out)
    for i in range(0, n, 16):
        e.encrypt(mv[i:i + 16], mv[i:i + 16])
    return bytes(out)


def hls_ecb_check(secret, challenge, value):
    """True when ``value`` equals ``hls_ecb(secret, challenge)`` (constant time over its
    length; a different length is False)."""
    want = hls_ecb(secret, challenge)
    if len(value) != len(want):
        return False
    d = 0
    for i in range(len(want)):
        d |= want[i] ^ value[i]
    return d == 0
