"""DLMS/COSEM client over a serial port: HDLC (IEC 62056-46) + LN referencing (IEC 62056-5-3).

A bench tool that talks to any DLMS meter on a UART/optical head, not only ours. It is lenient
about what meters send (a UA without parameters means 128/128/1/1; an AARE with tags we do not
know; an LLC header missing) and strict about what it checks (the responding server address, the
HCS/FCS, N(S)/N(R), the invoke-id)::

    with DlmsClient("/dev/ttyUSB0", client_sap=1, password="12345678") as c:
        tag, wh = c.get(3, "1.0.1.8.0.255", 2)
        c.action(112, "0.0.19.10.0.255", 1, axdr.Writer().double_long(50000).getvalue())

Public API
- ``DlmsClient(port, baud=9600, client_sap=16, server_logical=1, server_physical=None,
  password=None, timeout=3.0, max_info=128, trace=None, serial_port=None, retries=1,
  max_pdu=0xFFFF)``:
  ``open()``/``close()``, ``connect()`` (SNRM/UA then AARQ/AARE), ``get``/``get_raw``/``set``/
  ``action``, ``release()`` (RLRQ/RLRE), ``disconnect()`` (DISC -> UA/DM); a context manager
  that opens+connects and releases+disconnects+closes.
- Errors: ``DlmsError`` and its subclasses, each with a one-line readable ``str()``:
  ``LinkTimeout``, ``AssociationRejected``, ``DataAccessError`` (``AccessDenied``,
  ``ObjectUndefined``), ``ProtocolError``, ``PortError``.
- ``read_summary(client) -> dict``: the prepaid summary (energy, credit, relay, clock) from the
  object model in docs/CONTRACTS.md.
"""

import time

from protocol import apdu_client as apdu
from protocol import hdlc_client as hdlc
from protocol import axdr_client as axdr
from protocol import obis

# Data-access-result names (IEC 62056-6-2 / Blue Book "Data-Access-Result").
DAR_NAMES = {
    0: "success",
    1: "hardware-fault",
    2: "temporary-failure",
    3: "read-write-denied",
    4: "object-undefined",
    9: "object-class-inconsistent",
    11: "object-unavailable",
    12: "type-unmatched",
    13: "scope-of-access-violated",
    14: "data-block-unavailable",
    15: "long-get-aborted",
    16: "no-long-get-in-progress",
    17: "long-set-aborted",
    18: "no-long-set-in-progress",
    19: "data-block-number-invalid",
    250: "other-reason",
}

# ACSE associate-source-diagnostic (acse-service-user), IEC 62056-5-3 §9.
AARE_DIAG_NAMES = {
    0: "null",
    1: "no-reason-given",
    2: "application-context-name-not-supported",
    3: "calling-AP-title-not-recognized",
    4: "calling-AP-invocation-identifier-not-recognized",
    5: "calling-AE-qualifier-not-recognized",
    6: "calling-AE-invocation-identifier-not-recognized",
    7: "called-AP-title-not-recognized",
    8: "called-AP-invocation-identifier-not-recognized",
    9: "called-AE-qualifier-not-recognized",
    10: "called-AE-invocation-identifier-not-recognized",
    11: "authentication-mechanism-name-not-recognised",
    12: "authentication-mechanism-name-required",
    13: "authentication-failure",
    14: "authentication-required",
}

# ExceptionResponse (IEC 62056-5-3 §8): state-error / service-error.
_STATE_ERRORS = {1: "service-not-allowed", 2: "service-unknown"}
_SERVICE_ERRORS = {1: "operation-not-possible", 2: "service-not-supported", 3: "other-reason",
                   4: "pdu-too-long", 5: "deciphering-error", 6: "invocation-counter-error"}

# Object model (docs/CONTRACTS.md, IS 15959 / Blue Book OBIS).
OBIS_CLOCK = "0.0.1.0.0.255"
OBIS_ENERGY_IMPORT = "1.0.1.8.0.255"
OBIS_ACCOUNT = "0.0.19.0.0.255"
OBIS_CREDIT = "0.0.19.10.0.255"
OBIS_DISCONNECT = "0.0.96.3.10.255"

