"""The client (primary station) half of an HDLC link, sans I/O (IEC 62056-46 §6.4; host only).

It mirrors the meter's ``meter.link.HdlcLink`` and the h11 / dlms-cosem interface: the caller
moves bytes, the link keeps the state::

    link = ClientLink(client_sap=16, server_logical=1, max_info=128)
    port.write(link.snrm())                 # bytes to put on the wire
    link.receive(port.read())               # bytes heard on the wire
    ev = link.next_event()                  # NeedData | FrameReceived | Transmit | Connected
                                            # | Apdu | Disconnected | LinkDown
    port.write(link.send_apdu(apdu))        # first (or only) I-frame of an APDU
    port.write(link.on_timeout())           # silence: an RR poll, or b"" = give up

What it does: SNRM/UA negotiation (max information field both ways, window ``window`` 1..7
proposed both ways, we send one I-frame at a time and receive a window of them, acknowledging
at its final frame and asking again from a gap with RR(V(R)) (go-back-N); a UA without
parameters means 128/128/1/1), V(S)/V(R), segmentation both ways (the next request segment goes
out as a ``Transmit`` once the meter's RR acknowledges the previous one; each response segment
is acknowledged with a ``Transmit`` of RR), repeated frames (a repeat of the meter's last
I-frame is acknowledged again, not taken twice), recovery from a lost frame (on silence the
meter is polled once per ``retries`` with RR(V(R)); if its N(R) shows our last I-frame never
arrived that frame is sent again, same N(S)), echo suppression (an optical head hears our own
frames), DISC -> UA/DM, DM (link lost), FRMR.

Errors: the meter breaking the protocol raises ``ProtocolError`` from ``next_event`` (a frame
from another server address, a wrong N(S)/N(R), an unexpected frame, FRMR); calling a method the
link's state does not allow raises ``LocalProtocolError`` and changes nothing.
"""
from protocol import hdlc_client as hdlc

# link states
IDLE = "idle"            # NDM: no link
LINKING = "linking"      # SNRM sent, waiting for UA
READY = "ready"          # NRM, no exchange in progress
SENDING = "sending"      # segmented request: waiting for the RR of a segment
AWAITING = "awaiting"    # request sent: waiting for the (segmented) response
CLOSING = "closing"      # DISC sent, waiting for UA/DM

DEFAULT_INFO = 128       # IEC 62056-46 §6.4.4.4.3.2: value when the UA carries none


class DlmsError(Exception):
    """Base of every error of the DLMS client; ``str()`` is one readable line."""


class ProtocolError(DlmsError):
    """The meter answered something we cannot accept (wrong address, sequence, APDU...)."""


class LocalProtocolError(ProtocolError):
    """A call the state of the link or association does not allow; nothing was changed."""


# ---------------------------------------------------------------- events

class Event:
    __slots__ = ()

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (k, getattr(self, k)) for k in self.__slots__))


class NeedData(Event):
    """Nothing to report: feed more bytes with ``receive``, or call ``on_timeout``."""
    __slots__ = ()


class FrameReceived(Event):
    """A valid frame from the meter addressed to us (``frame``: ``hdlc.Frame``); reported
    before it is acted upon (for traces)."""
    __slots__ = ("frame",)

    def __init__(self, frame):
        self.frame = frame


