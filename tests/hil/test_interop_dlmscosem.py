"""Interop: the dlms-cosem client (sans-io, test-only peer) against the firmware on the MicroPython
unix port over a pty.

dlms-cosem never negotiates HDLC parameters (bare SNRM: 128/128/1/1), sends a calling-AP-title in
every AARQ and user-information inside the RLRQ, and parses GET-Response-With-Datablock itself;
its own A-XDR decoder and object_list parser read every value here (not ours). Covered: every
association it supports (public 16, LLS 32/1/48), every attribute of every object in the
object_list (readable ones read, the rest refused), the event log by block transfer at max PDU
256 with range selective access, clock set, remote disconnect/reconnect, a wrong LLS password,
public writes denied. Frame addresses are checked with a wire tap.
"""
import datetime

import pytest
from dlms_cosem import cosem, enumerations, exceptions, utils
from dlms_cosem import client as dc_client
from dlms_cosem.cosem.association import AccessRight
from dlms_cosem.cosem.capture_object import CaptureObject
from dlms_cosem.cosem.selective_access import RangeDescriptor
from dlms_cosem.io import HdlcTransport
from dlms_cosem.parsers import AssociationObjectListParser
from dlms_cosem.protocol import xdlms
from dlms_cosem.security import NoSecurityAuthentication

from dlmscosem_peer import DeadlineSerialIO, client
from interop_rig import make_rig
from protocol import hdlc_client as hdlc
from protocol import axdr_client as axdr

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]

PASSWORDS = {1: "12345678", 32: "00000000", 48: "ABCDEFGH"}
ASSOCIATIONS = [(16, None), (32, "00000000"), (1, "12345678"), (48, "ABCDEFGH")]
ASSOC = cosem.CosemAttribute(enumerations.CosemInterface.ASSOCIATION_LN, cosem.Obis(0, 0, 40, 0, 0), 2)
EVENT_LOG = cosem.Obis(0, 0, 99, 98, 0)
CLOCK = cosem.Obis(0, 0, 1, 0, 0)
DISCONNECT = cosem.Obis(0, 0, 96, 3, 10)


class Tap:
    """Collects the meter's frames from the pty link (a2b: meter -> host)."""

    def __init__(self, rig):
        self.rx = hdlc.Receiver(4096)
        self.frames = []
        rig.dlms_link.set_tap("a2b", self._feed)

    def _feed(self, data):
        self.rx.feed(data)
        f = self.rx.pop()
        while f is not None:
            self.frames.append(f)
            f = self.rx.pop()


def _rights(item, attr):
    r = item.attribute_access_rights.get(attr)
    return set(int(x) for x in r.access_rights) if r is not None else set()


def test_every_association_reads_every_attribute_of_every_object(rig_factory):
    rig = make_rig(rig_factory)
    tap = Tap(rig)
    lists = {}
    for sap, password in ASSOCIATIONS:
        c = client(rig, sap, password)
        with c.session():
            items = AssociationObjectListParser.parse_bytes(c.get(ASSOC))
            lists[sap] = {(int(i.interface), i.logical_name.to_string()) for i in items}
            for item in items:
                for attr in sorted(item.attribute_access_rights):
                    ca = cosem.CosemAttribute(int(item.interface), item.logical_name, attr)
                    if AccessRight.READ_ACCESS.value in _rights(item, attr):
                        raw = c.get(ca)
                        try:
                            utils.parse_as_dlms_data(raw)  # dlms-cosem's own A-XDR decoder
                        except NotImplementedError as e:   # no bit-string / utf8-string decoding
                            assert "BitString" in str(e) or "UTF8String" in str(e), raw.hex()
                        assert axdr.decode(raw, 0)[1] == len(raw)
                    else:
                        with pytest.raises(dc_client.DataResultError) as e:
                            c.get(ca)
                        assert "READ_WRITE_DENIED" in str(e.value)
        # every meter frame went from server 1 (03) to this client
        for f in tap.frames:
            assert f.src == b"\x03" and f.dest == bytes([(sap << 1) | 1])
        tap.frames.clear()
    assert lists[16] < lists[32] == lists[1] == lists[48]
    assert (112, "0-0:19.10.0.255") in lists[32] and (115, "0-0:19.40.0.255") in lists[32]


