"""Tests of the rig's Modbus line (issue 13): `hil.linenoise.LineNoise` puts each fault on the
real pty line between a master and the real pymodbus server, counts it, and is reproducible
at random with a seed; the SDM120 / SDM630 emulators answer float32 registers; stall and
counter reset on command; the rig starts the module it is asked for (CPython only)."""

import json
import os
import select
import struct
import threading
import time

import crcmod.predefined
import pytest
from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusIOException

from hil.emulated import EmulatedRig
from hil.linenoise import KINDS, LineNoise
from hil.modules import MODULES, open_module
from hil.ptylink import PtyLink
from hil.pzem import EmulatorError, PzemEmulator, Sdm120Emulator, Sdm630Emulator

_crc = crcmod.predefined.mkCrcFun("modbus")


def _frame(body):
    c = _crc(bytes(body))
    return bytes(body) + bytes((c & 0xFF, c >> 8))


READ_PZEM = _frame(b"\x01\x04\x00\x00\x00\x0a")      # 10 input registers: 25-byte reply


def _read(fd, n, timeout=5.0):
    out = bytearray()
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if r:
            out += os.read(fd, n - len(out))
    return bytes(out)


def _quiet(fd, wait=0.25):
    """True if nothing arrives on fd within ``wait`` s (proving an absence)."""
    r, _, _ = select.select([fd], [], [], wait)
    return not r


def _read_until_quiet(fd, quiet=0.12, limit=5.0):
    """Everything that arrives until the line has been quiet ``quiet`` s."""
    out = bytearray()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], quiet)
        if not r:
            break
        out += os.read(fd, 4096)
    return bytes(out)


