"""The IS 15959 profiles read by the two outside clients (gurux-dlms, dlms-cosem) after a day of
load: every profile whole, by entry and (with a clock column) by range, with its scaler profile,
in the reader (32) and both management (1, 48) associations; the public client (16) is refused.
``meterctl profile`` / ``meterctl bill`` read the same with scalers applied."""
import datetime
import json

import pytest
from click.testing import CliRunner
from dlms_cosem import cosem, enumerations, utils
from dlms_cosem.cosem.capture_object import CaptureObject
from dlms_cosem.cosem.selective_access import EntryDescriptor, RangeDescriptor
from dlms_cosem.time import datetime_from_bytes
from gurux_dlms.objects import GXDLMSProfileGeneric

from host_tools.meterctl.cli import meterctl
from dlmscosem_peer import client as dc_client
from gurux_peer import PASSWORDS, DarError, connect
from profile_rig import BY_RANGE, PROFILES, day_of_load

pytestmark = pytest.mark.hil


class Entry(EntryDescriptor):
    """dlms-cosem's entry descriptor, whose encoding the library leaves unimplemented (Blue Book
    IC 7 §4.3.6: structure {from_entry, to_entry double-long-unsigned, from/to_selected_value
    long-unsigned}), after the access selector 2."""

    def to_bytes(self):
        return (b"\x02\x02\x04\x06" + self.from_entry.to_bytes(4, "big") + b"\x06"
                + self.to_entry.to_bytes(4, "big") + b"\x12" + self.from_selected_value.to_bytes(2, "big")
                + b"\x12" + self.to_selected_value.to_bytes(2, "big"))



def test_profiles_read_by_gurux_dlms_cosem_and_meterctl(rig_factory):
    """One rig with 30 h of load for the three readers (a rig's day of load is the slow part)."""
    rig = day_of_load(rig_factory)
    _gurux(rig)
    _dlms_cosem(rig)
    _meterctl(rig)
    _md_reset(rig)


def _md_reset(loaded):
    """IC 9 0.0.10.0.1.255 execute(1) by management: a billing entry of the running cycle, MD 0."""
    from host_tools.client import DlmsClient
    from protocol.client_assoc import AccessDenied
    with DlmsClient(loaded.port, client_sap=32, password=PASSWORDS[32]) as c:
        md = c.get(4, "1.0.1.6.0.255", 2)[1]
        assert md > 0
        with pytest.raises(AccessDenied):                                       # the reader may not
            c.action(9, "0.0.10.0.1.255", 1, b"\x12\x00\x01")
    with DlmsClient(loaded.port, client_sap=1, password=PASSWORDS[1]) as c:
        assert c.action(9, "0.0.10.0.1.255", 1, b"\x12\x00\x01")[0] == 0
        assert c.get(4, "1.0.1.6.0.255", 2)[1] == 0
        assert c.get(1, "0.0.0.1.0.255", 2)[1] == 1                        # billing count
        bills = c.get(7, "1.0.98.1.0.255", 2)[1]
        assert len(bills) == 2 and bills[0][1][6][1] == md                    # MD kept in the entry


def _gurux(loaded):
    for sap in (32, 1, 48):
        p = connect(loaded, sap, PASSWORDS[sap])
        try:
            for code, scode in PROFILES.items():
                pg = GXDLMSProfileGeneric(code)
                p.read(pg, 3)
                p.read(pg, 7)
                p.read(pg, 2)
                n = pg.entriesInUse
                assert len(pg.buffer) == n >= 1, code
                rows = p.exchange(p.c.readRowsByEntry(pg, 1, 2))
                p.c.updateValue(pg, 2, rows.value)
                assert len(pg.buffer) == min(2, n), code
                if code in BY_RANGE:
                    p.read(pg, 2)
                    t0 = pg.buffer[-1][0].value
                    rows = p.exchange(p.c.readRowsByRange(pg, t0, t0 + datetime.timedelta(seconds=1)))
                    p.c.updateValue(pg, 2, rows.value)
                    assert len(pg.buffer) == 1, code
                if scode:
                    sp = GXDLMSProfileGeneric(scode)
                    p.read(sp, 3)
                    p.read(sp, 2)
                    assert len(sp.buffer) == 1 and len(sp.buffer[0]) == len(sp.captureObjects)
            p.release()
        finally:
            p.close()
    p = connect(loaded, 16)
    try:
        for code in list(PROFILES) + [s for s in PROFILES.values() if s]:
            with pytest.raises(DarError) as e:
                p.read(GXDLMSProfileGeneric(code), 2)
            assert e.value.errorCode == 3, code                       # read-write-denied
        p.release()
    finally:
        p.close()


def _dlms_cosem(loaded):
    clock = cosem.CosemAttribute(enumerations.CosemInterface.CLOCK, cosem.Obis(0, 0, 1, 0, 0), 2)
    for sap in (32, 48):
        c = dc_client(loaded, sap, PASSWORDS[sap])
        with c.session():
            for code, scode in PROFILES.items():
                buf = cosem.CosemAttribute(7, cosem.Obis.from_string(code), 2)
                rows = utils.parse_as_dlms_data(c.get(buf))
                n = utils.parse_as_dlms_data(c.get(cosem.CosemAttribute(7, cosem.Obis.from_string(code), 7)))
                assert len(rows) == n >= 1, code
                ed = Entry(from_entry=1, to_entry=1)
                assert utils.parse_as_dlms_data(c.get(buf, access_descriptor=ed)) == rows[:1], code
                if code in BY_RANGE:
                    start = datetime_from_bytes(rows[-1][0])[0]
                    rd = RangeDescriptor(restricting_object=CaptureObject(clock, 0),
                                         from_value=start, to_value=start)
                    assert utils.parse_as_dlms_data(c.get(buf, access_descriptor=rd)) == [rows[-1]], code
                if scode:
                    s = utils.parse_as_dlms_data(c.get(cosem.CosemAttribute(7, cosem.Obis.from_string(scode), 2)))
                    assert len(s) == 1 and all(len(x) == 2 for x in s[0]), scode
    c = dc_client(loaded, 16)
    with c.session():
        with pytest.raises(Exception):
            c.get(cosem.CosemAttribute(7, cosem.Obis.from_string("1.0.99.1.0.255"), 2))


def _meterctl(loaded):
    base = ["-p", loaded.port, "--password", PASSWORDS[32], "--json"]
    r = CliRunner().invoke(meterctl, ["profile", "block"] + base)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    cols = out["columns"]
    assert "1.0.1.29.0.255.2 [Wh]" in cols and "1.0.12.27.0.255.2 [V]" in cols
    assert "0.128.94.96.1.255.2 [INR]" in cols
    rows = out["rows"]
    assert len(rows) == out["entries_in_use"] >= 48
    assert sum(int(x["1.0.1.29.0.255.2 [Wh]"]) for x in rows) == loaded.meter.wh
    v = rows[2]["1.0.12.27.0.255.2 [V]"]
    assert "." in v and 100 < float(v) < 300                    # 0.1 V scaled to volts
    r = CliRunner().invoke(meterctl, ["bill"] + base)
    assert r.exit_code == 0, r.output
    bill = json.loads(r.output)
    assert bill["entries_in_use"] == 1 and "1.0.1.6.0.255.2 [W]" in bill["columns"]
