"""Interop: the gurux-dlms client (GPL, test-only peer) against the firmware on the MicroPython
unix port, over a pty (IEC 62056-46 HDLC, IEC 62056-5-3 LN referencing).

Every association gurux supports here (public 16, reader 32 LLS, management 1 and 48 LLS)
reads the object_list and then every attribute of every object in it: an attribute the list
marks readable must read, one it marks not readable must be refused with read-write-denied.
Also: the event log by block transfer at max PDU 256, setting the clock, remote disconnect /
reconnect, a wrong LLS password, public writes denied, HDLC max info 128 and 512 with segmented
I-frames both ways. gurux does not check who answers, so every frame's addresses are asserted.
"""
import datetime
import os

import pytest
from gurux_dlms import GXDateTime
from gurux_dlms.enums import DataType
from gurux_dlms.GXDLMSException import GXDLMSException
from gurux_dlms.objects import GXDLMSClock, GXDLMSDisconnectControl, GXDLMSProfileGeneric

from interop_rig import make_rig
from gurux_peer import PASSWORDS, DarError, GuruxPeer, Peer, connect, every_association_reads_every_attribute
from protocol import hdlc_client as hdlc

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]

def test_every_association_reads_every_attribute_of_every_object(rig_factory):
    every_association_reads_every_attribute(make_rig(rig_factory))


def test_values_read_by_gurux_match_the_meter(rig_factory):
    rig = make_rig(rig_factory, config={"credit_paise": 100000})
    rig.wait_relay(True)
    rig.set_load(1200)
    rig.advance(3600)
    p = connect(rig, 1, PASSWORDS[1])
    try:
        objs = {o.logicalName: o for o in p.objects()}
        reg = objs["1.0.1.8.0.255"]
        p.read(reg, 3)
        p.read(reg, 2)
        assert reg.value == 1200 and reg.unit == 30 and reg.scaler == 1
        ldn = objs["0.0.42.0.0.255"]
        p.read(ldn, 2)
        v = ldn.value
        assert (v.decode() if isinstance(v, (bytes, bytearray)) else v) == "PPM0000001"
        assoc = objs["0.0.40.0.0.255"]
        p.read(assoc, 3)
        assert (assoc.clientSAP, assoc.serverSAP) == (1, 1)
        dc = objs["0.0.96.3.10.255"]
        for i in (2, 3, 4):
            p.read(dc, i)
        assert int(dc.controlMode) == 5
    finally:
        p.close()


def test_clock_set_and_remote_disconnect_reconnect(rig_factory):
    rig = make_rig(rig_factory, config={"credit_paise": 100000})
    rig.wait_relay(True)
    p = connect(rig, 1, PASSWORDS[1])
    try:
        clk = GXDLMSClock("0.0.1.0.0.255")
        p.read(clk, 3)
        # 2026-03-04 05:06:07 IST (deviation per the meter's own time_zone attribute)
        clk.time = GXDateTime(datetime.datetime(2026, 3, 4, 5, 6, 7,
                                                tzinfo=datetime.timezone(datetime.timedelta(minutes=330))))
        p.write(clk, 2)
        # the RTC is UTC: 2026-03-03T23:36:07Z (reported with the next metering cycle)
        want = int(datetime.datetime(2026, 3, 3, 23, 36, 7, tzinfo=datetime.timezone.utc).timestamp())
        rig.wait_meter(lambda m: m.epoch == want)
        p.read(clk, 2)
        t = clk.time.value
        assert (t.year, t.month, t.day, t.hour, t.minute, t.second) == (2026, 3, 4, 5, 6, 7)

        dc = GXDLMSDisconnectControl("0.0.96.3.10.255")
        p.exchange(dc.remoteDisconnect(p.c))
        rig.wait_relay(False)
        p.read(dc, 3)
        assert int(dc.controlState) == 0
        p.exchange(dc.remoteReconnect(p.c))
        p.read(dc, 3)
        assert int(dc.controlState) == 2      # mode 5: ready_for_reconnection
        p.check_addresses()
        p.release()
    finally:
        p.close()
    rig.press_button()
    rig.wait_relay(True)


def test_wrong_lls_password_is_authentication_failure(rig_factory):
    rig = make_rig(rig_factory)
    p = Peer(rig.port, client=1, password="wrong")
    try:
        rd = p.exchange(p.c.snrmRequest())
        p.c.parseUAResponse(rd.data)
        rd = p.exchange(p.c.aarqRequest())
        with pytest.raises(GXDLMSException) as e:
            p.c.parseAareResponse(rd.data)
        assert int(e.value.diagnostic) == 13      # authentication-failure
        assert int(e.value.result) == 1           # rejected-permanent
    finally:
        p.close()