def test_wrong_password_and_public_writes(rig_factory):
    rig = make_rig(rig_factory)
    c = client(rig, 1, "not-it")
    c.connect()
    try:
        with pytest.raises(exceptions.DlmsClientException) as e:
            c.associate()
        assert "AUTHENTICATION_FAILURE" in str(e.value) or "13" in str(e.value)
    finally:
        c.disconnect()
    c = client(rig, 16)
    with c.session():
        r = c.set(cosem.CosemAttribute(8, CLOCK, 2), bytes.fromhex("090c07ea010104000000000080000" "0"))
        assert isinstance(r, xdlms.SetResponseNormal)
        assert r.result == enumerations.DataAccessResult.READ_WRITE_DENIED
        with pytest.raises(dc_client.ActionError) as e:
            c.action(cosem.CosemMethod(70, DISCONNECT, 1), b"\x0f\x00")
        assert "READ_WRITE_DENIED" in str(e.value)


def test_clock_set_disconnect_reconnect(rig_factory):
    rig = make_rig(rig_factory, config={"credit_paise": 100000})
    rig.wait_relay(True)
    c = client(rig, 48, PASSWORDS[48])
    with c.session():
        # 2026-07-01 12:00:00 local, deviation -330 (IST; UTC = local + deviation)
        dt = bytes.fromhex("07ea070103" "0c000000" "feb6" "00")
        r = c.set(cosem.CosemAttribute(8, CLOCK, 2), b"\x09\x0c" + dt)
        assert r.result == enumerations.DataAccessResult.SUCCESS
        raw = c.get(cosem.CosemAttribute(8, CLOCK, 2))
        assert raw[:9] == b"\x09\x0c" + dt[:7]
        c.action(cosem.CosemMethod(70, DISCONNECT, 1), b"\x0f\x00")
        rig.wait_relay(False)
        assert c.get(cosem.CosemAttribute(70, DISCONNECT, 3)) == b"\x16\x00"
        c.action(cosem.CosemMethod(70, DISCONNECT, 2), b"\x0f\x00")
        assert c.get(cosem.CosemAttribute(70, DISCONNECT, 3)) == b"\x16\x02"
    want = int(datetime.datetime(2026, 7, 1, 6, 30, tzinfo=datetime.timezone.utc).timestamp())
    rig.wait_meter(lambda m: m.epoch == want)
    rig.press_button()
    rig.wait_relay(True)


def test_event_log_by_block_transfer_at_max_pdu_256(rig_factory):
    rig = make_rig(rig_factory, config={"event_segments": 60})   # room for 300 events
    c = client(rig, 1, PASSWORDS[1])
    with c.session():
        cap = utils.parse_as_dlms_data(c.get(cosem.CosemAttribute(7, EVENT_LOG, 8)))
        for _ in range(min(cap, 300)):
            c.action(cosem.CosemMethod(112, cosem.Obis(0, 0, 19, 10, 0), 1), b"\x05\x00\x00\x00\x01")
    tap = Tap(rig)
    c = client(rig, 32, PASSWORDS[32], max_pdu=256)
    with c.session():
        n = utils.parse_as_dlms_data(c.get(cosem.CosemAttribute(7, EVENT_LOG, 7)))
        tap.frames.clear()
        raw = c.get(cosem.CosemAttribute(7, EVENT_LOG, 2))
        rows = utils.parse_as_dlms_data(raw)
        assert len(rows) == n >= min(cap, 300) - 5      # the ring drops 5 at a time
        blocks = [f for f in tap.frames if f.info[3:5] == b"\xc4\x02"]
        assert len(blocks) >= len(raw) // 244
        if cap * 19 >= 4096:
            assert len(raw) >= 4096
        # range selective access on the clock column: the first entry's second
        t0 = rows[0][0]
        from dlms_cosem.time import datetime_from_bytes
        start = datetime_from_bytes(t0)[0]
        rd = RangeDescriptor(
            restricting_object=CaptureObject(cosem.CosemAttribute(enumerations.CosemInterface.CLOCK, CLOCK, 2), 0),
            from_value=start, to_value=start)
        sel = utils.parse_as_dlms_data(c.get(cosem.CosemAttribute(7, EVENT_LOG, 2), access_descriptor=rd))
        assert 1 <= len(sel) <= n and all(r[0] == t0 for r in sel)


def test_a_meter_that_stops_answering_is_a_timeout_not_a_hang():
    """The helper's reads end at a deadline (no meter on the far end of the cable here)."""
    from hil.ptylink import PtyLink
    with PtyLink() as link:
        t = HdlcTransport(client_logical_address=16, server_logical_address=1,
                          io=DeadlineSerialIO(link.b_path, baud_rate=9600, timeout=0.5))
        c = dc_client.DlmsClient(transport=t, authentication=NoSecurityAuthentication())
        with pytest.raises(TimeoutError, match="within 0.5 s"):
            c.connect()
        t.io.disconnect()
