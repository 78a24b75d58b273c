"""OBIS code parsing/formatting (IEC 62056-61); runs on CPython and MicroPython."""
from protocol import obis

ENERGY = b"\x01\x00\x01\x08\x00\xff"


def test_notations():
    for t in ("1.0.1.8.0.255", "1-0:1.8.0.255", "1-0:1.8.0*255", "0100010800FF", "0100010800ff",
              " 1.0.1.8.0.255 ", "1-0:1.8.0"):
        assert obis.parse(t) == ENERGY, t
    assert obis.parse("0.0.96.3.10.255") == bytes([0, 0, 96, 3, 10, 255])
    assert obis.parse("0-0:96.3.10*255") == bytes([0, 0, 96, 3, 10, 255])
    assert obis.parse("0.0.19.10.0.255") == bytes([0, 0, 19, 10, 0, 255])
    assert obis.parse("0-0:1.0.0*1") == bytes([0, 0, 1, 0, 0, 1])


def test_to_str_roundtrip():
    assert obis.to_str(ENERGY) == "1.0.1.8.0.255"
    for b in (bytes(6), b"\xff" * 6, bytes([0, 0, 40, 0, 0, 255])):
        assert obis.parse(obis.to_str(b)) == b


def test_bad_input():
    for bad in ("", "1.0.1.8.0", "1.0.1.8.0.255.1", "1.0.1.8.0.256", "a.b.c.d.e.f", "1-0:1.8",
                "1-0:1.8.0.1.2", "1:0-1.8.0.255", "0100010800F", "0100010800FG", "1..1.8.0.255",
                "1.0.1.8.0.-1", "1.0.1.8.0.1000", None, 5):
        try:
            obis.parse(bad)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (bad,))
    for bad in (b"\x01\x02", None, "1.0.1.8.0.255"):
        try:
            obis.to_str(bad)
        except ValueError:
            continue
        raise AssertionError("to_str accepted %r" % (bad,))
