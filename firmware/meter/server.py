"""DLMS/COSEM server: association and xDLMS services (IEC 62056-5-3).

``Association`` answers one APDU with one APDU (objects: ``meter.cosem``); the HDLC link that
carries it is ``meter.link``. What the application layer does, clause by clause:
docs/CONTRACTS.md "DLMS server".
"""
import gc

from protocol import apdu, axdr
from meter import acse, cosem

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

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

_BLOCK_HEAD = const(12)        # C4 02 inv last blk(4) choice len(<=3)
# a block of a ciphered association is sealed in place (meter.secure.seal): the room of
# protocol.security HEADROOM before its head, TAILROOM after it (before the rest of the value)
_ROOM = const(18)
_TAIL = const(12)
_BLOCK_AT = const(30)          # _BLOCK_HEAD + _ROOM: where a block's bytes start
_WHOLE_MAX = const(2048)       # largest response sent whole to a client without block transfer
_RBUF = const(1280)            # the response buffer: meter.link's _SEND_CAP + the last chunk _fill
#                                pulls in (a whole response to a client without block transfer grows it)

# positional records (index consts cost nothing): a long GET in progress [buffered bytes (the
# response buffer: _BLOCK_AT bytes for the block's head, then the value), chunk generator or
# None, last block number sent, block size, bytes of the value in the last block sent]
_BLK_BUF = const(0)
_BLK_GEN = const(1)
_BLK_NO = const(2)
_BLK_SIZE = const(3)
_BLK_SENT = const(4)


def _fill(src, n):
    """Pull chunks of a value being sent (``src``: [_BLK_BUF (a bytearray, extended in place),
    _BLK_GEN, ...]) until ``n`` bytes are buffered; True when the whole value is buffered."""
    g = src[_BLK_GEN]
    buf = src[_BLK_BUF]
    while g is not None and len(buf) < n:
        try:
            buf.extend(next(g))
        except StopIteration:
            g = src[_BLK_GEN] = None
    return g is None


def _with_list(meter, ctx, items, buf):
    """Chunks of a GET-Response-With-List's results (IEC 62056-5-3 §7.3.4: SEQUENCE OF
    Get-Data-Result), each item read when the blocks reach it: memory stays one block whatever
    the list asks for. An item's result is written straight into the response buffer ``buf``
    (what ``_fill`` extends: no Writer, no copies per item); only a value read in chunks is
    yielded."""
    yield axdr.encode_length(len(items))
    for item in items:
        p = len(buf)
        buf.append(0)
        r = cosem.get(meter, ctx, item, axdr.Writer(buf))
        if isinstance(r, int):
            if r:
                buf[p:] = bytes((1, r))
            yield b""
        else:
            buf[p + 1:] = b""
            for chunk in r:
                yield chunk


def _room(meter, act):
    """The journal's room for a file (meter.store): ``act`` 1 wanted and held (a request of an open association),
    0 given up for a file read now, -1 none wanted (the association reset). A meter without a journal: none."""
    j = getattr(meter, "journal", None)
    if j:
        if act < 0:
            j.room = False
        elif act:
            if j.room is False:
                j.room = None
            j.keep()
        else:
            j.free()


