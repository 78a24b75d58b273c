"""Out of memory in the DLMS server (meter.server, meter.link), on CPython and MicroPython: a
MemoryError while a request is decoded (``apdu.parse_request``: nothing has changed yet) is
answered with ExceptionResponse service-not-allowed / pdu-too-long and the link stays connected;
one inside ``cosem.put``/``act`` (state may have changed) is not answered (the link's catch-all);
a segmented request is reassembled in the buffer the link allocated at boot."""
from meter import cosem, server
from meter.link import HdlcLink
from protocol import apdu as device_apdu           # the module meter.server calls
from protocol import apdu_client as apdu
from protocol import hdlc_client as hdlc

SRV = b"\x03"
C16 = b"\x21"
LDN = b"\x00\x00\x2a\x00\x00\xff"
PDU_TOO_LONG = bytes((apdu.EXCEPTION_RESPONSE, 1, 4))


class Board:
    def ticks_ms(self):
        return 1000

    def time(self):
        return 1767225600


class Meter:
    def __init__(self):
        self.board = Board()
        self.events = []

    def event(self, code, text):
        self.events.append(code)


def opened(link):
    """The link in NRM with an open association of client 16 (GET, SET, ACTION)."""
    out = link.on_frame(hdlc.decode_frame(hdlc.encode_frame(SRV, C16, hdlc.SNRM)))
    assert hdlc.decode_frame(out[0]).ctrl == hdlc.UA
    a = link.assoc
    a.open, a.client, a.role = True, 16, 16
    a.conformance = apdu.CONF_GET | apdu.CONF_SET | apdu.CONF_ACTION
    return a


def _no_memory(*args):
    raise MemoryError("memory allocation failed")


def send(link, ns, info, seg=False, nr=0):
    f = hdlc.encode_frame(SRV, C16, hdlc.ctrl_i(ns, nr), info, seg)
    return [hdlc.decode_frame(x) for x in link.on_frame(hdlc.decode_frame(f))]


def test_memory_error_while_a_request_is_decoded_is_answered_and_the_link_kept():
    link = HdlcLink(Meter())
    a = opened(link)
    rb = link._rb
    parse = device_apdu.parse_request
    req = hdlc.LLC_REQUEST + apdu.set_request(0xC1, 8, b"\x00\x00\x01\x00\x00\xff", 2, b"\x00" * 300)
    device_apdu.parse_request = _no_memory
    try:
        assert a.handle(16, memoryview(apdu.get_request(0xC1, 1, LDN, 2))) == PDU_TOO_LONG
        # segmented (two frames), through the link: reassembled in its boot buffer, answered
        for i in range(3):       # 128-byte information fields (the default)
            out = send(link, i, req[i * 128:i * 128 + 128], i < 2)
            if i < 2:
                assert [hdlc.kind(f.ctrl) for f in out] == [hdlc.K_RR]
    finally:
        device_apdu.parse_request = parse
    assert len(out) == 1 and hdlc.kind(out[0].ctrl) == hdlc.K_I
    assert bytes(out[0].info) == hdlc.LLC_RESPONSE + PDU_TOO_LONG
    assert link.state == 1 and link.client == C16 and a.open        # NRM, associated
    assert link._rb is rb and bytes(rb[:len(req)]) == req
    assert link.errors == 0 and link.assoc.meter.events == []


def test_memory_error_inside_a_set_or_action_is_not_answered():
    a = opened(HdlcLink(Meter()))
    put, act = cosem.put, cosem.act
    cosem.put = cosem.act = _no_memory
    try:
        for req in (apdu.set_request(0xC1, 8, b"\x00\x00\x01\x00\x00\xff", 2, b"\x11\x00"),
                    apdu.action_request(0xC1, 70, b"\x00\x00\x60\x03\x0a\xff", 1, b"\x0f\x00")):
            try:
                a.handle(16, memoryview(req))
                raise AssertionError("answered")
            except MemoryError:
                pass                  # to the link's catch-all: no answer, the link to NDM
    finally:
        cosem.put, cosem.act = put, act
    assert server.Association is type(a)


def test_segmented_requests_reuse_the_boot_buffer():
    link = HdlcLink(Meter())
    opened(link)
    rb = link._rb
    parse = device_apdu.parse_request
    seen = []

    def spy(buf):
        seen.append(bytes(buf))
        raise MemoryError()
    device_apdu.parse_request = spy
    try:
        ns = nr = 0
        for n in (300, 900, 140):
            req = apdu.get_request(0xC1, 1, LDN, 2) + bytes(range(256)) * 4
            req = req[:n]
            data = hdlc.LLC_REQUEST + req
            chunks = [data[i:i + 128] for i in range(0, len(data), 128)]
            for i, ch in enumerate(chunks):
                out = send(link, ns, ch, i < len(chunks) - 1, nr)
                ns = (ns + 1) & 7
            assert bytes(out[0].info) == hdlc.LLC_RESPONSE + PDU_TOO_LONG
            nr = (nr + 1) & 7
            assert seen[-1] == req
            assert link._rb is rb
    finally:
        device_apdu.parse_request = parse


