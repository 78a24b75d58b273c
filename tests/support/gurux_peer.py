"""Drive a meter with the gurux-dlms client (test-only GPL peer, never shipped) over pyserial.

The gurux client builds and parses every frame itself; this helper only moves bytes and
keeps every received frame so tests can assert what gurux does not check (the responder's
server address, dlms.md §4 "[T] Neither client checks the responder's server address").

Reads wait on data with one deadline per reply: the frame's own length (HDLC frame format
field) says how many bytes to wait for, so a meter that stops answering (out of memory, dead)
is a TimeoutError after ``timeout`` s, never a hang.
"""
import time

import serial
from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType


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