def test_public_client_denied_writes_and_methods(rig_factory):
    rig = make_rig(rig_factory)
    p = connect(rig)
    try:
        clk = GXDLMSClock("0.0.1.0.0.255")
        p.read(clk, 2)
        with pytest.raises(DarError) as e:
            p.write(clk, 2)
        assert e.value.errorCode == 3             # read-write-denied
        dc = GXDLMSDisconnectControl("0.0.96.3.10.255")
        with pytest.raises(DarError) as e:
            p.exchange(dc.remoteDisconnect(p.c))
        assert e.value.errorCode == 3
        p.read(dc, 2)
        assert dc.outputState is not None
    finally:
        p.close()


def _fill_event_log(rig, n):
    """n events through the meter's own operations: LLS top-ups (one event each)."""
    from host_tools.client import DlmsClient
    with DlmsClient(rig.port, client_sap=1, password=PASSWORDS[1], timeout=5) as c:
        for _ in range(n):
            c.action(112, "0.0.19.10.0.255", 1, b"\x05\x00\x00\x00\x01")


@pytest.mark.parametrize("max_info", [128, 512])
def test_event_log_by_block_transfer_at_max_pdu_256(rig_factory, max_info):
    rig = make_rig(rig_factory, config={"event_segments": 60})   # room for 300 events
    p = connect(rig, 32, PASSWORDS[32], max_info=max_info, max_pdu=256)
    try:
        # gurux takes the meter's UA: it receives max_info, sends 128 at most (what the meter receives)
        assert p.c.hdlcSettings.maxInfoTX == 128 and p.c.hdlcSettings.maxInfoRX == max_info
        pg = GXDLMSProfileGeneric("0.0.99.98.0.255")
        p.read(pg, 8)
        capacity = pg.profileEntries
        p.release()       # the link is client 32's until its DISC (or inactivity)
    finally:
        p.close()
    _fill_event_log(rig, min(capacity, 300))
    p = connect(rig, 32, PASSWORDS[32], max_info=max_info, max_pdu=256)
    try:
        p.read(pg, 3)
        p.read(pg, 7)
        n = pg.entriesInUse
        assert n >= min(capacity, 300) - 5        # the ring drops 5 at a time
        first = len(p.frames)
        p.read(pg, 2)
        assert len(pg.buffer) == n
        assert [int(r[1]) for r in pg.buffer].count(10) >= min(capacity, 300) - 10
        frames = p.frames[first:]
        wire = sum(len(f) for f in frames)
        # GET-Response-With-Datablock exchanges, each frame within the negotiated size
        assert len(frames) >= max(2, n * 19 // 244)
        for raw in frames:
            rx = hdlc.Receiver(4096)
            rx.feed(raw)
            f = rx.pop()
            while f is not None:
                assert len(f.info) <= max_info
                f = rx.pop()
        # selective access: by entry (2) and by range (1)
        rows = p.exchange(p.c.readRowsByEntry(pg, 2, 3))
        p.c.updateValue(pg, 2, rows.value)
        assert len(pg.buffer) == 3
        t0 = pg.buffer[0][0].value
        rows = p.exchange(p.c.readRowsByRange(pg, t0, t0 + datetime.timedelta(seconds=1)))
        p.c.updateValue(pg, 2, rows.value)
        assert len(pg.buffer) >= 1
        p.check_addresses()
        p.release()
    finally:
        p.close()
    if capacity * 19 >= 4096:
        assert wire > 4096


def test_segmented_request_and_response_at_128(rig_factory):
    """A token with separators (> 128 B as a request) goes in segments the meter acknowledges
    with RR; the object_list comes back in segments gurux acknowledges. (An entry of more than
    200 B is refused from its length, type-unmatched: tests/hil/test_attack_wear.py.)"""
    rig = make_rig(rig_factory)
    p = connect(rig, 1, PASSWORDS[1], max_info=128)
    try:
        assert p.c.hdlcSettings.maxInfoTX == 128
        objs = p.objects()
        assert len(objs) > 10                       # > 1 KB: many segments of 128
        tg = [o for o in objs if o.logicalName == "0.0.19.40.0.255"][0]
        token = " - ".join(["1234"] * 25)           # 172 B, not a valid token: formatFailure
        msgs = p.c.method(tg, 1, token.encode(), DataType.OCTET_STRING)
        assert len(msgs) > 1 and all(hdlc.decode_frame(bytes(m)).segmented for m in msgs[:-1])
        p.exchange(msgs)
        p.read(tg, 6)
        assert int(tg.statusCode) == 4              # formatFailure
        p.check_addresses()
    finally:
        p.close()


def test_gurux_peer_times_out_on_a_silent_line():
    """A meter that stops answering mid-reply is a TimeoutError after the peer's timeout."""
    from hil.ptylink import PtyLink
    with PtyLink() as link:
        peer = GuruxPeer(link.b_path, timeout=0.5)
        fd = os.open(link.a_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            os.write(fd, b"\x7e\xa0\x20\x21\x03")   # the start of a 32-byte frame, then nothing
            with pytest.raises(TimeoutError, match="7ea0202103"):
                peer.connect()
        finally:
            os.close(fd)
            peer.close()
