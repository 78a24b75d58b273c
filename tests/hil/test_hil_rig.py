"""Tests of the HIL rig pieces: pty wiring, the PZEM-004T v3 emulator, the rig's
process handling and its reaction to control lines (CPython only; pymodbus, crcmod).
The control-line parser itself is tested line by line in test_control.py."""

import json
import os
import select
import threading
import time

import crcmod.predefined
import pytest
from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusIOException

from hil.ptylink import A2B, B2A, Pty, PtyError, PtyLink
from hil.pzem import EmulatorError, PzemEmulator, Sdm120Emulator
from hil.bench import BenchRig
from hil.emulated import EmulatedRig
from hil.rig import DEFAULT_METER_CONFIG, Rig, RigError, RigTimeout, Telemetry

_crc_modbus = crcmod.predefined.mkCrcFun("modbus")


def _open(path):
    return os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)


def _read_exact(fd, n, timeout=5.0):
    out = bytearray()
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                out += os.read(fd, n - len(out))
            except BlockingIOError:
                pass
    return bytes(out)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)


def _quiet(fd, wait=0.2):
    """True if nothing arrives on fd within ``wait`` s (proving an absence)."""
    r, _, _ = select.select([fd], [], [], wait)
    return not r


# ---------------------------------------------------------------- PtyLink

ALL_BYTES = bytes(range(256)) + b"\r\n\n\r\x7e\x7e\x11\x13\x00\x03\x04\x1a\x7f\xff"


def test_ptylink_bridges_every_byte_value_both_ways_in_raw_mode():
    with PtyLink() as link:
        a, b = _open(link.a_path), _open(link.b_path)
        try:
            payload = ALL_BYTES * 64  # 17 KiB: more than one tty buffer
            writer = threading.Thread(target=_write_all, args=(a, payload))
            writer.start()
            got = _read_exact(b, len(payload))
            writer.join()
            assert got == payload
            _write_all(b, ALL_BYTES)
            assert _read_exact(a, len(ALL_BYTES)) == ALL_BYTES
            # no echo, no CRLF translation leaking back
            assert _quiet(a) and _quiet(b)
            assert link.counts == {A2B: len(payload), B2A: len(ALL_BYTES)}
            link.reset_counters()
            assert link.counts == {A2B: 0, B2A: 0}
        finally:
            os.close(a)
            os.close(b)


