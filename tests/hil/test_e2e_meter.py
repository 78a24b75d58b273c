"""End to end on real parts: the firmware on the MicroPython unix port (heap capped) behind ptys,
an emulated PZEM-004T on a real pymodbus RTU server, our DLMS client and the gurux-dlms client.

The management client is ``rig.management_client()``: on a bench board flashed with keys
(``--meter-key-file``/``--meter-serial``) it runs HLS; what needs the emulated meter's test
identity (its LLS passwords, a first boot) skips elsewhere.
"""

import pytest
from protocol import hdlc_client as hdlc

from host_tools import keystore
from host_tools.client import DlmsClient, AccessDenied, read_summary

pytestmark = pytest.mark.hil
RATE = 650  # paise / kWh (rig default config)


def paise_for(wh, rate=RATE):
    """Reference: the debit for wh Wh is floor(wh * rate / 1000) paise (rounding rule, README)."""
    return wh * rate // 1000


def top_up(rig, paise):
    with rig.management_client() as c:
        res, _ = c.action(112, "0.0.19.10.0.255", 1, b"\x05" + paise.to_bytes(4, "big", signed=True))
        return res


@pytest.mark.needs("load", "energy", "clock")     # a bench board without them skips before the top-up
def test_topup_drain_open_and_reclose(rig):
    # first boot with zero credit: prepayment policy keeps the relay open
    rig.wait_relay(False)
    assert top_up(rig, 2000) == 0            # Rs 20.00 via IC 112 update_amount, LLS client 1
    rig.wait_relay(True)
    rig.set_load(2000)
    t = rig.advance(900)                      # 15 min at 2 kW = 500 Wh
    assert t.wh == 500 and t.credit == 2000 - paise_for(500) and t.relay
    t = rig.advance(1800)                     # +1000 Wh: 1500 Wh -> 975 paise > 2000? no: 2000-975
    assert t.wh == 1500 and t.credit == 2000 - paise_for(1500)
    t = rig.advance(1800)                     # 2500 Wh -> 1625 paise, still > 0
    assert t.credit == 2000 - paise_for(2500) and t.relay
    t = rig.advance(900)                      # 3000 Wh -> 1950 paise, credit 50
    assert t.credit == 50 and t.relay
    t = rig.advance(300)                      # 3166 Wh -> 2057 paise: negative -> open
    assert t.credit == 2000 - paise_for(3166) and t.credit <= 0
    rig.wait_relay(False)
    with DlmsClient(rig.port) as c:           # public client reads the state
        s = read_summary(c)
    assert s["available_credit_paise"] == t.credit
    assert s["energy_import_wh"] == 3166 and s["relay_output_state"] is False
    assert top_up(rig, 1000) == 0
    rig.wait_relay(True)
    t = rig.advance(60)
    assert t.credit == 3000 - paise_for(t.wh) and t.relay


def test_credit_survives_power_cut(rig):
    assert top_up(rig, 5000) == 0
    rig.set_load(1000)
    t = rig.advance(3600)                     # 1 kWh
    assert t.credit == 5000 - 650
    rig.power_cut()
    rig.pzem.advance(1800)                    # the module keeps counting while the meter is down
    rig.power_on()
    t = rig.wait_meter(lambda m: m.wh == 1500, timeout=15)
    assert t.credit == 5000 - paise_for(1500)
    with DlmsClient(rig.port) as c:
        assert read_summary(c)["available_credit_paise"] == t.credit


def test_public_client_reads_but_cannot_write(rig):
    with DlmsClient(rig.port) as c:
        value = c.get(3, "1.0.1.8.0.255", 2)
        assert value[0] == 6                  # double-long-unsigned
        scaler_unit = c.get(3, "1.0.1.8.0.255", 3)
        assert [v for _, v in scaler_unit[1]] == [0, 30]   # 10^0 Wh
        with pytest.raises(AccessDenied):
            c.action(112, "0.0.19.10.0.255", 1, b"\x05\x00\x00\x27\x10")
    wrong = ({"hls": keystore.replaced_keys(rig.management_keys, {"ak": bytes(16)})}
             if rig.management_keys else {"password": "wrong"})
    with pytest.raises(Exception) as e:       # wrong LLS password / HLS key: association rejected
        with rig.management_client(**wrong):
            pass
    assert "authentication" in str(e.value).lower()


@pytest.mark.needs("button")     # the reconnect; a bench board skips before it disconnects its relay
def test_remote_disconnect_and_reconnect(rig):
    assert top_up(rig, 1000) == 0
    rig.wait_relay(True)
    with rig.management_client() as c:
        assert c.action(70, "0.0.96.3.10.255", 1, b"\x0f\x00")[0] == 0
        rig.wait_relay(False)
        assert c.get(70, "0.0.96.3.10.255", 3)[1] == 0        # disconnected
        assert c.action(70, "0.0.96.3.10.255", 2, b"\x0f\x00")[0] == 0
        assert c.get(70, "0.0.96.3.10.255", 3)[1] == 2        # mode 5: ready_for_reconnection
    rig.press_button()                                          # manual reconnect (e)
    rig.wait_relay(True)


