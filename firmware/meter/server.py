"""DLMS/COSEM server: HDLC link layer (IEC 62056-46) + association and xDLMS services (IEC 62056-5-3).

``HdlcLink.on_frame(frame) -> list of frames (bytes)`` is sans-I/O: the async task in
``meter.app`` feeds it frames from a ``protocol.hdlc.Receiver`` and writes what it returns.

Link: NDM/NRM; SNRM/UA with parameter negotiation (min of ours and the client's; defaults
128/128/1/1 when absent); I-frames with N(S)/N(R) checking; segmented I-frames both ways (S bit,
RR per segment); DISC -> UA (NRM) or DM (NDM); frames for other server addresses are ignored
(silence, IEC 62056-46 §6.4.2.2); an echo of our own frames is ignored by the same rule.

Application: AARQ/AARE (LN referencing, no ciphering; public client 16 without authentication,
meter reader 32 and managers 1 / 48 with LLS), GET normal / next / with-list with block transfer
when the response exceeds the client's max PDU, SET normal, ACTION normal, RLRQ/RLRE, and
ExceptionResponse for everything else.
"""
from protocol import hdlc, apdu, axdr
from meter import cosem

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_NDM = const(0)
_NRM = const(1)

# client SAP -> (role, needs LLS)
CLIENTS = {16: (cosem.PUBLIC, False), 32: (cosem.READER, True), 1: (cosem.MANAGER, True), 48: (cosem.MANAGER, True)}

SUPPORTED_CONFORMANCE = (apdu.CONF_GET | apdu.CONF_SET | apdu.CONF_ACTION | apdu.CONF_SELECTIVE_ACCESS
                         | apdu.CONF_BLOCK_TRANSFER_WITH_GET | apdu.CONF_MULTIPLE_REFERENCES)
SERVER_MAX_PDU = const(512)
_BLOCK_OVERHEAD = const(16)


