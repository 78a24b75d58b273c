"""AES-GCM-128 (protocol.gcm) against the GCM specification's test cases, AES-128 (FIPS 197
Appendix C.1) and AES key wrap (RFC 3394 §4.1). Runs on CPython and MicroPython (heap 190k):
on MicroPython the AES block is cryptolib's, on CPython the ``cryptography`` adapter.

Vectors: McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 1-4
(128-bit key, 96-bit IV), as reproduced in NIST's GCM test vectors.
"""
from protocol import aes, keywrap, security_client
from protocol.security_client import Gcm

H = bytes.fromhex
K0 = bytes(16)
IV0 = bytes(12)
K3 = H("feffe9928665731c6d6a8f9467308308")
IV3 = H("cafebabefacedbaddecaf888")
P3 = H("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
       "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
C3 = H("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
       "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985")
A4 = H("feedfacedeadbeeffeedfacedeadbeefabaddad2")

# (key, iv, aad, plaintext, ciphertext, tag)
CASES = (
    (K0, IV0, b"", b"", b"", H("58e2fccefa7e3061367f1d57a4e7455a")),
    (K0, IV0, b"", bytes(16), H("0388dace60b6a392f328c2b971b2fe78"), H("ab6e47d42cec13bdf53a67b21257bddf")),
    (K3, IV3, b"", P3, C3, H("4d5c2af327cd64a62cf35abd2ba6fab4")),
    (K3, IV3, A4, P3[:60], C3[:60], H("5bc94fbc3221a5db94fae95ae7121a47")),
)


def test_aes_block_fips197():
    e = aes.new(H("000102030405060708090a0b0c0d0e0f"))
    b = bytearray(H("00112233445566778899aabbccddeeff"))
    e.encrypt(b, b)
    assert bytes(b) == H("69c4e0d86a7b0430d8cdb78070b4c55a")


def test_aes_rejects_other_key_sizes():
    for n in (8, 24, 32):
        try:
            aes.new(bytes(n))
        except ValueError:
            continue
        assert False, n


def test_gcm_spec_cases_encrypt():
    for i, (k, iv, a, p, c, t) in enumerate(CASES):
        g = Gcm(k)
        data = bytearray(p)
        tag = bytearray(16)
        g.encrypt(iv, a, data, tag)
        assert bytes(data) == c, i
        assert bytes(tag) == t, i
        tag12 = bytearray(12)          # suite 0 truncation: the first 12 bytes
        g.encrypt(iv, a, bytearray(p), tag12)
        assert bytes(tag12) == t[:12], i


def test_gcm_spec_cases_decrypt():
    for i, (k, iv, a, p, c, t) in enumerate(CASES):
        g = Gcm(k)
        data = bytearray(c)
        assert g.decrypt(iv, a, data, t), i
        assert bytes(data) == p, i
        data = bytearray(c)
        assert g.decrypt(iv, a, data, t[:12]), i


def test_gcm_tamper_fails_and_keeps_ciphertext():
    k, iv, a, p, c, t = CASES[3]
    g = Gcm(k)
    for where in range(4):              # ciphertext, tag, AAD, IV
        parts = [bytearray(c), bytearray(t[:12]), bytearray(a), bytearray(iv)]
        parts[where][3] ^= 0x01
        data, tag, aad, nonce = parts
        assert not g.decrypt(nonce, aad, data, tag), where
        assert bytes(data) == bytes(parts[0]), where     # nothing deciphered on failure


def test_gcm_streaming_pieces_equal_one_shot():
    k, iv, a, p, c, t = CASES[3]
    g = Gcm(k)
    buf = bytearray(b"\xEE" * 7 + p + b"\xEE" * 5)
    g.begin(bytearray(b"\x00" * 3 + iv), 3)
    g.aad(a, 0, 5)                       # AAD in unaligned pieces
    g.aad(a, 5, 11)
    g.aad(a, 16)
    g.crypt(buf, 7, 20)                  # keystream continues across calls
    g.crypt(buf, 27, 40)
    g.hash(buf, 7, 33)
    g.hash(buf, 40, 27)
    out = bytearray(20)
    g.mac(out, 4, 16)
    assert bytes(buf[7:67]) == c
    assert bytes(out[4:]) == t
    assert buf[:7] == b"\xEE" * 7 and buf[67:] == b"\xEE" * 5


def test_gcm_set_key_switches_tables():
    g = Gcm(K0)
    g.set_key(K3)
    data = bytearray(P3)
    tag = bytearray(16)
    g.encrypt(IV3, b"", data, tag)
    assert bytes(data) == C3 and bytes(tag) == CASES[2][5]


def test_gcm_counter_wraps_modulo_2_32():
    # IV whose first keystream block is ...FFFFFFFF: inc32 wraps to 00000000, not into the IV
    k = K3
    g = Gcm(k)
    iv = IV3
    data = bytearray(48)
    g.begin(iv)
    c = g._ctr
    c[12] = c[13] = c[14] = c[15] = 0xFF      # next block uses counter 00000000
    g.crypt(data)
    e = aes.new(k)
    ref = bytearray(iv + b"\x00\x00\x00\x00")
    e.encrypt(ref, ref)
    assert bytes(data[:16]) == bytes(ref)
    assert bytes(data[16:32]) != bytes(ref)


def test_keywrap_rfc3394_4_1():
    kek = H("000102030405060708090A0B0C0D0E0F")
    key = H("00112233445566778899AABBCCDDEEFF")
    w = security_client.wrap(kek, key)
    assert w == H("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
    assert security_client.unwrap(kek, w) == key


def test_keywrap_integrity():
    kek = H("000102030405060708090A0B0C0D0E0F")
    w = security_client.wrap(kek, H("00112233445566778899AABBCCDDEEFF"))
    for i in (0, 9, 23):
        bad = bytearray(w)
        bad[i] ^= 0x80
        try:
            security_client.unwrap(kek, bad)
        except security_client.KeyWrapError:
            continue
        assert False, i
    try:
        security_client.unwrap(H("00" * 16), w)
        assert False, "wrong KEK accepted"
    except security_client.KeyWrapError:
        pass
    for n in (0, 16, 23, 25):
        try:
            security_client.unwrap(kek, bytes(n))
            assert False, n
        except security_client.KeyWrapError:
            pass


def test_keywrap_unwrap_needs_no_aes_object():
    """The meter's unwrap deciphers with keywrap's own inverse cipher (its S-boxes in the image):
    no ``cryptolib.aes`` (~0.5 KiB on the 32-bit VM) for a key transfer. FIPS 197 C.1 too."""
    new = aes.new

    def refused(key):
        raise MemoryError("no cryptolib.aes here")
    aes.new = refused
    try:
        kek = H("000102030405060708090A0B0C0D0E0F")
        assert keywrap.unwrap(kek, H("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"), bytearray(208)) == \
            H("00112233445566778899AABBCCDDEEFF")
        b = bytearray(H("69C4E0D86A7B0430D8CDB78070B4C55A"))
        w = bytearray(176)
        keywrap._schedule(kek, w)
        keywrap._decrypt(w, b, bytearray(16))
        assert bytes(b) == H("00112233445566778899AABBCCDDEEFF")
    finally:
        aes.new = new
