"""STS token codec (IEC 62055-41): digits, transposition, CRC, amount, TID, block layouts.

Vectors from shared/reference/sts/VECTORS.md (IEC worked example, CTSA01, class-1
all-tests token). Runs on CPython and MicroPython.
"""
from protocol import sts
from protocol.sts import StsError, TokenFields, build_block, parse_block


def _raises(reason, fn, *args):
    try:
        fn(*args)
    except StsError as e:
        assert e.reason == reason, (e.reason, reason)
        return
    assert False, "no StsError(%s)" % reason


def test_iec_example_block_and_crc():
    f = TokenFields(0, 0, rnd=0xB, tid=0x19EB23, value=0x0100)
    assert build_block(f) == 0x0B19EB230100C207
    # the CRC field is the byte-swapped CRC-16/MODBUS over 000B19EB230100 (0x07C2)
    assert sts.crc_field(0, 0x0B19EB230100C207) == 0xC207


def test_ctsa01_block_crc():
    f = TokenFields(0, 0, rnd=5, tid=0x59982C, value=sts.amount_encode(1))
    assert build_block(f) == 0x0559982C00012831


def test_transposition_iec_example():
    n = sts.transpose(0, 0xC45ED1619406DF95)
    assert n == 0x2C45ED1618406DF95
    assert sts.int_to_digits(n) == "51043465443420856213"
    assert sts.split_token("51043465443420856213") == (0, 0xC45ED1619406DF95)
    assert sts.split_token("5104 3465 4434 2085 6213") == (0, 0xC45ED1619406DF95)


def test_transposition_ctsa01_misty1_token():
    assert sts.join_token(0, 0x38269A8E59319817) == "59386323472137426967"
    assert sts.untranspose(0x338269A8E41319817) == (0, 0x38269A8E59319817)


def test_class1_all_tests_token():
    f = TokenFields(1, 0, control=(1 << 36) - 1, mfr_code=0)
    block = build_block(f)
    assert block == 0x0FFFFFFFFF005EFF
    assert sts.transpose(1, block) == 0x30FFFFFFFEF005EFF
    assert sts.join_token(1, block) == "56493153725450313471"
    cls, b = sts.split_token("56493153725450313471")
    assert cls == 1 and b == block
    p = parse_block(cls, b)
    assert p.crc_ok and p.control == (1 << 36) - 1 and p.mfr_code == 0
    assert sts.test_names(p.control)[:3] == ("load_switch", "display", "total_energy")


def test_parse_iec_block():
    p = parse_block(0, 0x0B19EB230100C207)
    assert p.crc_ok
    assert (p.subclass, p.rnd, p.tid, p.value, sts.amount_of(p)) == (0, 0xB, 0x19EB23, 0x100, 256)
    bad = parse_block(0, 0x0B19EB230100C208)
    assert not bad.crc_ok
    # the class takes part in the CRC
    assert not parse_block(2, 0x0B19EB230100C207).crc_ok


def test_digits_format_errors():
    _raises("format", sts.digits_to_int, "5104346544342085621")      # 19 digits
    _raises("format", sts.digits_to_int, "510434654434208562130")    # 21 digits
    _raises("format", sts.digits_to_int, "5104346544342085621x")
    _raises("format", sts.digits_to_int, "99999999999999999999")     # > 2**66 - 1
    _raises("format", sts.digits_to_int, 51043465443420856213)
    assert sts.digits_to_int("73786976294838206463") == (1 << 66) - 1
    assert sts.int_to_digits(5) == "00000000000000000005"
    assert sts.group_digits("51043465443420856213") == "5104 3465 4434 2085 6213"


def test_amount_encoding_ranges():
    enc, dec = sts.amount_encode, sts.amount_decode
    assert enc(0) == 0 and enc(256) == 0x0100 and enc(16383) == 0x3FFF
    assert enc(16384) == 0x4000 and dec(0x4000) == 16384
    assert dec(0x7FFF) == 180214 and dec(0xBFFF) == 1818524 and dec(0xFFFF) == 18201624
    # rounding up in the customer's favour
    assert enc(16385) == 0x4001 and dec(enc(16385)) == 16394
    assert dec(enc(180215)) == 180224
    for v in (1, 999, 16383, 16384, 16390, 123456, 180214, 180300, 999999, 18201624):
        d = dec(enc(v))
        assert d >= v, (v, d)
        e = enc(v) >> 14
        assert d - v < (1, 10, 100, 1000)[e], (v, d)
    _raises("amount", enc, -1)
    _raises("amount", enc, 18201625)


def test_tid_dates():
    assert sts.tid_to_text(0x19EB23, 1993) == "1996-03-25 13:55"
    assert sts.tid_to_text(0x59982C, 1993) == "2004-03-01 13:00"
    u = sts.unix_from_civil(2004, 3, 1, 13, 0)
    assert sts.tid_from_unix(u, 1993) == 0x59982C == 5871660
    assert sts.tid_from_unix(u + 59, 1993) == 5871660          # whole minutes
    # base 1993 rolled over on 2024-11-24 20:16
    assert sts.tid_to_text(0xFFFFFF, 1993) == "2024-11-24 20:15"
    _raises("tid", sts.tid_from_unix, sts.unix_from_civil(2024, 11, 24, 20, 16), 1993)
    assert sts.tid_from_unix(sts.EPOCH_2014, 2014) == 0
    _raises("tid", sts.tid_from_unix, sts.EPOCH_2014 - 60, 2014)
    assert sts.civil_from_unix(0) == (1970, 1, 1, 0, 0, 0)
    assert sts.civil_from_unix(sts.unix_from_civil(2000, 2, 29, 23, 59, 58)) == (2000, 2, 29, 23, 59, 58)
    assert sts.unix_from_civil(1993, 1, 1) == sts.EPOCH_1993


