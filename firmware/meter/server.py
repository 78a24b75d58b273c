"""DLMS/COSEM server: HDLC link layer (IEC 62056-46) + association and xDLMS services (IEC 62056-5-3).

``HdlcLink.on_frame(frame) -> sequence of frames (bytes)`` is sans-I/O: the async task in
``meter.app`` feeds it frames from a ``protocol.hdlc.Receiver`` and writes what it returns.

Link (IEC 62056-46 §6.4): NDM/NRM. SNRM -> UA with parameter negotiation (each value the
minimum of ours and the client's; 128/128/1/1 when absent), window 1. I-frames with N(S)/N(R):
a repeated I-frame (our answer was lost) or an RR whose N(R) shows our last I-frame missing gets
that frame again. Segmented I-frames both ways (S bit, RR after each segment). DISC -> UA in NRM,
DM in NDM; I/RR/RNR in NDM -> DM. FRMR (info: rejected control, V(S)/V(R), W/X/Y/Z) for an
unknown control field, an information field longer than negotiated, or a bad N(R). Frames for
another server address, with a multi-byte client address, or that are an echo of our own last
frame (optical heads hear themselves) get silence (§6.4.2.2). Server addresses of 1, 2 or 4
bytes; with ``physical`` set, a 2/4-byte address must carry it. No frame for
``inactivity_s`` (config, default 120 s) returns the link to NDM.

Application (Green Book §9): AARQ/AARE, LN referencing, no ciphering. Client SAP 16 public (no
security), 32 meter reader, 1 and 48 management (LLS). Rejections: application-context-name-
not-supported (2), mechanism-name-not-recognised (11), authentication-required (14),
authentication-failure (13), no-reason-given (1) with an xDLMS initiate error (DLMS version too
low, incompatible conformance, PDU size too short). Negotiated conformance = proposed ∩
supported; the client's max receive PDU bounds every response. GET normal / with-list / next
(GET-Response-With-Datablock whenever a response does not fit), SET normal, ACTION normal,
RLRQ (user-information tolerated) -> RLRE, ExceptionResponse for what is not supported.
"""
import time

from protocol import hdlc, apdu, axdr
from meter import cosem

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
_MECH_LLS = const(1)
_CONF_GET = const(0x10)
_CONF_SET = const(0x08)
_CONF_ACTION = const(0x01)
_CONF_BLOCK_GET = const(0x1000)
# conformance we support: GET, SET, ACTION, selective access, block transfer with GET,
# multiple references (Green Book conformance block bits 19, 20, 23, 21, 11, 14)
_SUPPORTED_CONFORMANCE = const(0x121D)
_SERVICE_PDU_TOO_LONG = const(4)
_DAR_LONG_GET_ABORTED = const(15)
_DAR_NO_LONG_GET = const(16)
_DAR_BLOCK_NUMBER_INVALID = const(19)
_HW_FAULT = const(1)

_SERVER_MAX_PDU = const(1024)  # largest APDU we receive (announced in the AARE; cosem IC 15 attr 5)
_SEND_MAX = const(512)         # larger responses go by block transfer when negotiated (small heap)
_MIN_PDU = const(64)           # smaller client max PDUs are refused (pdu-size-too-short)
_BLOCK_HEAD = const(12)        # C4 02 inv last blk(4) choice len(<=3)
_RX_MAX = const(1100)          # reassembly limit for segmented requests

_FRMR_W = const(1)             # invalid / not implemented control field
_FRMR_Y = const(4)             # information field too long
_FRMR_Z = const(8)             # invalid N(R)


def _role(client):
    """Role of a client SAP: 0 public (16, no security), 1 meter reader (32), 2 management
    (1 and 48); the last two authenticate with LLS. -1: not a client of this meter."""
    if client == 16:
        return 0
    if client == 32:
        return 1
    return 2 if client in (1, 48) else -1


