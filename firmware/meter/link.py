"""The meter's HDLC link (IEC 62056-46), server side, and the UART task that feeds it.

``HdlcLink.on_frame(frame) -> sequence of frames (bytes)`` is sans-I/O; ``HdlcLink.serve(stream)``
is the link's task (a generator for ``meter.metrology.loop``): bytes from the board's DLMS UART into a
``protocol.hdlc.Receiver`` (inter-character time-out, frames for other stations skipped by their
length), frames into ``on_frame``, answers out. The association is ``meter.server``'s. What the
link does, clause by clause: docs/CONTRACTS.md "DLMS server".

Addressing (§6.4.2): our logical address must match; the all-station (0x7F / 0x3FFF) and
no-station (0) addresses, logical or physical, are never answered (IEC 62056-46 allows the
all-station address only for UI frames, which get no response; this meter serves no broadcast
service). With a provisioned ``physical`` address (an RS-485 bus) only 2/4-byte addresses
carrying it are answered; without one (a point-to-point or optical port) the 1-byte address and
any physical part are. A link with an open association belongs to the client address that
opened it until DISC (or RLRQ) or ``inactivity_s``: other clients get DM (§6.4.4.4.3:
"disconnected mode": this secondary is not connected to them and cannot action their SNRM now),
the owner's link is untouched. A link without an association (a refused AARQ, a client that went
away after its SNRM) is taken over by another client's SNRM; one with a public association (client
16) or an HLS association before pass 3, by an SNRM of any client but the public one: only an
authenticated association (LLS, or HLS after pass 3) holds the link against other clients.
"""
import time

from protocol import hdlc, apdu
from protocol.crc import crc16_x25
from meter.server import Association
from meter.store import undo

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_ticks_diff = getattr(time, "ticks_diff", None) or (lambda a, b: a - b)

_NDM = const(0)
_NRM = const(1)
_SERVICE_PDU_TOO_LONG = const(4)
_EV_DLMS_ERROR = const(90)     # meter.events
_RX_INFO = const(128)          # largest information field we receive (what UA announces)
_RX_MAX = const(1027)          # reassembly limit: meter.acse _SERVER_MAX_PDU (1024) + the LLC header
_ICT_MS = const(25)            # inter-character time-out (IC 23 inter_octet_time_out default)
_IDLE_MS = const(10)           # serve(): the UART is read again after this when nothing came
_OVERHEAD = const(16)          # flags, format, 4-byte dest, src, ctrl, HCS, FCS

# HDLC (protocol.hdlc): UA, DM, FRMR responses; kind() results
_UA = const(0x73)
_DM = const(0x1F)
_FRMR = const(0x97)
_K_I = const(1)
_K_RR = const(2)
_K_RNR = const(3)
_K_SNRM = const(4)
_K_UA = const(5)
_K_DISC = const(6)
_K_DM = const(7)
_K_FRMR = const(8)
_K_UI = const(9)
_WINDOW = const(7)             # largest window we negotiate both ways (IEC 62056-46 §6.4.4.4.3.2)
_SEND_CAP = const(1024)        # response APDU size (whole frames of it: see _numbered): meter.server's
#                                response buffer holds it (docs/MEMORY.md)
# a response being sent: [APDU (no LLC), offset of the next new segment, offset of the oldest
# unacknowledged one, its N(S), end offsets of the frames sent and not acknowledged]; offsets
# count the 3-byte LLC header
_TX_NEXT = const(1)
_TX_BASE = const(2)
_TX_NS = const(3)
_TX_ENDS = const(4)
_PF = const(0x10)

_FRMR_W = const(1)             # invalid / not implemented control field
_FRMR_Y = const(4)             # information field too long
_FRMR_Z = const(8)             # invalid N(R)


