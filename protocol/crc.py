"""CRC-16 tables shared by the HDLC and Modbus RTU codecs.

- ``crc16_x25``: CRC-16/X.25 (poly 0x1021 reflected = 0x8408, init 0xFFFF, xorout 0xFFFF),
  the HCS/FCS of IEC 62056-46 §6.4 (ISO/IEC 13239). check("123456789") = 0x906E.
  Transmitted least significant byte first.
- ``crc16_modbus``: CRC-16/MODBUS (poly 0x8005 reflected = 0xA001, init 0xFFFF, no xorout),
  Modbus over serial line V1.02 §6.2.2, and the STS token CRC (IEC 62055-41 §6.3).
  check("123456789") = 0x4B37. Transmitted least significant byte first.

Both take ``bytes``/``bytearray``/``memoryview`` (and optional ``start``/``end`` indices so a
caller can check a span of a receive buffer without slicing) and return an int 0..0xFFFF.
Tables are 256-entry ``array('H')`` (512 bytes each) built once at import.
"""
from array import array


def _table(poly):
    t = array("H", bytes(512))
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t[i] = c
    return t


_X25 = _table(0x8408)
_MODBUS = _table(0xA001)


def crc16_x25(data, start=0, end=None):
    """CRC-16/X.25 of ``data[start:end]``: the value to send LSB first as HCS/FCS."""
    t = _X25
    c = 0xFFFF
    if end is None:
        end = len(data)
    for i in range(start, end):
        c = (c >> 8) ^ t[(c ^ data[i]) & 0xFF]
    return c ^ 0xFFFF


def crc16_modbus(data, start=0, end=None):
    """CRC-16/MODBUS of ``data[start:end]``: the value to send LSB first after a RTU PDU."""
    t = _MODBUS
    c = 0xFFFF
    if end is None:
        end = len(data)
    for i in range(start, end):
        c = (c >> 8) ^ t[(c ^ data[i]) & 0xFF]
    return c
