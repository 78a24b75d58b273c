"""EA07 (STA, IEC sample tables) and EA11 (MISTY1, RFC 2994) block ciphers.

Vectors: IEC 62055-41 worked example (sample tables), RFC 2994 Appendix A, the ISO/IEC
18033-3 blocks and the STS 531 CTSA01 DKGA04+MISTY1 token, as in
shared/reference/sts/. Runs on CPython and MicroPython (heap 190k).
"""
import sys

from protocol import sts
from protocol.sts import Ea07, Misty1, Tables, load_tables
from protocol.sts import StsError


def _root():
    f = __file__.replace("\\", "/")
    parts = f.split("/")
    up = "/".join(parts[:-3])
    return up if up else "."


TABLES_PATH = _root() + "/firmware/sts_sample_tables.json"

IEC_DK = bytes.fromhex("0ABC12DEF3456789")
IEC_PLAIN = 0x0B19EB230100C207
IEC_CIPHER = 0xC45ED1619406DF95

MISTY1_VECTORS = (
    # key, plaintext, ciphertext, expanded key K' (RFC 2994 App. A, ISO/IEC 18033-3)
    ("00112233445566778899aabbccddeeff", "0123456789abcdef", "8b1da5f56ab3d07c",
     "cf518e7f5e29673acdbc07d6bf355e11"),
    ("00112233445566778899aabbccddeeff", "fedcba9876543210", "04b68240b13be95d",
     "cf518e7f5e29673acdbc07d6bf355e11"),
    ("414afd99bb577ee69df58cc8fb4e6888", "9fc302e281310e90", "15c270974b9b9163",
     "c7bd6e012268237a4389305a1b360b8c"),
    ("3c54aed9a5389c947167db9d97c6967a", "032c4a4a100ee807", "3346cb8c779cf2de",
     "7c8e13ebfe7648050c9097934205662b"),
    ("d3f11a6d25f1b3866fdada0b5e53fa17", "db9e3218402023f3", "b2dd1595a450bc98",
     "f011d035ac920f832f69bcf7b860d4f0"),
    ("5f87f88ec7641d83af03fd8327821046", "6553de24c0dd900b", "60081e65cb7c2b84",
     "3736172d7421c91401596db29d3d5536"),
)

CTSA01_DK = bytes.fromhex("f94b6ed353c3bfdb113e2d3a7ea3c41d")


def _tables():
    return load_tables(TABLES_PATH)


def test_ea07_iec_example_encrypt():
    c = Ea07(IEC_DK, _tables())
    assert c.encrypt_block(IEC_PLAIN) == IEC_CIPHER
    # and the 20 digits of the IEC example
    assert sts.join_token(0, c.encrypt_block(IEC_PLAIN)) == "51043465443420856213"


def test_ea07_iec_example_decrypt_from_digits():
    c = Ea07(IEC_DK, _tables())
    cls, block = sts.split_token("51043465443420856213")
    assert cls == 0 and block == IEC_CIPHER
    plain = c.decrypt_block(block)
    assert plain == IEC_PLAIN
    f = sts.parse_block(cls, plain)
    assert f.crc_ok and f.tid == 0x19EB23 and sts.amount_of(f) == 256 and f.rnd == 0xB


def test_ea07_decrypt_into_bytearray():
    c = Ea07(0x0ABC12DEF3456789, _tables())
    buf = bytearray(IEC_CIPHER.to_bytes(8, "big"))
    c.decrypt_into(buf)
    assert bytes(buf) == bytes.fromhex("0B19EB230100C207")
    c.encrypt_into(buf)
    assert bytes(buf) == bytes.fromhex("C45ED1619406DF95")


def test_ea07_decrypt_needs_no_derived_tables():
    # the meter's decrypt works from the 64-entry inverse permutation: the 6 KB of derived
    # decryption tables are never built, and the table path gives the same blocks
    t = load_tables(TABLES_PATH)
    c = Ea07(IEC_DK, t)
    buf = bytearray(IEC_CIPHER.to_bytes(8, "big"))
    c.decrypt_into(buf)
    assert bytes(buf) == bytes.fromhex("0B19EB230100C207")
    assert getattr(t, "isip", None) is None and getattr(t, "ip0", None) is None
    x = 0x0123456789ABCDEF
    for _ in range(40):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        a = bytearray(x.to_bytes(8, "big"))
        b = bytearray(a)
        c.decrypt_into(a)
        c.decrypt_into_fast(b)
        assert a == b
        c.encrypt_into(a)
        assert int.from_bytes(a, "big") == x


def test_ea07_wrong_key_or_tables_differ():
    t = _tables()
    other = Ea07(bytes.fromhex("0ABC12DEF3456788"), t)
    assert other.encrypt_block(IEC_PLAIN) != IEC_CIPHER
    # swapping the two substitution tables is a different cipher
    sub1, sub2, perm = sts.ea07_tables(t)
    swapped = Tables(sub2, sub1, perm)
    assert Ea07(IEC_DK, swapped).encrypt_block(IEC_PLAIN) != IEC_CIPHER


