"""Property tests for protocol/ (CPython only: hypothesis, crcmod, pymodbus).

- CRC tables against crcmod's catalogue ('x-25', 'modbus') and pymodbus' RTU CRC.
- Round trips: HDLC frames/addresses/parameters, A-XDR Writer -> decode, APDU builders ->
  parsers, OBIS text, date-time.
- The HDLC Receiver finds every frame in a stream with garbage, however it is chunked.
- Fuzzing random and mutated inputs: only each module's own error class may escape.
"""
import datetime

import crcmod.predefined
from hypothesis import HealthCheck, given, settings, strategies as st
from pymodbus.framer.rtu import FramerRTU

from protocol import apdu_client as apdu
from protocol import hdlc_client as hdlc
from protocol import axdr_client as axdr
from protocol import modbus_client as modbus_rtu, obis
from protocol.crc import crc16_modbus, crc16_x25

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_X25 = crcmod.predefined.mkCrcFun("x-25")
_MODBUS = crcmod.predefined.mkCrcFun("modbus")


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


# ------------------------------------------------------------------ CRC

@FAST
@given(st.binary(max_size=300), st.integers(0, 20), st.integers(0, 20))
def test_crc_matches_crcmod(data, a, b):
    assert crc16_x25(data) == _X25(data)
    assert crc16_modbus(data) == _MODBUS(data)
    c = crc16_modbus(data)
    assert FramerRTU.compute_CRC(data) == ((c & 0xFF) << 8) | (c >> 8)   # pymodbus: wire order as big-endian
    s, e = min(a, len(data)), max(len(data) - b, min(a, len(data)))
    assert crc16_x25(data, s, e) == _X25(data[s:e])
    assert crc16_modbus(memoryview(data), s, e) == _MODBUS(data[s:e])


def test_crcmod_trap_documented():
    # dlms.md: crcmod initCrc is pre-XORed with xorOut; 'x-25' is the right definition
    assert _X25(b"123456789") == 0x906E == crc16_x25(b"123456789")
    wrong = crcmod.mkCrcFun(0x11021, initCrc=0xFFFF, rev=True, xorOut=0xFFFF)
    assert wrong(b"123456789") != 0x906E


# ------------------------------------------------------------------ HDLC

server_addr = st.one_of(
    st.integers(0, 0x7F).map(lambda a: hdlc.encode_server_address(a)),
    st.tuples(st.integers(0, 0x7F), st.integers(0, 0x7F)).map(lambda t: hdlc.encode_server_address(t[0], t[1], 2)),
    st.tuples(st.integers(0, 0x3FFF), st.integers(0, 0x3FFF)).map(lambda t: hdlc.encode_server_address(t[0], t[1], 4)),
)
client_addr = st.integers(0, 0x7F).map(hdlc.encode_client_address)


@st.composite
def frames(draw, max_info=300):
    to_server = draw(st.booleans())
    s, c = draw(server_addr), draw(client_addr)
    dest, src = (s, c) if to_server else (c, s)
    ctrl = draw(st.integers(0, 255))
    info = draw(st.one_of(st.just(b""), st.binary(min_size=1, max_size=max_info)))
    seg = draw(st.booleans())
    return dest, src, ctrl, info, seg


@FAST
@given(frames())
def test_frame_roundtrip(fr):
    dest, src, ctrl, info, seg = fr
    b = hdlc.encode_frame(dest, src, ctrl, info, seg)
    f = hdlc.decode_frame(b)
    assert (f.dest, f.src, f.ctrl, f.info, f.segmented, f.length) == (dest, src, ctrl, info, seg, len(b) - 2)


@FAST
@given(st.integers(0, 0x3FFF), st.one_of(st.none(), st.integers(0, 0x3FFF)), st.sampled_from([None, 1, 2, 4]))
def test_server_address_roundtrip(log, phys, size):
    if size == 1:
        fails = phys is not None or log > 0x7F
    elif size == 2:
        fails = log > 0x7F or (phys or 0) > 0x7F
    elif size == 4:
        fails = False
    else:
        fails = phys is None and log > 0x7F
    try:
        b = hdlc.encode_server_address(log, phys, size)
    except hdlc.HdlcError as e:
        assert fails and e.reason == "address"
        return
    assert not fails
    v, n, p = hdlc.decode_address(b, 0)
    assert n == len(b) == p and n == (size or n)
    assert hdlc.split_server_address(v, n) == (log, None if n == 1 else (phys or 0))


