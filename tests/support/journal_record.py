"""A full journal record built the reference way (docs: meter.store's module docstring), for the
store tests on CPython and MicroPython: the meter writes records in pieces (``Journal.save``)
and keeps no whole-record encoder (heap, docs/MEMORY.md)."""
import binascii
import json
import struct


def encode_record(seq, obj, hot=(0, 0, 0, 0, 0)):
    """Full record bytes (version 3) for sequence number ``seq`` (u32), dict ``obj``, ``hot``
    (4 x i32, u32)."""
    payload = json.dumps(obj).encode()
    body = b"PJ" + struct.pack(">BIH", 3, seq, len(payload)) + payload + struct.pack(">4iI", *hot)
    return body + struct.pack(">I", binascii.crc32(body) & 0xFFFFFFFF)