def test_ea07_round_trip_many():
    c = Ea07(bytes.fromhex("1122334455667788"), _tables())
    x = 0x0123456789ABCDEF
    for i in range(40):
        x = (x * 6364136223846793005 + 1442695040888963407) & sts.MASK64
        assert c.decrypt_block(c.encrypt_block(x)) == x


def test_ea07_table_errors():
    for bad in ({"sub1": "0" * 16, "sub2": "0" * 16, "perm": "00" * 64},
                {"sub1": [1, 2]}, {"foo": 1}, [1, 2, 3]):
        try:
            load_tables(bad)
            assert False, bad
        except StsError as e:
            assert e.reason == "tables"
    try:
        load_tables("/nonexistent/sts_tables.json")
        assert False
    except StsError as e:
        assert e.reason == "tables"
    try:
        Ea07(b"short", _tables())
        assert False
    except StsError as e:
        assert e.reason == "key"


def test_misty1_vectors():
    for key, pt, ct, kp in MISTY1_VECTORS:
        c = Misty1(bytes.fromhex(key))
        assert c.expanded_key() == bytes.fromhex(kp)
        assert c.encrypt_block(int(pt, 16)) == int(ct, 16)
        assert c.decrypt_block(int(ct, 16)) == int(pt, 16)
        buf = bytearray(bytes.fromhex(ct))
        c.decrypt_into(buf)
        assert bytes(buf) == bytes.fromhex(pt)


def test_ea11_ctsa01_token_decode():
    # DKGA04 + MISTY1 credit token, decode side with the given decoder key
    cls, block = sts.split_token("59386323472137426967")
    assert cls == 0 and block == 0x38269A8E59319817
    plain = Misty1(CTSA01_DK).decrypt_block(block)
    assert plain == 0x0559982C00012831
    f = sts.parse_block(0, plain)
    assert f.crc_ok and f.tid == 0x59982C and sts.amount_of(f) == 1 and f.rnd == 5
    assert sts.tid_to_text(f.tid, 1993) == "2004-03-01 13:00"


def test_ea11_ctsa01_token_encode():
    enc = Misty1(CTSA01_DK).encrypt_block(0x0559982C00012831)
    assert sts.join_token(0, enc) == "59386323472137426967"


def test_misty1_bad_key():
    try:
        Misty1(bytes(8))
        assert False
    except StsError as e:
        assert e.reason == "key"


def _alloc_per_call(fn, n=20):
    import gc
    fn()
    gc.collect()
    gc.disable()
    try:
        a = gc.mem_alloc()
        for _ in range(n):
            fn()
        return gc.mem_alloc() - a
    finally:
        gc.enable()


def test_decrypt_into_allocates_nothing_on_micropython():
    if sys.implementation.name != "micropython":
        return  # the allocation counter exists only on MicroPython
    buf = bytearray(8)
    e = Ea07(IEC_DK, _tables())
    assert _alloc_per_call(lambda: e.decrypt_into(buf)) == 0
    m = Misty1(CTSA01_DK)
    assert _alloc_per_call(lambda: m.decrypt_into(buf)) == 0


def test_sample_roundtrip_every_subclass_both_algorithms():
    # the device-side sample of the hypothesis round trip in tests/host/test_sts_vend.py:
    # build -> encrypt -> 20 digits -> split -> decrypt -> parse, deterministic LCG values
    ciphers = (Ea07(IEC_DK, _tables()), Misty1(CTSA01_DK))
    x = 12345
    for cls, subs in ((0, range(4)), (2, (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)), (1, (0, 1))):
        for sub in subs:
            for c in ciphers:
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
                f = sts.TokenFields(cls, sub)
                lay = f.layout
                if lay == "data":
                    f.rnd, f.tid, f.value = x & 15, x & 0xFFFFFF, (x >> 7) & 0xFFFF
                elif lay == "test":
                    f.control, f.mfr_code = x & 0xFFFFFFF, x & 0xFF
                elif lay == "key1":
                    f.ken_half, f.krn, f.ro, f.kt, f.key_part = x & 15, 1 + (x & 7), x & 1, x & 3, x
                elif lay == "key2":
                    f.ken_half, f.ti, f.key_part = x & 15, x & 0xFF, x
                else:
                    f.sgc_half, f.key_part = x & 0xFFF, x
                plain = sts.build_block(f)
                enc = plain if cls == 1 else c.encrypt_block(plain)
                digits = sts.join_token(cls, enc)
                assert len(digits) == 20
                k, b = sts.split_token(digits)
                assert k == cls and b == enc
                back = b if cls == 1 else c.decrypt_block(b)
                p = sts.parse_block(k, back)
                assert back == plain and p.crc_ok and p.subclass == sub
                for n in ("rnd", "tid", "value", "control", "mfr_code", "ken_half", "krn", "ro", "kt",
                          "ti", "sgc_half", "key_part"):
                    assert getattr(p, n) == getattr(f, n), (cls, sub, n)
