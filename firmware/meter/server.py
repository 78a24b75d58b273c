"""DLMS/COSEM server: HDLC link layer (IEC 62056-46) + association and xDLMS services (IEC 62056-5-3).

``HdlcLink.on_frame(frame) -> sequence of frames (bytes)`` is sans-I/O: the async task in
``meter.app`` feeds it frames from a ``protocol.hdlc.Receiver`` and writes what it returns.
``Association`` answers one APDU with one APDU (objects: ``meter.cosem``). What the link and
the application layer do, clause by clause: docs/CONTRACTS.md "DLMS server".
"""
import time

from protocol import hdlc, apdu, axdr
from meter import acse, cosem

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_ticks_diff = getattr(time, "ticks_diff", None) or (lambda a, b: a - b)

_NDM = const(0)
_NRM = const(1)

# APDU tags and codes (IEC 62056-5-3; protocol.apdu)
_AARQ = const(0x60)
_RLRQ = const(0x62)
_GET_REQUEST = const(0xC0)
_SET_REQUEST = const(0xC1)
_ACTION_REQUEST = const(0xC3)
_GET_RESPONSE = const(0xC4)
_GLO_GET = const(0xC8)         # first ciphered request tag .. general-ded-ciphering
_GENERAL_DED = const(0xDC)
_CONF_GET = const(0x10)
_CONF_SET = const(0x08)
_CONF_ACTION = const(0x01)
_CONF_BLOCK_TRANSFER_WITH_GET = const(0x1000)
_SERVICE_PDU_TOO_LONG = const(4)
_DAR_LONG_GET_ABORTED = const(15)
_DAR_NO_LONG_GET_IN_PROGRESS = const(16)
_DAR_DATA_BLOCK_NUMBER_INVALID = const(19)
_DAR_HARDWARE_FAULT = const(1)

_SEND_MAX = const(512)         # larger responses go by block transfer when negotiated (small heap)
_BLOCK_HEAD = const(12)        # C4 02 inv last blk(4) choice len(<=3)
_RX_MAX = const(1100)          # reassembly limit for segmented requests

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

# positional records (index consts cost nothing): a long GET in progress [buffered bytes, chunk
# generator or None, last block number sent, block size]; a response being segmented [data with
# LLC header, offset sent]; the last I-frame sent (frame, echo key)
_BLK_BUF = const(0)
_BLK_GEN = const(1)
_BLK_NO = const(2)
_BLK_SIZE = const(3)
_TX_OFF = const(1)

_FRMR_W = const(1)             # invalid / not implemented control field
_FRMR_Y = const(4)             # information field too long
_FRMR_Z = const(8)             # invalid N(R)


def _fill(src, n):
    """Pull chunks of a value being sent in blocks (``src``: [_BLK_BUF, _BLK_GEN, ...]) until
    ``n`` bytes are buffered; True when the whole value is buffered."""
    g = src[_BLK_GEN]
    if g is not None and len(src[_BLK_BUF]) < n:
        buf = bytearray(src[_BLK_BUF])
        while len(buf) < n:
            try:
                buf.extend(next(g))
            except StopIteration:
                g = src[_BLK_GEN] = None
                break
        src[_BLK_BUF] = buf
    return g is None