class Association:
    """Application association state and xDLMS service dispatch for one link. Attributes
    read by IC 15 (meter.cosem): ``role``, ``client``, ``server``, ``conformance``,
    ``max_pdu``, ``mechanism``."""

    send_max = 512                 # largest response APDU; larger by block transfer (the link sets it)

    def __init__(self, meter, server=1):
        self.meter = meter
        self.server = server
        # GET responses are built in it (allocated at boot: a 1 KiB response never needs a
        # contiguous block of a fragmented heap; emptied with ``[:] =``, its capacity stays)
        self.rbuf = bytearray(_RBUF)
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
        acse.drop(self.meter)          # a key transfer's code (meter.keyxfer) leaves the heap
        _room(self.meter, -1)          # no room held outside an association (meter.store)

    def handle(self, client, buf):
        """One complete APDU in, one APDU out (or None for no answer)."""
        if not buf:
            return None
        tag = buf[0]
        if tag == _AARQ:           # AARQ -> AARE (ACSE, Green Book §9.4.2): meter.acse
            self.reset()
            return acse.aarq(self, client, buf)
        if _GLO_GET <= tag <= _GENERAL_DED and self.sess is not None and not self.inner:
            m = self.meter
            return acse.code().unwrap(m.security, self, client, buf)
        if tag == _RLRQ:
            try:
                apdu.parse_rlrq(buf)
            except apdu.ApduError:
                pass                      # released anyway
            self.reset()
            return apdu.build_rlre(0)
        if tag == _GET_REQUEST or tag == _SET_REQUEST or tag == _ACTION_REQUEST:
            if not self.open or client != self.client:
                return apdu.exception_response(1, 1)  # service-not-allowed, operation-not-possible
            _room(self.meter, 1)    # a hole for a file: the request's transients go to the others
            try:
                try:
                    req = apdu.parse_request(buf)
                except MemoryError:       # once more: a 1 KiB with-list of 100 items failed its first
                    gc.collect()          # decode at 56k, then passed (nothing changed yet)
                    req = apdu.parse_request(buf)
            except apdu.ApduError as e:
                self._blocks = None
                return apdu.exception_response(2 if e.service_error == 2 else 1, e.service_error)
            except MemoryError:
                # nothing has changed yet: answered (service-not-allowed, pdu-too-long: a
                # shorter request needs less), the link goes on; one inside cosem.put/act, where
                # state may have changed, is not answered (docs/CONTRACTS.md "DLMS server")
                self._blocks = None
                return apdu.exception_response(1, _SERVICE_PDU_TOO_LONG)
            if self.guard:
                r = acse.guard(self, tag, req)
                if r is not None:
                    return r
            if tag == _GET_REQUEST:
                if not self.conformance & _CONF_GET:
                    return apdu.exception_response(1, 2)
                r = self.get(req)
                _room(self.meter, 1)
                return r
            self._blocks = None
            inv = req.invoke
            if tag == _SET_REQUEST:
                if not self.conformance & _CONF_SET:
                    return apdu.exception_response(1, 2)
                return apdu.set_response(inv, cosem.put(self.meter, self, req.items[0], req.value))
            if not self.conformance & _CONF_ACTION:
                return apdu.exception_response(1, 2)
            return apdu.action_response(inv, cosem.act(self.meter, self, req.items[0]), None)
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
        limit = self.max_pdu if self.max_pdu < self.send_max else self.send_max
        blocks_ok = self.conformance & _CONF_BLOCK_TRANSFER_WITH_GET
        # the response is built in one bytearray, its head first: C4 01 inv 00 (normal) / C4 03
        # inv (with-list, then the list's length); the value is appended in place, not copied
        if req.kind == 1:
            head = 4
            buf = self.rbuf
            buf[:] = bytes((_GET_RESPONSE, 1, inv, 0))
            r = cosem.get(self.meter, self, req.items[0], axdr.Writer(buf))
            if isinstance(r, int):
                if r:
                    return apdu.get_response_error(inv, r)
                r = None
            elif len(buf) != head:
                buf[head:] = b""
            src = [buf, r]
        else:  # with-list: the SEQUENCE OF Get-Data-Result, read item by item as blocks go
            head = 3
            buf = self.rbuf
            buf[:] = bytes((_GET_RESPONSE, 3, inv))
            items = req.items
            for i in range(len(items)):    # items are read as the blocks go: the request (a
                p = items[i][4]            # view of meter.link's reassembly buffer) may be gone
                if p is not None:
                    items[i] = items[i][:4] + (bytes(p),)
            src = [buf, _with_list(self.meter, self, items, buf)]
        _room(self.meter, 0)       # its hole for the file a value is read from (handle)
        try:
            whole = _fill(src, limit + 1)
            if not (whole and len(src[_BLK_BUF]) <= limit) and not blocks_ok:
                # no block transfer: send it whole if it fits the client's PDU (and our heap)
                limit = self.max_pdu if self.max_pdu < _WHOLE_MAX else _WHOLE_MAX
                whole = _fill(src, limit + 1)
        except MemoryError:        # not a bug's exception: that one is the link's (an event)
            return (apdu.get_response_error(inv, _DAR_HARDWARE_FAULT) if head == 4
                    else apdu.exception_response(1, _SERVICE_PDU_TOO_LONG))
        buf = src[_BLK_BUF]
        if whole and len(buf) <= limit:
            return buf
        if not blocks_ok:
            return apdu.exception_response(1, _SERVICE_PDU_TOO_LONG)
        # each block a whole GET-Response-With-Datablock within ``limit``; never the last first
        buf[:head] = bytes(_BLOCK_AT)
        src.append(0)
        src.append(limit - _BLOCK_HEAD)
        src.append(0)
        self._blocks = src
        return self._next_block(inv)

    def _next_block(self, inv):
        """The next GET-Response-With-Datablock, built in place in the response buffer (its head
        written just before the block's bytes): a memoryview, valid until the next request. Inside
        a ciphered APDU (``inner``) the view has _ROOM bytes before and _TAIL after for the seal."""
        b = self._blocks
        no = b[_BLK_NO] + 1
        n = b[_BLK_SIZE]
        buf = b[_BLK_BUF]
        t = _TAIL if self.inner else 0
        s = b[_BLK_SENT]
        buf[_BLOCK_AT:_BLOCK_AT + s + (t if s else 0)] = b""   # the block sent before (and its tail room)
        _room(self.meter, 0)
        try:
            done = _fill(b, _BLOCK_AT + n)
        except Exception:
            self._blocks = None
            return apdu.get_response_block_error(inv, no, _DAR_LONG_GET_ABORTED)
        k = len(buf) - _BLOCK_AT
        last = done and k <= n
        if last:
            self._blocks = None
        else:
            b[_BLK_NO] = no
            k = n
        b[_BLK_SENT] = k
        h = bytes((_GET_RESPONSE, 2, inv, 1 if last else 0, no >> 24, no >> 16 & 255, no >> 8 & 255,
                   no & 255, 0)) + axdr.encode_length(k)
        buf[_BLOCK_AT - len(h):_BLOCK_AT] = h
        if t:
            buf[_BLOCK_AT + k:_BLOCK_AT + k] = bytes(t)
        return memoryview(buf)[_BLOCK_AT - len(h) - (_ROOM if t else 0):_BLOCK_AT + k + t]