class Association:
    """Application association state and xDLMS service dispatch for one link."""

    def __init__(self, meter):
        self.meter = meter
        self.reset()

    def reset(self):
        self.open = False
        self.role = cosem.PUBLIC
        self.client = 0
        self.conformance = 0
        self.max_pdu = 0xFFFF
        self._blocks = None  # pending GET block transfer: (data, offset, block_no)

    # --- ACSE -----------------------------------------------------------------------------
    def aarq(self, client, buf):
        self.reset()
        try:
            req = apdu.parse_aarq(buf)
        except apdu.ApduError:
            return apdu.build_aare(1, 1, conformance=0, max_pdu=SERVER_MAX_PDU)
        if req["context"] != apdu.CONTEXT_LN:
            return apdu.build_aare(1, 2, context=req["context"] or 1, max_pdu=SERVER_MAX_PDU)
        entry = CLIENTS.get(client)
        if entry is None:
            return apdu.build_aare(1, 1, max_pdu=SERVER_MAX_PDU)
        role, needs_lls = entry
        mech = req["mechanism"]
        if needs_lls:
            if mech is None or mech == apdu.MECH_NONE:
                return apdu.build_aare(1, 14, max_pdu=SERVER_MAX_PDU)  # authentication-required
            if mech != apdu.MECH_LLS:
                return apdu.build_aare(1, 11, max_pdu=SERVER_MAX_PDU)  # mechanism not recognised
            if not self.meter.check_password(client, req["auth_value"]):
                self.meter.event(30, "LLS authentication failure, client %d" % client)
                return apdu.build_aare(1, 13, mechanism=apdu.MECH_LLS, max_pdu=SERVER_MAX_PDU)
        elif mech not in (None, apdu.MECH_NONE):
            return apdu.build_aare(1, 11, max_pdu=SERVER_MAX_PDU)
        if not req["user_info_ok"]:
            return apdu.build_aare(1, 1, max_pdu=SERVER_MAX_PDU)
        if req["dlms_version"] < 6:
            return apdu.build_aare(1, 1, max_pdu=SERVER_MAX_PDU, initiate_error=(6, 1))
        conf = req["conformance"] & SUPPORTED_CONFORMANCE
        mp = req["max_pdu"]
        self.max_pdu = 0xFFFF if mp == 0 else (mp if mp >= 12 else 12)
        self.conformance = conf
        self.role = role
        self.client = client
        self.open = True
        return apdu.build_aare(0, 0, conformance=conf, max_pdu=SERVER_MAX_PDU,
                               mechanism=apdu.MECH_LLS if needs_lls else None)

    # --- dispatch ---------------------------------------------------------------------------
    def handle(self, client, buf):
        """One complete APDU in, one APDU out (or None for no answer)."""
        if not buf:
            return None
        tag = buf[0]
        if tag == apdu.AARQ:
            return self.aarq(client, buf)
        if tag == apdu.RLRQ:
            self.reset()
            return apdu.build_rlre(0)
        if tag in (apdu.GET_REQUEST, apdu.SET_REQUEST, apdu.ACTION_REQUEST):
            if not self.open or client != self.client:
                return apdu.exception_response(1, 1)  # service-not-allowed, operation-not-possible
            try:
                req = apdu.parse_request(buf)
            except apdu.ApduError as e:
                return apdu.exception_response(2, e.service_error)
            if tag == apdu.GET_REQUEST:
                return self.get(req)
            if tag == apdu.SET_REQUEST:
                return self.set(req)
            return self.action(req)
        return apdu.exception_response(2, 2)  # service-unknown, service-not-supported

    def _lookup(self, class_id, ln):
        obj = self.meter.objects.get(bytes(ln))
        if obj is None:
            return None, cosem.UNDEFINED
        if obj.class_id != class_id:
            return None, cosem.INCONSISTENT
        return obj, 0

    def _read(self, item, w):
        class_id, ln, attr, selector, params = item
        obj, dar = self._lookup(class_id, ln)
        if obj is None:
            return dar
        if not obj.can_read(self.role, attr):
            return cosem.DENIED if 1 <= attr <= obj.n_attrs else cosem.UNDEFINED
        if selector is not None:
            return cosem.UNAVAILABLE  # selective access: profile objects only
        if attr == 1:
            w.octet_string(obj.ln)
            return 0
        try:
            return obj.read(self.meter, attr, w)
        except (ValueError, axdr.AxdrError):
            return cosem.HW_FAULT

    def get(self, req):
        inv = req.invoke
        if req.kind == 2:  # GET next
            b = self._blocks
            if b is None:
                return apdu.get_response_block_error(inv, req.block_no, apdu.DAR_NO_LONG_GET_IN_PROGRESS)
            if req.block_no != b[2]:
                self._blocks = None
                return apdu.get_response_block_error(inv, req.block_no, apdu.DAR_LONG_GET_ABORTED)
            return self._next_block(inv)
        self._blocks = None
        if req.kind == 1:
            w = axdr.Writer()
            dar = self._read(req.items[0], w)
            if dar:
                return apdu.get_response_error(inv, dar)
            resp = apdu.get_response(inv, w.getvalue())
        elif req.kind == 3:
            results = []
            for item in req.items:
                w = axdr.Writer()
                dar = self._read(item, w)
                results.append((1, dar) if dar else (0, w.getvalue()))
            resp = apdu.get_response_list(inv, results)
        else:
            return apdu.exception_response(2, 2)
        if len(resp) <= self.max_pdu or not self.conformance & apdu.CONF_BLOCK_TRANSFER_WITH_GET:
            return resp
        # block transfer: the raw data is the Data (GET normal) or the SEQUENCE OF Get-Data-Result
        # (with-list) that the unblocked response would carry (IEC 62056-5-3 §7.3.4.2)
        self._blocks = [resp[4:] if req.kind == 1 else resp[3:], 0, 1]
        return self._next_block(inv)

    def _next_block(self, inv):
        data, off, no = self._blocks
        size = self.max_pdu - _BLOCK_OVERHEAD
        chunk = data[off:off + size]
        off += len(chunk)
        last = off >= len(data)
        self._blocks = None if last else [data, off, no + 1]
        return apdu.get_response_block(inv, last, no, chunk)

    def set(self, req):
        inv = req.invoke
        if req.kind != 1:
            return apdu.exception_response(2, 2)
        class_id, ln, attr, selector, params = req.items[0]
        obj, dar = self._lookup(class_id, ln)
        if obj is None:
            return apdu.set_response(inv, dar)
        if not obj.can_write(self.role, attr):
            return apdu.set_response(inv, cosem.DENIED if 1 <= attr <= obj.n_attrs else cosem.UNDEFINED)
        try:
            tagged, _ = axdr.decode(req.value, 0)
        except axdr.AxdrError:
            return apdu.set_response(inv, cosem.TYPE_UNMATCHED)
        return apdu.set_response(inv, obj.write(self.meter, attr, tagged))

    def action(self, req):
        inv = req.invoke
        if req.kind != 1:
            return apdu.exception_response(2, 2)
        class_id, ln, method, selector, params = req.items[0]
        obj, dar = self._lookup(class_id, ln)
        if obj is None:
            return apdu.action_response(inv, dar)
        if not obj.can_call(self.role, method):
            return apdu.action_response(inv, cosem.DENIED if method in obj.methods else cosem.UNDEFINED)
        tagged = None
        if params:
            try:
                tagged, _ = axdr.decode(params, 0)
            except axdr.AxdrError:
                return apdu.action_response(inv, cosem.TYPE_UNMATCHED)
        result, data = obj.call(self.meter, method, tagged)
        return apdu.action_response(inv, result, data)