def _fill(src, n):
    """A response value being sent in blocks, ``src`` = [bytes already encoded, generator of
    further encoded chunks or None, ...]: pull chunks until ``n`` bytes are buffered; True when
    the whole value is buffered."""
    g = src[1]
    if g is not None and len(src[0]) < n:
        buf = bytearray(src[0])
        while len(buf) < n:
            try:
                buf.extend(next(g))
            except StopIteration:
                g = src[1] = None
                break
        src[0] = buf
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
        # long GET in progress: [buffered bytes, chunk generator or None, last block number
        # sent, block size]
        self._blocks = None

    # --- ACSE (Green Book §9.4.2) -------------------------------------------------------
    def _reject(self, diag, initiate_error=None, mech=None):
        return apdu.build_aare(1, diag, max_pdu=_SERVER_MAX_PDU, mechanism=mech,
                               initiate_error=initiate_error)

    def aarq(self, client, buf):
        self.reset()
        try:
            req = apdu.parse_aarq(buf)
        except apdu.ApduError:
            return self._reject(1)
        if req["context"] != 1:                  # LN referencing, no ciphering
            return apdu.build_aare(1, 2, context=req["context"] or 1, max_pdu=_SERVER_MAX_PDU)
        role = _role(client)
        if role < 0:
            return self._reject(1)
        mech = req["mechanism"]
        if role:
            if not mech:                         # None or 0 (lowest level security)
                return self._reject(14)          # authentication-required
            if mech != _MECH_LLS:
                return self._reject(11)          # mechanism-name not recognised
            if not self.meter.check_password(client, req["auth_value"]):
                self.meter.event(30, "LLS authentication failure, client %d" % client)
                return self._reject(13, mech=_MECH_LLS)   # authentication-failure
        elif mech:
            return self._reject(11)
        if not req["user_info_ok"]:
            return self._reject(1)
        if req["dlms_version"] < 6:
            return self._reject(1, (6, 1))      # DLMS version too low
        conf = req["conformance"] & _SUPPORTED_CONFORMANCE
        if not conf & (_CONF_GET | _CONF_SET | _CONF_ACTION):
            return self._reject(1, (6, 2))      # incompatible conformance
        mp = req["max_pdu"]
        if mp == 0:
            mp = 0xFFFF                          # 0: no limit (Green Book)
        if mp < _MIN_PDU:
            return self._reject(1, (6, 3))      # PDU size too short
        self.max_pdu = mp
        self.conformance = conf
        self.role = role
        self.client = client
        self.mechanism = _MECH_LLS if role else 0
        self.open = True
        return apdu.build_aare(0, 0, conformance=conf, max_pdu=_SERVER_MAX_PDU,
                               mechanism=_MECH_LLS if role else None)

    # --- dispatch ---------------------------------------------------------------------------
    def handle(self, client, buf):
        """One complete APDU in, one APDU out (or None for no answer)."""
        if not buf:
            return None
        tag = buf[0]
        if tag == _AARQ:
            return self.aarq(client, buf)
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
                return apdu.get_response_block_error(inv, req.block_no, _DAR_NO_LONG_GET)
            if req.block_no != b[2]:
                self._blocks = None
                return apdu.get_response_block_error(inv, req.block_no, _DAR_BLOCK_NUMBER_INVALID)
            return self._next_block(inv)
        self._blocks = None
        limit = self.max_pdu if self.max_pdu < _SEND_MAX else _SEND_MAX
        blocks_ok = self.conformance & _CONF_BLOCK_GET
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
                if not (whole and len(src[0]) + 4 <= limit) and not blocks_ok:
                    # no block transfer: send it whole if it fits the client's PDU
                    whole = _fill(src, self.max_pdu - 3)
                    limit = self.max_pdu
            except Exception:
                return apdu.get_response_error(inv, _HW_FAULT)
            if whole and len(src[0]) + 4 <= limit:
                return apdu.get_response(inv, src[0])
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
                        r = _HW_FAULT
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
        # every block is a whole GET-Response-With-Datablock within ``limit``; the value is
        # longer than one block, so the first block is never the last
        src.append(0)
        src.append(limit - _BLOCK_HEAD)
        self._blocks = src
        return self._next_block(inv)

    def _next_block(self, inv):
        b = self._blocks
        no = b[2] + 1
        n = b[3]
        try:
            done = _fill(b, n)
        except Exception:
            self._blocks = None
            return apdu.get_response_block_error(inv, no, _DAR_LONG_GET_ABORTED)
        buf = b[0]
        last = done and len(buf) <= n
        chunk = bytes(buf[:n])
        b[0] = buf[n:]
        if last:
            self._blocks = None
        else:
            b[2] = no
        return apdu.get_response_block(inv, last, no, chunk)