class Association:
    """Application association state and xDLMS service dispatch for one link. Attributes
    read by IC 15 (meter.cosem): ``role``, ``client``, ``server``, ``conformance``,
    ``max_pdu``, ``mechanism``."""

    def __init__(self, meter, server=1):
        self.meter = meter
        self.server = server
        self.reset()

    def reset(self):
        self.open = False
        self.role = 0
        self.client = 0
        self.mechanism = 0
        self.conformance = 0
        self.max_pdu = 0xFFFF
        self._blocks = None            # long GET in progress: [_BLK_BUF .. _BLK_SIZE]
        self.sess = None               # HLS session (meter.secure: PEER .. PENDING)
        self.guard = self.inner = False    # meter.acse.guard runs; inside a ciphered APDU

    def aarq(self, client, buf):
        """AARQ -> AARE (ACSE, Green Book §9.4.2): ``meter.acse``."""
        self.reset()
        return acse.aarq(self, client, buf)

    def handle(self, client, buf):
        """One complete APDU in, one APDU out (or None for no answer)."""
        if not buf:
            return None
        tag = buf[0]
        if tag == _AARQ:
            return self.aarq(client, buf)
        if _GLO_GET <= tag <= _GENERAL_DED and self.sess is not None and not self.inner:
            return self.meter.security.unwrap(self, client, buf)
        if tag == _RLRQ:
            try:
                apdu.parse_rlrq(buf)
            except apdu.ApduError:
                pass                      # released anyway
            self.reset()
            return apdu.build_rlre(0)
        if tag in (_GET_REQUEST, _SET_REQUEST, _ACTION_REQUEST):
            if not self.open or client != self.client:
                return apdu.exception_response(1, 1)  # service-not-allowed, operation-not-possible
            try:
                req = apdu.parse_request(buf)
            except apdu.ApduError as e:
                self._blocks = None
                return apdu.exception_response(2 if e.service_error == 2 else 1, e.service_error)
            if self.guard:
                r = acse.guard(self, tag, req)
                if r is not None:
                    return r
            if tag == _GET_REQUEST:
                if not self.conformance & _CONF_GET:
                    return apdu.exception_response(1, 2)
                return self.get(req)
            self._blocks = None
            inv = req.invoke
            if tag == _SET_REQUEST:
                if not self.conformance & _CONF_SET:
                    return apdu.exception_response(1, 2)
                return apdu.set_response(inv, cosem.put(self.meter, self, req.items[0], req.value))
            if not self.conformance & _CONF_ACTION:
                return apdu.exception_response(1, 2)
            result, data = cosem.act(self.meter, self, req.items[0])
            return apdu.action_response(inv, result, data)
        return apdu.exception_response(2, 2)  # service-unknown, service-not-supported

    def get(self, req):
        inv = req.invoke
        if req.kind == 2:  # GET next (IEC 62056-5-3 §7.3.4.2: block-number = last one received)
            b = self._blocks
            if b is None:
                return apdu.get_response_block_error(inv, req.block_no, _DAR_NO_LONG_GET_IN_PROGRESS)
            if req.block_no != b[_BLK_NO]:
                self._blocks = None
                return apdu.get_response_block_error(inv, req.block_no, _DAR_DATA_BLOCK_NUMBER_INVALID)
            return self._next_block(inv)
        self._blocks = None
        limit = self.max_pdu if self.max_pdu < _SEND_MAX else _SEND_MAX
        blocks_ok = self.conformance & _CONF_BLOCK_TRANSFER_WITH_GET
        if req.kind == 1:
            w = axdr.Writer()
            r = cosem.get(self.meter, self, req.items[0], w)
            if isinstance(r, int):
                if r:
                    return apdu.get_response_error(inv, r)
                src = [w.buf, None]
            else:
                src = [b"", r]
            try:
                whole = _fill(src, limit - 3)
                if not (whole and len(src[_BLK_BUF]) + 4 <= limit) and not blocks_ok:
                    # no block transfer: send it whole if it fits the client's PDU
                    whole = _fill(src, self.max_pdu - 3)
                    limit = self.max_pdu
            except Exception:
                return apdu.get_response_error(inv, _DAR_HARDWARE_FAULT)
            if whole and len(src[_BLK_BUF]) + 4 <= limit:
                return apdu.get_response(inv, src[_BLK_BUF])
            if not blocks_ok:
                return apdu.exception_response(1, _SERVICE_PDU_TOO_LONG)
        else:  # with-list: the raw data is the SEQUENCE OF Get-Data-Result
            out = bytearray(axdr.encode_length(len(req.items)))
            for item in req.items:
                w = axdr.Writer()
                r = cosem.get(self.meter, self, item, w)
                if not isinstance(r, int):
                    try:
                        for chunk in r:
                            w.buf.extend(chunk)
                    except Exception:
                        r = _DAR_HARDWARE_FAULT
                    else:
                        r = 0
                if r:
                    out.append(1)
                    out.append(r)
                else:
                    out.append(0)
                    out.extend(w.buf)
            if len(out) + 3 <= self.max_pdu or not blocks_ok:
                return bytes((_GET_RESPONSE, 3, inv)) + out
            src = [out, None]
            limit = self.max_pdu if self.max_pdu < _SEND_MAX else _SEND_MAX
        # each block a whole GET-Response-With-Datablock within ``limit``; never the last first
        src.append(0)
        src.append(limit - _BLOCK_HEAD)
        self._blocks = src
        return self._next_block(inv)

    def _next_block(self, inv):
        b = self._blocks
        no = b[_BLK_NO] + 1
        n = b[_BLK_SIZE]
        try:
            done = _fill(b, n)
        except Exception:
            self._blocks = None
            return apdu.get_response_block_error(inv, no, _DAR_LONG_GET_ABORTED)
        buf = b[_BLK_BUF]
        last = done and len(buf) <= n
        chunk = bytes(buf[:n])
        b[_BLK_BUF] = buf[n:]
        if last:
            self._blocks = None
        else:
            b[_BLK_NO] = no
        return apdu.get_response_block(inv, last, no, chunk)


