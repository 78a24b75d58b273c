"""host_tools.client + meterctl against a scripted fake meter on a real pty pair.

Only behaviour that does not need the real firmware is tested here (the address check, HDLC
segmentation both ways, GET block transfer, timeouts, error mapping, CLI parsing) through the
serial shell: real pty, deadlines, the trace. The link logic itself (protocol/client_link.py) is
driven frame by frame against the meter's HdlcLink in tests/host/test_client_link.py; end-to-end
runs against the firmware are in tests/hil/test_e2e_*.py. Reply frames are the worked examples of
the reference notes (shared/reference/dlms.md §1-2: gurux/dlms-cosem traces), or built with
protocol.hdlc from APDU bytes taken from there.
"""

import os
import select
import threading
import time
import tty

import pytest
from click.testing import CliRunner

from protocol import hdlc_client as hdlc
from protocol import axdr_client as axdr
from host_tools import client as cl
from host_tools import format as fmt
from host_tools.meterctl.cli import meterctl

H = bytes.fromhex

# Worked frames, client 16 <-> server 1 (reference notes §1/§2).
REF_UA = H("7E A0 20 21 03 73 73 98 81 80 14 05 02 00 80 06 02 00 80 07 04 00 00 00 01 08 04 00 00 00 01 CE 6A 7E")
REF_AARE_ACCEPT = H("7E A0 37 21 03 30 6C 7C E6 E7 00 61 29 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 00"
                    " A3 05 A1 03 02 01 00 BE 10 04 0E 08 00 06 5F 1F 04 00 00 10 1D 01 00 00 07 15 F1 7E")
REF_GET_CLOCK = H("7E A0 19 03 21 32 6F D8 E6 E6 00 C0 01 C1 00 08 00 00 01 00 00 FF 02 00 60 1A 7E")
REF_GET_CLOCK_RESP_APDU = H("C4 01 C1 00 09 0C 07 E8 05 11 05 12 22 38 00 80 00 00")
REF_DISC = H("7E A0 07 03 21 53 03 C7 7E")
REF_UA_BARE = H("7E A0 07 21 03 73 01 40 7E")
REF_RR_51 = H("7E A0 07 03 21 51 11 E4 7E")

CLIENT16 = hdlc.encode_client_address(16)
CLIENT1 = hdlc.encode_client_address(1)
SERVER1 = hdlc.encode_server_address(1)


