"""Drive a meter with the gurux-dlms client (test-only GPL peer, never shipped) over pyserial.

The gurux client builds and parses every frame itself; this helper only moves bytes and
keeps every received frame so tests can assert what gurux does not check (the responder's
server address, dlms.md §4 "[T] Neither client checks the responder's server address").

Reads wait on data with one deadline per reply: the frame's own length (HDLC frame format
field) says how many bytes to wait for, so a meter that stops answering (out of memory, dead)
is a TimeoutError after ``timeout`` s, never a hang.

``Peer`` adds HDLC/PDU sizes, writes, methods, the object list and the address check;
``every_association_reads_every_attribute`` is the every-attribute run the emulated meter
(tests/hil/test_interop_gurux.py) and PicoRig (tests/hil/test_picorig_gurux.py) both pass.
"""
import time

import pytest
import serial
from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
from gurux_dlms.enums import AccessMode, Authentication, InterfaceType, ObjectType

from protocol import hdlc_client as hdlc


class GuruxPeer:
    def __init__(self, port, client=16, server=1, password=None, timeout=5.0, baud=9600):
        auth = Authentication.LOW if password else Authentication.NONE
        self.c = GXDLMSClient(True, client, server, auth, password, InterfaceType.HDLC)
        self.ser = serial.Serial(port, baud, timeout=timeout)
        self.timeout = timeout
        self.frames = []  # every raw frame received

    def close(self):
        self.ser.close()

    def _read(self, n, deadline, buf):
        """Exactly ``n`` more bytes, appended to ``buf`` and returned, blocking on the port
        until ``deadline`` (monotonic s); TimeoutError (showing ``buf``) after it."""
        start = len(buf)
        while len(buf) - start < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("gurux peer: no complete reply within %.1f s (got %s)"
                                   % (self.timeout, bytes(buf).hex()))
            self.ser.timeout = left
            buf += self.ser.read(n - (len(buf) - start))
        return bytes(buf[start:])

    def _read_frame(self, deadline, buf):
        """One more HDLC frame into ``buf`` (flags included), sized by its frame format field."""
        while self._read(1, deadline, buf) != b"\x7e":   # skip anything before an opening flag
            pass
        fmt = self._read(2, deadline, buf)
        while fmt[0] == 0x7E:                    # a closing flag followed by an opening one
            fmt = fmt[1:] + self._read(1, deadline, buf)
        length = ((fmt[0] & 0x07) << 8) | fmt[1]  # bytes between the flags
        self._read(length - 1, deadline, buf)

    def _read_reply(self, rd):
        buf = bytearray()
        deadline = time.monotonic() + self.timeout
        while True:
            self._read_frame(deadline, buf)
            notify = GXReplyData()
            if self.c.getData(GXByteBuffer(bytes(buf)), rd, notify):
                self.frames.append(bytes(buf))
                return bytes(buf)

    def exchange(self, data):
        """Send one request (bytes or list of frames); return the GXReplyData, following RR."""
        frames = data if isinstance(data, list) else [data]
        rd = GXReplyData()
        for f in frames:
            rd.clear()
            self.ser.write(bytes(f))
            self._read_reply(rd)
        while rd.isMoreData():
            self.ser.write(bytes(self.c.receiverReady(rd)))
            self._read_reply(rd)
        return rd

    def connect(self):
        rd = self.exchange(self.c.snrmRequest())
        self.c.parseUAResponse(rd.data)
        ua = self.frames[-1]
        rd = self.exchange(self.c.aarqRequest())
        self.c.parseAareResponse(rd.data)
        return ua

    def read(self, obj, attr):
        rd = self.exchange(self.c.read(obj, attr))
        self.c.updateValue(obj, attr, rd.value)
        return obj

    def release(self):
        self.exchange(self.c.releaseRequest())
        self.exchange(self.c.disconnectRequest())


PASSWORDS = {1: "12345678", 32: "00000000", 48: "ABCDEFGH"}
ASSOCIATIONS = [(16, None), (32, "00000000"), (1, "12345678"), (48, "ABCDEFGH")]


class DarError(Exception):
    """The meter answered with a data-access-result / action-result != success."""

    def __init__(self, code):
        Exception.__init__(self, "data-access-result %d" % code)
        self.errorCode = code