@FAST
@given(st.integers(1, 0xFFFF), st.integers(1, 0xFFFF), st.integers(1, 7), st.integers(1, 7))
def test_params_roundtrip(tx, rx, wtx, wrx):
    assert hdlc.decode_params(hdlc.encode_params(tx, rx, wtx, wrx)) == (tx, rx, wtx, wrx)


@FAST
@given(st.lists(st.tuples(frames(max_info=200), st.binary(max_size=12).map(lambda g: g.replace(b"\x7e", b"\x00")),
                          st.booleans()), min_size=1, max_size=6),
       st.lists(st.integers(1, 64), min_size=1, max_size=8), st.sampled_from([2050, 4096]))
def test_receiver_finds_all_frames(items, chunks, maxlen):
    stream = bytearray()
    want = []
    for (dest, src, ctrl, info, seg), garbage, share in items:
        fb = hdlc.encode_frame(dest, src, ctrl, info, seg)
        stream += garbage
        if share and stream[-1:] == b"\x7e":
            fb = fb[1:]
        stream += fb
        want.append((dest, src, ctrl, info, seg))
    rx = hdlc.Receiver(maxlen)
    got = []
    i = k = 0
    while i < len(stream):
        n = chunks[k % len(chunks)]
        rx.feed(bytes(stream[i:i + n]))
        i += n
        k += 1
        while True:
            f = rx.pop()
            if f is None:
                break
            got.append((f.dest, f.src, f.ctrl, f.info, f.segmented))
    assert got == want
    assert rx.dropped == 0 or rx.last_error in ("length", "address", "hcs", "fcs", "flag")


@FUZZ
@given(st.binary(max_size=400), st.lists(st.integers(1, 50), min_size=1, max_size=5))
def test_receiver_random_bytes_never_raise(data, chunks):
    rx = hdlc.Receiver(300)
    i = k = 0
    while i < len(data):
        n = chunks[k % len(chunks)]
        rx.feed(data[i:i + n])
        i += n
        k += 1
        for _ in range(50):
            f = rx.pop()
            if f is None:
                break
            assert isinstance(f, hdlc.Frame)
    assert rx.pending() <= 300


@FUZZ
@given(frames(max_info=64), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
       st.integers(0, 3))
def test_decode_frame_mutations(fr, muts, cut):
    b = bytearray(hdlc.encode_frame(*fr))
    for pos, val in muts:
        b[pos % len(b)] = val
    if cut:
        b = b[:-cut]
    try:
        f = hdlc.decode_frame(bytes(b))
    except hdlc.HdlcError as e:
        assert e.reason in ("flag", "format", "length", "address", "hcs", "fcs")
    else:
        assert isinstance(f.info, bytes)


@FUZZ
@given(st.binary(max_size=40))
def test_decode_params_fuzz(data):
    for d in (data, b"\x81\x80" + bytes([len(data)]) + data):
        try:
            r = hdlc.decode_params(d)
        except hdlc.HdlcError as e:
            assert e.reason == "format"
        else:
            assert len(r) == 4


@FUZZ
@given(st.binary(max_size=8), st.integers(0, 8))
def test_decode_address_fuzz(data, pos):
    try:
        v, n, p = hdlc.decode_address(data, pos)
    except hdlc.HdlcError as e:
        assert e.reason == "address"
    else:
        assert n in (1, 2, 4) and p == pos + n


# ------------------------------------------------------------------ A-XDR