class HdlcLink:
    """Server side of one HDLC link (IEC 62056-46), windows up to 7. ``logical``/``physical``: our
    server address (physical None: a point-to-point port, see the module); ``max_info``: the
    largest information field we send and receive, received ones _RX_INFO (128) at most
    (negotiation lowers both).
    Counters: ``ignored`` (frames not for us, echoes), ``refused`` (frames of other clients while
    a link is open), ``errors`` (exceptions: only the first is logged), ``frmr`` (FRMR sent),
    ``retransmitted``."""

    def __init__(self, meter, logical=1, physical=None, max_info=512, inactivity_s=120):
        self.assoc = Association(meter, logical)
        self.logical = logical
        self.physical = physical
        self.max_info = max_info
        self.inactivity_ms = int(inactivity_s) * 1000
        self.ticks = meter.board.ticks_ms
        self.ignored = 0
        self.refused = 0
        self.errors = 0
        self.frmr = 0
        self.retransmitted = 0
        self._echo = None          # (dest, src, ctrl, FCS bytes) of our last frame
        self._fb = None            # serve(): the buffer each I-frame of a response is built in (_rb)
        # serve()'s receiver, and one buffer for a request (copied or reassembled in it: a segmented
        # one's length in _rx) and for the I-frames of a response (serve() builds them in it), allocated
        # now (boot) while the heap is unfragmented. Shared, as they never overlap: a new request
        # ends the response being sent (_numbered), a response is built after its request was
        # handled, and no response nor state refers to the request after it (meter.server copies)
        # (a protocol.hdlc.Receiver: frames up to _RX_INFO of information, frames for other
        # stations skipped, inter-character time-out _ICT_MS)
        self._pre = hdlc.Receiver(min(max_info, _RX_INFO) + _OVERHEAD, self.accepts, _ICT_MS)
        self._rb = bytearray(max(_RX_MAX, max_info + _OVERHEAD))
        self._addr = b"\x03"
        self.pending = False       # a physical address applied by a profile: taken at the link's end
        self._ndm()

    def accepts(self, value, n):
        """True if a destination address (decoded ``value`` of ``n`` bytes) names this meter."""
        try:
            logical, physical = hdlc.split_server_address(value, n)
        except hdlc.HdlcError:
            return False
        top = 0x7F if n < 4 else 0x3FFF
        if logical != self.logical or logical == top:
            return False
        if physical is None:
            return self.physical is None
        if physical == top or physical == 0:
            return False
        return self.physical is None or physical == self.physical

    def serve(self, stream):
        """The UART task (a generator yielding the ms to wait, ``meter.metrology.loop``): read
        ``stream``, answer frames; never returns. ``stream`` does not block: ``readinto`` gives
        None or 0 when nothing came (``machine.UART(timeout=0)``, a raw tty with VMIN=0), and a
        frame the stream takes in part (or not at all) is written on when the others have run."""
        rx, self._fb = self._pre, self._rb
        self._pre = None
        buf = bytearray(32)
        mv = memoryview(buf)
        ticks = self.ticks
        while True:
            n = stream.readinto(buf)
            if not n:
                yield _IDLE_MS
                continue
            rx.feed(mv[:n], ticks(), n == len(buf))
            while True:
                f = rx.pop()
                if f is None:
                    break
                try:
                    out = self.on_frame(f)
                except Exception as e:  # a bug must not take the meter off the air
                    m = self.assoc.meter
                    try:   # what it changed in RAM undone (out of memory: event 90, coalesced); a
                        if hasattr(m, "stale"):     # host test's stand-in meter has no journal
                            undo(m, e)
                    except Exception:       # undo raises again (nothing journaled): no answer
                        pass
                    if not self.errors and not isinstance(e, MemoryError):   # once: no flash wear per request
                        try:
                            m.event(_EV_DLMS_ERROR, "dlms error %r" % (e,))
                        except MemoryError:   # its write too (littlefs: a ~256 B block per file)
                            pass
                    self.errors += 1
                    self._ndm()
                    out = ()
                for frame in out:
                    k = stream.write(frame)
                    while (k or 0) < len(frame):
                        if k:
                            frame = frame[k:]
                        yield 0
                        k = stream.write(frame)
            yield 0

    def _ndm(self):
        if self.pending is not False:
            self.physical, self.pending = self.pending, False
        self.state = _NDM
        self.client = None
        self.vs = self.vr = 0
        self.tx_max = self.rx_max = 128
        self.win_tx = self.win_rx = 1
        self._rx = None            # request being reassembled: its length in _rb (False: over _RX_MAX)
        self._tx = None            # response being sent, until acknowledged: [APDU, _TX_NEXT ..]
        self._last_rx = 0
        self.assoc.reset()

    def _frame(self, ctrl, info=b"", segmented=False, client=None, addr=None):
        dest = client or self.client
        addr = addr or self._addr
        fr = hdlc.encode_frame(dest, addr, ctrl, info, segmented)
        self._echo = (dest, addr, ctrl, fr[-3:-1])
        return fr

    def _frmr(self, ctrl, flags):
        self.frmr += 1
        return (self._frame(_FRMR, bytes((ctrl, (self.vs << 1) | (self.vr << 5), flags))),)

    def on_frame(self, f):
        """Handle one received frame; return a sequence of frames to transmit (maybe empty)."""
        try:
            value, n, _ = hdlc.decode_address(f.dest, 0)
        except hdlc.HdlcError:
            n = 0
        e = self._echo             # our own frame heard back (optical head, echo): same FCS
        if len(f.src) != 1 or not n or not self.accepts(value, n) or (
                e is not None and f.ctrl == e[2] and f.src == e[1] and f.dest == e[0]
                and hdlc.encode_frame(f.dest, f.src, f.ctrl, f.info, f.segmented)[-3:-1] == e[3]):
            self.ignored += 1
            return ()
        k = hdlc.kind(f.ctrl)
        if k == _K_UA or k == _K_DM or k == _K_FRMR:
            self.ignored += 1      # responses are never addressed to a secondary
            return ()
        # inactivity supervision: a link silent for inactivity_s is back in NDM
        now = self.ticks()
        if (self.state == _NRM and self.inactivity_ms
                and _ticks_diff(now, self._last_rx) > self.inactivity_ms):
            self._ndm()
        a = self.assoc
        if self.state == _NRM and f.src != self.client and (
                k != _K_SNRM or a.open and (f.src == b"\x21" or a.role and not (a.sess and a.sess[5]))):
            # the link is another client's: it stays as it is, this one is told DM (not UI). An SNRM
            # of a client other than the public one (16) takes over a link with no association, a
            # public one or an HLS one before pass 3: an attacker without a secret held the only
            # link with an RR per 100 s (attack pass, session 16)
            self.refused += 1
            return () if k == _K_UI else (self._frame(_DM, client=f.src, addr=f.dest),)
        self._last_rx = now
        self._addr = f.dest
        if k == _K_SNRM:
            self._ndm()
            self._last_rx = now
            self.client = f.src
            try:
                ctx, crx, cwtx, cwrx = hdlc.decode_params(f.info)
            except hdlc.HdlcError:
                return self._frmr(f.ctrl, _FRMR_W | 2)
            if ctx < 1 or crx < 1:
                return self._frmr(f.ctrl, _FRMR_W | 2)
            self.tx_max = min(self.max_info, crx)
            self.rx_max = min(self.max_info, ctx, _RX_INFO)
            self.win_tx = max(1, min(_WINDOW, cwrx))    # the client's view: its rx is our tx
            self.win_rx = max(1, min(_WINDOW, cwtx))
            # responses of whole frames: APDU + 3-byte LLC header = k * tx_max (no 3-byte spill)
            self.assoc.send_max = max(1, _SEND_CAP // self.tx_max) * self.tx_max - 3
            self.state = _NRM
            return (self._frame(_UA, hdlc.encode_params(self.tx_max, self.rx_max, self.win_tx,
                                                        self.win_rx)),)
        if k == _K_DISC:
            was = self.state
            self._ndm()
            return (self._frame(_UA if was == _NRM else _DM, client=f.src),)
        if self.state != _NRM:     # not connected: DM to I, RR, RNR
            return (self._frame(_DM, client=f.src),) if k == _K_I or k == _K_RR or k == _K_RNR else ()
        if k == _K_UI:
            return ()
        if k == _K_RNR:
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        if k != _K_I and k != _K_RR:
            return self._frmr(f.ctrl, _FRMR_W)
        return self._numbered(f, k)

    def _numbered(self, f, k):
        """An I-frame or RR from our client in NRM: sequence numbers, acknowledgement and
        go-back-N retransmission of our window, segmentation both ways (a request segment sent
        without the poll bit is taken silently, inside the client's window), then the request
        to the association."""
        nr = hdlc.nr(f.ctrl)
        poll = f.ctrl & _PF
        if k == _K_RR:
            if self._tx is None:
                return self._frmr(f.ctrl, _FRMR_Z) if nr != self.vs else (self._frame(hdlc.ctrl_rr(self.vr)),)
            if not self._ack(nr):
                return self._frmr(f.ctrl, _FRMR_Z)
            if self._tx is None:
                return (self._frame(hdlc.ctrl_rr(self.vr)),)
            return self._window()
        # I-frame
        n_s = hdlc.ns(f.ctrl)
        if n_s != self.vr:
            if not poll:
                return ()                   # out of sequence inside a window: the poll tells
            if n_s == (self.vr - 1) & 7 and self._tx is not None and self._ack(nr) and self._tx:
                return self._window()       # repeated request: our answer was lost
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        if (self._tx is not None and not self._ack(nr)) or (self._tx is None and nr != self.vs):
            return self._frmr(f.ctrl, _FRMR_Z)
        if len(f.info) > self.rx_max:
            return self._frmr(f.ctrl, _FRMR_Y)
        self.vr = (self.vr + 1) & 7
        self._tx = None                     # a new request ends any unfinished response
        # into _rb (allocated at boot, no allocation here), a whole request as well as a segmented
        # one: the request is a view of it, valid until the response's first frame is built
        # (meter.server copies what it keeps); a ciphered request is deciphered there in place
        # (meter.secure), and the frame's bytes are garbage from here on (~60-140 B free while the
        # request is handled: meter.secure copied them, the frame kept them)
        rx = self._rx
        n = len(f.info)
        if rx is None:
            rx = 0
        if rx is not False:
            if rx + n > _RX_MAX:
                rx = False                  # too long: the rest is dropped, then refused
            else:
                self._rb[rx:rx + n] = f.info
                rx += n
        f.info = b""
        if f.segmented:
            self._rx = rx
            return (self._frame(hdlc.ctrl_rr(self.vr)),) if poll else ()
        self._rx = None
        mv = memoryview(self._rb)[:rx] if rx is not False else None
        if mv is None:
            resp = apdu.exception_response(1, _SERVICE_PDU_TOO_LONG)
        else:
            if len(mv) >= 3 and mv[0] == 0xE6 and 0xE6 <= mv[1] <= 0xE7:
                mv = mv[3:]                 # LLC header
            resp = self.assoc.handle(self.client[0] >> 1, mv)
            if resp is None:
                return (self._frame(hdlc.ctrl_rr(self.vr)),)
        self._tx = [resp, 0, 0, self.vs, []]    # the response being sent (_TX_NEXT ..)
        return self._window()

    def _ack(self, nr):
        """The client's N(R) acknowledges our frames before it: False if it names a frame we
        did not send; the response is dropped once all of it is acknowledged; a frame not
        acknowledged is sent again from there (go-back-N)."""
        t = self._tx
        ends = t[_TX_ENDS]
        n = (nr - t[_TX_NS]) & 7
        if n > len(ends):
            return False
        if n:
            t[_TX_BASE] = ends[n - 1]
            del ends[:n]
        if t[_TX_BASE] >= len(t[0]) + 3:
            self._tx = None
            return True
        t[_TX_NS] = nr
        if nr != self.vs:                   # frames lost: back to the first one missing
            self.retransmitted += 1
            t[_TX_NEXT] = t[_TX_BASE]
            del ends[:]
            self.vs = nr
        return True

    def _window(self):
        """The next frames of the response, as many as the window has room for; the last
        one carries the final bit. In ``serve`` they are built one at a time in one buffer
        (``_fb``, memoryviews: each is sent before the next is built), else returned as bytes."""
        fb = self._fb
        if fb is None:
            return [bytes(fr) for fr in self._frames(bytearray(self.tx_max + _OVERHEAD))]
        if len(fb) < self.tx_max + _OVERHEAD:   # max_info raised by a profile
            fb = self._fb = self._rb = bytearray(self.tx_max + _OVERHEAD)
        return self._frames(fb)

    def _frames(self, fb):
        """Generator of ``_window``. A frame whose FCS would end in 7E (next to the closing
        flag) carries a byte less: clients that find frames by flags (dlms-cosem 25.1) lose it."""
        t = self._tx
        mv, off, ends = memoryview(t[0]), t[_TX_NEXT], t[_TX_ENDS]
        end = len(mv) + 3
        room = self.win_tx - len(ends)
        while room > 0 and off < end:
            room -= 1
            m = self.tx_max
            while True:
                stop = off + m if off + m < end else end
                seg = stop < end
                n = self._iframe(fb, hdlc.ctrl_i(self.vs, self.vr, not (seg and room)), mv, off, stop, seg)
                if fb[n - 2] != 0x7E or stop - off < 5:
                    break
                m = stop - off - 1
            ends.append(stop)
            self.vs = (self.vs + 1) & 7
            t[_TX_NEXT] = off = stop
            yield memoryview(fb)[:n]

    def _iframe(self, fb, ctrl, mv, a, b, seg):
        """Build in ``fb`` the I-frame carrying bytes ``a``..``b`` of LLC header + response
        (``mv``: the response APDU); returns its length (flags included)."""
        p = 3
        for x in (self.client, self._addr):
            fb[p:p + len(x)] = x
            p += len(x)
        fb[p] = ctrl
        h = p + 1
        p = h + 2
        if a == 0:
            fb[p] = 0xE6               # LLC header (no bytes literal: an object per load)
            fb[p + 1] = 0xE7
            fb[p + 2] = 0
            p += 3
            a = 3
        fb[p:p + b - a] = mv[a - 3:b - 3]
        p += b - a
        fb[0] = 0x7E
        fb[1] = 0xA0 | (0x08 if seg else 0) | ((p + 1) >> 8)
        fb[2] = (p + 1) & 0xFF
        c = crc16_x25(fb, 1, h)
        fb[h] = c & 0xFF
        fb[h + 1] = c >> 8
        c = crc16_x25(fb, 1, p)
        fb[p] = c & 0xFF
        fb[p + 1] = c >> 8
        fb[p + 2] = 0x7E
        self._echo = (self.client, self._addr, ctrl, bytes(fb[p:p + 2]))
        return p + 3
