"""CRC tables: check values from the CRC catalogue and real HDLC frames (runs on both runtimes)."""
from protocol.crc import crc16_x25, crc16_modbus


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