def test_long_arrays_and_structures_are_refused_undecoded():
    """No SET of this meter takes an array or a structure of more than 2 elements, no ACTION one
    of more than 3: refused (type-unmatched, as after decoding) from the first two bytes, never
    decoded (a 1000-element array decodes into a 4 KiB list)."""
    from protocol import axdr
    a = opened(HdlcLink(Meter()))
    a.role, a.client = 2, 1                    # manager (client 1)
    decode, calls = axdr.decode, []

    def spy(buf, pos):
        calls.append(bytes(buf[:2]))
        return decode(buf, pos)
    axdr.decode = spy
    clock = b"\x00\x00\x01\x00\x00\xff"
    try:
        for v in (b"\x01\x82\x03\xe8" + bytes(1000), b"\x02\x03\x00\x00\x00", b"\x01\x03\x00\x00\x00"):
            r = apdu.parse_response(a.handle(1, memoryview(apdu.set_request(0xC1, 8, clock, 2, v))))
            assert r.dar == 12, r                                   # type-unmatched
        r = apdu.parse_response(a.handle(1, memoryview(apdu.action_request(
            0xC1, 8, clock, 6, b"\x01\x82\x03\xe8" + bytes(1000)))))
        assert r.tag == apdu.ACTION_RESPONSE and r.dar == 12, r
        assert calls == []
        r = apdu.parse_response(a.handle(1, memoryview(apdu.set_request(0xC1, 8, clock, 2, b"\x01\x00"))))
        assert r.dar == 12 and calls == [b"\x01\x00"]               # short ones are decoded
    finally:
        axdr.decode = decode


def test_a_with_list_keeps_copies_of_its_selective_access_parameters():
    """A with-list's items are read as the blocks go, after the request's buffer (the link's,
    shared with the response frames) is reused: their selective-access parameters are copies."""
    a = opened(HdlcLink(Meter()))
    a.conformance |= apdu.CONF_MULTIPLE_REFERENCES | apdu.CONF_BLOCK_TRANSFER_WITH_GET
    log = b"\x00\x00\x63\x62\x00\xff"
    par = b"\x02\x04\x06\x00\x00\x00\x01\x06\x00\x00\x00\x02\x12\x00\x01\x12\x00\x00"
    buf = bytearray(apdu.get_with_list_request(0xC1, [(7, log, 2, 2, par), (1, LDN, 2, None, None)]))
    with_list, kept = server._with_list, []

    def spy(meter, ctx, items, out):
        kept.extend(items)
        yield b"\x00"
    server._with_list = spy
    try:
        a.handle(16, memoryview(buf))
    finally:
        server._with_list = with_list
    buf[:] = bytes(len(buf))                    # the buffer reused
    assert [bytes(it[4]) if it[4] is not None else None for it in kept] == [par, None]


def test_a_with_list_is_read_into_the_response_buffer_and_a_bug_is_no_pdu_too_long():
    """A with-list's results are written straight into the association's response buffer (no
    Writer or copy per item); only a MemoryError while they are read is answered pdu-too-long:
    another exception (a bug) goes to the link's catch-all (an event), not to the client as a
    PDU size problem."""
    a = opened(HdlcLink(Meter()))
    a.conformance |= apdu.CONF_MULTIPLE_REFERENCES
    req = memoryview(apdu.get_with_list_request(0xC1, [(1, LDN, 2, None, None)] * 2))
    get, writers = cosem.get, []

    def spy(meter, ctx, item, w):
        writers.append(w.buf)
        w.buf.extend(b"\x09\x02OK")
        return 0
    cosem.get = spy
    try:
        out = a.handle(16, req)
        assert bytes(out) == bytes((0xC4, 3, 0xC1, 2, 0, 9, 2)) + b"OK" + bytes((0, 9, 2)) + b"OK"
        assert all(b is a.rbuf for b in writers)

        def bug(meter, ctx, item, w):
            raise ValueError("bug")
        cosem.get = bug
        raised = False
        try:
            a.handle(16, req)
        except ValueError:
            raised = True
        assert raised
        cosem.get = _no_memory
        assert bytes(a.handle(16, req)) == PDU_TOO_LONG
    finally:
        cosem.get = get


class _Stream:
    """A UART that gives ``data`` once and keeps what is written."""

    def __init__(self, data):
        self.data = bytearray(data)
        self.out = []

    def readinto(self, buf):
        n = min(len(buf), len(self.data))
        buf[:n] = self.data[:n]
        self.data[:n] = b""
        return n

    def write(self, b):
        self.out.append(bytes(b))
        return len(b)


def test_an_error_whose_event_cannot_be_written_does_not_stop_the_link():
    """The link's catch-all logs its first error as an event; when that write runs out of memory
    too (on littlefs each open file is one ~256 B block: HLS at 56k, the key-transfer power cuts)
    the link drops to NDM and goes on: the meter is not taken off the air."""
    m = Meter()
    m.event = _no_memory
    link = HdlcLink(m)
    link.on_frame = _no_memory
    g = link.serve(_Stream(hdlc.encode_frame(SRV, C16, hdlc.SNRM)))
    for _ in range(4):
        next(g)
    assert link.errors == 1 and link.state == 0