leaf = st.one_of(
    st.none().map(lambda _: ("null", None)),
    st.booleans().map(lambda v: ("boolean", v)),
    st.integers(-128, 127).map(lambda v: ("integer", v)),
    st.integers(-2 ** 15, 2 ** 15 - 1).map(lambda v: ("long", v)),
    st.integers(0, 255).map(lambda v: ("unsigned", v)),
    st.integers(0, 0xFFFF).map(lambda v: ("long_unsigned", v)),
    st.integers(-2 ** 31, 2 ** 31 - 1).map(lambda v: ("double_long", v)),
    st.integers(0, 2 ** 32 - 1).map(lambda v: ("double_long_unsigned", v)),
    st.integers(-2 ** 63, 2 ** 63 - 1).map(lambda v: ("long64", v)),
    st.integers(0, 2 ** 64 - 1).map(lambda v: ("long64_unsigned", v)),
    st.integers(0, 255).map(lambda v: ("enum", v)),
    st.binary(max_size=300).map(lambda v: ("octet_string", v)),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(lambda v: ("visible_string", v)),
    st.text(max_size=20).map(lambda v: ("utf8_string", v)),
    st.integers(0, 40).flatmap(lambda n: st.integers(0, 2 ** n - 1).map(lambda v: ("bit_string", (v, n)))),
    st.binary(min_size=12, max_size=12).map(lambda v: ("date_time", v)),
)
values = st.recursive(leaf, lambda kids: st.tuples(st.sampled_from(["array", "structure"]),
                                                   st.lists(kids, max_size=5)), max_leaves=20)


def write(w, v):
    kind, x = v
    if kind in ("array", "structure"):
        getattr(w, kind)(len(x))
        for e in x:
            write(w, e)
    elif kind == "null":
        w.null()
    elif kind == "bit_string":
        w.bit_string(x[0], x[1])
    else:
        getattr(w, kind)(x)


def expect(v):
    kind, x = v
    if kind in ("array", "structure"):
        return [expect(e) for e in x]
    if kind == "bit_string":
        val, n = x
        nb = (n + 7) // 8
        return (n, (val << (nb * 8 - n)).to_bytes(nb, "big"))
    return x


@FAST
@given(values)
def test_axdr_roundtrip(v):
    w = axdr.Writer()
    write(w, v)
    b = w.getvalue()
    tv, p = axdr.decode(b)
    assert p == len(b) == axdr.skip(b)
    assert axdr.to_python(tv) == expect(v)


@FAST
@given(st.sampled_from([("integer", 8, True), ("long", 16, True), ("unsigned", 8, False),
                        ("long_unsigned", 16, False), ("double_long", 32, True),
                        ("double_long_unsigned", 32, False), ("long64", 64, True),
                        ("long64_unsigned", 64, False), ("enum", 8, False)]),
       st.integers(-2 ** 70, 2 ** 70))
def test_axdr_range_checks(spec, v):
    name, bits, signed = spec
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    w = axdr.Writer()
    if lo <= v <= hi:
        getattr(w, name)(v)
        assert axdr.decode(w.getvalue())[0][1] == v
    else:
        try:
            getattr(w, name)(v)
        except axdr.AxdrError:
            assert len(w.buf) == 0
        else:
            raise AssertionError("accepted out-of-range %d for %s" % (v, name))


@FAST
@given(st.integers(0, 0xFFFFFFFF))
def test_axdr_length_roundtrip(n):
    b = axdr.encode_length(n)
    assert axdr.decode_length(b + b"x", 0) == (n, len(b))


@FUZZ
@given(st.binary(max_size=64))
def test_axdr_decode_fuzz(data):
    try:
        tv, p = axdr.decode(data)
    except axdr.AxdrError:
        try:
            axdr.skip(data)
        except axdr.AxdrError:
            return
        # skip() does not validate string text; that is the only allowed difference
        assert any(b in data for b in (b"\x0a", b"\x0c"))
        return
    assert axdr.skip(data) == p <= len(data)


@FAST
@given(values, st.lists(st.tuples(st.integers(0, 500), st.integers(0, 255)), min_size=1, max_size=3))
def test_axdr_mutations(v, muts):
    w = axdr.Writer()
    write(w, v)
    b = bytearray(w.buf)
    for pos, val in muts:
        if b:
            b[pos % len(b)] = val
    try:
        axdr.decode(bytes(b))
    except axdr.AxdrError:
        pass


@FAST
@given(st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2200, 12, 31)),
       st.integers(-720, 720))
def test_datetime_weekday(d, dev):
    b = axdr.datetime_bytes(d.year, d.month, d.day, 12, 30, 45, 7, deviation=dev)
    assert axdr.parse_datetime(b) == (d.year, d.month, d.day, d.isoweekday(), 12, 30, 45, 7, dev, 0)