CONTROL_STATES = {0: "disconnected", 1: "connected", 2: "ready_for_reconnection"}
PAYMENT_MODES = {1: "credit", 2: "prepayment"}
ACCOUNT_STATUS = {1: "new", 2: "active", 3: "closed"}

_INVOKE_BASE = 0xC0          # priority high, confirmed service (IEC 62056-5-3 §8, Invoke-Id-And-Priority)
_READ_CHUNK = 0.05           # serial read timeout per poll (s)
_MAX_APDU = 0xFFFF


class DlmsError(Exception):
    """Base of every error this client raises; ``str()`` is one readable line."""


class PortError(DlmsError):
    """The serial port could not be opened or used."""


class LinkTimeout(DlmsError):
    """No (valid) answer from the meter within the timeout."""


class ProtocolError(DlmsError):
    """The meter answered something we cannot accept (wrong address, sequence, APDU...)."""


class AssociationRejected(DlmsError):
    """AARE with result != accepted. ``.result``, ``.diagnostic`` (ACSE diagnostic code)."""

    def __init__(self, diagnostic, result=1, text=None):
        self.diagnostic = diagnostic
        self.result = result
        name = AARE_DIAG_NAMES.get(diagnostic, "diagnostic %s" % (diagnostic,))
        DlmsError.__init__(self, text or "association rejected by the meter: %s" % name)


class DataAccessError(DlmsError):
    """GET/SET/ACTION answered with a data-access-result (or action-result) != success.
    ``.dar`` is the code."""

    def __init__(self, dar, what=""):
        self.dar = dar
        name = DAR_NAMES.get(dar, "result %d" % dar)
        DlmsError.__init__(self, "%s%s (data-access-result %d)" % (what + ": " if what else "", name, dar))


class AccessDenied(DataAccessError):
    """read-write-denied (3) or scope-of-access-violated (13)."""


class ObjectUndefined(DataAccessError):
    """object-undefined (4), object-class-inconsistent (9) or object-unavailable (11)."""


def dar_error(dar, what=""):
    """The DataAccessError subclass instance for a data-access-result code."""
    if dar in (3, 13):
        return AccessDenied(dar, what)
    if dar in (4, 9, 11):
        return ObjectUndefined(dar, what)
    return DataAccessError(dar, what)


def _obis6(code):
    if isinstance(code, (bytes, bytearray)) and len(code) == 6:
        return bytes(code)
    try:
        return obis.parse(code)
    except ValueError as e:
        raise ValueError("bad OBIS code %r: %s" % (code, e))


def _what(class_id, code, attr, sep="."):
    try:
        text = obis.to_str(_obis6(code))
    except ValueError:
        text = str(code)
    return "IC %d %s%s%d" % (class_id, text, sep, attr)