@pytest.mark.needs("load", "energy", "clock")
def test_gurux_client_reads_energy_and_clock(rig):
    from gurux_dlms.objects import GXDLMSClock, GXDLMSRegister
    from gurux_peer import GuruxPeer
    assert top_up(rig, 10000) == 0            # the load sits behind the relay: close it first
    rig.wait_relay(True)
    rig.set_load(1200)
    rig.advance(3600)
    peer = GuruxPeer(rig.port, client=16, server=1)
    try:
        ua = peer.connect()
        # gurux does not check who answered: we do. UA comes from server 1 (0x03) to client 16 (0x21)
        f = hdlc.decode_frame(ua)
        assert f.src == bytes([0x03]) and f.dest == bytes([0x21]) and f.ctrl == hdlc.UA
        reg = peer.read(GXDLMSRegister("1.0.1.8.0.255"), 3)
        peer.read(reg, 2)
        assert reg.value == 1200
        clk = peer.read(GXDLMSClock("0.0.1.0.0.255"), 2)
        t = clk.time.value
        # RTC at 2026-01-01 00:00 UTC + 1 h; the meter's local time is IST (UTC+05:30)
        assert (t.year, t.month, t.day, t.hour, t.minute) == (2026, 1, 1, 6, 30)
        for raw in peer.frames:
            f = hdlc.decode_frame(raw)
            assert f.src == bytes([0x03]), raw.hex()
        peer.release()
    finally:
        peer.close()


def test_bad_input_does_not_stop_the_meter(rig):
    good = hdlc.encode_frame(hdlc.encode_server_address(1), hdlc.encode_client_address(16), hdlc.SNRM)
    bad_fcs = bytearray(good)
    bad_fcs[-2] ^= 0xFF
    junk = bytes(range(256)) * 4 + b"\x7e\xa0\x7e\x7e\xa8\xff" + bytes(300)
    truncated = good[:5]
    import serial
    with serial.Serial(rig.port, 9600, timeout=0) as s:
        for noise in (junk, bytes(bad_fcs), truncated, b"\x7e" * 50):
            s.write(noise)
            s.flush()
        rig.drain(quiet_ms=300)     # the meter has read it all and said what it had to say
        s.reset_input_buffer()      # (nothing is expected for a bad FCS)
    with DlmsClient(rig.port) as c:
        assert c.get(3, "1.0.1.8.0.255", 2)[0] == 6
    # another server address gets silence (IEC 62056-46): the client times out, the meter lives on
    from host_tools.client import LinkTimeout
    with pytest.raises(LinkTimeout):
        with DlmsClient(rig.port, server_logical=5, timeout=1.0):
            pass
    with DlmsClient(rig.port) as c:
        assert c.get(1, "0.0.42.0.0.255", 2)[1] == b"PPM0000001"


@pytest.mark.needs("test_identity")     # meterctl with the test identity's reader password
def test_meterctl_events_and_objects(rig):
    import json
    from click.testing import CliRunner
    from host_tools.meterctl import cli
    def run(*a):
        return CliRunner().invoke(cli.meterctl, list(a))
    assert top_up(rig, 1234) == 0
    r = run("events", "--port", rig.port, "--password", "00000000", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["rows"]
    codes = [(row["0.0.96.11.0.255.2"], row["event"]) for row in rows]
    assert codes[0] == (1, "first boot") and codes[-1] == (10, "credit added"), codes
    r = run("events", "--port", rig.port)              # the buffer is not public: usage error
    assert r.exit_code == 2 and "--password" in r.output
    r = run("objects", "--port", rig.port, "--json")   # public client's object_list
    assert r.exit_code == 0, r.output
    listed = {(o["class_id"], o["obis"]) for o in json.loads(r.output)}
    assert (3, "1.0.1.8.0.255") in listed and (8, "0.0.1.0.0.255") in listed
    assert (7, "0.0.99.98.0.255") not in listed         # public may read only its logical name


@pytest.mark.needs("test_identity")     # meterctl with the test identity's LLS password
def test_credit_register_limit_is_refused_with_a_reason(rig):
    from click.testing import CliRunner
    from host_tools.meterctl import cli
    def run(amount):
        return CliRunner().invoke(cli.meterctl, ["credit", "add", "--port", rig.port, "--amount",
                                                               amount, "--password", "12345678", "--yes"])
    assert run("10737418.00").exit_code == 0
    r = run("5.00")                               # 31-bit register: ₹1,07,37,418.23 at most
    assert r.exit_code == 1 and "would pass the register's limit" in r.output, r.output
    with DlmsClient(rig.port) as c:                # refused whole: nothing was added
        assert c.get(112, "0.0.19.10.0.255", 2)[1] == 1073741800