class Transmit(Event):
    """A frame the link must put on the wire now (``data``: bytes): an RR acknowledging a
    response segment, the next request segment, a repeated I-frame."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


class Connected(Event):
    """UA received: the negotiated sizes (bytes) and windows, each from our side."""
    __slots__ = ("max_info_tx", "max_info_rx", "window_tx", "window_rx")

    def __init__(self, max_info_tx, max_info_rx, window_tx=1, window_rx=1):
        self.max_info_tx = max_info_tx
        self.max_info_rx = max_info_rx
        self.window_tx = window_tx
        self.window_rx = window_rx


class Apdu(Event):
    """A complete response APDU (``data``: bytes, segments joined, LLC header removed;
    ``llc``: 'response', 'request' or None when the meter sent no LLC header)."""
    __slots__ = ("data", "llc")

    def __init__(self, data, llc="response"):
        self.data = data
        self.llc = llc


class Disconnected(Event):
    """The answer to our DISC: ``ua`` True for UA, False for DM (was not linked)."""
    __slots__ = ("ua",)

    def __init__(self, ua):
        self.ua = ua


class LinkDown(Event):
    """The meter is in disconnected mode (DM): ``reason`` is one readable line."""
    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason


# ---------------------------------------------------------------- addresses

def server_id(b):
    """Address bytes -> (logical, physical or None), or None when undecodable. Lets a meter
    answer a 2-byte address in the 4-byte form (same values)."""
    try:
        v, n, end = hdlc.decode_address(b, 0)
        if end != len(b):
            return None
        return hdlc.split_server_address(v, n)
    except hdlc.HdlcError:
        return None


def address_text(b):
    """Server address bytes -> "1" or "1 (physical 17)" (hex when undecodable)."""
    try:
        v, n, _ = hdlc.decode_address(b, 0)
        lg, ph = hdlc.split_server_address(v, n)
    except hdlc.HdlcError:
        return b.hex()
    return "%d" % lg if ph is None else "%d (physical %d)" % (lg, ph)


# ---------------------------------------------------------------- the link

class ClientLink:
    """One HDLC primary station talking to one server address; ``window`` (1..7) proposed.

    ``client_sap`` 0..127; ``server_logical`` 0..127 alone, 0..16383 with ``server_physical``;
    ``max_info`` the information field size (bytes) we propose both ways; ``retries`` RR polls
    per exchange on silence. Raises ValueError for an address out of range. Read-only:
    ``state``, ``max_info_tx``/``max_info_rx``/``window_tx``/``window_rx`` (negotiated),
    ``dropped``/``last_error`` (bad frames heard).
    """

    def __init__(self, client_sap=16, server_logical=1, server_physical=None, max_info=128,
                 retries=1, window=1):
        try:
            self.src = hdlc.encode_client_address(client_sap)
            self.dest = hdlc.encode_server_address(server_logical, server_physical)
        except hdlc.HdlcError:
            raise ValueError("bad HDLC address: client %r, server %r/%r (client 0..127; server "
                             "0..127 alone, 0..16383 with a physical address)"
                             % (client_sap, server_logical, server_physical))
        self.server = (server_logical, server_physical)
        self.max_info = int(max_info)
        self.retries = int(retries)
        self.window = max(1, min(7, int(window)))
        self._stream = hdlc.FrameStream()
        self._reasm = hdlc.Reassembler()
        self._events = []
        self._pending = None        # a frame reported as FrameReceived, not yet acted upon
        self._last_tx = None        # (ctrl, info, segmented) of our last frame: echo check
        self._reset(IDLE)

    def _reset(self, state):
        self.state = state
        self._vs = 0                # V(S): N(S) of our next I-frame
        self._vr = 0                # V(R): N(S) we expect next from the meter
        self._last_i = None         # (N(S), info, segmented) of our last I-frame
        self._out = None            # [info, offset] of the request being sent
        self._polls = 0
        self._polled = False        # an RR poll is out, not answered yet
        self.max_info_tx = self.max_info_rx = DEFAULT_INFO
        self.window_tx = self.window_rx = 1

    def forget(self):
        """Back to IDLE without a frame (the line is gone; a DISC is not possible)."""
        self._events = []
        self._pending = None
        self._reset(IDLE)

    @property
    def connected(self):
        """True while the link is in NRM (UA received, no DISC/DM since)."""
        return self.state in (READY, SENDING, AWAITING)

    @property
    def vs(self):
        """V(S): the N(S) of our next I-frame (0..7)."""
        return self._vs

    @property
    def vr(self):
        """V(R): the N(S) we expect next from the meter (0..7)."""
        return self._vr

    @property
    def dropped(self):
        return self._stream.dropped

    @property
    def last_error(self):
        return self._stream.last_error

    def server_text(self):
        """Our server address as text: "1" or "1 (physical 17)"."""
        lg, ph = self.server
        return "%d" % lg if ph is None else "%d (physical %d)" % (lg, ph)

    def _frame(self, ctrl, info=b"", segmented=False):
        self._last_tx = (ctrl, bytes(info), bool(segmented))
        return hdlc.encode_frame(self.dest, self.src, ctrl, info, segmented)

    def _illegal(self, what):
        raise LocalProtocolError("%s is not allowed while the link is %s" % (what, self.state))

    # ------------------------------------------------------------ calls that produce frames

    def snrm(self):
        """SNRM proposing ``max_info`` and ``window`` both ways -> frame bytes. Forgets buffered
        input and resets V(S)/V(R). Not allowed while an exchange is in progress."""
        if self.state in (SENDING, AWAITING):
            self._illegal("SNRM")
        self._stream.reset()
        self._events = []
        self._pending = None
        self._reset(LINKING)
        return self._frame(hdlc.SNRM, hdlc.encode_params(self.max_info, self.max_info, self.window,
                                                         self.window))

    def send_apdu(self, apdu):
        """Start sending one APDU (LLC request header added, cut into I-frames of
        ``max_info_tx``) -> the first frame's bytes; later segments come as ``Transmit``
        events. Allowed only when ``state`` is READY."""
        if self.state != READY:
            if self.state in (IDLE, LINKING, CLOSING):
                raise LocalProtocolError("not connected (call connect() first)")
            self._illegal("a new request")
        self._out = [hdlc.LLC_REQUEST + bytes(apdu), 0]
        self._polls = self.retries
        self._polled = False
        self._reasm.reset()
        return self._next_segment()

    def disc(self):
        """DISC -> frame bytes (allowed in any state: also the way out after an error)."""
        self._events = []
        self._pending = None
        self._reset(CLOSING)
        return self._frame(hdlc.DISC)

    def on_timeout(self):
        """The meter stayed silent for the caller's timeout -> bytes to send (an RR poll), or
        b"" when there is nothing left to try (the caller reports a timeout; SNRM and DISC
        are never repeated). Not allowed when nothing is awaited."""
        if self.state in (LINKING, CLOSING):
            return b""
        if self.state not in (SENDING, AWAITING):
            self._illegal("a timeout")
        if self._polled or self._polls <= 0:
            return b""
        self._polls -= 1
        self._polled = True
        return self._frame(hdlc.ctrl_rr(self._vr))

    def _next_segment(self):
        info, pos = self._out
        chunk = info[pos:pos + self.max_info_tx]
        pos += len(chunk)
        last = pos >= len(info)
        self._out[1] = pos
        self._last_i = (self._vs, chunk, not last)
        frame = self._frame(hdlc.ctrl_i(self._vs, self._vr), chunk, not last)
        self._vs = (self._vs + 1) & 7
        self.state = AWAITING if last else SENDING
        return frame

    # ------------------------------------------------------------ input

    def receive(self, data):
        """Bytes heard on the line (any split)."""
        self._stream.feed(data)

    def next_event(self):
        """The next event (see the module doc); ``NeedData()`` when the buffered bytes hold
        nothing more. Raises ProtocolError when the meter breaks the protocol."""
        if self._pending is not None:
            f, self._pending = self._pending, None
            polled, self._polled = self._polled, False
            self._handle(f, polled)
        if self._events:
            return self._events.pop(0)
        while True:
            item = self._stream.pop()
            if item is None:
                return NeedData()
            f = item[1]
            if f is None or f.dest != self.src:
                continue            # a bad frame (counted), or one for another client
            if (f.dest == self.dest and f.src == self.src
                    and (f.ctrl, f.info, f.segmented) == self._last_tx):
                continue            # echo of our own frame (optical head, half duplex line)
            self._pending = f
            return FrameReceived(f)

    def _handle(self, f, polled):
        if f.src != self.dest and server_id(f.src) != self.server:
            raise ProtocolError("answer came from server address %s, expected %s (wrong --server?)"
                                % (address_text(f.src), self.server_text()))
        k = hdlc.kind(f.ctrl)
        st = self.state
        if st == LINKING:
            return self._on_linking(f, k)
        if st == CLOSING:
            if k in (hdlc.K_UA, hdlc.K_DM):
                self._reset(IDLE)
                self._events.append(Disconnected(k == hdlc.K_UA))
            return None
        if st in (SENDING, AWAITING) and polled and k in (hdlc.K_RR, hdlc.K_RNR):
            n_r = hdlc.nr(f.ctrl)
            if self._last_i is not None and n_r == self._last_i[0]:
                n_s, chunk, seg = self._last_i     # our last I-frame was lost: again, same N(S)
                self._events.append(Transmit(self._frame(hdlc.ctrl_i(n_s, self._vr), chunk, seg)))
                return None
            if k != hdlc.K_RR or n_r != self._vs:
                return None                        # not an acknowledgement: keep waiting
        if st == SENDING:
            return self._on_ack(f, k)
        if st == AWAITING:
            return self._on_reply(f, k)
        if k == hdlc.K_DM and st == READY:
            return self._link_error(f, k)
        return None                                # IDLE/READY: nothing awaited

    def _on_linking(self, f, k):
        if k == hdlc.K_DM:
            self._reset(IDLE)
            self._events.append(LinkDown("meter refused the link (DM in answer to SNRM)"))
        elif k == hdlc.K_FRMR:
            raise ProtocolError("meter rejected our SNRM (FRMR %s)" % f.info.hex())
        elif k == hdlc.K_UA:
            try:
                tx, rx, wtx, wrx = hdlc.decode_params(f.info)
            except hdlc.HdlcError as e:
                raise ProtocolError("UA carries unreadable HDLC parameters: %s" % e)
            self._reset(READY)
            # UA values are the meter's view: its tx is what we receive.
            self.max_info_rx = min(self.max_info, tx) if tx else DEFAULT_INFO
            self.max_info_tx = min(self.max_info, rx) if rx else DEFAULT_INFO
            self.window_rx = max(1, min(self.window, wtx))
            self.window_tx = max(1, min(self.window, wrx))
            self._events.append(Connected(self.max_info_tx, self.max_info_rx, self.window_tx,
                                          self.window_rx))
        # anything else (a late I-frame of an older session): keep waiting

    def _on_ack(self, f, k):
        """SENDING: the meter acknowledges each segment with RR(N(R) = our V(S))."""
        if k == hdlc.K_RR:
            if hdlc.nr(f.ctrl) != self._vs:
                raise ProtocolError("meter acknowledged segment with N(R)=%d, expected %d"
                                    % (hdlc.nr(f.ctrl), self._vs))
            self._events.append(Transmit(self._next_segment()))
        elif k != hdlc.K_RNR:
            self._link_error(f, k)

    def _on_reply(self, f, k):
        """AWAITING: response segments; RR/RNR, a late UA, a pushed UI are not the answer."""
        if k != hdlc.K_I:
            if k not in (hdlc.K_RR, hdlc.K_RNR):
                self._link_error(f, k)
            return
        n_s = hdlc.ns(f.ctrl)
        final = hdlc.pf(f.ctrl)
        if n_s != self._vr:
            if n_s == (self._vr - 1) & 7 or self.window_rx > 1:
                # a repeat (our RR was lost), or a frame after a lost one inside a window:
                # dropped; at the window's final frame, RR(V(R)) asks again from the gap
                if final:
                    self._events.append(Transmit(self._frame(hdlc.ctrl_rr(self._vr))))
                return
            raise ProtocolError("meter sent N(S)=%d, expected %d" % (n_s, self._vr))
        n_r = hdlc.nr(f.ctrl)
        if n_r != self._vs:
            raise ProtocolError("meter acknowledged N(R)=%d, expected %d (frame lost)"
                                % (n_r, self._vs))
        self._vr = (self._vr + 1) & 7
        done = self._reasm.add(f)
        if done is None:
            if final or self.window_rx == 1:   # the meter waits for our RR (window 1: each frame)
                self._events.append(Transmit(self._frame(hdlc.ctrl_rr(self._vr))))
            return
        self.state = READY
        self._out = None
        self._events.append(Apdu(done[1], done[0]))

    def _link_error(self, f, k):
        if k == hdlc.K_DM:
            self._reset(IDLE)
            self._events.append(LinkDown("meter is in disconnected mode (DM): link lost"))
        elif k == hdlc.K_FRMR:
            raise ProtocolError("meter rejected our frame (FRMR %s)" % f.info.hex())
        elif k not in (hdlc.K_UA, hdlc.K_UI):  # a late UA, or an unsolicited UI frame (push)
            raise ProtocolError("unexpected HDLC frame from meter (control 0x%02X)" % f.ctrl)
