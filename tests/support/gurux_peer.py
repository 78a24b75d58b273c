"""Drive a meter with the gurux-dlms client (test-only GPL peer, never shipped) over pyserial.

The gurux client builds and parses every frame itself; this helper only moves bytes and
keeps every received frame so tests can assert what gurux does not check (the responder's
server address, dlms.md §4 "[T] Neither client checks the responder's server address").
"""
import time

import serial
from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType


class GuruxPeer:
    def __init__(self, port, client=16, server=1, password=None, timeout=5.0, baud=9600):
        auth = Authentication.LOW if password else Authentication.NONE
        self.c = GXDLMSClient(True, client, server, auth, password, InterfaceType.HDLC)
        self.ser = serial.Serial(port, baud, timeout=0.05)
        self.timeout = timeout
        self.frames = []  # every raw frame received

    def close(self):
        self.ser.close()

    def _read_reply(self, rd):
        buf = bytearray()
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            chunk = self.ser.read(512)
            if chunk:
                buf += chunk
                notify = GXReplyData()
                if self.c.getData(GXByteBuffer(bytes(buf)), rd, notify):
                    self.frames.append(bytes(buf))
                    return bytes(buf)
        raise TimeoutError("gurux peer: no complete reply within %.1f s (got %s)" % (self.timeout, buf.hex()))

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