class HdlcLink:
    """Server side of one HDLC link (IEC 62056-46), window size 1."""

    def __init__(self, meter, logical=1, physical=None, max_info=512, inactivity_s=120):
        self.assoc = Association(meter)
        self.logical = logical
        self.physical = physical
        self.max_info_ours = max_info
        self.inactivity_ms = inactivity_s * 1000
        self.ticks = meter.board.ticks_ms
        self.ignored = 0
        self._ndm()

    def _ndm(self):
        self.state = _NDM
        self.client = None
        self.vs = 0
        self.vr = 0
        self.tx_max = 128
        self.rx_max = 128
        self._rx = bytearray()
        self._tx_pending = None   # remaining response bytes to send as segments
        self._last_sent = None    # last I-frame, for retransmission
        self._last_rx = 0
        self.assoc.reset()

    def _my_address(self, raw):
        try:
            value, n, _ = hdlc.decode_address(raw, 0)
        except hdlc.HdlcError:
            return False
        logical, physical = hdlc.split_server_address(value, n)
        if logical != self.logical:
            return False
        if n > 1 and self.physical is not None and physical != self.physical:
            return False
        self._addr = raw
        return True

    def _frame(self, ctrl, info=b"", segmented=False):
        return hdlc.encode_frame(self.client, self._addr, ctrl, info, segmented)

    def on_frame(self, f):
        """Handle one received frame; return a list of frames to transmit (possibly empty)."""
        if len(f.src) != 1 or not self._my_address(f.dest):
            self.ignored += 1
            return ()
        now = self.ticks()
        if self.state == _NRM and self.inactivity_ms and now - self._last_rx > self.inactivity_ms:
            self._ndm()
        self._last_rx = now
        k = hdlc.kind(f.ctrl)
        if k == hdlc.K_SNRM:
            self._ndm()
            try:
                ctx, crx, _, _ = hdlc.decode_params(f.info)
            except hdlc.HdlcError:
                self.client = f.src
                return (self._frame(hdlc.FRMR),)
            self.client = f.src
            self.tx_max = min(self.max_info_ours, crx)
            self.rx_max = min(self.max_info_ours, ctx)
            self.state = _NRM
            self._last_rx = now
            return (self._frame(hdlc.UA, hdlc.encode_params(self.tx_max, self.rx_max, 1, 1)),)
        if k == hdlc.K_DISC:
            was = self.state
            self.client = f.src
            self._ndm()
            self.client = f.src
            return (self._frame(hdlc.UA if was == _NRM else hdlc.DM),)
        if self.state != _NRM or f.src != self.client:
            if k in (hdlc.K_I, hdlc.K_RR, hdlc.K_RNR):
                saved = self.client
                self.client = f.src
                out = self._frame(hdlc.DM)
                self.client = saved
                return (out,)
            return ()
        if k == hdlc.K_I:
            return self._on_i(f)
        if k == hdlc.K_RR:
            return self._on_rr(f)
        if k == hdlc.K_RNR:
            return ()
        if k == hdlc.K_UI:
            return ()
        return (self._frame(hdlc.FRMR),)

    def _on_rr(self, f):
        nr = hdlc.nr(f.ctrl)
        if self._tx_pending is not None and nr == self.vs:
            return (self._next_segment(),)
        if self._last_sent is not None and nr != self.vs:
            return (self._last_sent,)  # peer lost our last I-frame
        return (self._frame(hdlc.ctrl_rr(self.vr)),)

    def _on_i(self, f):
        if hdlc.ns(f.ctrl) != self.vr:
            # duplicate (our answer was lost) or out of sequence
            if self._last_sent is not None and hdlc.nr(f.ctrl) != self.vs:
                return (self._last_sent,)
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        if len(f.info) > self.rx_max + 0:
            return (self._frame(hdlc.FRMR),)
        self.vr = (self.vr + 1) & 7
        self._rx.extend(f.info)
        if f.segmented:
            if len(self._rx) > 4096:
                self._rx = bytearray()
                return (self._frame(hdlc.FRMR),)
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        data = bytes(self._rx)
        self._rx = bytearray()
        if len(data) < 3 or data[0] != 0xE6 or data[1] != 0xE6:
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        resp = self.assoc.handle(self.client[0] >> 1, memoryview(data)[3:])
        if resp is None:
            return (self._frame(hdlc.ctrl_rr(self.vr)),)
        self._tx_pending = hdlc.LLC_RESPONSE + resp
        return (self._next_segment(),)

    def _next_segment(self):
        data = self._tx_pending
        n = self.tx_max
        seg = len(data) > n
        chunk = data[:n]
        self._tx_pending = data[n:] if seg else None
        frame = self._frame(hdlc.ctrl_i(self.vs, self.vr), chunk, seg)
        self.vs = (self.vs + 1) & 7
        self._last_sent = frame
        return frame
