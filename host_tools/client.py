"""DLMS/COSEM client over a serial port: HDLC (IEC 62056-46) + LN referencing (IEC 62056-5-3).

A bench tool that talks to any DLMS meter on a UART/optical head, not only ours. It is lenient
about what meters send (a UA without parameters means 128/128/1/1; an AARE with tags we do not
know; an LLC header missing) and strict about what it checks (the responding server address, the
HCS/FCS, N(S)/N(R), the invoke-id)::

    with DlmsClient("/dev/ttyUSB0", client_sap=1, password="12345678") as c:
        tag, wh = c.get(3, "1.0.1.8.0.255", 2)
        c.action(112, "0.0.19.10.0.255", 1, axdr.Writer().double_long(50000).getvalue())

This module is the I/O shell: pyserial, deadlines, the trace and the exceptions. The protocol
state lives in ``protocol.client_link.ClientLink`` (HDLC: V(S)/V(R), segmentation, RR polling,
retransmission, echo suppression) and ``protocol.client_assoc.ClientAssociation`` (AARQ/AARE,
RLRQ/RLRE, invoke-ids, GET block transfer), both sans I/O; HLS and ciphering in
``protocol.hls_client.HlsSession``.

HLS (``hls=HlsKeys(...)``): our invocation counter comes from ``counter`` (``keystore.Counter``,
block-reserved: never used twice) or the meter's frame counter (IC 1 0.0.43.1.x.255, public
client); an AARE refusing a stored one re-reads the frame counter and retries once if higher.

Public API
- ``DlmsClient(port, baud=9600, client_sap=16, server_logical=1, server_physical=None,
  password=None, timeout=3.0, max_info=128, trace=None, serial_port=None, retries=1,
  max_pdu=0xFFFF, cancel=None, hls=None, counter=None, trace_apdu=None)``:
  ``open()``/``close()``, ``connect()`` (SNRM/UA then AARQ/AARE), ``get``/``get_raw``/``set``/
  ``action``, ``release()`` (RLRQ/RLRE), ``disconnect()`` (DISC -> UA/DM); a context manager
  that opens+connects and releases+disconnects+closes.
- Errors: ``DlmsError`` and its subclasses, each with a one-line readable ``str()``:
  ``LinkTimeout``, ``AssociationRejected``, ``DataAccessError`` (``AccessDenied``,
  ``ObjectUndefined``), ``ProtocolError`` (``LocalProtocolError``), ``PortError``
  (``PortInUse``: another process holds the port, see below); ``Interrupted`` (a
  KeyboardInterrupt) when ``cancel()`` asked to stop an exchange.
- The port is opened exclusively (pyserial ``exclusive=True``: ``flock`` on POSIX), so a second
  client on the same port fails at once with ``PortInUse`` instead of mixing frames with ours.
  ``host_tools.portlock`` adds the holder's name (pid, command) for meterctl.
- ``read_summary(client) -> dict`` and the object-model names (``host_tools.summary``).
"""

import errno
import re
import time

from protocol import axdr_client as axdr
from protocol import client_link as cl
from protocol.client_assoc import (AccessDenied, AssociationRejected, ClientAssociation,
                                   DataAccessError, ObjectUndefined, SecurityRefused, dar_error,
                                   what)
from protocol.client_link import DlmsError, LocalProtocolError, ProtocolError
from protocol.hls_client import HlsKeys
from host_tools.portlock import PortInUse as _PortLockInUse
from host_tools.summary import (ACCOUNT_STATUS, CONTROL_STATES, OBIS_ACCOUNT, OBIS_CLOCK,
                                OBIS_CREDIT, OBIS_DISCONNECT, OBIS_ENERGY_IMPORT, PAYMENT_MODES,
                                read_summary)

__all__ = ["DlmsClient", "DlmsError", "PortError", "PortInUse", "Interrupted", "LinkTimeout",
           "ProtocolError", "LocalProtocolError", "AssociationRejected", "DataAccessError", "AccessDenied",
           "ObjectUndefined", "SecurityRefused", "HlsKeys", "dar_error", "read_summary", "OBIS_CLOCK",
           "OBIS_ENERGY_IMPORT",
           "OBIS_ACCOUNT", "OBIS_CREDIT", "OBIS_DISCONNECT", "CONTROL_STATES", "PAYMENT_MODES",
           "ACCOUNT_STATUS"]

_READ_CHUNK = 0.05           # serial read timeout per poll (s)
_MAX_APDU = 0xFFFF


class PortError(DlmsError):
    """The serial port could not be opened or used."""


class PortInUse(PortError, _PortLockInUse):
    """Another process holds the port (its exclusive lock); ``port``, ``holder``."""

    def __init__(self, port, holder=None):
        _PortLockInUse.__init__(self, port, holder)


