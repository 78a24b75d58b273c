"""Interop with HLS-GMAC (mechanism 5, security suite 0, authenticated+encrypted APDUs) against
the firmware on the MicroPython unix port over a pty: gurux-dlms ``GXDLMSSecureClient``
(service-specific glo- APDUs) and dlms-cosem (general-glo-ciphering), both test-only peers.

Each associates as the management client 1 (and gurux also as 48) with the test identity's keys
(hil/identity.py), reads every attribute its association may read, tops up with IC 112
update_amount, enters an STS token via IC 115, switches the relay, and releases; a wrong GAK or
GUEK fails the association with the standard diagnostic.
"""
import pytest
from dlms_cosem import cosem, enumerations
from dlms_cosem import client as dc_client
from dlms_cosem import exceptions as dc_exc
from dlms_cosem.io import HdlcTransport
from dlms_cosem.security import HighLevelSecurityGmacAuthentication
from gurux_dlms import GXDLMSException
from gurux_dlms.enums import DataType

from dlmscosem_peer import DeadlineSerialIO
from gurux_peer import DarError, read_order, readable
from hil import identity
from hls_peer import SecurePeer, frame_counter, gurux, hls_rig, sts_token
from protocol import axdr_client as axdr

# HLS associations load ~4.3 KiB of security code each into a fragmented heap: at 64k they pass
# or fail from run to run (docs/MEMORY.md), so the whole file runs at 72k (tests may ask more)
pytestmark = [pytest.mark.hil]

CREDIT = cosem.Obis(0, 0, 19, 10, 0)
GATEWAY = cosem.Obis(0, 0, 19, 40, 0)
DISCONNECT = cosem.Obis(0, 0, 96, 3, 10)
ACCOUNT = cosem.Obis(0, 0, 19, 0, 0)
FRAME_COUNTER = cosem.Obis(0, 0, 43, 1, 1)


def test_gurux_hls_gmac_reads_tops_up_enters_token_switches_relay(rig_factory):
    rig = hls_rig(rig_factory)
    for client in (1, 48):
        p = gurux(rig, client)
        try:
            n_read = 0
            objs = p.objects()
            for obj in objs:
                for i in read_order(obj):
                    if readable(obj, i):
                        p.read(obj, i)
                        n_read += 1
            assert n_read > 60
            lns = {o.logicalName for o in objs}
            assert {"0.0.43.0.1.255", "0.0.43.1.1.255"} <= lns
            p.check_addresses()
            p.release()
        finally:
            p.close()
    c0 = rig.meter.credit
    p = gurux(rig, 1)
    try:
        objs = {o.logicalName: o for o in p.objects()}
        p.exchange(p.c.method(objs["0.0.19.10.0.255"], 1, 12345, DataType.INT32))
        rig.wait_meter(lambda t: t.credit == c0 + 12345, timeout=10)
        tok = sts_token(10)
        p.exchange(p.c.method(objs["0.0.19.40.0.255"], 1, tok.encode(), DataType.OCTET_STRING))
        gw = objs["0.0.19.40.0.255"]
        p.read(gw, 6)
        assert int(gw.statusCode) == 3           # tokenExecutionOk
        p.exchange(p.c.method(objs["0.0.96.3.10.255"], 1, 0, DataType.INT8))
        rig.wait_meter(lambda t: not t.relay, timeout=10)
        p.exchange(p.c.method(objs["0.0.96.3.10.255"], 2, 0, DataType.INT8))
        rig.press_button()                       # control mode 5: ready_for_reconnection
        rig.wait_meter(lambda t: t.relay, timeout=10)
        p.release()
    finally:
        p.close()


@pytest.mark.parametrize("which", ["gak", "guek"])
def test_gurux_wrong_key_is_refused(rig_factory, which):
    rig = hls_rig(rig_factory)
    bad = b"\x55" * 16
    kw = {"ak": bad} if which == "gak" else {"ek": bad}
    p = SecurePeer(rig.port, client=1, ic=frame_counter(rig) + 1, **kw)
    try:
        with pytest.raises((GXDLMSException, DarError, Exception)) as e:
            p.connect()
        assert not isinstance(e.value, TimeoutError)
    finally:
        p.close()
    # the right keys still work (one failure is below the lock-out count)
    p = gurux(rig, 1)
    p.release()
    p.close()