class Line:
    """A master's raw fd on side A, the module emulator on side B, the injector between."""

    def __init__(self, emu_cls=PzemEmulator):
        self.link = PtyLink()
        self.emu = emu_cls(self.link.b_path).start()
        self.noise = LineNoise(self.link)
        self.fd = os.open(self.link.a_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

    def ask(self, request=READ_PZEM, n=25):
        os.write(self.fd, request)
        return _read(self.fd, n)

    def close(self):
        os.close(self.fd)
        self.noise.close()
        self.emu.stop()
        self.link.close()


@pytest.fixture
def line():
    ln = Line()
    ln.emu.set_load(1000)
    ln.emu.set_energy(123456)
    try:
        yield ln
    finally:
        ln.close()


def _clean(line):
    reply = line.ask()
    assert len(reply) == 25 and reply[:3] == b"\x01\x04\x14" and _crc(reply) == 0
    return reply


# ---------------------------------------------------------------- each fault on the wire

REPLY_FAULTS = [
    (("stray", dict(data=b"\x00", where="before_reply")), lambda c: b"\x00" + c),
    (("stray", dict(data=b"\xff", where="after_reply")), lambda c: c + b"\xff"),
    (("stray", dict(data=b"\xaa\xbb", where="inside_reply", at=3)),
     lambda c: c[:3] + b"\xaa\xbb" + c[3:]),
    (("drop", dict(where="reply", n=2, at=5)), lambda c: c[:5] + c[7:]),
    (("drop", dict()), lambda c: c[:12] + c[13:]),                  # 1 byte, the middle
    (("crc", dict(xor=0x0100)), lambda c: c[:24] + bytes((c[24] ^ 1,))),
    (("exception", dict(code=6)), lambda c: _frame(b"\x01\x84\x06")),
    (("wrong_unit", dict(unit=9)), lambda c: _frame(b"\x09" + c[1:23])),
    (("wrong_unit", dict()), lambda c: _frame(b"\x02" + c[1:23])),
]


@pytest.mark.parametrize("fault,expect", REPLY_FAULTS,
                         ids=["%s-%d" % (f[0][0], i) for i, f in enumerate(REPLY_FAULTS)])
def test_reply_fault_arrives_on_the_wire_once_and_is_counted(line, fault, expect):
    clean = _clean(line)
    kind, params = fault
    line.noise.inject(kind, **params)
    assert line.noise.pending == 1
    want = expect(clean)
    assert line.ask(n=len(want)) == want
    assert _quiet(line.fd)
    assert line.noise.counts == dict.fromkeys(KINDS, 0) | {kind: 1}
    (ev,) = line.noise.events
    # transactions count from the first command (the injector is armed then)
    assert (ev.seq, ev.transaction, ev.kind, ev.source) == (1, 1, kind, "command")
    assert line.noise.pending == 0 and line.noise.transactions == 1
    assert line.ask() == clean                      # one fault, then the line is clean
    assert line.noise.transactions == 2 and line.noise.total == 1


def test_exception_codes_reach_a_pymodbus_master():
    ln = Line()
    client = ModbusSerialClient(ln.link.a_path, framer=FramerType.RTU, baudrate=9600,
                                timeout=0.3, retries=0)
    assert client.connect()
    try:
        for code in (1, 2, 3, 4, 6):
            ln.noise.inject("exception", code=code)
            r = client.read_input_registers(0, count=10, device_id=1)
            assert r.isError() and r.exception_code == code
        ln.noise.inject("crc")
        with pytest.raises(ModbusIOException):
            client.read_input_registers(0, count=10, device_id=1)
        assert ln.noise.wait_idle(2.0)              # the bad frame reached the master
        client.close()                              # drop what pymodbus kept of it
        assert client.connect()
        assert client.read_input_registers(0, count=1, device_id=1).registers == [2300]
        assert ln.noise.counts["exception"] == 5 and ln.noise.counts["crc"] == 1
    finally:
        client.close()
        ln.close()


def test_silent_delay_and_split(line):
    clean = _clean(line)
    before = line.emu.requests
    line.noise.inject("silent")
    os.write(line.fd, READ_PZEM)
    assert _quiet(line.fd, 0.4)
    assert line.emu.requests == before + 1          # the module heard it, the master got nothing
    line.noise.inject("delay", delay_s=0.6)
    os.write(line.fd, READ_PZEM)
    assert _quiet(line.fd, 0.2)                     # not within a short master timeout ...
    assert _read(line.fd, 25) == clean              # ... but later, whole
    line.noise.inject("split", at=4, gap_s=0.5)
    os.write(line.fd, READ_PZEM)
    assert _read(line.fd, 4) == clean[:4]
    assert _quiet(line.fd, 0.2)                     # a silence inside the frame
    assert _read(line.fd, 21) == clean[4:]
    assert line.noise.counts == dict.fromkeys(KINDS, 0) | {"silent": 1, "delay": 1, "split": 1}


def test_nothing_overtakes_a_delayed_reply(line):
    clean = _clean(line)
    line.noise.inject("delay", delay_s=0.5)
    os.write(line.fd, READ_PZEM)
    assert _quiet(line.fd, 0.1)
    os.write(line.fd, READ_PZEM)                    # the master retries: its answer queues behind
    assert _read(line.fd, 50) == clean + clean
    assert line.noise.wait_idle(1.0)


@pytest.mark.parametrize("kind,params", [("drop", dict(where="request", n=1, at=2)),
                                         ("stray", dict(where="before_request"))])
def test_request_fault_leaves_the_module_silent_and_the_next_request_clean(line, kind, params):
    clean = _clean(line)
    before = line.emu.requests
    line.noise.inject(kind, **params)
    os.write(line.fd, READ_PZEM)
    assert _quiet(line.fd, 0.3)                     # a broken frame: no answer
    assert line.emu.requests == before
    assert line.noise.counts[kind] == 1
    # the module drops the incomplete frame at the next silence (t3.5), so the next is read
    assert line.ask() == clean
    assert line.emu.requests == before + 1
    if kind == "drop":
        assert line.emu.stale_bytes == 7


def test_command_faults_apply_in_order_and_wait_for_a_reply(line):
    clean = _clean(line)
    line.noise.inject("crc", count=2)
    line.noise.inject("exception", code=2)
    assert line.noise.pending == 3
    # a request for another address gets no reply: the armed fault stays queued
    os.write(line.fd, _frame(b"\x07\x04\x00\x00\x00\x0a"))
    assert _quiet(line.fd)
    assert line.noise.pending == 3 and line.noise.total == 0
    assert _crc(line.ask()) != 0
    assert _crc(line.ask()) != 0
    assert line.ask(n=5) == _frame(b"\x01\x84\x02")
    assert line.ask() == clean and line.noise.pending == 0
    assert [e.kind for e in line.noise.events] == ["crc", "crc", "exception"]
    line.noise.inject("silent", count=5)
    line.noise.clear()
    assert line.noise.pending == 0 and line.ask() == clean
    line.noise.reset_counts()
    assert line.noise.total == 0 and line.noise.events == [] and line.noise.transactions == 0


def test_bad_fault_requests_are_refused(line):
    for kind, params in (("thunder", {}), ("stray", dict(where="nowhere")),
                         ("exception", dict(code=5)), ("crc", dict(xor=0)),
                         ("delay", dict(delay_s=-1)), ("silent", dict(n=1)),
                         ("drop", dict(where="reply", n=0))):
        with pytest.raises(ValueError):
            line.noise.inject(kind, **params)
    with pytest.raises(ValueError):
        line.noise.random({"crc": 0.6, "silent": 0.6})
    with pytest.raises(ValueError):
        line.noise.random({"thunder": 0.1})
    assert line.noise.pending == 0


# ---------------------------------------------------------------- random mode

def _random_run(seed, n, out):
    ln = Line()
    try:
        ln.noise.random(0.1, seed=seed, delay_s=(0.05, 0.1), gap_s=(0.002, 0.06))
        got = bytearray()
        for _ in range(n):
            os.write(ln.fd, READ_PZEM)
            got += _read_until_quiet(ln.fd)
        out[seed, len(out)] = (bytes(got), ln.noise.events, ln.noise.counts,
                               ln.noise.transactions)
    finally:
        ln.close()


def test_random_noise_is_reproducible_with_a_seed_and_counts_every_kind():
    runs = {}
    threads = [threading.Thread(target=_random_run, args=(seed, 60, runs))
               for seed in (11, 11, 12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (wire_a, ev_a, counts_a, tr_a), (wire_b, ev_b, counts_b, tr_b) = (
        v for k, v in sorted(runs.items()) if k[0] == 11)
    assert tr_a == tr_b == 60
    assert ev_a == ev_b and counts_a == counts_b
    assert wire_a == wire_b                      # the master saw the very same bytes
    assert all(counts_a[k] >= 1 for k in KINDS), counts_a
    assert sum(counts_a.values()) == len(ev_a)
    assert all(e.source == "random" for e in ev_a)
    (other,) = (v for k, v in runs.items() if k[0] == 12)
    assert other[1] != ev_a                      # another seed, other faults


# ---------------------------------------------------------------- SDM120 / SDM630

def _f32(words):
    return struct.unpack(">f", struct.pack(">HH", *words))[0]


def _f32_of(x):
    return struct.unpack(">f", struct.pack(">f", x))[0]


def _client(path, baud):
    c = ModbusSerialClient(path, framer=FramerType.RTU, baudrate=baud, timeout=0.3, retries=0)
    assert c.connect()
    return c


def test_sdm120_blocks_the_firmware_reads_as_float32_big_endian():
    with PtyLink() as link:
        emu = Sdm120Emulator(link.b_path, unit=3).start()
        c = _client(link.a_path, 2400)
        try:
            emu.set_load(2300, pf_centi=50)        # 2.3 kW at pf 0.5: 20 A
            emu.set_energy(1234567)                # 1234.567 kWh
            emu.set_export_energy(89)
            regs = c.read_input_registers(0x0000, count=0x20, device_id=3).registers
            assert _f32(regs[0:2]) == 230.0 and _f32(regs[0x06:0x08]) == 20.0
            assert _f32(regs[0x0C:0x0E]) == 2300.0 and _f32(regs[0x1E:0x20]) == 0.5
            assert _f32(regs[0x12:0x14]) == 4600.0
            assert regs[0x02:0x06] == [0, 0, 0, 0]     # registers without a value read 0.0
            regs = c.read_input_registers(0x0046, count=6, device_id=3).registers
            assert _f32(regs[0:2]) == 50.0
            # float32(Wh / 1000), as the module's own float shows it
            assert _f32(regs[2:4]) == _f32_of(1234.567) != 1234.567
            assert struct.pack(">HH", *regs[2:4]) == struct.pack(">f", 1234.567)
            assert _f32(regs[4:6]) == _f32_of(0.089)
            total = c.read_input_registers(0x0156, count=2, device_id=3).registers
            assert _f32(total) == _f32_of(1234.656)
            r = c.read_input_registers(0x0050, count=2, device_id=3)
            assert r.isError() and r.exception_code == 2
            r = c.read_holding_registers(0x0000, count=2, device_id=3)   # settings: not emulated
            assert r.isError() and r.exception_code == 2
            r = c.read_coils(0, count=1, device_id=3)
            assert r.isError() and r.exception_code == 1
            emu.reset_energy()
            regs = c.read_input_registers(0x0048, count=4, device_id=3).registers
            assert regs == [0, 0, 0, 0]
        finally:
            c.close()
            emu.stop()


def test_sdm630_three_phases_totals_and_energy():
    with PtyLink() as link:
        emu = Sdm630Emulator(link.b_path).start()
        c = _client(link.a_path, 9600)
        try:
            emu.set_load(6900, pf_centi=100)         # 2.3 kW a phase at 230 V: 10 A each
            emu.set_energy(4096000)                  # 4096.000 kWh (exact in float32)
            regs = c.read_input_registers(0x0000, count=0x12, device_id=1).registers
            assert [_f32(regs[i:i + 2]) for i in (0, 2, 4)] == [230.0] * 3
            assert [_f32(regs[i:i + 2]) for i in (6, 8, 10)] == [10.0] * 3
            assert [_f32(regs[i:i + 2]) for i in (12, 14, 16)] == [2300.0] * 3
            regs = c.read_input_registers(0x0034, count=0x18, device_id=1).registers
            f = {a: _f32(regs[a - 0x34:a - 0x32]) for a in (0x34, 0x3E, 0x46, 0x48, 0x4A)}
            assert f == {0x34: 6900.0, 0x3E: 1.0, 0x46: 50.0, 0x48: 4096.0, 0x4A: 0.0}
            emu.advance(3600)                        # +6.9 kWh, integer Wh inside
            assert emu.energy_wh == 4102900
            regs = c.read_input_registers(0x0048, count=2, device_id=1).registers
            assert _f32(regs) == _f32_of(4102.9)
        finally:
            c.close()
            emu.stop()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_stall_and_counter_reset_on_command(name):
    with PtyLink() as link:
        emu = open_module(name, link.b_path, unit=4)
        c = _client(link.a_path, emu.baudrate)
        addr = 0x0048 if name.startswith("sdm") else 0x0005
        try:
            emu.set_energy(5000)
            assert not c.read_input_registers(addr, count=2, device_id=4).isError()
            emu.stall(True)
            assert emu.stalled
            with pytest.raises(ModbusIOException):
                c.read_input_registers(addr, count=2, device_id=4)
            assert emu.silenced == 1
            with pytest.raises(EmulatorError):
                with emu.silent():
                    pass
            emu.stall(False)
            regs = c.read_input_registers(addr, count=2, device_id=4).registers
            assert regs != [0, 0]
            emu.reset_energy()
            assert emu.energy_wh == 0 and emu.energy_remainder_ws == 0
            assert c.read_input_registers(addr, count=2, device_id=4).registers == [0, 0]
        finally:
            c.close()
            emu.stop()


# ---------------------------------------------------------------- the rig

STUB_MAIN = r'''
import json, sys
cfg = json.load(open(sys.argv[1]))
f = open(cfg["ctl"], "r+b", buffering=0)
f.write(b"ready\n")
# the ctl pty is raw with VMIN=0: a read with nothing pending returns b"" at once, so the stub
# idles until the rig kills it (exiting here raced the rig's reading of "ready")
import time
while True:
    f.read(64)
    time.sleep_ms(20)
'''


@pytest.mark.parametrize("name,cls", [("sdm630", Sdm630Emulator), (None, PzemEmulator)])
def test_rig_starts_the_module_asked_for_with_noise_on_its_line(tmp_path, name, cls):
    fw = tmp_path / "fw"
    fw.mkdir()
    (fw / "main.py").write_text(STUB_MAIN)
    rig = EmulatedRig(tmp_path / "w", firmware_dir=fw, wait_first_meter=False, module=name,
                      config={"modbus_unit": 5})
    try:
        assert type(rig.meter_module) is cls and rig.pzem is rig.meter_module
        assert rig.meter_module.unit == 5 and rig.meter_module.running
        cfg = json.loads((rig.state_dir / "config.json").read_text())
        assert cfg["metering_module"] == ("sdm630" if name else "pzem004t")
        rig.set_load(100)
        assert rig.meter_module.watts == 100
        # the test is the bus master on the meter's side of the rig's own line
        c = _client(rig.modbus_link.a_path, rig.meter_module.baudrate)
        try:
            rig.modbus_noise.inject("exception", code=4)
            r = c.read_input_registers(0, count=2, device_id=5)
            assert r.isError() and r.exception_code == 4
            assert rig.modbus_noise.counts["exception"] == 1
            assert not c.read_input_registers(0, count=2, device_id=5).isError()
        finally:
            c.close()
    finally:
        rig.stop()
    with pytest.raises(EmulatorError):
        EmulatedRig(tmp_path / "x", firmware_dir=fw, module="pzem017", start=False)