class DlmsClient:
    """One DLMS/COSEM client association over HDLC on a serial port.

    ``port`` is a device path (/dev/ttyUSB0, /dev/pts/N) or a pyserial URL; ``client_sap``
    the client address (16 public, 1 management, 32 reader, 48 settings); ``server_logical`` /
    ``server_physical`` the server address (physical None = 1-byte address); ``password``
    (str or bytes) selects LLS, None selects no security; ``timeout`` seconds per answer;
    ``max_info`` the HDLC information field size we propose both ways; ``trace(direction,
    frame_bytes)`` is called with "tx"/"rx" for every frame; ``serial_port`` an already opened
    pyserial-like object (tests); ``retries`` how many times a silent meter is polled with RR
    during an exchange before LinkTimeout (the SNRM is never repeated: a dead line fails fast);
    ``max_pdu`` the client max receive PDU size proposed in the AARQ InitiateRequest.
    """

    def __init__(self, port, baud=9600, client_sap=16, server_logical=1, server_physical=None,
                 password=None, timeout=3.0, max_info=128, trace=None, serial_port=None,
                 retries=1, max_pdu=_MAX_APDU):
        self.port = port
        self.baud = baud
        self.client_sap = client_sap
        self.server_logical = server_logical
        self.server_physical = server_physical
        if isinstance(password, str):
            password = password.encode("utf-8")
        self.password = password
        self.timeout = float(timeout)
        self.max_info = int(max_info)
        self.trace = trace
        self.retries = int(retries)
        self.max_pdu = int(max_pdu)
        self._last_i = None         # (N(S), info, segmented) of our last I-frame
        self._ser = serial_port
        self._own_serial = serial_port is None
        try:
            self._src = hdlc.encode_client_address(client_sap)
            self._dest = hdlc.encode_server_address(server_logical, server_physical)
        except hdlc.HdlcError:
            raise ValueError("bad HDLC address: client %r, server %r/%r (client 0..127; server "
                             "0..127 alone, 0..16383 with a physical address)"
                             % (client_sap, server_logical, server_physical))
        self._rx = hdlc.Receiver(2100)
        self._vs = 0                # V(S): N(S) of our next I-frame
        self._vr = 0                # V(R): N(S) we expect next from the meter
        self._invoke = 0
        self._last_tx = None
        self.connected = False      # HDLC link in NRM
        self.associated = False     # AA established
        # negotiated
        self.max_info_tx = 128      # bytes we may put in one frame's info field
        self.max_info_rx = 128      # bytes the meter may send us
        self.window_tx = 1
        self.window_rx = 1
        self.aare = None            # parsed AARE dict
        self.server_max_pdu = None
        self.conformance = None

    # ------------------------------------------------------------------ port

    def _server_text(self):
        if self.server_physical is None:
            return "%d" % self.server_logical
        return "%d (physical %d)" % (self.server_logical, self.server_physical)

    def open(self):
        """Open the serial port (8N1, ``baud``). Raises PortError."""
        if self._ser is not None:
            return
        try:
            import serial
        except ImportError:  # pragma: no cover
            raise PortError("pyserial is not installed")
        try:
            self._ser = serial.serial_for_url(self.port, baudrate=self.baud, timeout=_READ_CHUNK)
        except (serial.SerialException, OSError, ValueError) as e:
            raise PortError("cannot open %s: %s" % (self.port, _port_reason(e)))
        self._own_serial = True

    def close(self):
        """Close the port (if we opened it). Safe to call twice."""
        if self._ser is not None and self._own_serial:
            try:
                self._ser.close()
            except Exception:
                pass
            self._ser = None
        self.connected = False
        self.associated = False

    def __enter__(self):
        self.open()
        try:
            self.connect()
        except BaseException:
            self._abort()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        # A refused GET/SET/ACTION leaves the link healthy: release it properly.
        if exc_type is None or issubclass(exc_type, DataAccessError):
            # Teardown is best effort: some meters never answer RLRQ, and the work is done.
            try:
                if self.associated:
                    self.release()
            except DlmsError:
                pass
            try:
                if self.connected:
                    self.disconnect()
            except DlmsError:
                pass
            self.close()
        else:
            self._abort()
        return False

    def _abort(self):
        """Best-effort teardown after a failure: DISC if linked (short wait), then close."""
        try:
            if self.connected and self._ser is not None:
                saved = self.timeout
                self.timeout = min(saved, 0.5)
                try:
                    self.disconnect()
                finally:
                    self.timeout = saved
        except Exception:
            pass
        self.close()

    # ------------------------------------------------------------------ frame I/O

    def _write(self, frame):
        if self.trace:
            self.trace("tx", frame)
        try:
            self._ser.write(frame)
            self._ser.flush()
        except Exception as e:
            raise PortError("write to %s failed: %s" % (self.port, _short(e)))

    def _send(self, ctrl, info=b"", segmented=False):
        self._last_tx = (ctrl, bytes(info), bool(segmented))
        self._write(hdlc.encode_frame(self._dest, self._src, ctrl, info, segmented))

    def _timeout_error(self):
        msg = "no answer from meter at server address %s on %s within %s s" % (
            self._server_text(), self.port, _secs(self.timeout))
        if self._rx.dropped:
            msg += " (%d bad frame%s dropped, last: %s)" % (
                self._rx.dropped, "" if self._rx.dropped == 1 else "s", self._rx.last_error)
        return LinkTimeout(msg)

    def _recv(self):
        """Next frame addressed to us from the server we talk to. Frames for other clients
        and echoes of our own frames (optical heads) are skipped; a frame from another
        server address is a ProtocolError. Raises LinkTimeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            f = self._rx.pop()
            while f is not None:
                if (f.dest == self._dest and f.src == self._src
                        and (f.ctrl, f.info, f.segmented) == self._last_tx):
                    pass  # echo of our own frame (optical head, half duplex line)
                elif f.dest == self._src:
                    if self.trace:
                        self.trace("rx", hdlc.encode_frame(f.dest, f.src, f.ctrl, f.info, f.segmented))
                    if f.src != self._dest and _server_id(f.src) != (self.server_logical,
                                                                    self.server_physical):
                        raise ProtocolError(
                            "answer came from server address %s, expected %s (wrong --server?)"
                            % (_addr_text(f.src), self._server_text()))
                    return f
                f = self._rx.pop()
            now = time.monotonic()
            if now >= deadline:
                raise self._timeout_error()
            try:
                n = self._ser.in_waiting
                data = self._ser.read(n if n else 1)
            except Exception as e:
                raise PortError("read from %s failed: %s" % (self.port, _short(e)))
            if data:
                self._rx.feed(data)

    # ------------------------------------------------------------------ link (IEC 62056-46 §6.4.4)

    def connect(self):
        """SNRM/UA (with our max info proposal) then AARQ/AARE.

        Raises LinkTimeout, ProtocolError (wrong responder address, DM, bad UA),
        AssociationRejected."""
        self.open()
        self.link()
        self.associate()

    def link(self):
        """SNRM -> UA: resets N(S)/N(R) and negotiates info field sizes (min of ours and the
        meter's; a UA without parameters means 128/128, window 1, IEC 62056-46 §6.4.4.4.3.2)."""
        try:
            self._ser.reset_input_buffer()
        except Exception:
            pass
        self._rx.reset()
        self._send(hdlc.SNRM, hdlc.encode_params(self.max_info, self.max_info, 1, 1))
        while True:
            f = self._recv()
            k = hdlc.kind(f.ctrl)
            if k == hdlc.K_UA:
                break
            if k == hdlc.K_DM:
                raise ProtocolError("meter refused the link (DM in answer to SNRM)")
            if k == hdlc.K_FRMR:
                raise ProtocolError("meter rejected our SNRM (FRMR %s)" % f.info.hex())
            # anything else (a late I-frame of an older session): keep waiting
        try:
            tx, rx, wtx, wrx = hdlc.decode_params(f.info)
        except hdlc.HdlcError as e:
            raise ProtocolError("UA carries unreadable HDLC parameters: %s" % e)
        # UA values are the meter's view: its tx is what we receive.
        self.max_info_rx = min(self.max_info, tx) if tx else 128
        self.max_info_tx = min(self.max_info, rx) if rx else 128
        self.window_tx = 1
        self.window_rx = 1
        self._vs = 0
        self._vr = 0
        self.connected = True

    def disconnect(self):
        """DISC -> UA (or DM if the meter was already disconnected)."""
        if self._ser is None:
            return
        self._send(hdlc.DISC)
        self.connected = False
        self.associated = False
        while True:
            f = self._recv()
            k = hdlc.kind(f.ctrl)
            if k in (hdlc.K_UA, hdlc.K_DM):
                return

    def _next_i(self, f):
        """Account for an I-frame received: check N(S)/N(R). Returns False for a repeat of
        the previous frame (our RR was lost) which the caller must ignore."""
        n_s = hdlc.ns(f.ctrl)
        if n_s != self._vr:
            if n_s == (self._vr - 1) & 7:
                return False
            raise ProtocolError("meter sent N(S)=%d, expected %d" % (n_s, self._vr))
        n_r = hdlc.nr(f.ctrl)
        if n_r != self._vs:
            raise ProtocolError("meter acknowledged N(R)=%d, expected %d (frame lost)" % (n_r, self._vs))
        self._vr = (self._vr + 1) & 7
        return True

    def exchange(self, request):
        """Send one APDU (LLC header added; segmented into I-frames of ``max_info_tx``) and
        return the reply APDU (segments reassembled, RR sent after each, LLC header removed).

        Lost frames (IEC 62056-46 §6.4.4.4.3.4): when the meter stays silent, we poll it once
        per ``retries`` with RR(V(R)); if its N(R) shows our last I-frame was lost we send it
        again, if it re-sends its last I-frame we take it. Raises LinkTimeout, ProtocolError."""
        if not self.connected:
            raise ProtocolError("not connected (call connect() first)")
        polls = [self.retries]
        info = hdlc.LLC_REQUEST + bytes(request)
        step = self.max_info_tx
        pos = 0
        while True:
            chunk = info[pos:pos + step]
            pos += len(chunk)
            last = pos >= len(info)
            self._last_i = (self._vs, chunk, not last)
            self._send(hdlc.ctrl_i(self._vs, self._vr), chunk, segmented=not last)
            self._vs = (self._vs + 1) & 7
            if last:
                break
            # the meter acknowledges each segment with RR(N(R) = our V(S))
            while True:
                f = self._recv_polling(polls)
                k = hdlc.kind(f.ctrl)
                if k == hdlc.K_RR:
                    if hdlc.nr(f.ctrl) != self._vs:
                        raise ProtocolError("meter acknowledged segment with N(R)=%d, expected %d"
                                            % (hdlc.nr(f.ctrl), self._vs))
                    break
                if k == hdlc.K_RNR:
                    continue
                self._link_error(f, k)
        out = bytearray()
        first = True
        while True:
            f = self._recv_polling(polls)
            k = hdlc.kind(f.ctrl)
            if k != hdlc.K_I:
                if k not in (hdlc.K_RR, hdlc.K_RNR):
                    self._link_error(f, k)      # raises unless the frame is harmless
                continue
            if not self._next_i(f):
                self._send(hdlc.ctrl_rr(self._vr))
                continue
            data = f.info
            if first:
                if data[:3] in (hdlc.LLC_RESPONSE, hdlc.LLC_REQUEST):
                    data = data[3:]
                first = False
            out += data
            if not f.segmented:
                return bytes(out)
            self._send(hdlc.ctrl_rr(self._vr))

    def _recv_polling(self, polls):
        """``_recv`` that, on silence, polls the meter with RR(V(R)) while ``polls[0]`` > 0 and
        re-sends our last I-frame if the meter's N(R) shows it never arrived."""
        while True:
            try:
                return self._recv()
            except LinkTimeout:
                if polls[0] <= 0:
                    raise
                polls[0] -= 1
            self._send(hdlc.ctrl_rr(self._vr))
            f = self._recv()
            k = hdlc.kind(f.ctrl)
            if k in (hdlc.K_RR, hdlc.K_RNR) and self._last_i is not None:
                if hdlc.nr(f.ctrl) == self._last_i[0]:
                    # our last I-frame was lost: send it again, same N(S)
                    n_s, chunk, seg = self._last_i
                    self._send(hdlc.ctrl_i(n_s, self._vr), chunk, segmented=seg)
                    continue
                if hdlc.nr(f.ctrl) == self._vs and k == hdlc.K_RR:
                    return f     # an acknowledgement (of a segment), or "still working"
                continue
            return f

    def _link_error(self, f, k):
        if k == hdlc.K_DM:
            self.connected = False
            self.associated = False
            raise ProtocolError("meter is in disconnected mode (DM): link lost")
        if k == hdlc.K_FRMR:
            raise ProtocolError("meter rejected our frame (FRMR %s)" % f.info.hex())
        if k in (hdlc.K_UA, hdlc.K_UI):
            return  # a late UA, or an unsolicited UI frame (push): not our answer
        raise ProtocolError("unexpected HDLC frame from meter (control 0x%02X)" % f.ctrl)

    # ------------------------------------------------------------------ association (IEC 62056-5-3 §9)

    def associate(self):
        """AARQ (LN, no security or LLS with ``password``) -> AARE. Raises
        AssociationRejected(diagnostic) on reject, ProtocolError on a reply that is no AARE."""
        if self.password is not None:
            req = apdu.build_aarq(context=1, mechanism=apdu.MECH_LLS, auth_value=self.password,
                                  max_pdu=self.max_pdu)
        else:
            req = apdu.build_aarq(context=1, max_pdu=self.max_pdu)
        reply = self.exchange(req)
        if not reply or reply[0] != apdu.AARE:
            self._raise_unexpected(reply, "AARE")
        try:
            a = apdu.parse_aare(reply)
        except apdu.ApduError as e:
            raise ProtocolError("unreadable AARE from meter: %s" % e)
        self.aare = a
        serr = a.get("service_error")
        if a.get("result") != 0 or serr:
            text = None
            if serr:
                text = "association rejected by the meter: %s" % _initiate_error_text(serr)
                if a.get("result") != 0 and a.get("diagnostic"):
                    text += " (%s)" % AARE_DIAG_NAMES.get(a["diagnostic"], a["diagnostic"])
            raise AssociationRejected(a.get("diagnostic") or 0, a.get("result") or 1, text)
        self.server_max_pdu = a.get("max_pdu")
        self.conformance = a.get("conformance")
        self.associated = True
        self._invoke = 0

    def release(self):
        """RLRQ -> RLRE. Meters that never answer RLRQ (some do not) only cost a timeout;
        the association is forgotten either way."""
        try:
            reply = self.exchange(apdu.build_rlrq(0))
        finally:
            self.associated = False
        if not reply or reply[0] != apdu.RLRE:
            self._raise_unexpected(reply, "RLRE")

    # ------------------------------------------------------------------ services (IEC 62056-5-3 §8)

    def _next_invoke(self):
        """Invoke-Id-And-Priority byte: 0xC0 | id, id = 1, 2, ... 15, 0, 1 ..."""
        self._invoke = (self._invoke + 1) & 0x0F
        return _INVOKE_BASE | self._invoke

    def _raise_unexpected(self, reply, wanted):
        if reply and reply[0] == apdu.EXCEPTION_RESPONSE and len(reply) >= 3:
            raise ProtocolError("meter answered with exception-response: %s, %s" % (
                _STATE_ERRORS.get(reply[1], "state-error %d" % reply[1]),
                _SERVICE_ERRORS.get(reply[2], "service-error %d" % reply[2])))
        if reply and reply[0] == apdu.CONFIRMED_SERVICE_ERROR:
            raise ProtocolError("meter answered with confirmed-service-error %s" % reply[1:].hex())
        raise ProtocolError("expected %s from meter, got %s" % (
            wanted, reply[:16].hex() + ("..." if len(reply) > 16 else "") if reply else "an empty APDU"))

    def _request(self, req, invoke, wanted_tag, wanted):
        if not self.associated:
            raise ProtocolError("no association (call connect() first)")
        reply = self.exchange(req)
        if not reply or reply[0] != wanted_tag:
            self._raise_unexpected(reply, wanted)
        try:
            r = apdu.parse_response(reply)
        except apdu.ApduError as e:
            raise ProtocolError("unreadable %s from meter: %s" % (wanted, e))
        if r.invoke is not None and (r.invoke & 0x0F) != (invoke & 0x0F):
            raise ProtocolError("meter answered invoke-id %d, expected %d"
                                % (r.invoke & 0x0F, invoke & 0x0F))
        return r

    def get_raw(self, class_id, code, attr, selector=None, params=b""):
        """GET attribute ``attr`` of object (``class_id``, ``code``) -> the A-XDR bytes of the
        value. Block transfer (GET-Response-With-Datablock) is followed with GET-next until the
        last block. Raises DataAccessError (AccessDenied, ObjectUndefined...), ProtocolError,
        LinkTimeout."""
        o6 = _obis6(code)
        what = _what(class_id, o6, attr)
        invoke = self._next_invoke()
        r = self._request(apdu.get_request(invoke, class_id, o6, attr, selector, params),
                          invoke, apdu.GET_RESPONSE, "GET-Response")
        if r.kind == 1:
            if r.dar:
                raise dar_error(r.dar, what)
            return bytes(r.data)
        if r.kind != 2:
            raise ProtocolError("unexpected GET-Response type %d for %s" % (r.kind, what))
        buf = bytearray()
        expect = 1
        while True:
            if r.dar:
                raise dar_error(r.dar, what + " block %d" % r.block_no)
            if r.block_no != expect:
                raise ProtocolError("meter sent block %d, expected %d (%s)" % (r.block_no, expect, what))
            buf += r.raw
            if r.last:
                return bytes(buf)
            invoke = self._next_invoke()
            r = self._request(apdu.get_next_request(invoke, expect), invoke,
                              apdu.GET_RESPONSE, "GET-Response")
            if r.kind != 2:
                raise ProtocolError("expected a data block after GET-next for %s" % what)
            expect += 1

    def get(self, class_id, code, attr, selector=None, params=b""):
        """GET and decode: returns the tagged A-XDR value ``(tag, value)`` (see
        ``protocol.axdr.decode``). Raises as ``get_raw`` and ProtocolError on undecodable data."""
        raw = self.get_raw(class_id, code, attr, selector, params)
        try:
            value, end = axdr.decode(raw, 0)
        except (axdr.AxdrError, ValueError, IndexError) as e:
            raise ProtocolError("undecodable value of %s: %s" % (_what(class_id, code, attr), e))
        return value

    def set(self, class_id, code, attr, value_bytes):
        """SET attribute to ``value_bytes`` (complete A-XDR, tag included). Raises
        DataAccessError subclasses on a result != success."""
        o6 = _obis6(code)
        invoke = self._next_invoke()
        r = self._request(apdu.set_request(invoke, class_id, o6, attr, bytes(value_bytes)),
                          invoke, apdu.SET_RESPONSE, "SET-Response")
        if r.dar:
            raise dar_error(r.dar, "set " + _what(class_id, o6, attr))
        return 0

    def action(self, class_id, code, method, params_bytes=None):
        """ACTION (invoke ``method``) with optional A-XDR ``params_bytes`` -> ``(result, data)``
        where data is the tagged return value or None. A result != success raises the matching
        DataAccessError subclass (action-result uses the same codes)."""
        o6 = _obis6(code)
        invoke = self._next_invoke()
        r = self._request(apdu.action_request(invoke, class_id, o6, method, params_bytes),
                          invoke, apdu.ACTION_RESPONSE, "ACTION-Response")
        what = _what(class_id, o6, method, sep=" method ")
        if r.dar:
            raise dar_error(r.dar, what)
        data = None
        if r.data:
            try:
                data, _ = axdr.decode(r.data, 0)
            except (axdr.AxdrError, ValueError, IndexError) as e:
                raise ProtocolError("undecodable return data of %s: %s" % (what, e))
        return 0, data


# ---------------------------------------------------------------------------- helpers

_INITIATE_ERRORS = {0: "other", 1: "dlms-version-too-low", 2: "incompatible-conformance",
                    3: "pdu-size-too-short", 4: "refused-by-the-VDE-handler"}


def _initiate_error_text(serr):
    """ConfirmedServiceError (type, code) from an AARE -> readable text."""
    try:
        typ, code = serr
    except (TypeError, ValueError):
        return "confirmed-service-error %r" % (serr,)
    if typ == 6:  # ServiceError: initiate
        return "initiate error %s" % _INITIATE_ERRORS.get(code, code)
    return "confirmed-service-error type %d code %d" % (typ, code)


def _port_reason(e):
    """The OS reason of a pyserial open failure, without pyserial's repetition of the path:
    "could not open port X: [Errno 2] No such file or directory: 'X'" -> "No such file or directory"."""
    import re
    found = re.findall(r"\[Errno \d+\] ([^:'\]]+)", str(e))
    return found[-1].strip() if found else _short(e)


def _short(e):
    s = str(e).strip().splitlines()
    return s[0] if s else e.__class__.__name__


def _secs(t):
    return ("%.1f" % t) if t == int(t) else ("%g" % t)


def _server_id(b):
    """Address bytes -> (logical, physical or None), or None if undecodable. Lets a meter
    answer a 2-byte address in the 4-byte form (same values) without being refused."""
    try:
        v, n, end = hdlc.decode_address(b, 0)
        if end != len(b):
            return None
        return hdlc.split_server_address(v, n)
    except hdlc.HdlcError:
        return None


def _addr_text(b):
    try:
        v, n, _ = hdlc.decode_address(b, 0)
        lg, ph = hdlc.split_server_address(v, n)
    except hdlc.HdlcError:
        return b.hex()
    return "%d" % lg if ph is None else "%d (physical %d)" % (lg, ph)


def _scaled_int(value, scaler):
    """value * 10**scaler as an int (floor for negative scalers)."""
    if scaler >= 0:
        return value * 10 ** scaler
    return value // 10 ** (-scaler)


def read_summary(client):
    """Read the prepaid summary from an associated client -> dict:

    energy_import_wh (int, scaler applied), energy_raw, energy_scaler, energy_unit, available_credit_paise,
    credit_paise, payment_mode ("prepayment"/"credit"/int), account_status, relay_output_state
    (bool), control_state ("connected"/...), control_mode (int), clock (ISO 8601 text),
    clock_raw (hex). An object the meter does not have or does not let this client read is
    None (other makers' meters lack IC 111/112); a link failure raises.
    """
    from host_tools.format import clock_iso

    out = {}

    def val(class_id, code, attr):
        try:
            return client.get(class_id, code, attr)
        except DataAccessError:
            return None

    v = val(3, OBIS_ENERGY_IMPORT, 2)
    scaler, unit = 0, 30
    su = val(3, OBIS_ENERGY_IMPORT, 3)
    if su is not None and su[0] == axdr.STRUCTURE and len(su[1]) == 2:
        scaler, unit = int(su[1][0][1]), int(su[1][1][1])
    raw = None if v is None else int(v[1])
    # unit 30 = Wh (Blue Book unit table); anything else is not active energy: no Wh figure
    out["energy_import_wh"] = _scaled_int(raw, scaler) if raw is not None and unit == 30 else None
    out["energy_raw"] = raw
    out["energy_scaler"] = scaler
    out["energy_unit"] = unit

    v = val(111, OBIS_ACCOUNT, 5)
    out["available_credit_paise"] = None if v is None else int(v[1])
    v = val(112, OBIS_CREDIT, 2)
    out["credit_paise"] = None if v is None else int(v[1])
    v = val(111, OBIS_ACCOUNT, 2)
    pm = st = None
    if v is not None and v[0] == axdr.STRUCTURE and len(v[1]) >= 2:
        pm, st = int(v[1][0][1]), int(v[1][1][1])
    out["payment_mode"] = PAYMENT_MODES.get(pm, pm)
    out["account_status"] = ACCOUNT_STATUS.get(st, st)

    v = val(70, OBIS_DISCONNECT, 2)
    out["relay_output_state"] = None if v is None else bool(v[1])
    v = val(70, OBIS_DISCONNECT, 3)
    out["control_state"] = None if v is None else CONTROL_STATES.get(int(v[1]), int(v[1]))
    v = val(70, OBIS_DISCONNECT, 4)
    out["control_mode"] = None if v is None else int(v[1])

    v = val(8, OBIS_CLOCK, 2)
    out["clock"] = None
    out["clock_raw"] = None
    if v is not None and isinstance(v[1], (bytes, bytearray)):
        out["clock_raw"] = bytes(v[1]).hex()
        try:
            out["clock"] = clock_iso(v[1])
        except ValueError:
            pass
    return out