class FakeMeter:
    """A scripted responder on the master side of a pty pair.

    ``script(meter)`` runs in a thread; it calls ``meter.expect()`` for each frame the client
    sends and ``meter.write()`` / ``meter.reply_i()`` to answer. Exceptions in the script are
    re-raised by ``join()``.
    """

    def __init__(self, script, server=SERVER1, client=CLIENT16, echo=False):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.rx = hdlc.Receiver(4096)
        self.frames = []        # every frame the client sent
        self.server = server
        self.client = client
        self.echo = echo
        self.ns = 0             # meter's V(S)
        self.nr = 0             # meter's V(R)
        self.error = None
        self._script = script
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self._script(self)
        except BaseException as e:  # reported by join()
            self.error = e

    def expect(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            f = self.rx.pop()
            if f is not None:
                self.frames.append(f)
                if hdlc.kind(f.ctrl) == hdlc.K_I:
                    assert hdlc.ns(f.ctrl) == self.nr, "client N(S) %d, expected %d" % (hdlc.ns(f.ctrl), self.nr)
                    self.nr = (self.nr + 1) & 7
                if self.echo:
                    self.write(hdlc.encode_frame(f.dest, f.src, f.ctrl, f.info, f.segmented))
                return f
            left = deadline - time.monotonic()
            if left <= 0 or self._stop:
                raise AssertionError("fake meter: no frame from the client")
            r, _, _ = select.select([self.master], [], [], min(left, 0.05))
            if r:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    data = b""
                self.rx.feed(data)

    def expect_i(self):
        """Next I-frame; returns its information field without the LLC header."""
        f = self.expect()
        assert hdlc.kind(f.ctrl) == hdlc.K_I, "expected an I-frame, got ctrl 0x%02X" % f.ctrl
        assert f.info[:3] == hdlc.LLC_REQUEST
        return f.info[3:]

    def write(self, data):
        os.write(self.master, data)

    def frame(self, ctrl, info=b"", segmented=False, src=None):
        return hdlc.encode_frame(self.client, self.server if src is None else src, ctrl, info, segmented)

    def reply_i(self, apdu, segmented=False, llc=True):
        info = (hdlc.LLC_RESPONSE if llc else b"") + apdu
        self.write(self.frame(hdlc.ctrl_i(self.ns, self.nr), info, segmented))
        self.ns = (self.ns + 1) & 7

    def ua(self):
        self.ns = self.nr = 0
        self.write(self.frame(hdlc.UA, hdlc.encode_params(128, 128, 1, 1)))

    def handshake(self, aare=None):
        """SNRM -> UA (reference bytes), AARQ -> AARE accept (reference bytes)."""
        f = self.expect()
        assert hdlc.kind(f.ctrl) == hdlc.K_SNRM
        if self.client == CLIENT16 and self.server == SERVER1:
            self.write(REF_UA)
            self.ns = self.nr = 0
        else:
            self.ua()
        req = self.expect_i()
        assert req[0] == 0x60  # AARQ
        if aare is None and self.client == CLIENT16 and self.server == SERVER1:
            self.write(REF_AARE_ACCEPT)       # ctrl 0x30: N(S)=0, N(R)=1
            self.ns = 1
        else:
            self.reply_i(aare or REF_AARE_ACCEPT[11:-3])
        return req

    def goodbye(self):
        """RLRQ -> RLRE, DISC -> UA."""
        req = self.expect_i()
        assert req[0] == 0x62
        self.reply_i(H("6303800100"))
        f = self.expect()
        assert hdlc.kind(f.ctrl) == hdlc.K_DISC
        self.write(self.frame(hdlc.UA))

    def join(self, timeout=10):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "fake meter script did not finish"
        if self.error is not None:
            raise self.error

    def close(self):
        self._stop = True
        self.thread.join(5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def fakes():
    made = []

    def make(script, **kw):
        m = FakeMeter(script, **kw)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


def test_reference_frames_round_trip(fakes):
    """Client 16 speaks byte-for-byte what the reference trace shows for GET clock and DISC,
    accepts the reference UA/AARE, and decodes the reference clock value."""
    seen = {}

    def script(m):
        m.handshake()
        f = m.expect()
        seen["get"] = hdlc.encode_frame(f.dest, f.src, f.ctrl, f.info, f.segmented)
        m.nr = 2
        m.reply_i(REF_GET_CLOCK_RESP_APDU)
        m.goodbye()

    m = fakes(script)
    with cl.DlmsClient(m.path, timeout=2) as c:
        assert (c.max_info_tx, c.max_info_rx) == (128, 128)
        assert c.server_max_pdu == 256
        tag, value = c.get(8, "0.0.1.0.0.255", 2)
    m.join()
    assert seen["get"] == REF_GET_CLOCK
    assert tag == axdr.OCTET_STRING
    assert fmt.clock_iso(value) == "2024-05-17T18:34:56"
    # SNRM proposes our sizes; DISC is the reference frame
    snrm = m.frames[0]
    assert hdlc.decode_params(snrm.info)[:2] == (128, 128)
    last = m.frames[-1]
    assert hdlc.encode_frame(last.dest, last.src, last.ctrl, last.info) == REF_DISC


def test_ua_from_wrong_server_is_rejected(fakes):
    def script(m):
        f = m.expect()
        assert hdlc.kind(f.ctrl) == hdlc.K_SNRM
        m.write(m.frame(hdlc.UA, src=hdlc.encode_server_address(5)))

    m = fakes(script)
    c = cl.DlmsClient(m.path, timeout=1)
    with pytest.raises(cl.ProtocolError) as ei:
        c.open()
        try:
            c.link()
        finally:
            c.close()
    m.join()
    assert "server address 5" in str(ei.value) and "expected 1" in str(ei.value)


def test_ua_without_parameters_means_128(fakes):
    def script(m):
        m.expect()
        m.write(REF_UA_BARE)

    m = fakes(script)
    c = cl.DlmsClient(m.path, timeout=1, max_info=512)
    c.open()
    try:
        c.link()
        assert (c.max_info_tx, c.max_info_rx) == (128, 128)
    finally:
        c.close()
    m.join()
    assert hdlc.decode_params(m.frames[0].info)[:2] == (512, 512)


def test_negotiation_takes_minimum(fakes):
    def script(m):
        m.expect()
        m.write(m.frame(hdlc.UA, hdlc.encode_params(1024, 256, 1, 1)))

    m = fakes(script)
    c = cl.DlmsClient(m.path, timeout=1, max_info=512)
    c.open()
    try:
        c.link()
        assert (c.max_info_tx, c.max_info_rx) == (256, 512)
    finally:
        c.close()
    m.join()


def test_timeout_message(fakes):
    m = fakes(lambda m: m.expect())
    c = cl.DlmsClient(m.path, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(cl.LinkTimeout) as ei:
        with c:
            pass
    assert 0.45 <= time.monotonic() - t0 < 3
    assert str(ei.value) == "no answer from meter at server address 1 on %s within 0.5 s" % m.path
    m.join()


def test_bad_fcs_is_dropped_not_accepted(fakes):
    def script(m):
        m.expect()
        bad = bytearray(REF_UA)
        bad[-2] ^= 0x01          # corrupt the FCS
        m.write(bytes(bad))

    m = fakes(script)
    with pytest.raises(cl.LinkTimeout) as ei:
        with cl.DlmsClient(m.path, timeout=0.5):
            pass
    m.join()
    assert "1 bad frame dropped, last: fcs" in str(ei.value)


def test_segmented_response_is_reassembled_with_rr(fakes):
    payload = bytes(range(256))[:200]
    apdu = H("C401C100") + axdr.Writer().octet_string(payload).getvalue()
    rr = {}

    def script(m):
        m.handshake()
        m.expect_i()
        info = hdlc.LLC_RESPONSE + apdu
        m.write(m.frame(hdlc.ctrl_i(m.ns, m.nr), info[:128], segmented=True))
        m.ns += 1
        f = m.expect()
        rr["first"] = hdlc.encode_frame(f.dest, f.src, f.ctrl, f.info)
        m.write(m.frame(hdlc.ctrl_i(m.ns, m.nr), info[128:]))
        m.ns += 1
        m.goodbye()

    m = fakes(script)
    with cl.DlmsClient(m.path, timeout=2) as c:
        assert c.get_raw(1, "0.0.96.1.0.255", 2) == axdr.Writer().octet_string(payload).getvalue()
    m.join()
    assert rr["first"] == REF_RR_51      # RR N(R)=2 after the meter's I-frame N(S)=1


def test_get_block_transfer(fakes):
    value = axdr.Writer().octet_string(bytes(300)).getvalue()
    blocks = [value[:120], value[120:240], value[240:]]
    nexts = []

    def script(m):
        m.handshake()
        req = m.expect_i()
        inv = req[2]
        for i, blk in enumerate(blocks, 1):
            last = 1 if i == len(blocks) else 0
            m.reply_i(bytes([0xC4, 0x02, inv, last]) + i.to_bytes(4, "big") + b"\x00"
                      + axdr.encode_length(len(blk)) + blk)
            if not last:
                req = m.expect_i()
                nexts.append(req)
                inv = req[2]
        m.goodbye()

    m = fakes(script)
    with cl.DlmsClient(m.path, timeout=2) as c:
        assert c.get_raw(7, "0.0.99.98.0.255", 2) == value
    m.join()
    # GET-Request-Next: C0 02 <invoke> <block number acknowledged>
    assert nexts == [H("C002C200000001"), H("C002C300000002")]


def test_segmented_request_waits_for_rr(fakes):
    big = axdr.Writer().octet_string(bytes(range(250)) + bytes(50)).getvalue()
    got = {}

    def script(m):
        m.handshake()
        parts = []
        while True:
            f = m.expect()
            assert hdlc.kind(f.ctrl) == hdlc.K_I
            assert len(f.info) <= 128
            parts.append(f.info)
            if not f.segmented:
                break
            m.write(m.frame(hdlc.ctrl_rr(m.nr)))
        got["apdu"] = b"".join(parts)
        got["n"] = len(parts)
        m.reply_i(H("C501C100"))
        m.goodbye()

    m = fakes(script)
    with cl.DlmsClient(m.path, timeout=2) as c:
        c.set(1, "0.0.96.1.0.255", 2, big)
    m.join()
    expect = hdlc.LLC_REQUEST + H("C101C100010000600100FF0200") + big
    assert got["apdu"] == expect
    assert got["n"] == 3


def test_aare_reject_without_user_information(fakes):
    # real L+G style reject: rejected-permanent, authentication-failure, no user-information
    reject = H("6117A109060760857405080101A203020101A305A10302010D")

    def script(m):
        m.handshake(aare=reject)
        f = m.expect()
        assert hdlc.kind(f.ctrl) == hdlc.K_DISC
        m.write(m.frame(hdlc.UA))

    m = fakes(script, client=CLIENT1)
    with pytest.raises(cl.AssociationRejected) as ei:
        with cl.DlmsClient(m.path, client_sap=1, password="wrong", timeout=2):
            pass
    m.join()
    assert ei.value.diagnostic == 13
    assert "authentication-failure" in str(ei.value)


def test_echo_of_own_frames_is_ignored_when_addresses_coincide(fakes):
    """Client 1 and server 1 both encode as 0x03: an optical head echoing our frames must not
    be mistaken for the meter's answers."""
    def script(m):
        m.handshake(aare=REF_AARE_ACCEPT[11:-3])
        m.expect_i()
        m.reply_i(H("C401C1000600000539"))
        m.goodbye()

    m = fakes(script, client=CLIENT1, echo=True)
    with cl.DlmsClient(m.path, client_sap=1, password="12345678", timeout=2) as c:
        assert c.get(3, "1.0.1.8.0.255", 2) == (axdr.DOUBLE_LONG_UNSIGNED, 1337)
    m.join()


@pytest.mark.parametrize("reply,exc,text", [
    ("C401C10103", cl.AccessDenied, "read-write-denied"),
    ("C401C10104", cl.ObjectUndefined, "object-undefined"),
    ("D80102", cl.ProtocolError, "service-not-allowed"),
    ("C4 01 C5 00 06 00 00 00 01", cl.ProtocolError, "invoke-id"),
])
def test_error_replies_map_to_exceptions(fakes, reply, exc, text):
    def script(m):
        m.handshake()
        m.expect_i()
        m.reply_i(H(reply))
        m.goodbye()

    m = fakes(script)
    with cl.DlmsClient(m.path, timeout=2) as c:
        with pytest.raises(exc) as ei:
            c.get(3, "1.0.1.8.0.255", 2)
    m.join()
    assert text in str(ei.value)
    assert "\n" not in str(ei.value)


def test_invoke_id_wraps_mod_16():
    c = cl.DlmsClient("/dev/null")
    ids = [c._next_invoke() for _ in range(17)]
    assert ids[0] == 0xC1 and ids[14] == 0xCF and ids[15] == 0xC0 and ids[16] == 0xC1


# --------------------------------------------------------------------------- CLI


def test_parse_rupees():
    assert fmt.parse_rupees("500.00") == 50000
    assert fmt.parse_rupees("0.1") == 10
    assert fmt.parse_rupees("0.01") == 1
    assert fmt.parse_rupees("7") == 700
    assert fmt.parse_rupees("21474836.47") == 2 ** 31 - 1
    for bad in ("1.005", "-5", "0", "0.00", "abc", "1e3", "", "1.2.3", "21474836.48", "nan"):
        with pytest.raises(ValueError):
            fmt.parse_rupees(bad)


def test_money_and_energy_rendering():
    assert fmt.rupees(50000) == "₹500.00"
    assert fmt.rupees(-1205) == "-₹12.05"
    assert fmt.rupees(123456789) == "₹12,34,567.89"
    assert fmt.kwh(12345) == "12.345 kWh"
    assert fmt.kwh(5) == "0.005 kWh"


def test_encode_typed_values():
    assert fmt.encode_typed("long-unsigned:42") == H("12002A")
    assert fmt.encode_typed("double-long:5000") == H("0500001388")
    assert fmt.encode_typed("octet-string:0102ff") == H("09030102FF")
    assert fmt.encode_typed("enum:1") == H("1601")
    assert fmt.encode_typed("boolean:true") == H("0301")
    assert fmt.encode_typed("integer:0") == H("0F00")
    assert fmt.encode_typed("obis:1.0.1.8.0.255") == H("09060100010800FF")
    assert fmt.encode_typed("raw:0202120001161E") == H("0202120001161E")
    assert fmt.encode_typed("date-time:2024-05-17T18:34:56") == H("09 0C 07 E8 05 11 05 12 22 38 00 80 00 00")
    for bad in ("long-unsigned:70000", "integer:128", "unsigned:-1", "octet-string:zz", "foo:1",
                "42", "raw:0203", "boolean:maybe"):
        with pytest.raises(ValueError):
            fmt.encode_typed(bad)


def test_clock_iso_deviation():
    b = axdr.datetime_bytes(2026, 1, 1, 10, 0, 0, 0, -330)
    assert fmt.clock_iso(b) == "2026-01-01T10:00:00+05:30"
    assert fmt.parse_iso_datetime("2026-01-01T10:00:00+05:30") == b


def _credit_meter(credit, added):
    """Fake management-association meter for `credit add`: answers GET credit, the
    update_amount ACTION (recording its parameter) and GET available credit."""

    def script(m):
        m.handshake(aare=REF_AARE_ACCEPT[11:-3])
        value = credit
        while True:
            req = m.expect_i()
            if req[0] == 0x62:
                m.reply_i(H("6303800100"))
                break
            inv = req[2]
            if req[0] == 0xC0:
                m.reply_i(bytes([0xC4, 0x01, inv, 0x00]) + axdr.Writer().double_long(value).getvalue())
            elif req[0] == 0xC3:
                assert req[3:13] == H("00700000130A00FF0101")
                added.append(req[13:])
                value += int.from_bytes(req[14:18], "big", signed=True)
                m.reply_i(bytes([0xC7, 0x01, inv, 0x00, 0x00]))
        f = m.expect()
        assert hdlc.kind(f.ctrl) == hdlc.K_DISC
        m.write(m.frame(hdlc.UA))

    return script


@pytest.mark.parametrize("amount,paise", [("500.00", 50000), ("0.1", 10), ("12", 1200)])
def test_cli_credit_add_sends_integer_paise(fakes, amount, paise):
    added = []
    m = fakes(_credit_meter(1000, added), client=CLIENT1)
    r = CliRunner().invoke(meterctl, ["credit", "add", "--port", m.path, "--amount", amount,
                                      "--password", "12345678", "--json"])
    m.join()
    assert r.exit_code == 0, r.output
    assert added == [axdr.Writer().double_long(paise).getvalue()]
    import json
    out = json.loads(r.output)
    assert out["credit_before_paise"] == 1000
    assert out["credit_after_paise"] == 1000 + paise


@pytest.mark.parametrize("amount", ["1.005", "-5", "0", "ten"])
def test_cli_credit_add_rejects_bad_amounts(amount):
    r = CliRunner().invoke(meterctl, ["credit", "add", "--port", "/dev/null", "--password", "x",
                                      "--amount=%s" % amount])
    assert r.exit_code == 2, r.output
    assert "amount" in r.output and "Traceback" not in r.output


def test_cli_write_needs_password(monkeypatch):
    monkeypatch.delenv("METERCTL_PASSWORD", raising=False)
    r = CliRunner().invoke(meterctl, ["relay", "disconnect", "--port", "/dev/null"])
    assert r.exit_code == 2
    assert "password" in r.output


def test_cli_timeout_exit_code_3(fakes):
    m = fakes(lambda m: m.expect())
    r = CliRunner().invoke(meterctl, ["read", "--port", m.path, "--timeout", "0.3"])
    m.join()
    assert r.exit_code == 3
    assert r.output.strip() == ("meterctl: error: no answer from meter at server address 1 on %s "
                                "within 0.3 s" % m.path)


def test_cli_missing_port_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("METERCTL_PORT", raising=False)
    r = CliRunner().invoke(meterctl, ["read"])
    assert r.exit_code == 2 and "--port" in r.output


def test_cli_unopenable_port_is_one_line(tmp_path):
    r = CliRunner().invoke(meterctl, ["read", "--port", str(tmp_path / "nope")])
    assert r.exit_code == 2                    # a bad --port is fixed on the command line
    assert r.output.strip() == "meterctl: error: cannot open %s: No such file or directory" % (tmp_path / "nope")
    assert len(r.output.strip().splitlines()) == 1


def test_cli_get_decodes_and_raw(fakes):
    def script(m):
        for _ in range(2):
            m.handshake()
            req = m.expect_i()
            assert req[3:13] == H("00030100010800FF0200")
            m.reply_i(H("C401") + req[2:3] + H("000600003039"))
            m.goodbye()

    m = fakes(script)
    r1 = CliRunner().invoke(meterctl, ["get", "1.0.1.8.0.255", "2", "--port", m.path])
    r2 = CliRunner().invoke(meterctl, ["get", "1-0:1.8.0.255", "2", "--class", "3", "--raw",
                                       "--port", m.path])
    m.join()
    assert r1.exit_code == 0, r1.output
    assert r1.output.strip() == "double-long-unsigned 12345"
    assert r2.output.strip() == "06 00 00 30 39"


@pytest.mark.parametrize("args", [[], ["read"], ["credit"], ["credit", "add"], ["relay"], ["get"],
                                  ["set"], ["action"], ["emulate"]])
def test_cli_help_exits_0_with_example(args):
    r = CliRunner().invoke(meterctl, args + ["--help"])
    assert r.exit_code == 0, r.output
    assert "meterctl" in r.output and ("Example" in r.output or "Usage" in r.output)


def test_aare_initiate_error_is_readable(fakes):
    # AARE rejected with a ConfirmedServiceError initiateError/dlms-version-too-low in user-info
    aare = H("611F A109060760857405080101 A203020101 A305A103020101 BE06 0404 0E010601".replace(" ", ""))

    def script(m):
        m.handshake(aare=aare)
        f = m.expect()
        assert hdlc.kind(f.ctrl) == hdlc.K_DISC
        m.write(m.frame(hdlc.UA))

    m = fakes(script)
    with pytest.raises(cl.AssociationRejected) as ei:
        with cl.DlmsClient(m.path, timeout=2):
            pass
    m.join()
    assert str(ei.value) == ("association rejected by the meter: initiate error dlms-version-too-low"
                             " (no-reason-given)")


def test_release_timeout_does_not_spoil_a_good_session(fakes):
    """Meters that ignore RLRQ: the context manager still disconnects and does not raise."""
    def script(m):
        m.handshake()
        m.expect_i()
        m.reply_i(H("C401C1000600000539"))
        assert m.expect_i()[0] == 0x62      # RLRQ: no answer
        f = m.expect()
        assert hdlc.kind(f.ctrl) == hdlc.K_RR   # the client polls once; still no answer
        f = m.expect()
        assert hdlc.kind(f.ctrl) == hdlc.K_DISC
        m.write(m.frame(hdlc.UA))

    m = fakes(script)
    with cl.DlmsClient(m.path, timeout=0.5) as c:
        assert c.get(3, "1.0.1.8.0.255", 2)[1] == 1337
    m.join()


def test_cli_server_above_127_needs_physical():
    r = CliRunner().invoke(meterctl, ["read", "--port", "/dev/null", "--server", "300"])
    assert r.exit_code == 2 and "--physical" in r.output


def test_lost_request_is_sent_again_after_rr_poll(fakes):
    """The meter never got our GET: its RR N(R) says so; the client repeats the I-frame."""
    seen = []

    def script(m):
        m.handshake()
        f = m.expect()                      # lost on the line: the meter saw nothing
        m.nr = (m.nr - 1) & 7
        seen.append(f)
        poll = m.expect()
        assert hdlc.kind(poll.ctrl) == hdlc.K_RR and hdlc.nr(poll.ctrl) == m.ns
        m.write(m.frame(hdlc.ctrl_rr(m.nr)))
        again = m.expect()
        seen.append(again)
        m.reply_i(H("C401") + again.info[5:6] + H("000600000539"))
        m.goodbye()

    m = fakes(script)
    with cl.DlmsClient(m.path, timeout=1.0) as c:
        assert c.get(3, "1.0.1.8.0.255", 2)[1] == 1337
    m.join()
    assert seen[0].ctrl == seen[1].ctrl and seen[0].info == seen[1].info


def test_lost_response_is_recovered_by_rr_poll(fakes):
    """The meter's answer was corrupted on the line: the RR poll (N(R) unchanged) makes the
    meter send it again, and the client takes it once."""
    def script(m):
        m.handshake()
        req = m.expect_i()
        good = m.frame(hdlc.ctrl_i(m.ns, m.nr), hdlc.LLC_RESPONSE + H("C401") + req[2:3] + H("000600000539"))
        m.ns += 1
        bad = bytearray(good)
        bad[-3] ^= 0xFF
        m.write(bytes(bad))
        poll = m.expect()
        assert hdlc.kind(poll.ctrl) == hdlc.K_RR and hdlc.nr(poll.ctrl) == m.ns - 1
        m.write(good)
        m.goodbye()

    m = fakes(script)
    with cl.DlmsClient(m.path, timeout=1.0) as c:
        assert c.get(3, "1.0.1.8.0.255", 2)[1] == 1337
    m.join()


def test_silent_meter_after_poll_times_out(fakes):
    def script(m):
        m.handshake()
        m.expect_i()
        assert hdlc.kind(m.expect().ctrl) == hdlc.K_RR
        assert hdlc.kind(m.expect().ctrl) == hdlc.K_DISC  # teardown after a failure: DISC only

    m = fakes(script)
    c = cl.DlmsClient(m.path, timeout=0.3)
    with pytest.raises(cl.LinkTimeout):
        with c:
            c.get(3, "1.0.1.8.0.255", 2)
    m.join()


def _object_server(objects, actions=None, sets=None, sessions=1, client=CLIENT16):
    """Script serving GET/SET/ACTION from ``objects`` {(class, obis-hex, attr): A-XDR bytes or
    DAR int}; ``actions`` {(class, obis-hex, method): fn(params) -> None}; ``sets`` collects
    (class, obis-hex, attr, value) of SET requests."""
    def script(m):
        for _ in range(sessions):
            m.handshake(aare=None if client == CLIENT16 else REF_AARE_ACCEPT[11:-3])
            while True:
                req = m.expect_i()
                if req[0] == 0x62:
                    m.reply_i(H("6303800100"))
                    break
                inv = req[2:3]
                key = (int.from_bytes(req[3:5], "big"), req[5:11].hex(), req[11])
                if req[0] == 0xC0:
                    v = objects.get(key, 4)
                    m.reply_i(H("C401") + inv + (bytes([1, v]) if isinstance(v, int) else b"\x00" + v))
                elif req[0] == 0xC1:
                    sets.append(key + (req[13:],))
                    m.reply_i(H("C501") + inv + b"\x00")
                elif req[0] == 0xC3:
                    r = actions[key](req[13:] if req[12] else None)      # None, or an action-result
                    m.reply_i(H("C701") + inv + bytes([r or 0]) + b"\x00")
            f = m.expect()
            assert hdlc.kind(f.ctrl) == hdlc.K_DISC
            m.write(m.frame(hdlc.UA))
    return script


def _meter_objects(relay=True):
    w = axdr.Writer
    return {
        (3, "0100010800ff", 2): w().double_long_unsigned(123456).getvalue(),
        (3, "0100010800ff", 3): H("02020F00161E"),
        (111, "0000130000ff", 5): w().double_long(-250).getvalue(),
        (111, "0000130000ff", 2): H("020216021602"),
        (112, "0000130a00ff", 2): w().double_long(-250).getvalue(),
        (70, "000060030aff", 2): w().boolean(relay).getvalue(),
        (70, "000060030aff", 3): w().enum(1 if relay else 0).getvalue(),
        (70, "000060030aff", 4): w().enum(5).getvalue(),
        (8, "0000010000ff", 2): w().octet_string(axdr.datetime_bytes(2026, 1, 1, 10, 0, 0, 0, -330)).getvalue(),
    }


def test_cli_read_json_and_table(fakes):
    m = fakes(_object_server(_meter_objects(), sessions=2))
    r = CliRunner().invoke(meterctl, ["read", "--port", m.path, "--json"])
    r2 = CliRunner().invoke(meterctl, ["read", "--port", m.path])
    m.join()
    assert r.exit_code == 0, r.output
    import json
    s = json.loads(r.output)
    assert s["energy_import_wh"] == 123456
    assert s["available_credit_paise"] == -250 and s["credit_paise"] == -250
    assert s["relay_output_state"] is True and s["control_state"] == "connected"
    assert s["control_mode"] == 5
    assert s["payment_mode"] == "prepayment" and s["account_status"] == "active"
    assert s["clock"] == "2026-01-01T10:00:00+05:30"
    assert r2.exit_code == 0, r2.output
    for text in ("123.456 kWh (123456 Wh)", "-₹2.50 (-250 paise)", "connected (supply on)",
                 "2026-01-01T10:00:00+05:30", "prepayment (active)"):
        assert text in r2.output


def test_read_summary_scaler_and_missing_objects(fakes):
    """Other makers' meters: energy in kWh with scaler 3 (unit 30 Wh, scaler applies), no
    IC 111/112 (object-undefined) -> None, not an error."""
    objs = {
        (3, "0100010800ff", 2): axdr.Writer().double_long_unsigned(42).getvalue(),
        (3, "0100010800ff", 3): H("02020F03161E"),
        (70, "000060030aff", 2): 3,     # read-write-denied for this client
    }
    m = fakes(_object_server(objs))
    with cl.DlmsClient(m.path, timeout=2) as c:
        s = cl.read_summary(c)
    m.join()
    assert s["energy_import_wh"] == 42000
    assert s["credit_paise"] is None and s["relay_output_state"] is None and s["clock"] is None


def test_cli_relay_and_action_and_set(fakes):
    calls = []
    sets = []
    acts = {(70, "000060030aff", 1): calls.append, (112, "0000130a00ff", 1): calls.append}
    m = fakes(_object_server(_meter_objects(relay=False), acts, sets, sessions=3, client=CLIENT1),
              client=CLIENT1)
    r1 = CliRunner().invoke(meterctl, ["relay", "disconnect", "-p", m.path, "--password", "12345678"])
    r2 = CliRunner().invoke(meterctl, ["action", "0.0.19.10.0.255", "1", "--param", "double-long:5000",
                                       "-p", m.path, "--password", "12345678"])
    r3 = CliRunner().invoke(meterctl, ["set", "0.0.1.0.0.255", "2", "--value",
                                       "date-time:2024-05-17T18:34:56", "-p", m.path,
                                       "--password", "12345678", "--json"])
    m.join()
    assert r1.exit_code == 0, r1.output
    assert "Relay: disconnected (supply off)" in r1.output
    assert r2.exit_code == 0 and r3.exit_code == 0, r2.output + r3.output
    # remote_disconnect(integer 0); update_amount(double-long 5000) as in the reference table
    assert calls == [H("0F00"), H("0500001388")]
    assert sets == [(8, "0000010000ff", 2, H("09 0C 07 E8 05 11 05 12 22 38 00 80 00 00"))]


def test_cli_trace_dumps_frames(fakes):
    m = fakes(_object_server(_meter_objects()))
    r = CliRunner().invoke(meterctl, ["get", "0.0.1.0.0.255", "2", "-p", m.path, "--trace"])
    m.join()
    assert r.exit_code == 0, r.output
    err = r.stderr
    assert "TX -> 7E A0" in err and "RX <- 7E A0 20 21 03 73" in err
    assert "2024" not in r.stdout and "2026-01-01T10:00:00+05:30" in r.stdout


def test_aare_with_extra_tags_is_accepted(fakes):
    """AAREs from other makers carry responding-AP-title, responder-ACSE-requirements,
    mechanism-name and a StoC challenge; none of that may stop an LLS/no-security client."""
    body = (H("A109060760857405080101 A203020100 A305A103020100".replace(" ", ""))
            + H("A40A0408") + b"LGZ12345"
            + H("88020780") + H("890760857405080201")
            + H("AA0A8008") + b"P6wRJ21F"
            + H("BE10040E0800065F1F040000101D00800007"))
    aare = bytes([0x61, len(body)]) + body

    def script(m):
        m.handshake(aare=aare)
        m.goodbye()

    m = fakes(script)
    with cl.DlmsClient(m.path, timeout=2) as c:
        assert c.server_max_pdu == 128
    m.join()


def test_refused_request_still_releases(fakes):
    def script(m):
        m.handshake()
        m.expect_i()
        m.reply_i(H("C401C10103"))
        m.goodbye()                          # RLRQ/RLRE then DISC/UA, not a bare DISC

    m = fakes(script)
    with pytest.raises(cl.AccessDenied):
        with cl.DlmsClient(m.path, timeout=2) as c:
            c.get(70, "0.0.96.3.10.255", 2)
    m.join()


@pytest.mark.hil
def test_meterctl_emulate_serves_the_firmware_until_ctrl_c(tmp_path):
    """`meterctl emulate` prints a port that `meterctl read` answers on; Ctrl-C stops it
    cleanly (exit 0, no traceback)."""
    import json
    import re
    import signal
    import subprocess
    import sys

    cli = [sys.executable, "-c", "from host_tools.meterctl.cli import main; main()"]
    p = subprocess.Popen(cli + ["emulate", "--state", str(tmp_path), "--load", "1000"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = None
        lines = []
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            mo = re.match(r"DLMS serial port: (\S+)", line)
            if mo:
                port = mo.group(1)
        assert port, "".join(lines)
        r = subprocess.run(cli + ["read", "--port", port, "--json"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        assert s["payment_mode"] == "prepayment" and s["relay_output_state"] is False
        board = json.loads((tmp_path / "board.json").read_text())
        assert board["dlms"] != port        # we talk to the host end of the link
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
    assert p.returncode == 0, out
    assert "Stopping the emulated meter" in out and "Traceback" not in out


@pytest.mark.parametrize("physical,answer,ok", [
    (17, H("02 23"), True),                     # 2-byte form, dlms-cosem #74
    (0x1234, H("00 02 48 69"), True),           # 4-byte form from the reference notes
    (17, H("00 02 00 23"), True),               # same values, 4-byte form: accepted
    (17, H("02 25"), False),                    # physical 18 answered: refused
    (17, H("03"), False),                       # logical only: refused
])
def test_physical_server_addresses(fakes, physical, answer, ok):
    def script(m):
        f = m.expect()
        assert f.dest == hdlc.encode_server_address(1, physical)
        m.write(m.frame(hdlc.UA, src=answer))

    m = fakes(script)
    c = cl.DlmsClient(m.path, server_physical=physical, timeout=1)
    c.open()
    try:
        if ok:
            c.link()
            assert c.connected
        else:
            with pytest.raises(cl.ProtocolError) as ei:
                c.link()
            assert "expected 1 (physical %d)" % physical in str(ei.value)
    finally:
        c.close()
    m.join()


def test_cli_get_with_selective_access(fakes):
    entry = H("0204 0600000001 060000000A 120001 120000".replace(" ", ""))
    seen = []

    def script(m):
        m.handshake()
        req = m.expect_i()
        seen.append(req)
        m.reply_i(H("C401") + req[2:3] + H("000100"))
        m.goodbye()

    m = fakes(script)
    r = CliRunner().invoke(meterctl, ["get", "0.0.99.98.0.255", "2", "--class", "7", "--selector", "2",
                                      "--access", "raw:" + entry.hex(), "-p", m.path])
    m.join()
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "array[0]"
    # GET-Request-Normal with access-selection present: 01 <selector> <parameters>
    assert seen[0][3:] == H("0007 0000 6362 00FF 02".replace(" ", "")) + H("0102") + entry


def test_unsolicited_ui_frame_is_skipped(fakes):
    """A meter may push a data-notification in a UI frame at any time; it is not the answer."""
    def script(m):
        m.handshake()
        req = m.expect_i()
        m.write(m.frame(hdlc.UI, hdlc.LLC_RESPONSE + H("0F000000010000")))
        m.reply_i(H("C401") + req[2:3] + H("000600000539"))
        m.goodbye()

    m = fakes(script)
    with cl.DlmsClient(m.path, timeout=2) as c:
        assert c.get(3, "1.0.1.8.0.255", 2)[1] == 1337
    m.join()


def test_describe_hints_only_plausible_dates():
    clock = (axdr.OCTET_STRING, H("07 E8 05 11 05 12 22 38 00 80 00 00"))
    assert fmt.describe(clock).endswith("(2024-05-17T18:34:56)")
    assert fmt.to_jsonable(clock)["iso"] == "2024-05-17T18:34:56"
    junk = (axdr.OCTET_STRING, H("01 02 03 40 50 60 70 80 90 A0 B0 C0"))
    assert "(" not in fmt.describe(junk) and "iso" not in fmt.to_jsonable(junk)
    assert fmt.describe((axdr.OCTET_STRING, H("0100010800FF"))).endswith("(OBIS 1.0.1.8.0.255)")
    nested = (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 8), (axdr.BIT_STRING, (4, b"\xA0"))])
    assert fmt.describe(nested) == "structure[2]\n  long-unsigned 8\n  bit-string 1010"
    assert fmt.to_jsonable(nested)["value"][1] == {"type": "bit-string", "value": "1010"}


REF_AARQ_LLS_17 = H("7E A0 44 03 23 10 56 B7 E6 E6 00 60 36 A1 09 06 07 60 85 74 05 08 01 01 8A 02 07 80"
                    " 8B 07 60 85 74 05 08 02 01 AC 0A 80 08 31 32 33 34 35 36 37 38"
                    " BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 40 1E 5D FF FF 8B 3C 7E")
REF_AARQ_NONE_16 = H("7E A0 2B 03 21 10 FB AF E6 E6 00 60 1D A1 09 06 07 60 85 74 05 08 01 01 BE 10 04 0E"
                     " 01 00 00 00 06 5F 1F 04 00 40 1E 5D FF FF 91 23 7E")


@pytest.mark.parametrize("sap,password,ref", [(17, "12345678", REF_AARQ_LLS_17), (16, None, REF_AARQ_NONE_16)])
def test_aarq_frames_match_the_reference(fakes, sap, password, ref):
    """The AARQ I-frame is byte-for-byte the one gurux sends (reference notes §2)."""
    got = []

    def script(m):
        m.expect()
        m.ua()
        f = m.expect()
        got.append(hdlc.encode_frame(f.dest, f.src, f.ctrl, f.info, f.segmented))
        m.reply_i(REF_AARE_ACCEPT[11:-3])
        m.goodbye()

    client = hdlc.encode_client_address(sap)
    m = fakes(script, client=client)
    with cl.DlmsClient(m.path, client_sap=sap, password=password, timeout=2):
        pass
    m.join()
    assert got == [ref]


def test_cli_max_pdu_is_proposed_in_the_aarq(fakes):
    seen = []

    def script(m):
        m.expect()
        m.write(REF_UA)
        req = m.expect_i()
        seen.append(req)
        m.write(REF_AARE_ACCEPT)
        m.ns = 1
        m.expect_i()
        m.reply_i(H("C401C1000600000539"))
        m.goodbye()

    m = fakes(script)
    r = CliRunner().invoke(meterctl, ["get", "1.0.1.8.0.255", "2", "-p", m.path, "--max-pdu", "256"])
    m.join()
    assert r.exit_code == 0, r.output
    # InitiateRequest ends with client-max-receive-pdu-size (u16)
    assert seen[0][-2:] == H("0100") and seen[0][-9:-5] == H("5F1F0400")


def test_cli_relay_json_keys_are_the_same_when_not_applied(fakes):
    # new-user pass (session 12): a refused relay command's JSON had control_state as an int and no
    # "operation"; applied: a word. This meter refuses the disconnect (read-write-denied).
    acts = {(70, "000060030aff", 1): lambda p: 3}
    m = fakes(_object_server(_meter_objects(relay=True), acts, [], sessions=1, client=CLIENT1),
              client=CLIENT1)
    r = CliRunner().invoke(meterctl, ["relay", "disconnect", "-p", m.path, "--password", "12345678", "--json"])
    m.join()
    import json
    s = json.loads(r.stdout)
    assert r.exit_code == 1 and s["outcome"] == "not applied", r.output
    assert s["operation"] == "disconnect" and s["control_state"] == "connected" and s["control_state_code"] == 1


def _unit_meter(currency, credit):
    """_meter_objects with IC 111 attribute 15 ``currency`` ((name, scale, unit), or None: not
    served) and both credit registers at ``credit``; an update_amount ACTION adds to them."""
    objs = _meter_objects()
    w = axdr.Writer
    if currency is not None:
        name, scale, unit = currency
        objs[(111, "0000130000ff", 15)] = w().structure(3).utf8_string(name).integer(scale).enum(unit).getvalue()
    sent = []

    def update_amount(param):
        sent.append(param)
        value = credit + sum(int.from_bytes(p[1:5], "big", signed=True) for p in sent)
        for key in ((111, "0000130000ff", 5), (112, "0000130a00ff", 2)):
            objs[key] = w().double_long(value).getvalue()

    for key in ((111, "0000130000ff", 5), (112, "0000130a00ff", 2)):
        objs[key] = w().double_long(credit).getvalue()
    return objs, {(112, "0000130a00ff", 1): update_amount}, sent


KWH_METER, PAISE_METER = ("kWh", -1, 1), ("INR", -2, 2)


def test_cli_read_shows_the_credit_in_the_meters_unit(fakes):
    # attack pass (session 13): a 0.1 kWh register read "₹3.25 (325 paise)"
    import json
    m = fakes(_object_server(_unit_meter(KWH_METER, 325)[0], sessions=2))
    r = CliRunner().invoke(meterctl, ["read", "--port", m.path])
    j = json.loads(CliRunner().invoke(meterctl, ["read", "--port", m.path, "--json"]).stdout)
    m.join()
    assert r.exit_code == 0, r.output
    assert "32.5 kWh (325 x 0.1 kWh)" in r.output and "₹" not in r.output and "paise" not in r.output
    assert (j["credit_unit"], j["credit_unit_note"]) == ("0.1 kWh", None)
    assert j["available_credit"] == j["credit"] == 325
    assert j["available_credit_paise"] is None and j["credit_paise"] is None


@pytest.mark.parametrize("currency,note", [(PAISE_METER, False), (None, True), (("INR", -2, 1), True)])
def test_cli_read_paise_meter_and_the_default(fakes, currency, note):
    """A meter stating paise; one not serving attribute 15 (other makers) or stating something
    else: paise, the documented default, said once."""
    import json
    m = fakes(_object_server(_unit_meter(currency, 500)[0], sessions=2))
    r = CliRunner().invoke(meterctl, ["read", "--port", m.path])
    j = json.loads(CliRunner().invoke(meterctl, ["read", "--port", m.path, "--json"]).stdout)
    m.join()
    assert r.exit_code == 0, r.output
    assert r.output.count("₹5.00 (500 paise)") == 2
    assert r.output.count("documented default") == int(note)
    assert j["credit_unit"] == "paise" and j["available_credit_paise"] == j["credit_paise"] == 500
    assert (j["credit_unit_note"] is not None) == note


def test_cli_credit_add_kwh_on_an_energy_meter(fakes):
    import json
    objs, acts, sent = _unit_meter(KWH_METER, 100)
    m = fakes(_object_server(objs, acts, sessions=2, client=CLIENT1), client=CLIENT1)
    r = CliRunner().invoke(meterctl, ["credit", "add", "-p", m.path, "--password", "12345678", "--kwh", "32.5"])
    j = json.loads(CliRunner().invoke(meterctl, ["credit", "add", "-p", m.path, "--password", "12345678",
                                                 "--kwh", "0.1", "--json"]).stdout)
    m.join()
    assert r.exit_code == 0, r.output
    assert sent == [axdr.Writer().double_long(325).getvalue(), axdr.Writer().double_long(1).getvalue()]
    assert "Added 32.5 kWh (325 x 0.1 kWh)" in r.output and "Credit: 10.0 kWh -> 42.5 kWh" in r.output
    assert "₹" not in r.output and "paise" not in r.output
    assert (j["amount"], j["credit_unit"], j["credit_before"], j["credit_after"]) == (1, "0.1 kWh", 425, 426)
    assert j["amount_paise"] is None and j["credit_after_paise"] is None


@pytest.mark.parametrize("currency,args,says", [
    (KWH_METER, ["--amount", "5.00"], "counts its credit in 0.1 kWh"),
    (PAISE_METER, ["--kwh", "5"], "counts its credit in paise"),
    (None, ["--kwh", "5"], "does not serve IC 111 attribute 15"),
])
def test_cli_credit_add_in_the_wrong_unit_is_refused_before_sending(fakes, currency, args, says):
    # attack pass (session 13): --amount 5.00 sent 500 to a 0.1 kWh register (50.0 kWh, worth ₹325)
    objs, acts, sent = _unit_meter(currency, 100)
    m = fakes(_object_server(objs, acts, client=CLIENT1), client=CLIENT1)
    r = CliRunner().invoke(meterctl, ["credit", "add", "-p", m.path, "--password", "12345678"] + args)
    m.join()
    assert r.exit_code == 2 and sent == [], r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("meterctl: error: meter on this port counts"), r.stderr
    assert says in lines[0] and "nothing was sent" in lines[0]
    assert ("--kwh KWH" if currency == KWH_METER else "--amount RUPEES") in lines[0]


def test_cli_credit_add_energy_amounts():
    from host_tools import creditunit
    assert creditunit.parse_kwh("32.5") == 325 and creditunit.parse_kwh("50 kWh") == 500
    for bad in ("0", "1.05", "-1", "ten"):
        with pytest.raises(ValueError):
            creditunit.parse_kwh(bad)
    for args in ([], ["--amount", "5", "--kwh", "5"]):
        r = CliRunner().invoke(meterctl, ["credit", "add", "-p", "/dev/null", "--password", "x"] + args)
        assert r.exit_code == 2 and r.stderr.startswith("meterctl: error: give the amount as"), r.output
    r = CliRunner().invoke(meterctl, ["credit", "add", "-p", "/dev/null", "--password", "x", "--kwh", "2000"])
    assert r.exit_code == 2 and "--kwh 2,000.0 kWh is above 1,500.0 kWh: add --yes" in r.stderr, r.output


def test_cli_credit_add_says_nothing_was_sent_when_the_link_fails_before_sending(fakes):
    # new-user pass (session 13): a meter that went to disconnected mode before the top-up was
    # sent gave "meter is in disconnected mode (DM): link lost", not whether it was applied
    def script(m):
        m.handshake(aare=REF_AARE_ACCEPT[11:-3])
        m.expect_i()                                # the evidence read: the meter drops the link
        m.write(m.frame(hdlc.DM))

    m = fakes(script, client=CLIENT1)
    r = CliRunner().invoke(meterctl, ["credit", "add", "--port", m.path, "--amount", "5",
                                      "--password", "12345678"])
    m.join()
    assert r.exit_code == 1, r.output
    assert "(DM)" in r.output and "no change was sent" in r.output, r.output
