"""Modbus RTU framing (Modbus over serial line V1.02); runs on CPython and MicroPython.

Golden frames: the PZEM-004T v3 read command ``F8 04 00 00 00 0A 64 64`` / ``01 04 00 00 00 0A 70 0D``
from its datasheet and common drivers, and the Modbus spec's examples.
"""
from protocol import modbus_client as mb
from protocol.crc import crc16_modbus
from protocol.modbus_client import ModbusError


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


# --- t3.5 -------------------------------------------------------------------------------

def test_silence_us():
    assert mb.silence_us(9600) == 4011            # 3.5 * 11 bits / 9600 baud
    assert mb.silence_us(2400) == 16042
    assert mb.silence_us(19200) == 2006
    assert mb.silence_us(38400) == 1750 and mb.silence_us(115200) == 1750   # fixed above 19200
    assert reason(mb.silence_us, 100) == "range"


# --- float32 (Eastron SDM) ------------------------------------------------------------------

def test_f32_scaled_golden():
    f = mb.f32_scaled
    assert f(h("00 00 00 00"), 0, 1000) == 0
    assert f(h("80 00 00 00"), 0, 1000) == 0                 # -0.0
    assert f(h("3F 9D F3 B6"), 0, 1000) == 1234              # 1.234 kWh (1.23399996...)
    assert f(h("47 C3 4F FF"), 0, 1000) == 99999992          # 99999.99 kWh = 99999.9921875
    assert f(h("43 66 00 00"), 0, 10) == 2300                # 230.0 V -> 0.1 V
    assert f(h("BF C0 00 00"), 0, 10) == -15                 # -1.5 W -> 0.1 W
    assert f(h("3D 80 00 00"), 0, 1000) == 62                # 0.0625 kWh = 62.5 Wh: half to even
    assert f(h("3E 40 00 00"), 0, 1000) == 188               # 0.1875 kWh = 187.5 Wh
    assert f(h("00 00 00 01"), 0, 1000) == 0                 # subnormal
    assert f(h("46 80 00 00"), 0, 1000) == 16384000          # 16384 kWh: next float is +2 Wh
    assert f(h("46 80 00 01"), 0, 1000) == 16384002
    assert f(h("46 7F FF FF"), 0, 1000) == 16383999          # 16383.99902 kWh: step 0.98 Wh
    assert f(h("12 7F C0 00 00"), 1, 1) is None              # NaN (at offset 1)
    assert f(h("7F 80 00 00"), 0, 1) is None                 # +inf
    assert f(h("FF 80 00 00"), 0, 1) is None                 # -inf
    assert f(h("4E 00 00 00"), 0, 1) is None                 # 2**29: out of range
    assert f(h("4D FF FF FF"), 0, 1) == 536870880            # just below


def test_f32_scaled_matches_round_half_even():
    import math
    import random
    import struct
    seed = 7
    random.seed(seed)
    for i in range(3000):
        b = struct.pack(">I", random.getrandbits(32))
        x = struct.unpack(">f", b)[0]
        k = (1, 10, 100, 1000)[i & 3]
        got = mb.f32_scaled(b, 0, k)
        if math.isnan(x) or math.isinf(x):
            assert got is None
            continue
        want = round(x * k)   # x*k is exact in a double (24 + 10 bits); round() is half-even
        if abs(want) >= 1 << 29:
            assert got is None
        else:
            assert got == want, (b, k, got, want)


# --- the reply framer -------------------------------------------------------------------

PZEM_REGS = [2300, 1234, 0, 2838, 0, 123456 & 0xFFFF, 123456 >> 16, 500, 98, 0]


def pzem_reply(unit=1, regs=PZEM_REGS, fn=4):
    body = bytearray((unit, fn, 2 * len(regs)))
    for r in regs:
        body.append(r >> 8)
        body.append(r & 0xFF)
    return with_crc(body)


GOOD = pzem_reply()


def master(**kw):
    return mb.Master(1, 4, 0, 10, timeout_ms=500, gap_ms=20, **kw)


def feed_all(m, data, step=0):
    """Feed ``data`` in one read (step 0) or ``step`` bytes per read; the results."""
    out = []
    if not step:
        out.append(m.feed(data, len(data)))
        return out
    for i in range(0, len(data), step):
        chunk = bytes(data[i:i + step])
        out.append(m.feed(chunk, len(chunk)))
    return out


def assert_good(m):
    assert m.reg(0) == 2300 and m.u32_lo_first(1) == 1234 and m.u32_lo_first(3) == 2838
    assert m.u32_lo_first(5) == 123456 and m.reg(7) == 500 and m.reg(8) == 98


def test_master_good_and_request():
    m = master()
    assert m.request == h("01 04 00 00 00 0A 70 0D") and m.length == 25
    assert feed_all(m, GOOD) == [mb.FRAME] and m.start == 0
    assert_good(m)


