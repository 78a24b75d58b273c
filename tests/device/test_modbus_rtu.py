"""Modbus RTU framing (Modbus over serial line V1.02); runs on CPython and MicroPython.

Golden frames: the PZEM-004T v3 read command ``F8 04 00 00 00 0A 64 64`` / ``01 04 00 00 00 0A 70 0D``
from its datasheet and common drivers, and the Modbus spec's examples.
"""
from protocol import modbus_rtu as mb
from protocol.modbus_rtu import ModbusError
from protocol.crc import crc16_modbus


def h(s):
    return bytes(int(x, 16) for x in s.split())


def with_crc(b):
    c = crc16_modbus(b)
    return bytes(b) + bytes((c & 0xFF, c >> 8))


def reason(fn, *args):
    try:
        fn(*args)
    except ModbusError as e:
        return e.reason
    raise AssertionError("no ModbusError")


def test_read_request_golden():
    assert mb.read_request(1, 4, 0, 10) == h("01 04 00 00 00 0A 70 0D")
    assert mb.read_request(0xF8, 4, 0, 10) == h("F8 04 00 00 00 0A 64 64")
    assert mb.read_request(1, 3, 0, 1) == h("01 03 00 00 00 01 84 0A")
    assert mb.write_register_request(1, 2, 0x0100)[:6] == h("01 06 00 02 01 00")
    assert crc16_modbus(mb.write_register_request(1, 2, 0x0100)) == 0   # CRC residue of a good frame


def test_request_ranges():
    assert reason(mb.read_request, 1, 6, 0, 1) == "function"
    assert reason(mb.read_request, 0, 4, 0, 1) == "range"
    assert reason(mb.read_request, 1, 4, 0, 126) == "range"
    assert reason(mb.read_request, 1, 4, 0x10000, 1) == "range"
    assert reason(mb.write_register_request, 1, 0, 0x10000) == "range"
    assert reason(mb.response_length, 16, 1) == "function"


def test_response_length():
    assert mb.response_length(4, 10) == 25
    assert mb.response_length(3, 1) == 7
    assert mb.response_length(6, 1) == 8


def test_pzem_reply():
    # 230.0 V, 1.234 A, 283.8 W, 123456 Wh, 50.0 Hz, PF 0.98, no alarm
    regs = [2300, 1234, 0, 2838, 0, 123456 & 0xFFFF, 123456 >> 16, 500, 98, 0]
    body = bytearray(h("01 04 14"))
    for r in regs:
        body.append(r >> 8)
        body.append(r & 0xFF)
    rep = with_crc(body)
    buf = bytearray(64)
    buf[:len(rep)] = rep
    assert len(rep) == mb.response_length(4, 10)
    assert mb.check_response(buf, len(rep), 1, 4) == 0
    assert mb.reg(buf, 0) == 2300 and mb.reg(buf, 7) == 500 and mb.reg(buf, 8) == 98
    assert mb.u32_lo_first(buf, 1) == 1234
    assert mb.u32_lo_first(buf, 3) == 2838
    assert mb.u32_lo_first(buf, 5) == 123456


def test_exception_reply():
    rep = with_crc(h("01 84 02"))
    assert mb.check_response(rep, 5, 1, 4) == 2  # illegal data address
    assert mb.check_response(with_crc(h("01 83 04")), 5, 1, 3) == 4


def test_write_echo():
    req = mb.write_register_request(0xF8, 2, 5)
    assert mb.check_response(req, 8, 0xF8, 6) == 0


def test_bad_replies():
    good = with_crc(h("01 04 02 12 34"))
    assert mb.check_response(good, 7, 1, 4) == 0
    bad = bytearray(good)
    bad[3] ^= 1
    assert reason(mb.check_response, bad, 7, 1, 4) == "crc"
    assert reason(mb.check_response, good, 7, 2, 4) == "unit"
    assert reason(mb.check_response, good, 7, 1, 3) == "function"
    assert reason(mb.check_response, good, 4, 1, 4) == "length"
    assert reason(mb.check_response, good, 8, 1, 4) == "length"      # n beyond buffer
    assert reason(mb.check_response, with_crc(h("01 04 04 12 34")), 7, 1, 4) == "length"
    assert reason(mb.check_response, with_crc(h("01 84 00")), 5, 1, 4) == "length"
    assert reason(mb.check_response, with_crc(h("01 06 00 02 00")), 7, 1, 6) == "length"
    assert reason(mb.check_response, with_crc(h("01 84 02 00")), 6, 1, 4) == "length"


def test_reg_bounds():
    rep = with_crc(h("01 04 02 12 34"))
    assert mb.reg(rep, 0) == 0x1234
    assert reason(mb.reg, rep, 2) == "length" and reason(mb.reg, rep, -1) == "length"
    assert reason(mb.u32_lo_first, rep, 1) == "length"
