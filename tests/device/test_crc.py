"""CRC tables: check values from the CRC catalogue and real HDLC frames (runs on both runtimes)."""
from protocol import crc
from protocol.crc import crc16_x25, crc16_modbus


def _table(poly):
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        out.append(c)
    return out


def test_tables_are_the_reflected_polynomials():
    # the tables are bytes literals (kept in flash on a board): low and high byte of each entry
    for poly, lo, hi in ((0x8408, crc._X25_LO, crc._X25_HI), (0xA001, crc._MB_LO, crc._MB_HI)):
        assert len(lo) == 256 and len(hi) == 256
        assert [lo[i] | (hi[i] << 8) for i in range(256)] == _table(poly)


def test_x25_check():
    assert crc16_x25(b"123456789") == 0x906E


def test_modbus_check():
    assert crc16_modbus(b"123456789") == 0x4B37


def test_x25_snrm_fcs():
    # SNRM client 16 -> server 1: 7E A0 07 03 21 93 0F 01 7E (FCS 0x010F sent LSB first)
    assert crc16_x25(bytes([0xA0, 0x07, 0x03, 0x21, 0x93])) == 0x010F


def test_span():
    buf = b"xx123456789yy"
    assert crc16_x25(buf, 2, 11) == 0x906E
    assert crc16_modbus(memoryview(buf), 2, 11) == 0x4B37


def test_sts_crc_example():
    # IEC 62055-41 worked example: CRC over 000B19EB230100 = 0x07C2 (stored byte-swapped C207)
    assert crc16_modbus(bytes([0x00, 0x0B, 0x19, 0xEB, 0x23, 0x01, 0x00])) == 0x07C2