# ------------------------------------------------------------------ OBIS

@FAST
@given(st.binary(min_size=6, max_size=6))
def test_obis_roundtrip(b):
    s = obis.to_str(b)
    assert obis.parse(s) == b
    assert obis.parse(b.hex()) == b
    assert obis.parse("%d-%d:%d.%d.%d*%d" % tuple(b)) == b


@FUZZ
@given(st.text(max_size=30))
def test_obis_fuzz(t):
    try:
        r = obis.parse(t)
    except ValueError:
        return
    assert len(r) == 6


# ------------------------------------------------------------------ APDU

obis6 = st.binary(min_size=6, max_size=6)
axdr_bytes = values.map(lambda v: (write(w := axdr.Writer(), v), w.getvalue())[1])


@FAST
@given(st.sampled_from([1, 2, 3, 4]), st.one_of(st.none(), st.integers(0, 7)),
       st.one_of(st.none(), st.binary(max_size=300)), st.integers(0, 0xFFFFFF), st.integers(0, 0xFFFF),
       st.integers(0, 255))
def test_aarq_roundtrip(ctx, mech, auth, conf, pdu, ver):
    a = apdu.parse_aarq(apdu.build_aarq(ctx, mech, auth, conf, pdu, ver))
    assert (a["context"], a["mechanism"], a["auth_value"], a["conformance"], a["max_pdu"], a["dlms_version"]) == \
        (ctx, mech, auth, conf, pdu, ver)
    assert a["user_info_ok"] and a["acse_requirements"] == (0 if mech is None else 1)


@FAST
@given(st.integers(0, 2), st.integers(0, 14), st.booleans(), st.integers(0, 0xFFFFFF), st.integers(0, 0xFFFF),
       st.one_of(st.none(), st.integers(0, 7)), st.one_of(st.none(), st.integers(0, 6)))
def test_aare_roundtrip(result, diag, prov, conf, pdu, mech, ie):
    b = apdu.build_aare(result, diag, conformance=conf, max_pdu=pdu, mechanism=mech, diag_provider=prov,
                        initiate_error=None if ie is None else (6, ie))
    a = apdu.parse_aare(b)
    assert (a["result"], a["diagnostic"], a["diag_provider"], a["mechanism"]) == (result, diag, prov, mech)
    if ie is None:
        assert (a["conformance"], a["max_pdu"], a["vaa_name"], a["service_error"]) == (conf, pdu, 7, None)
    else:
        assert a["service_error"] == (6, ie) and a["conformance"] is None


@FAST
@given(st.integers(0, 255), st.integers(0, 0xFFFF), obis6, st.integers(0, 255),
       st.one_of(st.none(), st.tuples(st.integers(0, 255), axdr_bytes)), axdr_bytes)
def test_request_roundtrip(inv, cid, ln, idx, sel, value):
    selector, params = sel if sel else (None, b"")
    r = apdu.parse_request(apdu.get_request(inv, cid, ln, idx, selector, params))
    assert (r.tag, r.kind, r.invoke) == (0xC0, 1, inv)
    assert r.items == [(cid, ln, idx, selector, params if sel else None)]
    r = apdu.parse_request(apdu.set_request(inv, cid, ln, idx, value, selector, params))
    assert r.value == value and r.items[0][3] == selector
    r = apdu.parse_request(apdu.action_request(inv, cid, ln, idx, value))
    assert r.items == [(cid, ln, idx, None, value)]
    r = apdu.parse_request(apdu.action_request(inv, cid, ln, idx))
    assert r.items == [(cid, ln, idx, None, None)]
    items = [(cid, ln, idx, selector, params), (cid ^ 1, ln, idx, None, b"")]
    r = apdu.parse_request(apdu.get_with_list_request(inv, items))
    assert [i[:4] for i in r.items] == [i[:4] for i in items]


@FAST
@given(st.integers(0, 255), axdr_bytes, st.integers(0, 255), st.booleans(), st.integers(0, 2 ** 32 - 1),
       st.binary(max_size=700))