class HdlcLink:
    """Server side of one HDLC link (IEC 62056-46), window size 1. ``logical``/``physical``: our
    server address (physical None: any physical part of a 2/4-byte address is accepted);
    ``max_info``: the largest information field we send and receive (negotiation lowers it).
    Counters: ``ignored`` (frames not for us, echoes), ``frmr`` (FRMR sent), ``retransmitted``."""

    def __init__(self, meter, logical=1, physical=None, max_info=512, inactivity_s=120):
        self.assoc = Association(meter, logical)
        self.logical = logical
        self.physical = physical
        self.max_info = max_info
        self.inactivity_ms = int(inactivity_s) * 1000
        self.ticks = meter.board.ticks_ms
        self.ignored = 0
        self.frmr = 0
        self.retransmitted = 0
        self._echo = None          # (dest, src, ctrl, info) of our last frame
        self._addr = b"\x03"
        self._ndm()

    def _ndm(self):
        self.state = _NDM
        self.client = None
        self.vs = self.vr = 0
        self.tx_max = self.rx_max = 128
        self._rx = None            # request being reassembled: bytearray (False: over _RX_MAX)
        self._tx = None            # response being sent in segments: [data, _TX_OFF]
        self._last = None          # (frame, echo key) of our last I-frame, for retransmission
        self._last_rx = 0
        self.assoc.reset()

    def _frame(self, ctrl, info=b"", segmented=False, client=None):
        dest = client or self.client
        self._echo = (dest, self._addr, ctrl, info)
        return hdlc.encode_frame(dest, self._addr, ctrl, info, segmented)

    def _frmr(self, ctrl, flags):
        self.frmr += 1
        return (self._frame(_FRMR, bytes((ctrl, (self.vs << 1) | (self.vr << 5), flags))),)

    def on_frame(self, f):
        """Handle one received frame; return a sequence of frames to transmit (maybe empty)."""
        ok = len(f.src) == 1
        if ok:
            try:
                value, n, _ = hdlc.decode_address(f.dest, 0)
                logical, physical = hdlc.split_server_address(value, n)
                ok = logical == self.logical and (n == 1 or self.physical is None
                                                  or physical == self.physical)
            except hdlc.HdlcError:
                ok = False
        e = self._echo
        if not ok or (e is not None and f.ctrl == e[2] and f.src == e[1] and f.dest == e[0]
                      and f.info == e[3]):
            self.ignored += 1      # not for us, or our own frame heard back (optical head, echo)
            return ()
        # inactivity supervision: a link silent for inactivity_s is back in NDM
        now = self.ticks()
        if (self.state == _NRM and self.inactivity_ms
                and _ticks_diff(now, self._last_rx) > self.inactivity_ms):
            self._ndm()
        self._last_rx = now
        k = hdlc.kind(f.ctrl)
        if k in (_K_UA, _K_DM, _K_FRMR):
            self.ignored += 1      # responses are never addressed to a secondary
            return ()
        self._addr = f.dest
        if k == _K_SNRM:
            self._ndm()
            self._last_rx = now
            self.client = f.src
            try:
                ctx, crx, _, _ = hdlc.decode_params(f.info)
            except hdlc.HdlcError:
                return self._frmr(f.ctrl, _FRMR_W | 2)
            if ctx < 1 or crx < 1:
                return self._frmr(f.ctrl, _FRMR_W | 2)
            self.tx_max = min(self.max_info, crx)
            self.rx_max = min(self.max_info, ctx)
            self.state = _NRM
            return (self._frame(_UA, hdlc.encode_params(self.tx_max, self.rx_max, 1, 1)),)
        if k == _K_DISC:
            was = self.state
            self._ndm()
            return (self._frame(_UA if was == _NRM else _DM, client=f.src),)
        if self.state != _NRM or f.src != self.client:   # not connected: DM to I, RR, RNR
            return (self._frame(_DM, client=f.src),) if k in (_K_I, _K_RR, _K_RNR) else ()
        if k == _K_UI:
            return ()
        if k == _K_RNR:
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        if k != _K_I and k != _K_RR:
            return self._frmr(f.ctrl, _FRMR_W)
        return self._numbered(f, k)

    def _numbered(self, f, k):
        """An I-frame or RR from our client in NRM: sequence numbers, retransmission,
        segmentation both ways, then the request to the association."""
        nr = hdlc.nr(f.ctrl)
        last = self._last
        resend = last is not None and nr == (self.vs - 1) & 7   # our last I-frame is missing
        if k == _K_RR:
            if resend:
                self.retransmitted += 1
                frame, self._echo = last
                return (frame,)
            if nr != self.vs:
                return self._frmr(f.ctrl, _FRMR_Z)
            if self._tx is not None:
                return (self._next_segment(),)
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        # I-frame
        n_s = hdlc.ns(f.ctrl)
        if n_s != self.vr:
            if n_s == (self.vr - 1) & 7 and last is not None:
                self.retransmitted += 1     # repeated request: our answer was lost
                frame, self._echo = last
                return (frame,)
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        if nr != self.vs and not resend:
            return self._frmr(f.ctrl, _FRMR_Z)
        if len(f.info) > self.rx_max:
            return self._frmr(f.ctrl, _FRMR_Y)
        self.vr = (self.vr + 1) & 7
        self._tx = None                     # a new request ends any unfinished response
        rx = self._rx
        if f.segmented or rx is not None:
            if rx is None:
                rx = self._rx = bytearray()
            if rx is not False:
                if len(rx) + len(f.info) > _RX_MAX:
                    rx = self._rx = False   # too long: the rest is dropped, then refused
                else:
                    rx.extend(f.info)
            if f.segmented:
                return (self._frame(hdlc.ctrl_rr(self.vr)),)
            self._rx = None
            if rx is False:
                return self._send(apdu.exception_response(1, _SERVICE_PDU_TOO_LONG))
            data = rx
        else:
            data = f.info
        mv = memoryview(data)
        if len(data) >= 3 and data[0] == 0xE6 and data[1] in (0xE6, 0xE7):
            mv = mv[3:]                     # LLC header
        resp = self.assoc.handle(self.client[0] >> 1, mv)
        if resp is None:
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        return self._send(resp)

    def _send(self, resp):
        self._tx = [b"\xE6\xE7\x00" + resp, 0]
        return (self._next_segment(),)

    def _next_segment(self):
        t = self._tx
        data, off = t
        end = off + self.tx_max
        seg = len(data) > end
        frame = self._frame(hdlc.ctrl_i(self.vs, self.vr), data[off:end], seg)
        if seg:
            t[_TX_OFF] = end
        else:
            self._tx = None
        self.vs = (self.vs + 1) & 7
        self._last = (frame, self._echo)
        return frame