class HdlcLink:
    """Server side of one HDLC link (IEC 62056-46), window size 1.

    ``logical``/``physical``: our server address (physical None: any physical part of a
    2/4-byte address is accepted); ``max_info``: the largest information field we send and
    receive (negotiation lowers it). Counters: ``ignored`` (frames not for us, echoes),
    ``frmr`` (FRMR sent), ``retransmitted``.
    """

    def __init__(self, meter, logical=1, physical=None, max_info=512, inactivity_s=120):
        self.assoc = Association(meter, logical)
        self.logical = logical
        self.physical = physical
        self.max_info_ours = max_info
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
        self.vs = 0
        self.vr = 0
        self.tx_max = 128
        self.rx_max = 128
        self._rx = None            # segmented request being reassembled (bytearray)
        self._rx_over = False
        self._tx = None            # response being sent in segments
        self._tx_off = 0
        self._last_sent = None     # last I-frame, for retransmission
        self._last_rx = 0
        self.assoc.reset()

    def poll(self):
        """Inactivity supervision without traffic (optional; ``on_frame`` checks too)."""
        if (self.state == _NRM and self.inactivity_ms
                and _ticks_diff(self.ticks(), self._last_rx) > self.inactivity_ms):
            self._ndm()

    def _my_address(self, raw):
        try:
            value, n, _ = hdlc.decode_address(raw, 0)
            logical, physical = hdlc.split_server_address(value, n)
        except hdlc.HdlcError:
            return False
        if logical != self.logical:
            return False
        if n > 1 and self.physical is not None and physical != self.physical:
            return False
        return True

    def _frame(self, ctrl, info=b"", segmented=False, client=None):
        dest = client or self.client
        self._echo = (dest, self._addr, ctrl, info)
        return hdlc.encode_frame(dest, self._addr, ctrl, info, segmented)

    def _frmr(self, ctrl, flags):
        self.frmr += 1
        return (self._frame(hdlc.FRMR, bytes((ctrl, (self.vs << 1) | (self.vr << 5), flags))),)

    def on_frame(self, f):
        """Handle one received frame; return a sequence of frames to transmit (maybe empty)."""
        if len(f.src) != 1 or not self._my_address(f.dest):
            self.ignored += 1
            return ()
        e = self._echo
        if e is not None and f.ctrl == e[2] and f.src == e[1] and f.dest == e[0] and f.info == e[3]:
            self.ignored += 1      # our own frame heard back (optical head, RS-485 echo)
            return ()
        self.poll()
        self._last_rx = self.ticks()
        k = hdlc.kind(f.ctrl)
        if k in (hdlc.K_UA, hdlc.K_DM, hdlc.K_FRMR):
            self.ignored += 1      # responses are never addressed to a secondary
            return ()
        self._addr = f.dest
        if k == hdlc.K_SNRM:
            self._ndm()
            self._last_rx = self.ticks()
            self.client = f.src
            try:
                ctx, crx, _, _ = hdlc.decode_params(f.info)
            except hdlc.HdlcError:
                return self._frmr(f.ctrl, _FRMR_W | 2)
            if ctx < 1 or crx < 1:
                return self._frmr(f.ctrl, _FRMR_W | 2)
            self.tx_max = min(self.max_info_ours, crx)
            self.rx_max = min(self.max_info_ours, ctx)
            self.state = _NRM
            return (self._frame(hdlc.UA, hdlc.encode_params(self.tx_max, self.rx_max, 1, 1)),)
        if k == hdlc.K_DISC:
            was = self.state
            self._ndm()
            return (self._frame(hdlc.UA if was == _NRM else hdlc.DM, client=f.src),)
        if self.state != _NRM or f.src != self.client:
            if k in (hdlc.K_I, hdlc.K_RR, hdlc.K_RNR):
                return (self._frame(hdlc.DM, client=f.src),)
            return ()
        if k == hdlc.K_I:
            return self._on_i(f)
        if k == hdlc.K_RR:
            return self._on_rr(f)
        if k == hdlc.K_RNR:
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        if k == hdlc.K_UI:
            return ()
        return self._frmr(f.ctrl, _FRMR_W)

    def _resend(self):
        self.retransmitted += 1
        self._echo = self._last_echo
        return (self._last_sent,)

    def _on_rr(self, f):
        nr = hdlc.nr(f.ctrl)
        if self._last_sent is not None and nr == (self.vs - 1) & 7:
            return self._resend()      # the client never got our last I-frame
        if nr != self.vs:
            return self._frmr(f.ctrl, _FRMR_Z)
        if self._tx is not None:
            return (self._next_segment(),)
        return (self._frame(hdlc.ctrl_rr(self.vr)),)

    def _on_i(self, f):
        n_s = hdlc.ns(f.ctrl)
        nr = hdlc.nr(f.ctrl)
        if n_s != self.vr:
            if n_s == (self.vr - 1) & 7 and self._last_sent is not None:
                return self._resend()       # repeated request: our answer was lost
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        if nr != self.vs and not (self._last_sent is not None and nr == (self.vs - 1) & 7):
            return self._frmr(f.ctrl, _FRMR_Z)
        if len(f.info) > self.rx_max:
            return self._frmr(f.ctrl, _FRMR_Y)
        self.vr = (self.vr + 1) & 7
        self._tx = None                     # a new request ends any unfinished response
        if self._rx is None:
            if not f.segmented:
                return self._request(f.info)
            self._rx = bytearray()
            self._rx_over = False
        if len(self._rx) + len(f.info) > _RX_MAX:
            self._rx_over = True
        else:
            self._rx.extend(f.info)
        if f.segmented:
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        data = self._rx
        self._rx = None
        if self._rx_over:
            return self._send(apdu.exception_response(1, apdu.SERVICE_PDU_TOO_LONG))
        return self._request(data)

    def _request(self, data):
        mv = memoryview(data)
        if len(data) >= 3 and data[0] == 0xE6 and data[1] in (0xE6, 0xE7):
            mv = mv[3:]
        resp = self.assoc.handle(self.client[0] >> 1, mv)
        if resp is None:
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        return self._send(resp)

    def _send(self, resp):
        self._tx = hdlc.LLC_RESPONSE + resp
        self._tx_off = 0
        return (self._next_segment(),)

    def _next_segment(self):
        data = self._tx
        off = self._tx_off
        end = off + self.tx_max
        seg = len(data) > end
        frame = self._frame(hdlc.ctrl_i(self.vs, self.vr), data[off:end], seg)
        if seg:
            self._tx_off = end
        else:
            self._tx = None
        self.vs = (self.vs + 1) & 7
        self._last_sent = frame
        self._last_echo = self._echo
        return frame
