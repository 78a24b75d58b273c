"""The DLMS link under attack, on the real firmware (the ``micropython`` command), written as the
attacks of issue 12 were: raw frames on the meter's serial port.

- the 11-byte stall: a truncated frame header claiming 2047 bytes, then a valid request at once
  (for us: dropped at once, too long) or after one inter-character time-out (25 ms; for another
  station: its skip ends with the silence); a truncated frame of a possible length likewise;
- an SNRM (and DISC) from public client 16 during an open management (client 1) link: told DM,
  client 1's link keeps working; the management client's SNRM takes over a public link;
- a 154-byte GET with-list asking for the object list 15 times: answered (block transfer), no
  MemoryError, no event, no flash write (the NOR image is byte-identical, no block erased); the
  other request types with the longest data the link takes;
- physical address N on an RS-485 bus: frames for M, the all-station address and the 1-byte
  address are not answered and do not block the next frame.
Silence is shown by order: the ignored frames go first, a valid one last, and the only answer is
the valid one's."""
import hashlib
import time

import pytest
import serial

from protocol import apdu_client as apdu
from protocol import hdlc_client as hdlc
from protocol.crc import crc16_x25

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = pytest.mark.needs("test_identity")

SRV = b"\x03"
C1 = b"\x03"
C16 = b"\x21"
ASSOC_LN = bytes((0, 0, 40, 0, 0, 255))
CLOCK_LN = bytes((0, 0, 1, 0, 0, 255))
LDN_LN = bytes((0, 0, 42, 0, 0, 255))
TOKEN_CREDIT_LN = bytes((0, 0, 19, 10, 0, 255))
EV_DLMS_ERROR = 90


def stall_header(dest, src=C16, length=2047):
    """``7E A? ?? dest src ctrl HCS`` + 2 bytes: a frame header with a valid HCS that claims
    ``length`` bytes, cut short (11 bytes with 1-byte addresses)."""
    h = bytearray((0x7E, 0xA0 | (length >> 8), length & 0xFF)) + dest + src + b"\x10"
    c = crc16_x25(bytes(h[1:]))
    return bytes(h) + bytes((c & 0xFF, c >> 8)) + b"\xE6\xE6"