class Peer(GuruxPeer):
    """GuruxPeer plus HDLC/PDU sizes, write, method and the object list."""

    def __init__(self, port, client=16, password=None, max_info=None, max_pdu=None, **kw):
        GuruxPeer.__init__(self, port, client=client, server=1, password=password, **kw)
        if max_info:
            self.c.hdlcSettings.maxInfoTX = max_info
            self.c.hdlcSettings.maxInfoRX = max_info
        if max_pdu:
            self.c.maxReceivePDUSize = max_pdu
        self.client = client

    def exchange(self, data):
        rd = GuruxPeer.exchange(self, data)
        if rd.error:
            raise DarError(int(rd.error))
        return rd

    def read(self, obj, attr):
        rd = self.exchange(self.c.read(obj, attr))
        self.c.updateValue(obj, attr, rd.value)
        return obj

    def write(self, obj, attr):
        self.exchange(self.c.write(obj, attr))

    def objects(self):
        rd = self.exchange(self.c.getObjectsRequest())
        return self.c.parseObjects(rd.data, True)

    def check_addresses(self):
        """Every frame came from server 1 (03) to our client address."""
        want_dest = bytes([(self.client << 1) | 1])
        for raw in self.frames:
            rx = hdlc.Receiver(4096)
            rx.feed(raw)
            f = rx.pop()
            assert f is not None, raw.hex()
            while f is not None:
                assert f.src == b"\x03" and f.dest == want_dest, raw.hex()
                f = rx.pop()


def associated(peer):
    """``peer`` connected and associated; closed again if that fails."""
    try:
        peer.connect()
    except BaseException:
        peer.close()
        raise
    return peer


def connect(rig, client=16, password=None, **kw):
    """A Peer associated with the meter of ``rig``."""
    return associated(Peer(rig.port, client=client, password=password, **kw))


def readable(obj, i):
    """The object_list marks attribute ``i`` of ``obj`` readable in this association."""
    return obj.getAccess(i) in (AccessMode.READ, AccessMode.READ_WRITE,
                                AccessMode.AUTHENTICATED_READ,
                                AccessMode.AUTHENTICATED_READ_WRITE)


def read_order(obj):
    """Attribute numbers of ``obj`` in the order to read them: a profile's capture_objects (3)
    first, gurux needs them to parse its buffer (2)."""
    order = list(range(1, obj.getAttributeCount() + 1))
    if obj.objectType == ObjectType.PROFILE_GENERIC:
        order.remove(3)
        order.insert(0, 3)
    return order


def every_association_reads_every_attribute(rig):
    """Every association gurux supports (ASSOCIATIONS) reads the object_list, then every attribute
    of every object in it: one the list marks readable must read, one it marks not readable must be
    refused with read-write-denied; every frame's addresses are checked. The public client sees a
    subset of the objects. Run by test_interop_gurux (emulated meter) and test_picorig_gurux."""
    seen = {}
    for client, password in ASSOCIATIONS:
        p = connect(rig, client, password)
        try:
            objs = p.objects()
            lns = set()
            n_read = n_denied = 0
            for obj in objs:
                lns.add((obj.objectType, obj.logicalName))
                for i in read_order(obj):
                    if readable(obj, i):
                        p.read(obj, i)
                        n_read += 1
                    else:
                        with pytest.raises(DarError) as e:
                            p.read(obj, i)
                        assert e.value.errorCode == 3, (obj.logicalName, i)  # read-write-denied
                        n_denied += 1
            seen[client] = (lns, n_read, n_denied)
            p.check_addresses()
            p.release()
        finally:
            p.close()
    public, reader, mgmt, settings = (seen[c][0] for c, _ in ASSOCIATIONS)
    # the public client sees a subset (object_list filtered by access); LLS clients see all
    assert public < reader and reader == mgmt == settings
    for ic, ln in [(ObjectType.CLOCK, "0.0.1.0.0.255"), (ObjectType.REGISTER, "1.0.1.8.0.255"),
                   (ObjectType.ACCOUNT, "0.0.19.0.0.255"), (ObjectType.CREDIT, "0.0.19.10.0.255"),
                   (ObjectType.CHARGE, "0.0.19.20.0.255"), (ObjectType.DISCONNECT_CONTROL, "0.0.96.3.10.255"),
                   (ObjectType.PROFILE_GENERIC, "0.0.99.98.0.255"), (ObjectType.DATA, "0.0.94.96.24.255"),
                   (ObjectType.ASSOCIATION_LOGICAL_NAME, "0.0.40.0.0.255"), (ObjectType.DATA, "0.0.42.0.0.255")]:
        assert (ic, ln) in reader, ln
    assert (ObjectType.PROFILE_GENERIC, "0.0.99.98.0.255") not in public
    assert seen[16][2] > 0          # public: some attributes are refused
    assert seen[32][1] > seen[16][1]