class FrameIO(DeadlineSerialIO):
    """dlms-cosem 25.1.0's HdlcTransport reads a frame as "up to the next 0x7E", and its HDLC
    connection, finding a 0x7E inside a frame (IEC 62056-46 frames are delimited by their
    length field, there is no byte stuffing), asks for more data once per such byte before it
    extends its search: with nothing more on the line the client hangs. Ciphertext has such a
    byte in about one frame in five, so this IO hands it whole frames (sized by the frame
    format field) and then one empty read per 0x7E inside the frame."""

    _empty = 0

    def recv_until(self, end):
        if self._empty:
            self._empty -= 1
            return b""
        b = DeadlineSerialIO.recv(self, 1)
        while b != b"\x7e":
            b = DeadlineSerialIO.recv(self, 1)
        fmt = DeadlineSerialIO.recv(self, 2)
        while fmt[0] == 0x7E:
            fmt = fmt[1:] + DeadlineSerialIO.recv(self, 1)
        n = ((fmt[0] & 0x07) << 8) | fmt[1]
        frame = b + fmt + DeadlineSerialIO.recv(self, n - 1)
        self._empty = frame[1:-1].count(0x7E)
        return frame


def dlmscosem(rig, ek=identity.GUEK, ak=identity.GAK):
    t = HdlcTransport(client_logical_address=1, server_logical_address=1,
                      io=FrameIO(rig.port, baud_rate=9600, timeout=5))
    return dc_client.DlmsClient(transport=t, authentication=HighLevelSecurityGmacAuthentication(),
                                encryption_key=ek, authentication_key=ak, security_suite=0,
                                client_system_title=identity.CLIENT_TITLE,
                                client_initial_invocation_counter=frame_counter(rig) + 1,
                                meter_initial_invocation_counter=0)


def _attr(ic, obis, a):
    return cosem.CosemAttribute(ic, obis, a)


def test_dlmscosem_hls_gmac_global_ciphering(rig_factory):
    rig = hls_rig(rig_factory)
    c0 = rig.meter.credit
    c = dlmscosem(rig)
    with c.session():
        raw = c.get(_attr(enumerations.CosemInterface.ASSOCIATION_LN, cosem.Obis(0, 0, 40, 0, 0), 2))
        assert len(raw) > 500                                  # the object list, ciphered
        n = 0
        for ic, obis, attrs in ((8, cosem.Obis(0, 0, 1, 0, 0), range(2, 10)),
                                (111, ACCOUNT, range(2, 20)), (112, CREDIT, range(2, 12)),
                                (70, DISCONNECT, range(2, 5)), (64, cosem.Obis(0, 0, 43, 0, 1), range(2, 6)),
                                (1, FRAME_COUNTER, (2,)), (3, cosem.Obis(1, 0, 1, 8, 0), (2, 3))):
            for a in attrs:
                c.get(_attr(ic, obis, a))
                n += 1
        assert n > 40
        p = axdr.Writer().double_long(777).getvalue()
        c.action(cosem.CosemMethod(enumerations.CosemInterface.CREDIT, CREDIT, 1), p)
        tok = axdr.Writer().octet_string(sts_token(10, 1).encode()).getvalue()
        c.action(cosem.CosemMethod(115, GATEWAY, 1), tok)
        c.action(cosem.CosemMethod(70, DISCONNECT, 1), axdr.Writer().integer(0).getvalue())
        rig.wait_meter(lambda t: not t.relay, timeout=10)
        c.action(cosem.CosemMethod(70, DISCONNECT, 2), axdr.Writer().integer(0).getvalue())
        rig.press_button()                       # control mode 5: ready_for_reconnection
        rig.wait_meter(lambda t: t.relay, timeout=10)
    rig.wait_meter(lambda t: t.credit >= c0 + 777 + 10 * 65, timeout=10)


@pytest.mark.parametrize("which", ["gak", "guek"])
def test_dlmscosem_wrong_key_is_refused(rig_factory, which):
    rig = hls_rig(rig_factory)
    bad = b"\x55" * 16
    c = dlmscosem(rig, **({"ak": bad} if which == "gak" else {"ek": bad}))
    with pytest.raises((dc_exc.DlmsClientException, Exception)) as e:
        with c.session():
            pass
    assert not isinstance(e.value, TimeoutError)