def test_ptylink_tap_inject_and_echo():
    seen = {A2B: bytearray(), B2A: bytearray()}
    taps = {A2B: seen[A2B].extend, B2A: seen[B2A].extend}
    with PtyLink(taps=taps) as link:
        a, b = _open(link.a_path), _open(link.b_path)
        try:
            _write_all(a, b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e")
            assert _read_exact(b, 9) == b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e"
            link.inject(B2A, b"\x00garbage\xff")
            assert _read_exact(a, 9) == b"\x00garbage\xff"
            link.inject(A2B, b"\x13\x11")
            assert _read_exact(b, 2) == b"\x13\x11"
            assert bytes(seen[A2B]) == b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e"
            assert link.counts == {A2B: 11, B2A: 9}
            link.echo = True
            _write_all(a, b"/?!\r\n")
            assert _read_exact(b, 5) == b"/?!\r\n"
            assert _read_exact(a, 5) == b"/?!\r\n"  # the head hears itself
            _write_all(b, b"ACK")
            assert _read_exact(a, 3) == b"ACK"
            assert _quiet(b)  # echo is for side A only
            with pytest.raises(ValueError):
                link.inject("sideways", b"x")
        finally:
            os.close(a)
            os.close(b)


def test_ptylink_flush_drops_bytes_sent_to_a_dead_side_and_overflow_is_counted():
    with PtyLink(max_pending=1000) as link:
        a, b = _open(link.a_path), _open(link.b_path)
        try:
            _write_all(b, b"stale request")
            assert link.wait_count(B2A, 13) and link.drain(5.0)
            link.flush("a")
            assert _quiet(a)
            _write_all(b, b"fresh")
            assert _read_exact(a, 5) == b"fresh"
            # nobody reads side B: the tty fills, then the bridge drops the oldest bytes
            total = 0
            chunk = bytes(4096)
            deadline = time.monotonic() + 10
            while link.dropped[A2B] == 0 and time.monotonic() < deadline:
                _write_all(a, chunk)
                total += len(chunk)
            assert link.dropped[A2B] > 0
            assert link.wait_count(A2B, total)
            assert link.counts[A2B] == total
        finally:
            os.close(a)
            os.close(b)


def test_ptylink_symlinks_and_close():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        link = PtyLink(link_dir=d, names=("meter", "host"))
        assert os.path.realpath(os.path.join(d, "meter")) == link.a_path
        assert os.path.realpath(os.path.join(d, "host")) == link.b_path
        link.close()
        assert not os.path.lexists(os.path.join(d, "meter"))
        assert not link.running
        with pytest.raises(PtyError):
            link.inject(A2B, b"x")
        link.close()  # idempotent


def test_pty_lines_both_ways():
    got = []
    cond = threading.Condition()

    def on_line(line):
        with cond:
            got.append(line)
            cond.notify_all()

    with Pty(on_line=on_line) as p:
        s = _open(p.path)
        try:
            p.write_line("time 1767225600")
            p.write_line("ping 7")
            assert _read_exact(s, 21) == b"time 1767225600\nping "
            assert _read_exact(s, 2) == b"7\n"
            _write_all(s, b"ready\r\nmeter 1767225600 12")
            _write_all(s, b"3 500 1\nrelay 0\n")
            with cond:
                assert cond.wait_for(lambda: len(got) == 3, 5.0)
            assert got == ["ready", "meter 1767225600 123 500 1", "relay 0"]
            with pytest.raises(ValueError):
                p.write_line("two\nlines")
        finally:
            os.close(s)
    assert p.error is None


def test_pty_queue_mode():
    with Pty() as p:
        s = _open(p.path)
        try:
            _write_all(s, b"pong 1\npong 2\n")
            assert p.read_line(5.0) == "pong 1"
            assert p.read_line(5.0) == "pong 2"
            assert p.read_line(0.05) is None
        finally:
            os.close(s)


# ---------------------------------------------------------------- PZEM-004T emulator

@pytest.fixture
def bus():
    """(client, emulator): a pymodbus RTU master wired to the PZEM emulator."""
    link = PtyLink()
    emu = PzemEmulator(link.b_path).start()
    client = ModbusSerialClient(link.a_path, framer=FramerType.RTU, baudrate=9600,
                                timeout=0.3, retries=0)
    assert client.connect()
    try:
        yield client, emu, link
    finally:
        client.close()
        emu.stop()
        link.close()


def _u32_lo_first(lo, hi):
    return ModbusSerialClient.convert_from_registers(
        [lo, hi], ModbusSerialClient.DATATYPE.UINT32, word_order="little")


def test_pzem_input_registers_follow_load_and_energy(bus):
    client, emu, _ = bus
    r = client.read_input_registers(0, count=10, device_id=1)
    assert not r.isError()
    assert r.registers == [2300, 0, 0, 0, 0, 0, 0, 500, 0, 0]
    emu.set_load(1000)          # 1 kW at 230.0 V, pf 1.00 -> 4.348 A
    emu.advance(2 * 3600)       # 2 kWh
    r = client.read_input_registers(0, count=10, device_id=1)
    v, i_lo, i_hi, p_lo, p_hi, e_lo, e_hi, f, pf, alarm = r.registers
    assert v == 2300 and f == 500 and pf == 100 and alarm == 0
    assert _u32_lo_first(i_lo, i_hi) == 4348
    assert _u32_lo_first(p_lo, p_hi) == 10000  # 0.1 W
    assert _u32_lo_first(e_lo, e_hi) == 2000   # Wh
    # words above 0xFFFF: the low word comes first on the wire
    emu.set_load(12345, pf_centi=80)
    emu.set_energy(0x0001E240)  # 123456 Wh
    r = client.read_input_registers(0, count=10, device_id=1)
    regs = r.registers
    assert regs[3:5] == [123450 & 0xFFFF, 123450 >> 16]
    assert regs[5:7] == [0xE240, 0x0001]
    assert _u32_lo_first(*regs[1:3]) == (12345 * 1000000 + 2300 * 80 // 2) // (2300 * 80)
    assert regs[8] == 80
    # a partial read at an offset returns the same words
    r = client.read_input_registers(5, count=2, device_id=1)
    assert r.registers == [0xE240, 0x0001]
    # power alarm once the load reaches the threshold (holding register 1)
    emu.set_load(emu.alarm_threshold_w)
    assert client.read_input_registers(9, count=1, device_id=1).registers == [0xFFFF]


def test_pzem_reply_bytes_on_the_wire(bus):
    client, emu, link = bus
    emu.set_load(100)
    emu.set_energy(5)
    wire = bytearray()
    link.set_tap(B2A, wire.extend)
    client.read_input_registers(0, count=10, device_id=1)
    # 25-byte reply: addr, fc 4, 20 data bytes, CRC-16/MODBUS sent LSB first
    assert len(wire) == 25 and wire[:3] == b"\x01\x04\x14"
    crc = _crc_modbus(bytes(wire[:23]))
    assert wire[23:] == bytes([crc & 0xFF, crc >> 8])
    assert wire[3:5] == (2300).to_bytes(2, "big")
    assert wire[13:17] == b"\x00\x05\x00\x00"  # energy 5 Wh, low word first


def test_pzem_exceptions_and_silence(bus):
    client, emu, _ = bus
    r = client.read_input_registers(10, count=1, device_id=1)
    assert r.isError() and r.exception_code == 2
    r = client.read_input_registers(0, count=11, device_id=1)
    assert r.isError() and r.exception_code == 2
    r = client.read_holding_registers(0, count=1, device_id=1)
    assert r.isError() and r.exception_code == 2
    r = client.read_coils(0, count=1, device_id=1)
    assert r.isError() and r.exception_code == 1
    before = emu.requests
    with pytest.raises(ModbusIOException):
        client.read_input_registers(0, count=10, device_id=2)
    assert emu.ignored == 1 and emu.requests == before
    # general address 0xF8 is answered
    r = client.read_input_registers(0, count=1, device_id=0xF8)
    assert not r.isError() and r.registers == [2300]


def test_pzem_holding_registers_and_address_change(bus):
    client, emu, _ = bus
    assert client.read_holding_registers(1, count=2, device_id=1).registers == [23000, 1]
    r = client.write_register(1, 1500, device_id=1)
    assert not r.isError()
    assert emu.alarm_threshold_w == 1500
    r = client.write_register(2, 0, device_id=1)          # address 0 is not allowed
    assert r.isError() and r.exception_code == 3
    r = client.write_register(2, 0xF8, device_id=1)
    assert r.isError() and r.exception_code == 3
    r = client.write_register(2, 7, device_id=1)          # answered from the old address
    assert not r.isError() and r.dev_id == 1
    assert emu.unit == 7
    assert client.read_holding_registers(1, count=2, device_id=7).registers == [1500, 7]
    with pytest.raises(ModbusIOException):
        client.read_input_registers(0, count=1, device_id=1)


def test_pzem_reset_energy_function_0x42(bus):
    client, emu, link = bus
    client.close()  # talk raw bytes on the wire
    emu.set_load(3600)
    emu.advance(3601)
    assert emu.energy_wh == 3601 and emu.energy_remainder_ws == 0
    fd = _open(link.a_path)
    try:
        req = b"\x01\x42"
        crc = _crc_modbus(req)
        frame = req + bytes([crc & 0xFF, crc >> 8])
        _write_all(fd, frame)
        assert _read_exact(fd, 4, 3.0) == frame  # correct reply echoes the request
        assert emu.energy_wh == 0
        # another address: no reply, energy untouched
        emu.set_energy(9)
        req = b"\x02\x42"
        crc = _crc_modbus(req)
        _write_all(fd, req + bytes([crc & 0xFF, crc >> 8]))
        assert _quiet(fd, 0.3)
        assert emu.energy_wh == 9
    finally:
        os.close(fd)


def test_pzem_energy_integration_is_exact():
    a = PzemEmulator("/dev/null")  # never started: integration only
    b = PzemEmulator("/dev/null")
    for watts, seconds in ((7, 3600 * 5 + 1), (1, 3599), (2417, 86400), (0, 600), (13, 7)):
        a.set_load(watts)
        b.set_load(watts)
        for _ in range(seconds):
            a.advance(1)
        b.advance(seconds)
        assert a.energy_wh == b.energy_wh
        assert a.energy_remainder_ws == b.energy_remainder_ws
    total_ws = 7 * (3600 * 5 + 1) + 1 * 3599 + 2417 * 86400 + 13 * 7
    assert a.energy_wh == total_ws // 3600
    assert a.energy_remainder_ws == total_ws % 3600
    # sub-Wh steps add up: 3600 one-second ticks at 1 W are exactly 1 Wh
    c = PzemEmulator("/dev/null")
    c.set_load(1)
    for _ in range(3599):
        c.advance(1)
    assert c.energy_wh == 0
    c.advance(1)
    assert c.energy_wh == 1 and c.energy_remainder_ws == 0


def test_pzem_rejects_bad_values():
    emu = PzemEmulator("/dev/null")
    for bad in (-1, 1.5, "10", True):
        with pytest.raises(EmulatorError):
            emu.set_load(bad)
    with pytest.raises(EmulatorError):
        emu.advance(-1)
    with pytest.raises(EmulatorError):
        emu.set_energy(1 << 32)
    with pytest.raises(EmulatorError):
        PzemEmulator("/dev/null", unit=0)


def test_pzem_start_failure_is_reported():
    emu = PzemEmulator("/nonexistent/tty")
    with pytest.raises(EmulatorError):
        emu.start()
    assert not emu.running


def test_sdm120_float32_big_endian_registers():
    with PtyLink() as link:
        emu = Sdm120Emulator(link.b_path).start()
        client = ModbusSerialClient(link.a_path, baudrate=2400, timeout=0.3, retries=0)
        assert client.connect()
        try:
            emu.set_load(1000, pf_centi=80)
            emu.advance(3 * 3600 + 1800)  # 3.5 kWh
            wire = bytearray()
            link.set_tap(B2A, wire.extend)
            r = client.read_input_registers(0x0048, count=2, device_id=1)
            # 3.5 as IEEE 754 binary32 is 0x40600000, sent high word first
            assert r.registers == [0x4060, 0x0000]
            assert bytes(wire[3:7]) == b"\x40\x60\x00\x00"

            def f32(addr):
                regs = client.read_input_registers(addr, count=2, device_id=1).registers
                return client.convert_from_registers(regs, client.DATATYPE.FLOAT32)

            assert f32(0x0000) == 230.0
            assert f32(0x000C) == 1000.0
            assert f32(0x0012) == pytest.approx(1250.0)
            assert f32(0x0018) == pytest.approx(750.0)
            assert f32(0x001E) == pytest.approx(0.8)
            assert f32(0x0046) == 50.0
            assert f32(0x0156) == 3.5
            assert f32(0x0006) == pytest.approx(1000 / (230 * 0.8), abs=0.001)
            # the whole 0x0000-0x004F block is answered (unnamed registers read 0.0), not beyond
            assert client.read_input_registers(0x0002, count=2, device_id=1).registers == [0, 0]
            r = client.read_input_registers(0x0050, count=2, device_id=1)
            assert r.isError() and r.exception_code == 2
            with pytest.raises(ModbusIOException):
                client.read_input_registers(0, count=2, device_id=9)
        finally:
            client.close()
            emu.stop()


# ---------------------------------------------------------------- rig process handling
# A stand-in for main.py that only speaks the control channel's ready/ping/pong
# (no metering): it proves the rig's process handling, not meter behaviour.

STUB_MAIN = r'''
import json, sys, termios
cfg = json.load(open(sys.argv[1]))
print("stub board", cfg["ctl"], cfg["epoch"])
if cfg.get("poll_ms") == 13:
    raise RuntimeError("stub crashed at boot")
f = open(cfg["ctl"], "r+b")
a = termios.tcgetattr(f.fileno())
a[6][6] = 1   # VMIN=1: block for input
termios.tcsetattr(f.fileno(), termios.TCSANOW, a)
if cfg.get("poll_ms") != 7:
    f.write(b"ready\n")
buf = b""
while True:
    buf += f.read(1)
    if buf.endswith(b"\n"):
        cmd = buf.decode().split()
        buf = b""
        if cmd[0] == "ping":
            f.write(b"pong " + cmd[1].encode() + b"\n")
        elif cmd[0] == "say":   # the test makes the board say a control line
            f.write(" ".join(cmd[1:]).encode() + b"\n")
        elif cmd[0] == "crash":
            raise RuntimeError("stub crashed on request")
'''


@pytest.fixture
def stub_fw(tmp_path):
    d = tmp_path / "stubfw"
    d.mkdir()
    (d / "main.py").write_text(STUB_MAIN)
    return d


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill 0; check its state
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def test_rig_boots_syncs_power_cycles_and_stops(tmp_path, stub_fw):
    threads_before = set(threading.enumerate())
    rig = EmulatedRig(tmp_path / "w", firmware_dir=stub_fw, wait_first_meter=False, poll_ms=200,
                      config={"serial": "PPM0000042", "passwords": {"1": "abcdefgh"}})
    try:
        board = json.loads((tmp_path / "w" / "board.json").read_text())
        assert board["dlms"] == rig.dlms_link.a_path and board["ctl"] == rig.ctl.path
        assert board["modbus"] == rig.modbus_link.a_path
        assert board["clock"] == "frozen" and board["epoch"] == 1767225600
        assert board["state"] == str(tmp_path / "w" / "state")
        cfg = json.loads((tmp_path / "w" / "state" / "config.json").read_text())
        assert cfg["serial"] == "PPM0000042"
        assert cfg["passwords"] == {"1": "abcdefgh", "32": "00000000", "48": "ABCDEFGH"}
        assert cfg["tariff_paise_per_kwh"] == DEFAULT_METER_CONFIG["tariff_paise_per_kwh"]
        assert rig.port == rig.dlms_link.b_path
        rig.sync()
        pid1 = rig.pid
        assert _alive(pid1)
        rig.power_cut()
        assert not _alive(pid1) and not rig.running
        with pytest.raises(RigError, match="powered off"):
            rig.sync()
        with pytest.raises(RigError, match="powered off"):
            rig.press_button()
        with pytest.raises(RigError, match="relay state unknown"):
            rig.relay_closed()
        rig.clock = 1767300000                # the RTC kept time while the meter was off
        rig.power_on()
        assert rig.pid != pid1 and rig.running
        assert json.loads((tmp_path / "w" / "board.json").read_text())["epoch"] == 1767300000
        rig.sync()
        assert "stub board" in rig.log_tail()
        assert rig.log_tail().count("--- boot") == 2
        pid2 = rig.pid
    finally:
        rig.stop()
    assert not _alive(pid2)
    rig.stop()  # idempotent
    deadline = time.monotonic() + 5
    for t in threading.enumerate():
        if t not in threads_before:
            t.join(max(0.0, deadline - time.monotonic()))   # a thread on its way out ends
    leaked = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not leaked, leaked


def test_rig_reports_a_crash_with_the_log_tail(tmp_path, stub_fw):
    with EmulatedRig(tmp_path / "w", firmware_dir=stub_fw, wait_first_meter=False) as rig:
        rig.send("crash")
        with pytest.raises(RigError) as ei:
            rig.sync(timeout=10)
        msg = str(ei.value)
        assert "exited with code 1" in msg and "stub crashed on request" in msg


def test_rig_boot_failures(tmp_path, stub_fw):
    with pytest.raises(RigError) as ei:
        EmulatedRig(tmp_path / "crash", firmware_dir=stub_fw, wait_first_meter=False, poll_ms=13)
    assert "stub crashed at boot" in str(ei.value) and "ready" in str(ei.value)
    with pytest.raises(RigTimeout) as ei:
        EmulatedRig(tmp_path / "silent", firmware_dir=stub_fw, wait_first_meter=False, poll_ms=7, boot_timeout=1.0)
    assert "timed out after 1.0 s" in str(ei.value) and "stub board" in str(ei.value)
    with pytest.raises(RigError, match="no firmware"):
        EmulatedRig(tmp_path / "none", firmware_dir=tmp_path)


def test_rig_reacts_to_control_lines(tmp_path, stub_fw):
    """The board's lines reach the rig: the relay gates the load, lines are stamped with the rig's
    clock, telemetry and events can be waited on, a bad line is kept aside."""
    with EmulatedRig(tmp_path / "w", firmware_dir=stub_fw, wait_first_meter=False,
                     relay_gates_load=True) as rig:
        rig.set_load(500)
        assert rig.pzem.watts == 500          # relay state unknown: load passes
        rig.send("say relay 0")
        rig.wait_relay(False)
        assert rig.pzem.watts == 0 and rig.load_w == 500   # load is behind the relay
        rig.set_load(700, pf_centi=90)
        assert rig.pzem.watts == 0
        rig.send("say relay 1")
        rig.wait_relay(True)
        assert rig.pzem.watts == 700 and rig.pzem.input_registers()[8] == 90
        rig.relay_history.clear()
        rig.clock = 1767225660
        for line in ("relay 0", "meter 1767225660 1234 -150 0",
                     "event 12 credit exhausted, relay opened", "meter x y z", "hello"):
            rig.send("say " + line)
        rig.sync()
        assert rig.relay_closed() is False
        assert rig.relay_history == [(1767225660, False)]
        assert rig.meter == Telemetry(1767225660, 1234, -150, False)
        assert rig.wait_meter(lambda m: m.wh == 1234, 0.1).credit_paise == -150
        assert rig.wait_event(12, 0.1) == ("12", "credit exhausted, relay opened")
        assert rig.bad_lines == ["meter x y z", "hello"]
        assert "< hello" in rig.ctl_trace_lines(3)
        rig.power_cut()
        with pytest.raises(RigError, match="powered off"):  # waiting for more cannot succeed
            rig.wait_meter(lambda m: m.wh > 2000, 0.1)


def test_capabilities_skip_with_reason():
    class Bare(Rig):
        capabilities = frozenset({"dlms"})

    r = Bare()
    r.require("dlms")
    with pytest.raises(pytest.skip.Exception, match="Bare lacks capability power_cut"):
        r.require("power_cut")
    with pytest.raises(pytest.skip.Exception):
        r.power_cut()
    with pytest.raises(pytest.skip.Exception):
        r.advance(10)


def test_bench_rig_capabilities(tmp_path):
    with PtyLink() as link:
        bench = BenchRig(link.a_path)
        # relay: read back over DLMS (hil.relayback; session 15), so every bench rig has it
        assert bench.port == link.a_path and bench.capabilities == {"dlms", "relay"}
        with pytest.raises(pytest.skip.Exception):
            bench.set_load(100)
        bench.stop()
        bench = BenchRig(link.a_path, modbus_port=link.b_path)
        try:
            assert {"load", "energy"} <= bench.capabilities
            bench.set_load(100)
            assert bench.pzem.watts == 100
            with pytest.raises(pytest.skip.Exception):
                bench.power_cut()
        finally:
            bench.stop()
    switched = []
    probes = iter([False, OSError("no answer yet"), True])

    def probe():
        r = next(probes)
        if isinstance(r, Exception):
            raise r
        return r

    bench = BenchRig("/dev/ttyUSB9", power_switch=switched.append, ready_probe=probe)
    bench.power_cut()
    bench.power_on(timeout=5)
    assert switched == [False, True] and "power_cut" in bench.capabilities
    bench.stop()
    bench = BenchRig("/dev/ttyUSB9", power_switch=switched.append, ready_probe=lambda: False)
    with pytest.raises(RigTimeout, match="not ready"):
        bench.power_on(timeout=0.3)
    bench.stop()


# ---------------------------------------------------------------- pytest plugin

PLUGIN_TESTS = r'''
import pytest

def test_fails_and_shows_log(rig_factory, stub_dir):
    rig = rig_factory(firmware_dir=stub_dir, wait_first_meter=False)
    rig.sync()
    assert rig.relay_closed(), "no relay line from the stub"

def test_bench_without_port_skips(rig):
    pass

@pytest.fixture
def stub_dir():
    return STUB_DIR
'''


def test_pytest_plugin_options_fixtures_and_failure_log(tmp_path, stub_fw):
    import subprocess
    import sys

    from hil.env import REPO_ROOT

    (tmp_path / "conftest.py").write_text('pytest_plugins = ["hil.pytest_plugin"]\n')
    (tmp_path / "test_plugin_demo.py").write_text(
        "STUB_DIR = %r\n" % str(stub_fw) + PLUGIN_TESTS)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    from hil.env import find_micropython
    mp = find_micropython()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "--micropython", mp,
         "--heap", "64k", str(tmp_path / "test_plugin_demo.py") + "::test_fails_and_shows_log"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "firmware log (rig 0, EmulatedRig)" in out
    assert "heapsize=64k" in out and "stub board" in out
    assert "> ping 1" in out and "< pong 1" in out
    assert "test_fails_and_shows_log" in out
    assert "--- boot 1: %s -X heapsize=64k" % mp in out           # the binary it was given
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--micropython",
         str(tmp_path / "no-such-micropython"), str(tmp_path / "test_plugin_demo.py")],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 4 and "no-such-micropython is not an executable" in run.stderr, run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "--rig", "bench",
         str(tmp_path / "test_plugin_demo.py") + "::test_bench_without_port_skips"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 0 and "1 skipped" in out and "--meter-port" in out, out


# ---------------------------------------------------------------- the rig around the real firmware

@pytest.mark.hil
def test_rig_runs_the_real_firmware_through_a_power_cycle(rig_factory):
    """Smoke test of the rig's wiring with the real firmware at the default heap:
    boot (ready + first meter line), metering via the PZEM emulator, a power cut that
    keeps the ptys and the module up, and a DLMS client on the same port afterwards."""
    from host_tools.client import DlmsClient, read_summary

    rig = rig_factory(config={"credit_paise": 100000}, relay_gates_load=True)
    rig.wait_relay(True)                        # credit provisioned: supply on

    assert rig.meter is not None and rig.meter.epoch == rig.clock
    assert rig.relay_history and rig.relay_history[0][0] == rig.clock
    assert rig.pzem.requests >= 1
    rig.set_load(2000)
    t = rig.advance(1800)                       # 30 min at 2 kW
    assert t.wh == 1000 == rig.pzem.energy_wh
    pid = rig.pid
    dlms_port = rig.port
    rig.power_cut()
    assert not _alive(pid) and rig.running is False
    rig.pzem.advance(900)                       # the module keeps counting: +500 Wh
    rig.power_on()
    assert rig.port == dlms_port and rig.pid != pid
    t = rig.wait_meter(lambda m: m.wh == 1500, timeout=15)
    before = dict(rig.dlms_link.counts)
    with DlmsClient(rig.port) as c:
        summary = read_summary(c)
    assert summary["energy_import_wh"] == 1500
    after = rig.dlms_link.counts
    assert after[B2A] > before[B2A] and after[A2B] > before[A2B]  # bytes on the wire


def test_one_emulated_meter_per_state_directory(tmp_path):
    """Two meters on one flash would overwrite each other's journal: the second is refused."""
    first = EmulatedRig(tmp_path / "m", start=False)
    try:
        with pytest.raises(RigError, match="in use by another emulated meter"):
            EmulatedRig(tmp_path / "m", start=False)
    finally:
        first.stop()
    EmulatedRig(tmp_path / "m", start=False).stop()     # free again once the first has stopped


def test_find_micropython_honours_option_then_environment(tmp_path, monkeypatch):
    """--micropython (set_micropython) beats METER_MICROPYTHON beats the venv's/PATH's binary;
    a named path that is not executable is an error, not a fall-through."""
    from hil import env
    fake = tmp_path / "mp-env"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    opt = tmp_path / "mp-opt"
    opt.write_text("#!/bin/sh\n")
    opt.chmod(0o755)
    monkeypatch.delenv(env.MICROPYTHON_ENV, raising=False)
    session = env.set_micropython(None)     # this run's --micropython / --vm32 choice, put back below
    try:
        default = env.find_micropython()
        monkeypatch.setenv(env.MICROPYTHON_ENV, str(fake))
        assert env.find_micropython() == str(fake)
        env.set_micropython(opt)
        assert env.find_micropython() == str(opt)
        assert env.find_micropython(str(fake)) == str(fake)     # an explicit argument wins
        env.set_micropython(None)
        monkeypatch.setenv(env.MICROPYTHON_ENV, str(tmp_path / "missing"))
        with pytest.raises(RigError, match="METER_MICROPYTHON"):
            env.find_micropython()
        monkeypatch.delenv(env.MICROPYTHON_ENV)
        assert env.find_micropython() == default == env.wheel_micropython()
    finally:
        env.set_micropython(session)
