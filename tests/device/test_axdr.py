"""A-XDR Data codec (IEC 62056-6-2 / Green Book); runs on CPython and MicroPython.

Golden bytes come from shared/reference/dlms.md (GET/SET/ACTION examples, length forms).
"""
from protocol import axdr_client as axdr
from protocol.axdr_client import AxdrError, Writer


def h(s):
    return bytes(int(x, 16) for x in s.split())


def raises(fn, *args):
    try:
        fn(*args)
    except AxdrError:
        return True
    raise AssertionError("no AxdrError")


def test_length_forms():
    assert axdr.encode_length(0) == b"\x00"
    assert axdr.encode_length(127) == b"\x7F"
    assert axdr.encode_length(200) == h("81 C8")
    assert axdr.encode_length(600) == h("82 02 58")
    assert axdr.decode_length(h("0A 81 C8"), 1) == (200, 3)
    assert axdr.decode_length(h("0A 82 02 58"), 1) == (600, 4)
    assert axdr.decode_length(h("84 00 01 00 00"), 0) == (65536, 5)
    raises(axdr.decode_length, h("82 02"), 0)
    raises(axdr.decode_length, b"", 0)
    raises(axdr.decode_length, h("80"), 0)
    raises(axdr.decode_length, h("85 00 00 00 00 01"), 0)


def test_writer_integers_golden():
    # SET value 06 00 00 00 2A; credit.update_amount(5000) 05 00 00 13 88; method arg 0F 00
    assert Writer().double_long_unsigned(42).getvalue() == h("06 00 00 00 2A")
    assert Writer().double_long(5000).getvalue() == h("05 00 00 13 88")
    assert Writer().integer(0).getvalue() == h("0F 00")
    w = Writer()
    w.structure(2).integer(-3).enum(30)          # scaler_unit {-3, Wh}
    assert w.getvalue() == h("02 02 0F FD 16 1E")
    w = Writer().long(-2).unsigned(255).long_unsigned(0xFFFF).long64(-1).long64_unsigned(2 ** 64 - 1)
    assert w.getvalue() == h("10 FF FE 11 FF 12 FF FF 14 FF FF FF FF FF FF FF FF 15 FF FF FF FF FF FF FF FF")
    assert Writer().boolean(True).boolean(0).null().getvalue() == h("03 01 03 00 00")
    assert Writer().double_long(-2147483648).getvalue() == h("05 80 00 00 00")


def test_writer_range_checks():
    for fn, v in ((Writer().integer, 128), (Writer().integer, -129), (Writer().unsigned, 256),
                  (Writer().unsigned, -1), (Writer().long, 32768), (Writer().long_unsigned, 65536),
                  (Writer().double_long, 2 ** 31), (Writer().double_long_unsigned, -1),
                  (Writer().long64, 2 ** 63), (Writer().long64_unsigned, 2 ** 64), (Writer().enum, 256),
                  (Writer().integer, "1")):
        raises(fn, v)
    raises(Writer().bit_string, 8, 3)
    raises(Writer().bit_string, b"\x00\x00", 3)
    raises(Writer().date_time, bytes(11))
    raises(Writer().octet_string, "text")


def test_writer_strings():
    assert Writer().octet_string(b"\x01\x02").getvalue() == h("09 02 01 02")
    assert Writer().visible_string("AB").getvalue() == h("0A 02 41 42")
    assert Writer().visible_string(b"AB").getvalue() == h("0A 02 41 42")
    w = Writer().visible_string("x" * 200)
    assert w.getvalue()[:3] == h("0A 81 C8") and len(w.buf) == 203
    w = Writer().octet_string(bytes(600))
    assert w.getvalue()[:4] == h("09 82 02 58")
    assert Writer().utf8_string("\u20b9").getvalue() == h("0C 03 E2 82 B9")
    # token_gateway.enter: 09 14 <20 B>
    tok = b"12345678901234567890"
    assert Writer().octet_string(tok).getvalue() == b"\x09\x14" + tok


def test_writer_bit_string_msb_first():
    # Account credit_status: 8 bits, first bit = in-credit
    assert Writer().bit_string(0b10000000, 8).getvalue() == h("04 08 80")
    assert Writer().bit_string(0b101, 3).getvalue() == h("04 03 A0")
    assert Writer().bit_string(0x1FF, 9).getvalue() == h("04 09 FF 80")
    assert Writer().bit_string(b"\x80", 8).getvalue() == h("04 08 80")
    assert Writer().bit_string(0, 0).getvalue() == h("04 00")


def test_writer_chain_reset_and_external_buffer():
    buf = bytearray(b"\xC4\x01\xC1\x00")
    w = Writer(buf)
    assert w.array(1).unsigned(7) is w
    assert buf == h("C4 01 C1 00 01 01 11 07")
    w.reset()
    assert w.buf is buf and len(buf) == 0
    w.raw(b"\x00").date_time(bytes(12))
    assert w.getvalue() == b"\x00\x19" + bytes(12)