def test_master_noise_around_reply():
    partial = GOOD[:10]
    for lead in (b"\x00", b"\xff", b"\x00\xff\x00", partial, b"\x01", b"\x01\x04",
                 b"\x01\x04\x14", with_crc(h("01 04 02 12 34"))[:-1]):
        for trail in (b"", b"\x00", b"\xff\xff", partial):
            for step in (0, 1, 3, 7):
                m = master()
                res = feed_all(m, lead + GOOD + trail, step)
                assert mb.FRAME in res, (lead, trail, step, res)
                assert m.start == len(lead)
                assert_good(m)


def test_master_byte_by_byte():
    m = master()
    res = feed_all(m, GOOD, 1)
    assert res == [mb.NEED] * 24 + [mb.FRAME]
    assert_good(m)


def test_master_exception_reply():
    for lead in (b"", b"\x00", b"\xff\x01"):
        m = master()
        res = feed_all(m, lead + with_crc(h("01 84 02")), 1)
        assert res[-1] == mb.EXCEPTION and m.exc_code == 2 and m.error == mb.E_EXCEPTION
        assert mb.ERRORS[m.error] == "exception"


def ends(m, data, elapsed=500, quiet=500):
    st = m.feed(data, len(data)) if data else mb.NEED
    assert st == mb.NEED, st
    assert m.idle(10, 0) == mb.NEED            # early, quiet line: keep waiting
    return m.idle(elapsed, quiet)


def test_master_errors_then_next_poll_succeeds():
    bad_crc = bytearray(GOOD)
    bad_crc[10] ^= 0x40
    cases = (
        (b"", mb.E_TIMEOUT),
        (b"\x00\xff\x00", mb.E_NOISE),
        (bytes(bad_crc), mb.E_CRC),
        (pzem_reply(unit=2), mb.E_UNIT),
        (pzem_reply(fn=3), mb.E_FUNCTION),
        (pzem_reply(regs=[1, 2]), mb.E_LENGTH),
        (GOOD[:20], mb.E_TRUNCATED),
    )
    m = master()
    for data, err in cases:
        m.begin()
        assert ends(m, data) == mb.ERROR and m.error == err, (data, m.error)
        m.begin()                                   # the next poll
        assert m.feed(GOOD, 25) == mb.FRAME
        assert_good(m)


def test_master_truncated_ends_at_silence_not_timeout():
    m = master()
    assert m.feed(GOOD, 20) == mb.NEED
    assert m.idle(100, 19) == mb.NEED               # inside a frame, under t3.5 (gap_ms)
    assert m.idle(100, 20) == mb.ERROR and m.error == mb.E_TRUNCATED
    m = master()
    assert m.feed(b"\x00\x00", 2) == mb.NEED        # noise, no frame started: wait for it
    assert m.idle(100, 80) == mb.NEED
    assert m.feed(GOOD, 25) == mb.FRAME


def test_master_bad_crc_then_good_in_one_read():
    bad = bytearray(GOOD)
    bad[24] ^= 1
    m = master()
    assert m.feed(bytes(bad) + GOOD, 50) == mb.FRAME and m.start == 25
    assert_good(m)


def test_master_fake_header_does_not_hide_the_reply():
    # "01 04 14" then the real reply: the fake candidate stays incomplete, the real one wins
    m = master()
    data = h("01 04 14 00") + GOOD
    assert m.feed(data, len(data)) == mb.FRAME and m.start == 4


def test_master_noise_flood_then_reply():
    m = master()
    noise = bytes((i * 37) & 0xFF for i in range(300))
    for i in range(0, 300, 30):
        assert m.feed(noise[i:i + 30], 30) == mb.NEED
    assert m.n <= len(m.buf)
    assert feed_all(m, GOOD, 5)[-1] == mb.FRAME
    assert_good(m)


def test_master_sdm_block():
    import struct
    regs = bytearray()
    for x in (230.5, 0.0, 0.0, 4.25):
        regs += struct.pack(">f", x)
    rep = with_crc(bytes((1, 4, len(regs))) + regs)
    m = mb.Master(1, 4, 0, 8)
    assert m.feed(rep, len(rep)) == mb.FRAME
    assert m.f32(0, 10) == 2305 and m.f32(6, 1000) == 4250


def test_master_allocation_free():
    try:
        import micropython
    except ImportError:
        return   # CPython: nothing to measure
    m = master()
    data = b"\x00\xff" + GOOD + b"\x00"
    partial = GOOD[:20]
    f = h("3F 9D F3 B6")
    micropython.heap_lock()
    try:
        for _ in range(20):
            m.begin()
            m.feed(data, len(data))
            m.u32_lo_first(5)
            m.reg(0)
            mb.f32_scaled(f, 0, 1000)
            m.begin()
            m.feed(partial, 20)
            m.idle(600, 600)
        ok = m.error == mb.E_TRUNCATED
    finally:
        micropython.heap_unlock()
    assert ok


def test_master_general_address():
    m = mb.Master(0xF8, 4, 0, 10)
    assert m.request == h("F8 04 00 00 00 0A 64 64")
    assert m.feed(b"\x00" + GOOD, 26) == mb.FRAME          # the module answers as unit 1
    assert_good(m)
    m.begin()
    rep = pzem_reply(unit=0xF8)
    assert m.feed(rep, len(rep)) == mb.FRAME
