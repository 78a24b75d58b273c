"""Drive a meter with the dlms-cosem client (sans-io, test-only peer) over pyserial, with reads that
end at a deadline: a meter that stops answering is a TimeoutError, never a hang."""
from dlms_cosem import client as dc_client
from dlms_cosem.io import HdlcTransport, SerialIO
from dlms_cosem.security import LowLevelSecurityAuthentication, NoSecurityAuthentication


class DeadlineSerialIO(SerialIO):
    """dlms-cosem's SerialIO, except that a read ending without its data (the port's ``timeout``
    of silence: the meter stopped answering, e.g. out of memory) raises TimeoutError. dlms-cosem
    itself feeds the short read to its HDLC layer and reads again, forever: a hang, not a failure."""

    def recv(self, amount=1):
        data = SerialIO.recv(self, amount)
        if len(data) < amount:
            raise TimeoutError("meter sent %d of %d bytes within %s s" % (len(data), amount, self.timeout))
        return data

    def recv_until(self, end):
        data = SerialIO.recv_until(self, end)
        if not data.endswith(end):
            raise TimeoutError("no %r from the meter within %s s (got %s)" % (end, self.timeout, data.hex()))
        return data


def client(rig, sap=16, password=None, max_pdu=65535):
    """A dlms-cosem client for the meter of ``rig`` (LLS with ``password``, else no security)."""
    auth = (LowLevelSecurityAuthentication(secret=password.encode()) if password
            else NoSecurityAuthentication())
    t = HdlcTransport(client_logical_address=sap, server_logical_address=1,
                      io=DeadlineSerialIO(rig.port, baud_rate=9600, timeout=5))
    return dc_client.DlmsClient(transport=t, authentication=auth, max_pdu_size=max_pdu)