class Interrupted(KeyboardInterrupt):
    """``cancel()`` stopped an exchange (a Ctrl-C seen by the caller's handler)."""


class LinkTimeout(DlmsError):
    """No (valid) answer from the meter within the timeout."""


FRAME_COUNTER = {1: "0.0.43.1.1.255", 48: "0.0.43.1.3.255"}   # IC 1, by client SAP


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
    ``max_pdu`` the client max receive PDU size proposed in the AARQ InitiateRequest;
    ``cancel()`` (optional) is polled while waiting for the meter (every 50 ms): a true result
    stops the exchange with ``Interrupted`` at a known point (a Ctrl-C handler that sets a flag
    instead of raising anywhere); ``window`` the HDLC window (1..7) proposed both ways. ``hls``
    (``HlsKeys``) selects HLS instead of ``password``; ``counter`` (``keystore.Counter`` or None)
    keeps our invocation counter between runs; ``trace_apdu(direction, plaintext)`` sees every
    plaintext APDU of a ciphered association.
    Raises ValueError for an address out of range.
    """

    def __init__(self, port, baud=9600, client_sap=16, server_logical=1, server_physical=None,
                 password=None, timeout=3.0, max_info=128, trace=None, serial_port=None,
                 retries=1, max_pdu=_MAX_APDU, cancel=None, hls=None, counter=None, trace_apdu=None,
                 window=1):
        self.port, self.cancel, self.baud = port, cancel, baud
        self.client_sap, self.server_logical, self.server_physical = client_sap, server_logical, server_physical
        self.timeout = float(timeout)
        self.trace = trace
        self._ser = serial_port
        self._own_serial = serial_port is None
        self.link_layer = cl.ClientLink(client_sap, server_logical, server_physical, max_info, retries,
                                        window)
        self.assoc = ClientAssociation(password, max_pdu)
        self.password = self.assoc.password
        self.max_info = self.link_layer.max_info
        self.retries = self.link_layer.retries
        self.max_pdu = self.assoc.max_pdu
        self.hls, self.counter, self.trace_apdu = hls, counter, trace_apdu

    # negotiated / association state, read from the sans-I/O halves
    connected = property(lambda self: self.link_layer.connected,
                         lambda self, v: v or self.link_layer.forget(),
                         doc="HDLC link in NRM (assign False to forget it without a DISC)")
    associated = property(lambda self: self.assoc.associated,
                          lambda self, v: setattr(self.assoc, "associated", bool(v)),
                          doc="application association established")
    max_info_tx = property(lambda self: self.link_layer.max_info_tx)
    max_info_rx = property(lambda self: self.link_layer.max_info_rx)
    window_tx = property(lambda self: self.link_layer.window_tx)
    window_rx = property(lambda self: self.link_layer.window_rx)
    aare = property(lambda self: self.assoc.aare)
    server_max_pdu = property(lambda self: self.assoc.server_max_pdu)
    conformance = property(lambda self: self.assoc.conformance)

    # ------------------------------------------------------------------ port

    def open(self):
        """Open the serial port (8N1, ``baud``) exclusively. Raises PortInUse when another
        process holds it, PortError when it cannot be opened."""
        if self._ser is not None:
            return
        try:
            import serial
        except ImportError:  # pragma: no cover
            raise PortError("pyserial is not installed")
        try:
            self._ser = serial.serial_for_url(self.port, baudrate=self.baud, timeout=_READ_CHUNK,
                                              exclusive=True)
        except (serial.SerialException, OSError, ValueError) as e:
            if getattr(e, "errno", None) in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise PortInUse(self.port)
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
        self._save_ic()
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
            self._teardown()
            self.close()
        else:
            self._abort()
        return False

    def _teardown(self):
        """Release and disconnect, best effort: some meters never answer RLRQ, the work is done."""
        for step, needed in ((self.release, "associated"), (self.disconnect, "connected")):
            try:
                if getattr(self, needed):
                    step()
            except DlmsError:
                pass

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

    # ------------------------------------------------------------------ bytes <-> link

    def _write(self, frame):
        if not frame:
            return
        if self.trace:
            self.trace("tx", frame)
        try:
            self._ser.write(frame)
            self._ser.flush()
        except Exception as e:
            raise PortError("write to %s failed: %s" % (self.port, _short(e)))

    def _timeout_error(self):
        link = self.link_layer
        msg = "no answer from meter at server address %s on %s within %s s" % (
            link.server_text(), self.port, _secs(self.timeout))
        if link.dropped:
            msg += " (%d bad frame%s dropped, last: %s)" % (
                link.dropped, "" if link.dropped == 1 else "s", link.last_error)
        return LinkTimeout(msg)

    def _read(self):
        try:
            n = self._ser.in_waiting
            return self._ser.read(n if n else 1)
        except Exception as e:
            raise PortError("read from %s failed: %s" % (self.port, _short(e)))

    def _await(self, *wanted):
        """Run the link until it reports one of the ``wanted`` event types; returns it.
        ``timeout`` applies per frame from the meter; on silence the link may poll (RR).
        Raises LinkTimeout, ProtocolError (DM: link lost), PortError."""
        link = self.link_layer
        deadline = time.monotonic() + self.timeout
        while True:
            ev = link.next_event()
            if isinstance(ev, wanted):
                return ev
            if isinstance(ev, cl.FrameReceived):
                f = ev.frame
                if self.trace:
                    self.trace("rx", cl.hdlc.encode_frame(f.dest, f.src, f.ctrl, f.info, f.segmented))
                deadline = time.monotonic() + self.timeout
            elif isinstance(ev, cl.Transmit):
                self._write(ev.data)
            elif isinstance(ev, cl.LinkDown):
                self.associated = False
                raise ProtocolError(ev.reason)
            elif isinstance(ev, cl.NeedData):
                if self.cancel is not None and self.cancel():
                    raise Interrupted("interrupted while waiting for the meter on %s" % self.port)
                if time.monotonic() >= deadline:
                    poll = link.on_timeout()
                    if not poll:
                        raise self._timeout_error()
                    self._write(poll)
                    deadline = time.monotonic() + self.timeout
                    continue
                data = self._read()
                if data:
                    link.receive(data)

    # ------------------------------------------------------------------ link (IEC 62056-46 §6.4.4)

    def connect(self):
        """SNRM/UA (with our max info proposal) then AARQ/AARE.

        Raises LinkTimeout, ProtocolError (wrong responder address, DM, bad UA),
        AssociationRejected."""
        self.open()
        if self.hls is None:
            self.link()
            self.associate()
            return
        ic, fresh = self._first_ic()
        self.link()
        try:
            self._associate_hls(ic)
        except AssociationRejected as e:
            if fresh or e.diagnostic != 13 or not self.link_layer.connected:
                raise
            self.disconnect()
            meter_ic = self.read_frame_counter() + 1
            if meter_ic <= ic:
                raise                          # the counter was fine: the keys are wrong
            self.link()
            self._associate_hls(meter_ic)

    def _first_ic(self):
        """(our first invocation counter, read from the meter just now?)."""
        stored = self.counter.load() if self.counter is not None else None
        return (stored, False) if stored is not None else (self.read_frame_counter() + 1, True)

    def _associate_hls(self, ic):
        if ic > 0xFFFFFFFF:        # Green Book 9.2.7.2.4.6: a used-up counter needs new keys
            raise DlmsError("invocation counter exhausted with these keys (nothing was sent): "
                            "re-provision the meter's keys (meterctl provision)")
        reserve = self.counter.reserve if self.counter is not None else None
        self.assoc = ClientAssociation(None, self.max_pdu,
                                       self.hls.session(ic, reserve, self.trace_apdu))
        self.associate()

    def _save_ic(self):
        if self.assoc.hls is not None and self.counter is not None:
            self.counter.save(self.assoc.hls.ic)

    def read_frame_counter(self):
        """The meter's frame counter for our client (IC 1 0.0.43.1.x.255 attribute 2: the
        last invocation counter it accepted), read by the public client 16 on a link of its
        own (SNRM ... DISC; the port stays open). Raises DlmsError."""
        saved = self.link_layer, self.assoc
        self.link_layer = cl.ClientLink(16, self.server_logical, self.server_physical, self.max_info,
                                        self.retries)
        self.assoc = ClientAssociation(None, self.max_pdu)
        try:
            self.link()
            self.associate()
            value = self.get(1, FRAME_COUNTER.get(self.client_sap, FRAME_COUNTER[1]), 2)
            self._teardown()
        finally:
            self.link_layer, self.assoc = saved
        if not isinstance(value, tuple) or not isinstance(value[1], int):
            raise ProtocolError("frame counter of the meter is not a number: %r" % (value,))
        return value[1]

    def link(self):
        """SNRM -> UA: resets N(S)/N(R) and negotiates info field sizes (min of ours and the
        meter's; a UA without parameters means 128/128, window 1, IEC 62056-46 §6.4.4.4.3.2)."""
        try:
            self._ser.reset_input_buffer()
        except Exception:
            pass
        self._write(self.link_layer.snrm())
        self._await(cl.Connected)

    def disconnect(self):
        """DISC -> UA (or DM if the meter was already disconnected)."""
        if self._ser is None:
            return
        self.associated = False
        self._write(self.link_layer.disc())
        self._await(cl.Disconnected)

    def exchange(self, request):
        """Send one APDU and return the reply APDU (``ClientLink`` segments both ways, polls a
        silent meter with RR ``retries`` times and repeats a lost I-frame, IEC 62056-46
        §6.4.4.4.3.4). Raises LinkTimeout, ProtocolError, LocalProtocolError, Interrupted (a
        ``cancel()`` before the request is written: then nothing was sent)."""
        if self.cancel is not None and self.cancel():
            raise Interrupted("interrupted before sending on %s" % self.port)
        self._write(self.link_layer.send_apdu(request))
        return self._await(cl.Apdu).data

    # ------------------------------------------------------------------ association (IEC 62056-5-3 §9)

    def associate(self):
        """AARQ (LN, no security, LLS with ``password`` or HLS) -> AARE (HLS: then pass 3/4).
        Raises AssociationRejected(diagnostic) on reject, ProtocolError on a reply that is no
        AARE, SecurityRefused when the meter fails HLS pass 4."""
        self.assoc.on_aare(self.exchange(self.assoc.aarq()))
        if self.assoc.pending:
            self._run(self.assoc.pass3())

    def release(self):
        """RLRQ -> RLRE. Meters that never answer RLRQ (some do not) only cost a timeout;
        the association is forgotten either way."""
        self._save_ic()
        self.assoc.on_rlre(self.exchange(self.assoc.rlrq()))

    # ------------------------------------------------------------------ services (IEC 62056-5-3 §8)

    def _run(self, t):
        req = t.request
        while req is not None:
            req = t.on_response(self.exchange(req))
        return t.result

    def _next_invoke(self):
        """Invoke-Id-And-Priority byte: 0xC0 | id, id = 1, 2, ... 15, 0, 1 ..."""
        return self.assoc.next_invoke()

    def _request(self, req, invoke, wanted_tag, wanted):
        """Send a request built by the caller -> its checked ``apdu.Response`` (kept for
        callers that build their own requests; prefer ``get_raw(on_block=...)``)."""
        if not self.associated:
            raise LocalProtocolError("no association (call connect() first)")
        return self.assoc.check(self.exchange(req), invoke, wanted_tag, wanted)

    def get_raw(self, class_id, code, attr, selector=None, params=b"", on_block=None):
        """GET attribute ``attr`` of object (``class_id``, ``code``) -> the A-XDR bytes of the
        value. Block transfer (GET-Response-With-Datablock) is followed with GET-next until the
        last block, calling ``on_block(bytes_so_far)`` after each. Raises DataAccessError
        (AccessDenied, ObjectUndefined...), ProtocolError, LinkTimeout."""
        return self._run(self.assoc.get(class_id, code, attr, selector, params, on_block))

    def get(self, class_id, code, attr, selector=None, params=b""):
        """GET and decode: returns the tagged A-XDR value ``(tag, value)`` (see
        ``protocol.axdr.decode``). Raises as ``get_raw`` and ProtocolError on undecodable data."""
        raw = self.get_raw(class_id, code, attr, selector, params)
        try:
            value, end = axdr.decode(raw, 0)
        except (axdr.AxdrError, ValueError, IndexError) as e:
            raise ProtocolError("undecodable value of %s: %s" % (what(class_id, code, attr), e))
        return value

    def set(self, class_id, code, attr, value_bytes):
        """SET attribute to ``value_bytes`` (complete A-XDR, tag included) -> 0. Raises
        DataAccessError subclasses on a result != success."""
        return self._run(self.assoc.set(class_id, code, attr, value_bytes))

    def action(self, class_id, code, method, params_bytes=None):
        """ACTION (invoke ``method``) with optional A-XDR ``params_bytes`` -> ``(result, data)``
        where data is the tagged return value or None. A result != success raises the matching
        DataAccessError subclass (action-result uses the same codes)."""
        return self._run(self.assoc.action(class_id, code, method, params_bytes))


# ---------------------------------------------------------------------------- helpers

def _port_reason(e):
    """A pyserial open failure's OS reason ("[Errno 2] No such file..: 'X'", "(25, 'Inappropr..')")."""
    found = re.findall(r"\[Errno (\d+)\] ([^:'\]]+)|\((\d+), '([^']+)'\)", str(e))
    return (found[-1][1] or found[-1][3]).strip() + (" (not a serial port)" if "25" in found[-1][::2] else "") \
        if found else _short(e)


def _short(e):
    s = str(e).strip().splitlines()
    return s[0] if s else e.__class__.__name__


def _secs(t):
    return ("%.1f" % t) if t == int(t) else ("%g" % t)