class Wire:
    """The host end of the meter's DLMS port: raw frames out, decoded frames in."""

    def __init__(self, rig):
        self.rig = rig
        self.port = serial.Serial(rig.port, 9600, timeout=0.05)
        self.rx = hdlc.Receiver(4096)
        self.ns = {}

    def close(self):
        self.port.close()

    def send(self, *frames):
        self.port.write(b"".join(frames))
        self.port.flush()

    def frames(self, n=1, timeout=10.0):
        """The next ``n`` frames from the meter (fewer on timeout)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            f = self.rx.pop()
            if f is not None:
                out.append(f)
                continue
            self.rx.feed(self.port.read(4096))
        return out

    def quiet(self):
        """Everything the meter sent once it has read our bytes and the line is quiet."""
        self.rig.drain(quiet_ms=200)
        return self.frames(1000, timeout=0.2)

    def gap(self):
        """Silence on the line longer than the meter's inter-character time-out, the bytes
        before it read by the meter (condition waits, no fixed sleep)."""
        self.rig.drain(quiet_ms=0)
        self.rig.drain(quiet_ms=100)

    def snrm(self, src, dest=SRV):
        self.send(hdlc.encode_frame(dest, src, hdlc.SNRM, hdlc.encode_params(512, 512, 1, 1)))
        f = self.frames()[0]
        assert f.ctrl == hdlc.UA and f.dest == src and f.src == dest
        self.ns[src] = [0, 0]
        return f

    def request(self, src, apdu_bytes, dest=SRV):
        """One APDU in I-frames (segmented at 128: what the meter's UA says it receives), the
        whole answer APDU back."""
        vs = self.ns[src]
        data = hdlc.LLC_REQUEST + apdu_bytes
        chunks = [data[i:i + 128] for i in range(0, len(data), 128)]
        for i, ch in enumerate(chunks):
            last = i == len(chunks) - 1
            self.send(hdlc.encode_frame(dest, src, hdlc.ctrl_i(vs[0], vs[1]), ch, not last))
            vs[0] = (vs[0] + 1) & 7
            if not last:
                assert hdlc.kind(self.frames()[0].ctrl) == hdlc.K_RR
        resp = bytearray()
        while True:
            f = self.frames()[0]
            assert hdlc.kind(f.ctrl) == hdlc.K_I and f.dest == src, f.ctrl
            vs[1] = (vs[1] + 1) & 7
            resp += f.info
            if not f.segmented:
                return bytes(resp[3:])
            self.send(hdlc.encode_frame(dest, src, hdlc.ctrl_rr(vs[1])))

    def associate(self, src, sap, password=None, conformance=apdu.DEFAULT_CONFORMANCE):
        self.snrm(src)
        aare = apdu.parse_aare(self.request(src, apdu.build_aarq(
            mechanism=apdu.MECH_LLS if password else None, auth_value=password,
            conformance=conformance)))
        assert aare["result"] == 0, aare

    def long_get(self, src, req):
        """A GET (normal or with-list) and its blocks: (raw data, blocks)."""
        resp = self.request(src, req)
        r = apdu.parse_response(resp)
        if r.kind == 3:                     # a with-list that fits one response: its results
            return bytes(resp[3:]), 1
        if r.kind != 2:
            assert r.dar is None, r
            return r.data, 1
        raw, n = bytearray(r.raw), 1
        while not r.last:
            r = apdu.parse_response(self.request(src, apdu.get_next_request(0xC1, r.block_no)))
            assert r.kind == 2 and r.dar is None
            raw += r.raw
            n += 1
        return bytes(raw), n


@pytest.fixture
def wire_factory(rig_factory):
    made = []

    def make(**kw):
        rig = rig_factory(**kw)
        w = Wire(rig)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


# ---------------------------------------------------------------- a link that cannot be stalled

def test_stall_header_then_valid_request(wire_factory):
    w = wire_factory(config={"physical_address": 17})
    me = hdlc.encode_server_address(1, 17)
    other = hdlc.encode_server_address(1, 18)
    snrm = hdlc.encode_frame(me, C16, hdlc.SNRM)
    # for us, claiming 2047 bytes (more than we take): dropped at once, the SNRM right behind it
    # (well within one inter-character time-out) is answered
    w.send(stall_header(me) + snrm)
    assert [f.ctrl for f in w.frames()] == [hdlc.UA]
    # for another station, claiming 2047: skipped by its length until the line is silent for
    # one inter-character time-out; the request after the silence is answered
    w.send(stall_header(other))
    w.gap()
    w.send(snrm)
    assert [f.ctrl for f in w.frames()] == [hdlc.UA]
    # for us with a length we do take (300), cut short: discarded after the silence
    w.send(stall_header(me, length=300))
    w.gap()
    w.send(snrm)
    assert [f.ctrl for f in w.frames()] == [hdlc.UA]
    assert w.quiet() == []
    assert not [e for e in w.rig.events if e[0] == str(EV_DLMS_ERROR)]


def test_snrm_from_public_client_leaves_the_management_link_working(wire_factory):
    w = wire_factory()
    w.associate(C1, 1, b"12345678")
    get_ldn = apdu.get_request(0xC1, 1, LDN_LN, 2)
    assert apdu.parse_response(w.request(C1, get_ldn)).data is not None
    for ctrl in (hdlc.SNRM, hdlc.DISC):      # client 16 tries to take the link, then to end it
        w.send(hdlc.encode_frame(SRV, C16, ctrl))
        f = w.frames()[0]
        assert f.ctrl == hdlc.DM and f.dest == C16
    r = apdu.parse_response(w.request(C1, get_ldn))   # client 1's next request is answered
    assert r.dar is None and r.data.endswith(b"PPM0000001")
    # DISC by its owner ends it; then client 16 may connect
    w.send(hdlc.encode_frame(SRV, C1, hdlc.DISC))
    assert w.frames()[0].ctrl == hdlc.UA
    w.snrm(C16)


def test_a_public_link_held_open_is_taken_over_by_the_management_client(wire_factory):
    # attack pass (session 16): client 16 associated (no secret) and kept its link alive with an
    # RR now and then; every SNRM of client 1 was answered DM for as long as that went on
    w = wire_factory()
    w.associate(C16, 16)
    w.send(hdlc.encode_frame(SRV, C16, hdlc.ctrl_rr(w.ns[C16][1])))
    assert hdlc.kind(w.frames()[0].ctrl) == hdlc.K_RR
    w.associate(C1, 1, b"12345678")                     # SNRM (UA), AARQ (accepted)
    r = apdu.parse_response(w.request(C1, apdu.get_request(0xC1, 1, LDN_LN, 2)))
    assert r.dar is None and r.data.endswith(b"PPM0000001")
    w.send(hdlc.encode_frame(SRV, C16, hdlc.ctrl_rr(w.ns[C16][1])))   # the public link is gone
    f = w.frames()[0]
    assert f.ctrl == hdlc.DM and f.dest == C16


# ---------------------------------------------------------------- bounded memory for every request

def _image(rig):
    return hashlib.sha256(rig.flash_image.read_bytes()).hexdigest(), sum(rig.flash_wear())


def test_with_list_flood_answered_without_memory_error_or_flash_write(wire_factory, capsys):
    w = wire_factory(flash={"blocks": 64, "seed": 1})
    rig = w.rig
    w.associate(C16, 16)
    req = apdu.get_with_list_request(0xC1, [(15, ASSOC_LN, 2, None, None)] * 15)
    assert len(req) == 154
    rig.drain()
    base, _ = rig.mem()
    events, image = len(rig.events), _image(rig)
    for _ in range(3):
        raw, blocks = w.long_get(C16, req)
        assert blocks > 1 and raw[0] == 15 and raw.count(ASSOC_LN) == 15
    # without block transfer the same list cannot fit: refused with the standard exception
    w.send(hdlc.encode_frame(SRV, C16, hdlc.DISC))
    w.frames()
    w.associate(C16, 16, conformance=apdu.DEFAULT_CONFORMANCE & ~apdu.CONF_BLOCK_TRANSFER_WITH_GET)
    r = apdu.parse_response(w.request(C16, req))
    assert r.tag == apdu.EXCEPTION_RESPONSE and r.service_error == 4      # pdu-too-long
    rig.drain()
    alloc, _ = rig.mem()
    assert rig.running and len(rig.events) == events
    assert _image(rig) == image                       # not one byte programmed, nothing erased
    with capsys.disabled():
        print("\n[link] with-list x15 of the object list: %d blocks; heap after gc %d -> %d B"
              % (blocks, base, alloc))


def test_longest_requests_of_every_type_are_answered(wire_factory):
    """SET and ACTION with the longest data the link reassembles (1,027 bytes: an array of
    ~1,000 elements), GET of the event log, a 100-item with-list: each gets its answer."""
    w = wire_factory()
    rig = w.rig
    w.associate(C1, 1, b"12345678")
    events = len(rig.events)
    nulls = b"\x01\x82\x03\xe8" + b"\x00" * 1000                          # array of 1000 nulls
    r = apdu.parse_response(w.request(C1, apdu.set_request(0xC1, 8, CLOCK_LN, 2, nulls)))
    assert r.dar not in (None, 0)
    r = apdu.parse_response(w.request(C1, apdu.action_request(0xC1, 112, TOKEN_CREDIT_LN, 1, nulls)))
    assert r.tag == apdu.ACTION_RESPONSE and r.dar not in (None, 0)
    raw, _ = w.long_get(C1, apdu.get_request(0xC1, 7, bytes((0, 0, 99, 98, 0, 255)), 2))
    assert raw[0] == 1                                                     # an array
    items = [(1, LDN_LN, 2, None, None)] * 100
    raw, _ = w.long_get(C1, apdu.get_with_list_request(0xC1, items))
    assert raw[0] == 100 and raw.count(b"PPM0000001") == 100
    # longer than the link reassembles: refused, the link goes on
    r = apdu.parse_response(w.request(C1, apdu.set_request(0xC1, 8, CLOCK_LN, 2, b"\x00" * 1200)))
    assert r.tag == apdu.EXCEPTION_RESPONSE
    assert apdu.parse_response(w.request(C1, apdu.get_request(0xC1, 1, LDN_LN, 2))).dar is None
    assert not [e for e in rig.events[events:] if e[0] == str(EV_DLMS_ERROR)]


# ---------------------------------------------------------------- physical address on a bus

def test_physical_address_n_ignores_m_the_broadcast_and_the_1_byte_address(wire_factory):
    w = wire_factory(config={"physical_address": 17})
    me = hdlc.encode_server_address(1, 17)
    ignored = [hdlc.encode_server_address(1, 18), hdlc.encode_server_address(1, 0x7F),
               hdlc.encode_server_address(1, 0x3FFF, 4), hdlc.encode_server_address(0x7F, 0x7F),
               SRV]
    w.send(*[hdlc.encode_frame(d, C16, hdlc.SNRM) for d in ignored])
    # a whole long frame for M (300 bytes of information) does not block the frame behind it
    w.send(hdlc.encode_frame(ignored[0], C16, hdlc.ctrl_i(0, 0), bytes(300)),
           hdlc.encode_frame(me, C16, hdlc.SNRM))
    got = w.frames()
    assert [(f.ctrl, f.src) for f in got] == [(hdlc.UA, me)]
    four = hdlc.encode_server_address(1, 17, 4)                # the 4-byte form carries it too
    w.send(hdlc.encode_frame(four, C16, hdlc.DISC))
    assert [(f.ctrl, f.src) for f in w.frames()] == [(hdlc.UA, four)]
    assert w.quiet() == []


def test_physical_address_provisioned_confirmed_and_read(rig_factory, tmp_path):
    """``meterctl provision --physical-address 17`` writes it to config.json and confirms the
    meter over DLMS at that address; ``meterctl read --physical 17`` shows it."""
    import json

    from click.testing import CliRunner

    from host_tools.meterctl import flash as cmd_flash
    from host_tools.meterctl.read import read

    from hil import env

    flash_dir = tmp_path / "flash"
    with env.using_micropython(env.wheel_micropython()):   # mpremote's raw REPL: the wheel
        r = CliRunner().invoke(cmd_flash.flash, [
            "--board", "unix", "--port", str(flash_dir), "--serial", "PPM0000017", "--sgc",
            "123456", "--physical-address", "17", "--keystore", str(tmp_path / "ks"), "--json"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    rep = json.loads(r.output[r.output.index("{"):])
    assert rep["dlms"]["ok"] and json.loads((flash_dir / "config.json").read_text())["physical_address"] == 17
    cfg = json.loads((flash_dir / "config.json").read_text())
    rig = rig_factory(config={"physical_address": cfg["physical_address"]})
    out = CliRunner().invoke(read, ["--port", rig.port, "--physical", "17", "--json"])
    assert out.exit_code == 0, out.output
    s = json.loads(out.output[out.output.index("{"):])
    assert s["physical"] == 17 and s["server"] == 1
    out = CliRunner().invoke(read, ["--port", rig.port, "--timeout", "1"])   # 1-byte address
    assert out.exit_code == 3, out.output                                    # no answer
