"""General-Block-Transfer APDU (DLMS UA 1000-2 "Green Book" §9.3.5, IEC 62056-5-3 §7.3.2)::

    E0 | block-control | block-number u16 | block-number-ack u16 | block-data (A-XDR length + bytes)

block-control: bit 7 last-block, bit 6 streaming, bits 0-5 window size. Sans-I/O parsing and
building only (the meter does not negotiate GBT; ``meterctl decode`` reassembles captures).
"""
from protocol import axdr

TAG = 0xE0


class GbtError(ValueError):
    """Malformed or truncated general-block-transfer APDU."""


class Block:
    """One GBT block: ``last`` (bool), ``streaming`` (bool), ``window`` (0..63),
    ``number``, ``ack`` (block numbers), ``data`` (bytes)."""

    def __init__(self, last, streaming, window, number, ack, data):
        self.last = last
        self.streaming = streaming
        self.window = window
        self.number = number
        self.ack = ack
        self.data = data


def parse(buf):
    """Parse one general-block-transfer APDU into a Block. Raises GbtError."""
    n = len(buf)
    if n < 6 or buf[0] != TAG:
        raise GbtError("not a general-block-transfer APDU")
    bc = buf[1]
    try:
        ln, p = axdr.decode_length(buf, 6)
    except axdr.AxdrError:
        raise GbtError("truncated block-data length")
    if p + ln != n:
        raise GbtError("block-data length %d does not match %d bytes" % (ln, n - p))
    return Block(bool(bc & 0x80), bool(bc & 0x40), bc & 0x3F, (buf[2] << 8) | buf[3],
                 (buf[4] << 8) | buf[5], bytes(buf[p:]))


def build(number, data, last=True, ack=0, window=1, streaming=False):
    """Build a general-block-transfer APDU (bytes)."""
    if not (0 <= number <= 0xFFFF and 0 <= ack <= 0xFFFF and 0 <= window <= 63):
        raise GbtError("block number / window out of range")
    bc = (0x80 if last else 0) | (0x40 if streaming else 0) | window
    return bytes((TAG, bc, number >> 8, number & 0xFF, ack >> 8, ack & 0xFF)) + \
        axdr.encode_length(len(data)) + bytes(data)