def test_decode_get_response_datetime():
    # GET clock.2 response value: 09 0C 07 E8 05 11 05 12 22 38 00 80 00 00
    v, p = axdr.decode(h("09 0C 07 E8 05 11 05 12 22 38 00 80 00 00"))
    assert v[0] == axdr.OCTET_STRING and p == 14
    assert axdr.parse_datetime(v[1]) == (2024, 5, 17, 5, 18, 34, 56, 0, -32768, 0)
    assert axdr.datetime_bytes(2024, 5, 17, 18, 34, 56) == v[1]


def test_datetime_helpers():
    assert axdr.datetime_bytes(2026, 1, 1, 0, 0, 0)[4] == 4          # Thursday
    assert axdr.datetime_bytes(2000, 2, 29, 0, 0, 0)[4] == 2         # Tuesday
    assert axdr.datetime_bytes(2024, 3, 3, 0, 0, 0)[4] == 7          # Sunday
    b = axdr.datetime_bytes(0xFFFF, 0xFF, 0xFF, 10, 0, 0, weekday=None)
    assert b[4] == 0xFF
    b = axdr.datetime_bytes(2024, 5, 17, 1, 2, 3, 4, deviation=-330, status=0x80, weekday=0xFF)
    assert b == h("07 E8 05 11 FF 01 02 03 04 FE B6 80")
    assert axdr.parse_datetime(b) == (2024, 5, 17, 0xFF, 1, 2, 3, 4, -330, 0x80)
    raises(axdr.datetime_bytes, 2024, 13 * 20, 1, 0, 0, 0)
    raises(axdr.datetime_bytes, 2024, 1, 1, 0, 0, 0, 0, 40000)
    raises(axdr.parse_datetime, bytes(5))


def test_decode_all_types():
    data = h("02 0F 00 03 01 04 0A F0 C0 05 FF FF FF FE 06 FF FF FF FE 09 00 0A 02 68 69 "
             "0F 80 10 80 00 11 FE 12 FE DC 14 80 00 00 00 00 00 00 00 16 03 "
             "01 02 1A 07 E8 05 11 05 1B 01 02 03 04 19") + bytes(12)
    tv, p = axdr.decode(data)
    assert p == len(data)
    assert tv[0] == axdr.STRUCTURE
    assert axdr.to_python(tv) == [
        None, True, (10, b"\xF0\xC0"), -2, 0xFFFFFFFE, b"", "hi", -128, -32768, 0xFE, 0xFEDC,
        -(2 ** 63), 3, [h("07 E8 05 11 05"), h("01 02 03 04")], bytes(12)]
    assert axdr.skip(data, 0) == len(data)
    tv, p = axdr.decode(h("17 3F 80 00 00 18 40 00 00 00 00 00 00 00"))
    assert tv == (axdr.FLOAT32, 1.0) and p == 5
    assert axdr.decode(h("17 3F 80 00 00 18 40 00 00 00 00 00 00 00"), 5)[0] == (axdr.FLOAT64, 2.0)
    assert axdr.decode(h("0C 03 E2 82 B9")) == ((axdr.UTF8_STRING, "\u20b9"), 5)
    assert axdr.decode(b"\x00\x11\x05", 1) == ((axdr.UNSIGNED, 5), 3)


def test_roundtrip_writer_decode():
    w = Writer()
    w.array(2)
    w.structure(3).long_unsigned(3).octet_string(bytes([1, 0, 1, 8, 0, 255])).integer(2)
    w.structure(3).long_unsigned(8).octet_string(bytes([0, 0, 1, 0, 0, 255])).integer(2)
    tv, p = axdr.decode(w.getvalue())
    assert p == len(w.buf)
    assert axdr.to_python(tv) == [[3, bytes([1, 0, 1, 8, 0, 255]), 2], [8, bytes([0, 0, 1, 0, 0, 255]), 2]]
    big = Writer().octet_string(bytes(range(256)) * 2).getvalue()
    assert axdr.decode(big) == ((axdr.OCTET_STRING, bytes(range(256)) * 2), len(big))


def test_decode_errors():
    for bad in ("", "06 00 00", "09 05 01", "01 02 11 01", "02 81", "04 09 FF", "19 00", "FF",
                "07", "08", "0B", "13 01 02", "1C 00", "01 84 FF FF FF FF 00"):
        raises(axdr.decode, h(bad))
        raises(axdr.skip, h(bad))
    raises(axdr.decode, h("0A 01 FF"))          # not valid text
    raises(axdr.decode, h("12 00 01"), 3)


def test_compact_array_unsupported():
    try:
        axdr.decode(h("13 02 00 11 01 05"))
    except AxdrError as e:
        assert str(e) == "format"
    else:
        raise AssertionError("compact-array accepted")


def test_depth_limit():
    deep = b"\x01\x01" * 17 + b"\x00"
    raises(axdr.decode, deep)
    raises(axdr.skip, deep)
    ok = b"\x02\x01" * 16 + b"\x00"
    tv, p = axdr.decode(ok)
    assert p == len(ok)