def test_response_roundtrip(inv, data, dar, last, blk, raw):
    r = apdu.parse_response(apdu.get_response(inv, data))
    assert (r.invoke, r.data, r.dar) == (inv, data, None)
    assert apdu.parse_response(apdu.get_response_error(inv, dar)).dar == dar
    r = apdu.parse_response(apdu.get_response_block(inv, last, blk, raw))
    assert (r.last, r.block_no, r.raw) == (last, blk, raw)
    r = apdu.parse_response(apdu.get_response_list(inv, [(0, data), (1, dar)]))
    assert r.results == [(0, data), (1, dar)]
    assert apdu.parse_response(apdu.action_response(inv, 0, data)).data == data
    assert apdu.parse_response(apdu.set_response(inv, dar)).dar == (dar or None)


APDU_SAMPLES = [
    apdu.build_aarq(mechanism=1, auth_value=b"12345678"),
    apdu.build_aare(0, 0, conformance=0x101D, mechanism=1),
    apdu.build_aare(1, 1, initiate_error=(6, 1)),
    h("62 15 80 01 00 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 00 1E 1D FF FF"),
    h("C0 03 C1 02 00 08 00 00 01 00 00 FF 02 00 00 03 01 00 01 08 00 FF 02 00"),
    h("C1 01 C1 00 03 01 00 01 08 00 FF 02 00 06 00 00 00 2A"),
    h("C3 01 C1 00 70 00 00 13 0A 00 FF 01 01 05 00 00 13 88"),
    h("C4 01 C1 00 09 0C 07 E8 05 11 05 12 22 38 00 80 00 00"),
    apdu.get_response_block(0xC1, False, 1, bytes(200)),
    h("C4 03 C1 02 00 11 05 01 04"),
    h("C7 01 C1 00 01 00 11 05"),
]
PARSERS = [apdu.parse_aarq, apdu.parse_aare, apdu.parse_rlrq, apdu.parse_rlre, apdu.parse_request,
           apdu.parse_response]


@FUZZ
@given(st.sampled_from(APDU_SAMPLES), st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), max_size=3),
       st.integers(0, 5), st.binary(max_size=3))
def test_apdu_parsers_mutations(sample, muts, cut, tail):
    b = bytearray(sample)
    for pos, val in muts:
        b[pos % len(b)] = val
    if cut:
        b = b[:-cut]
    b = bytes(b) + tail
    for parse in PARSERS:
        try:
            parse(b)
        except apdu.ApduError as e:
            assert e.service_error in (2, 3)


@FUZZ
@given(st.binary(max_size=60))
def test_apdu_parsers_random(b):
    for parse in PARSERS:
        for data in (b, b"\xC0\x01" + b, b"\x60" + bytes([len(b)]) + b, b"\xC4\x02" + b):
            try:
                parse(data)
            except apdu.ApduError:
                pass


# ------------------------------------------------------------------ Modbus RTU

@FAST
@given(st.integers(1, 255), st.sampled_from([3, 4]), st.integers(0, 0xFFFF), st.integers(1, 125))
def test_modbus_request_and_reply(unit, fn, addr, count):
    req = modbus_rtu.read_request(unit, fn, addr, count)
    assert req[:6] == bytes([unit, fn, addr >> 8, addr & 0xFF, count >> 8, count & 0xFF])
    assert crc16_modbus(req) == 0 and req[6] | (req[7] << 8) == _MODBUS(req[:6])
    body = bytes([unit, fn, 2 * count]) + bytes(range(2 * count))
    c = _MODBUS(body)
    rep = body + bytes([c & 0xFF, c >> 8])
    assert len(rep) == modbus_rtu.response_length(fn, count)
    assert modbus_rtu.check_response(rep, len(rep), unit, fn) == 0


@FUZZ
@given(st.binary(max_size=30), st.integers(0, 40), st.integers(0, 255), st.sampled_from([3, 4, 6]))
def test_modbus_check_fuzz(buf, n, unit, fn):
    try:
        r = modbus_rtu.check_response(buf, n, unit, fn)
    except modbus_rtu.ModbusError as e:
        assert e.reason in ("crc", "unit", "function", "length")
    else:
        assert 0 <= r <= 255 and crc16_modbus(buf[:n]) == 0