def test_every_layout_round_trips():
    cases = [
        TokenFields(0, s, rnd=s, tid=0x123456 + s, value=0xABCD - s) for s in range(4)
    ] + [
        TokenFields(1, 0, control=0x123456789, mfr_code=0x42),
        TokenFields(1, 1, control=0x1234567, mfr_code=0x4243),
        TokenFields(1, 2, payload=0xABCDEF01234),
        TokenFields(2, 0, rnd=1, tid=2, value=sts.amount_encode(5000)),
        TokenFields(2, 1, rnd=3, tid=4, value=sts.CLEAR_ALL_REGISTERS),
        TokenFields(2, 2, rnd=5, tid=6, value=1234),
        TokenFields(2, 3, ken_half=0xF, krn=3, ro=1, kt=2, key_part=0xDEADBEEF),
        TokenFields(2, 4, ken_half=0xE, ti=7, key_part=0x01234567),
        TokenFields(2, 5, rnd=7, tid=8, value=0),
        TokenFields(2, 6, rnd=9, tid=10, value=sts.amount_encode(300)),
        TokenFields(2, 7, rnd=11, tid=12, value=1000),
        TokenFields(2, 8, sgc_half=0xABC, key_part=0x89ABCDEF),
        TokenFields(2, 9, sgc_half=0x123, key_part=0x76543210),
    ]
    names = ("rnd", "tid", "value", "control", "mfr_code", "ken_half", "krn", "ro", "res",
             "kt", "ti", "sgc_half", "key_part", "payload")
    for f in cases:
        b = build_block(f)
        assert b >> 60 == f.subclass
        p = parse_block(f.cls, b)
        assert p.crc_ok and p.cls == f.cls and p.subclass == f.subclass
        for n in names:
            assert getattr(p, n) == getattr(f, n), (f, n)
        # every single-bit flip is caught by the CRC
        for bit in (0, 15, 16, 27, 28, 40, 59, 63):
            assert not parse_block(f.cls, b ^ (1 << bit)).crc_ok


def test_field_range_errors():
    _raises("field", build_block, TokenFields(0, 0, tid=1 << 24))
    _raises("field", build_block, TokenFields(0, 16))
    _raises("field", build_block, TokenFields(2, 3, kt=4))
    _raises("wrong_class", build_block, TokenFields(3, 0))
    _raises("wrong_class", parse_block, 3, 0)
    _raises("format", parse_block, 0, 1 << 64)
    try:
        TokenFields(0, 0, bogus=1)
        assert False
    except StsError as e:
        assert e.reason == "field"


def test_key_sections_64_and_128():
    secs = sts.key_sections(bytes.fromhex("0ABC12DEF3456789"), ken=0xA5, krn=2, kt=1, ti=7, ro=1)
    assert len(secs) == 2
    a, b = secs
    assert (a.subclass, a.ken_half, a.krn, a.ro, a.kt, a.key_part) == (3, 0xA, 2, 1, 1, 0x0ABC12DE)
    assert (b.subclass, b.ken_half, b.ti, b.key_part) == (4, 0x5, 7, 0xF3456789)
    k16 = bytes.fromhex("f94b6ed353c3bfdb113e2d3a7ea3c41d")
    s4 = sts.key_sections(k16, ken=255, krn=1, kt=2, ti=1, sgc=123457)
    assert [s.subclass for s in s4] == [3, 4, 8, 9]
    assert s4[0].key_part == 0xf94b6ed3 and s4[3].key_part == 0x53c3bfdb
    assert s4[2].key_part == 0x113e2d3a and s4[1].key_part == 0x7ea3c41d
    assert (s4[3].sgc_half << 12) | s4[2].sgc_half == 123457


def test_currency_subclasses_are_refused_not_encoded_as_units():
    # class 0 subclasses 4..7 carry currency: their encoding is not implemented, and a token
    # built with the unit-based rules instead would credit the wrong amount
    for sub in range(4, 8):
        _raises("currency", sts.build_block, TokenFields(0, sub, rnd=1, tid=2, value=3))
        assert sts.is_currency(0, sub)
    assert not sts.is_currency(0, 3) and not sts.is_currency(2, 4)


def test_base_date_2035():
    assert sts.base_epoch(2035) == sts.unix_from_civil(2035, 1, 1) == sts.EPOCH_2035
    assert sts.tid_from_unix(sts.EPOCH_2035 + 3600, 2035) == 60
    assert sts.tid_to_text(60, 2035) == "2035-01-01 01:00"
    _raises("tid", sts.tid_from_unix, sts.EPOCH_2035 - 60, 2035)
    _raises("field", sts.base_epoch, 2056)
    assert [sts.next_base_date(b) for b in sts.BASE_DATES] == [2014, 2035, 2035]
