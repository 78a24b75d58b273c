"""Metering module master (meter.metrology) on CPython and MicroPython: module types by
register map (PZEM-004T v3, SDM120, SDM630), the exchange over a noisy line, the fault
logic (fault once, invalid values, recovery with the energy counted meanwhile, counter
reset), float32 kWh -> Wh without drift, and no heap use in the poll path.

The line is a fake stream answering like the module (replies built here from the vendor
maps); time is a fake ms clock advanced by what ``Module.step()`` asks to wait.
"""
import struct

from meter import metrology as mt
from meter import modules as mm

from protocol.crc import crc16_modbus


def with_crc(b):
    c = crc16_modbus(b)
    return bytes(b) + bytes((c & 0xFF, c >> 8))


class Clock:
    def __init__(self):
        self.ms = 1000
        self.s = 100

    def ticks(self):
        return self.ms

    def time(self):
        return self.s


class Line:
    """A module on a fake RS-485 line. ``regs(address)`` gives the 16-bit input register;
    ``faults`` is a list of what to do to the next replies (one item per request):
    None, "drop", "lead", "trail", "split", "exc", "unit", "crc", "trunc", "func".
    A reply's pieces arrive ``delay_ms`` after the request, ``gap_ms`` apart (on ``clock``)."""

    def __init__(self, regs, unit=1, delay_ms=10, gap_ms=2):
        self.regs = regs
        self.unit = unit
        self.faults = []
        self.rx = []           # [release ms, bytes]
        self.requests = []
        self.clock = None
        self.delay_ms = delay_ms
        self.gap_ms = gap_ms

    def now(self):
        return self.clock.ms if self.clock else 0

    def put(self, *chunks):
        t = self.now() + self.delay_ms
        for c in chunks:
            self.rx.append([t, c])
            t += self.gap_ms

    def write(self, req):
        req = bytes(req)
        self.requests.append(req)
        fault = self.faults.pop(0) if self.faults else None
        if fault == "drop" or req[0] != self.unit:
            return
        addr = (req[2] << 8) | req[3]
        count = (req[4] << 8) | req[5]
        body = bytearray((self.unit, req[1], 2 * count))
        for a in range(addr, addr + count):
            r = self.regs(a)
            body.append(r >> 8)
            body.append(r & 0xFF)
        rep = with_crc(body)
        if fault == "lead":
            self.put(b"\x00", b"\xff\x00" + rep[:3], rep[3:])
        elif fault == "trail":
            self.put(rep + b"\x00\xff", b"\xff")
        elif fault == "split":
            self.put(*[rep[i:i + 1] for i in range(len(rep))])
        elif fault == "exc":
            self.put(with_crc(bytes((self.unit, req[1] | 0x80, 2))))
        elif fault == "unit":
            self.put(with_crc(bytes((self.unit + 1,)) + body[1:]))
        elif fault == "func":
            self.put(with_crc(bytes((self.unit, 3)) + body[2:]))
        elif fault == "crc":
            bad = bytearray(rep)
            bad[5] ^= 0x10
            self.put(bytes(bad))
        elif fault == "trunc":
            self.put(rep[:-4])
        else:
            self.put(rep)

    def readinto(self, buf):
        if not self.rx or self.rx[0][0] > self.now():
            return None
        c = self.rx[0][1]
        n = min(len(c), len(buf))
        for i in range(n):
            buf[i] = c[i]
        if n == len(c):
            self.rx.pop(0)
        else:
            self.rx[0][1] = c[n:]
        return n


class Pzem:
    def __init__(self):
        self.v = [2300, 1234, 0, 2838, 0, 0, 0, 500, 98, 0]
        self.set_wh(123456)

    def set_wh(self, wh):
        self.v[5] = wh & 0xFFFF
        self.v[6] = wh >> 16

    def __call__(self, a):
        return self.v[a] if a < 10 else 0


class Sdm:
    """float32 registers, high word first; holes read as 0 as on an Eastron meter."""

    def __init__(self, values):
        self.values = dict(values)

    def __call__(self, a):
        base = a & ~1
        if base not in self.values:
            return 0
        raw = struct.pack(">f", self.values[base])
        return (raw[0] << 8 | raw[1]) if a == base else (raw[2] << 8 | raw[3])


def module(line, kind="pzem004t", **kw):
    clk = Clock()
    kw.setdefault("timeout_ms", 200)
    m = mt.Module(line, kind, line.unit, clock=clk.time, ticks=clk.ticks, **kw)
    line.clock = clk
    return m, clk


def poll(m, clk):
    m.start()
    while True:
        ms = m.step()
        if ms < 0:
            return m.fresh
        clk.ms += ms


# --- module types --------------------------------------------------------------------------

def test_pzem_values():
    line = Line(Pzem())
    m, clk = module(line)
    assert poll(m, clk) is True
    assert line.requests == [bytes((1, 4, 0, 0, 0, 10, 0x70, 0x0D))]
    assert (m.voltage_dv, m.current_ma, m.power_dw, m.energy_wh) == (2300, 1234, 2838, 123456)
    assert (m.frequency_dhz, m.pf_centi, m.alarm, m.export_wh) == (500, 98, False, None)
    assert m.last_error == "" and m.errors == 0 and m.delta_wh == 0 and m.outcome == 0
    line.regs.set_wh(123461)
    line.regs.v[9] = 0xFFFF
    assert poll(m, clk) and m.delta_wh == 5 and m.alarm is True


def test_pzem004t_constructor_kept():
    line = Line(Pzem())
    m = mt.Module(line, "pzem004t", 1, tx_enable=lambda on: None)
    assert m.kind == "pzem004t" and m.voltage_dv is None and not m.fresh


def sdm120_values():
    return {0x00: 230.1, 0x06: 4.567, 0x0C: 1050.4, 0x1E: 0.95, 0x46: 50.0, 0x48: 1.234,
            0x4A: 0.5}


def test_sdm120_values():
    line = Line(Sdm(sdm120_values()))
    m, clk = module(line, "sdm120", baud=2400)
    assert poll(m, clk)
    assert [(r[2] << 8 | r[3], r[5]) for r in line.requests] == [(0x0000, 0x20), (0x0046, 6)]
    assert (m.voltage_dv, m.current_ma, m.power_dw, m.pf_centi) == (2301, 4567, 10504, 95)
    assert (m.frequency_dhz, m.energy_wh, m.export_wh) == (500, 1234, 500)


def test_sdm120_export_and_leading_pf():
    vals = sdm120_values()
    vals[0x0C] = -800.0           # exporting
    vals[0x1E] = -0.9             # leading
    m, clk = module(Line(Sdm(vals)), "sdm120")
    assert poll(m, clk)
    assert m.power_dw == 0 and m.val[mm.POWER_DW] == -8000
    assert m.pf_centi == 90 and m.val[mm.PF_CENTI] == -90


def test_sdm630_values():
    vals = {0x00: 230.0, 0x02: 231.0, 0x04: 229.5, 0x06: 1.0, 0x08: 2.0, 0x0A: 3.5,
            0x0C: 230.0, 0x0E: 462.0, 0x10: 803.25, 0x34: 1495.25, 0x3E: 0.99, 0x46: 49.9,
            0x48: 12345.678, 0x4A: 0.0}
    line = Line(Sdm(vals))
    m, clk = module(line, "sdm630")
    assert poll(m, clk)
    assert [(r[2] << 8 | r[3], r[5]) for r in line.requests] == [(0x0000, 0x12), (0x0034, 0x18)]
    v = m.val
    assert (v[mm.VOLTAGE_DV], v[mm.V2_DV], v[mm.V3_DV]) == (2300, 2310, 2295)
    assert (v[mm.CURRENT_MA], v[mm.I2_MA], v[mm.I3_MA]) == (1000, 2000, 3500)
    assert (v[mm.P1_DW], v[mm.P2_DW], v[mm.P3_DW]) == (2300, 4620, 8032)   # 803.25: even
    assert (m.power_dw, m.pf_centi, m.frequency_dhz) == (14952, 99, 499)
    assert m.energy_wh == 12345678 and m.export_wh == 0


def test_unknown_kind():
    try:
        mt.Module(Line(Pzem()), "pzem016")
    except ValueError:
        return
    raise AssertionError("no ValueError")


# --- a noisy line ----------------------------------------------------------------------------

def test_each_fault_a_defined_error_then_the_next_poll_succeeds():
    cases = (("drop", "timeout"), ("exc", "exception"), ("unit", "unit"), ("crc", "crc"),
             ("trunc", "truncated"), ("func", "function"))
    for fault, why in cases:
        line = Line(Pzem())
        m, clk = module(line, retries=0)
        line.faults = [fault]
        assert poll(m, clk) is False and m.last_error == why, (fault, m.last_error)
        assert m.exc_code == (2 if fault == "exc" else 0)
        assert poll(m, clk) is True and m.energy_wh == 123456, fault
        assert m.errors == 1


def test_noise_and_split_replies_are_read():
    for kind, regs in (("pzem004t", Pzem()), ("sdm120", Sdm(sdm120_values()))):
        line = Line(regs)
        m, clk = module(line, kind, retries=0)
        for fault in ("lead", "trail", "split", "lead", "split", "trail"):
            line.faults = [fault, fault]
            assert poll(m, clk), (kind, fault)
        assert m.errors == 0


def test_drain_discards_stray_input_before_the_request():
    line = Line(Pzem())
    m, clk = module(line)
    line.put(b"\x01\x04\x14\x00", b"\xff" * 40)      # a late, shifted reply and noise
    assert poll(m, clk) and m.discarded == 44 and m.errors == 0


def test_retries_bounded():
    line = Line(Pzem())
    m, clk = module(line, retries=2)
    line.faults = ["crc", "drop"]
    assert poll(m, clk) and len(line.requests) == 3
    line.faults = ["drop"] * 5
    t0 = clk.ms
    assert not poll(m, clk) and len(line.requests) == 6     # 3 tries, no more
    assert clk.ms - t0 < 3 * (200 + 2 * mt.MIN_GAP_MS + 50)        # each bounded by timeout_ms


def test_exception_reply_is_not_retried():
    line = Line(Pzem())
    m, clk = module(line, retries=2)
    line.faults = ["exc"]
    assert not poll(m, clk) and len(line.requests) == 1 and m.last_error == "exception"


def test_nan_energy_is_a_value_error():
    vals = sdm120_values()
    vals[0x48] = float("nan")
    line = Line(Sdm(vals))
    m, clk = module(line, "sdm120")
    assert not poll(m, clk) and m.last_error == "value" and m.energy_wh is None
    vals[0x48] = float("inf")
    line.regs.values = vals
    assert not poll(m, clk) and m.last_error == "value"


# --- fault logic -------------------------------------------------------------------------------

def test_health_fault_once_and_recovery():
    # polls a minute apart (the counts must be plausible at the default 26 kW: Health.max_w)
    h = mt.Health(fail_polls=3, fail_s=0)
    assert h.good(0, 1000) == 0 and h.delta_wh == 0
    assert h.good(60, 1010) == 0 and h.delta_wh == 10
    assert [h.bad(t) for t in range(120, 540, 60)] == [0, 0, mt.FAULT, 0, 0, 0, 0]
    assert h.faulted and h.faults == 1 and h.delta_wh == 0
    # a step beyond the slack at the recovery is held until the next reading confirms it
    assert h.good(540, 1500) == 0 and h.delta_wh == 0 and not h.faulted
    assert h.good(600, 1501) == mt.RECOVERED and h.fault_wh == 491 and h.delta_wh == 491
    assert h.good(660, 1502) == 0 and h.delta_wh == 1


def test_health_a_forged_reply_at_the_recovery_is_not_charged():
    # attack pass (session 13): a module silent for 10 min, then one forged valid-CRC reply of
    # +4000 Wh (it fits 26 kW over the fault) was charged at once (Rs 26; a low credit went
    # negative and the relay opened), and the real counter behind it paid nothing for 2 h
    h = mt.Health(fail_polls=3, fail_s=0)
    h.good(0, 10000)
    for t in (60, 120, 180):
        h.bad(t)
    assert h.good(600, 14000) == 0 and h.delta_wh == 0 and h.baseline_wh == 10000   # held
    assert h.good(601, 10033) == 0 and h.delta_wh == 0            # the real count: held too
    assert h.good(602, 10033) == mt.RECOVERED and h.delta_wh == 33 and h.fault_wh == 33
    assert h.good(662, 10043) == 0 and h.delta_wh == 10


def test_health_time_rule():
    h = mt.Health(fail_polls=100, fail_s=600)
    h.good(0, 5)
    assert h.bad(10) == 0 and h.bad(300) == 0 and h.bad(609) == 0
    assert h.bad(610) == mt.FAULT and h.bad(2000) == 0
    h.good(2001, 5)
    assert h.bad(3000) == 0 and h.bad(3599) == 0 and h.bad(3600) == mt.FAULT


def test_health_counter_reset_never_credits():
    # a lower counter is a reset only once fail_polls (5) readings in a row confirm it (it was
    # one reading before: a single glitch re-based the counter, the attack of session 11)
    # (and over a minute at least); polls a minute apart here
    h = mt.Health()
    h.good(0, 50000)
    assert [h.good(t, 120) for t in range(60, 300, 60)] == [0] * 4 and h.delta_wh == 0
    assert h.baseline_wh == 50000 and h.glitches == 4
    assert h.good(300, 130) == mt.COUNTER_RESET and h.delta_wh == 10 and h.resets == 1
    assert h.good(360, 140) == 0 and h.delta_wh == 10          # the new baseline
    for t in range(420, 720, 60):
        h.bad(t)
    assert h.faulted
    assert h.good(720, 100) == mt.RECOVERED and h.delta_wh == 0 and h.fault_wh == 0
    assert [h.good(t, 100) for t in range(780, 1020, 60)] == [0, 0, 0, mt.COUNTER_RESET]
    assert h.delta_wh == 0 and h.resets == 2 and h.baseline_wh == 100


def test_health_a_burst_of_odd_readings_within_a_minute_is_no_reset():
    # forged replies in a burst (or a rig moving the energy before the clock): no re-base
    # until the odd readings have lasted _CONFIRM_S (60 s); then back: charged as if nothing
    h = mt.Health()
    h.good(0, 5000)
    assert [h.good(t, 0) for t in range(1, 60)] == [0] * 59 and h.resets == 0
    assert h.good(60, 5010) == 0 and h.delta_wh == 10 and h.glitches == 59


def test_health_one_low_reading_is_a_glitch_charged_from_the_old_baseline():
    # a forged/garbled reply with counter 0 between two real ones (session 11 attack: the 0
    # became the baseline and the next real reading was charged in full)
    h = mt.Health()
    h.good(0, 8760000)
    assert h.good(60, 8760030) == 0 and h.delta_wh == 30
    assert h.good(120, 0) == 0 and h.delta_wh == 0 and h.baseline_wh == 8760030
    assert h.glitches == 1 and h.resets == 0
    assert h.good(180, 8760100) == 0 and h.delta_wh == 70       # from the old baseline
    assert h.good(240, 8760130) == 0 and h.delta_wh == 30 and h.resets == 0


def test_health_low_readings_not_monotonic_restart_the_confirmation():
    h = mt.Health(fail_polls=3)
    h.good(0, 5000)
    assert [h.good(t, wh) for t, wh in ((60, 10), (120, 12), (180, 5), (240, 6))] == [0] * 4
    assert h.good(300, 7) == mt.COUNTER_RESET and h.delta_wh == 2   # counted since the 5
    assert h.resets == 1 and h.baseline_wh == 7
    assert h.resets == 1 and h.glitches == 5


def test_health_a_jump_beyond_max_power_is_not_charged():
    # 26 kW for 60 s (+ 2 s clock slack) is 447 Wh (+ 1 Wh resolution): 448 is charged, 449 not
    h = mt.Health(max_w=26000)
    h.good(0, 1000)
    assert h.good(60, 1448) == 0 and h.delta_wh == 448
    assert h.good(120, 1448 + 449) == 0 and h.delta_wh == 0 and h.glitches == 1
    assert h.good(180, 1448 + 100) == 0 and h.delta_wh == 100   # the real count: a glitch
    h = mt.Health(max_w=3600)                                   # 1 Wh a second
    h.good(10, 0)
    assert h.good(20, 13) == 0 and h.delta_wh == 13             # 10 s + 2 s slack + 1 Wh
    assert h.good(30, 27) == 0 and h.delta_wh == 0              # 14 > 13: not charged


def test_health_a_persistent_jump_rebases_without_charging_it():
    # forged +100,050 Wh, then the module really is there (swapped, tampered): fail_polls
    # readings in a row, each plausible from the one before -> re-based, tamper, the jump free
    h = mt.Health()
    h.good(0, 1000)
    out = [h.good(t, 101050 + t) for t in (60, 120, 180, 240, 300)]
    assert out == [0, 0, 0, 0, mt.COUNTER_RESET] and h.resets == 1
    assert h.delta_wh == 240 and h.baseline_wh == 101350         # only what came after it
    assert h.good(360, 101400) == 0 and h.delta_wh == 50


def test_health_fault_recovery_is_bounded_by_max_power():
    h = mt.Health(fail_polls=2, fail_s=0, max_w=2000)
    h.good(0, 0)
    h.bad(60)
    assert h.bad(120) == mt.FAULT
    # 10 minutes at 2 kW at most: 335 Wh (600 s + 2 s slack: 334.4, + 1 Wh); 336 is a lie
    assert h.good(600, 336) == 0 and h.delta_wh == 0
    assert h.good(600, 335) == 0 and h.delta_wh == 0            # beyond the slack: held
    assert h.good(601, 335) == mt.RECOVERED and h.fault_wh == 335 and h.delta_wh == 335


def test_health_after_a_boot_a_step_beyond_the_slack_waits_for_the_next_reading():
    # the baseline from the journal, its time unknown (no battery-backed clock: the downtime is
    # not known): what the module counted meanwhile is charged once the next reading confirms
    # it (session 12: it was charged at the first reading: one forged reply at boot, Rs 650)
    h = mt.Health()
    h.baseline_wh = 1000
    assert h.good(5, 900) == 0 and h.delta_wh == 0 and h.baseline_wh == 1000
    assert h.good(6, 90000) == 0 and h.delta_wh == 0 and h.baseline_wh == 1000 and h.t_base is None
    assert h.good(7, 90000) == 0 and h.delta_wh == 89000 and h.t_base == 7
    assert h.good(8, 190000) == 0 and h.delta_wh == 0             # now bounded: 26 kW x 3 s


def test_health_after_a_boot_a_forged_first_reading_is_not_charged():
    # attack pass (session 12): one forged reply of +100 kWh at the first poll after a reboot was
    # charged in full (Rs 650 at 650 paise/kWh); the meter was down while 500 Wh were counted
    h = mt.Health()
    h.baseline_wh = 5000
    charged = 0
    for t, wh in ((100, 105000), (101, 5500), (102, 5500), (162, 5530)):
        assert h.good(t, wh) == 0
        charged += h.delta_wh
    assert charged == 530 and h.baseline_wh == 5530 and h.resets == 0
    # the next reading does not confirm a held one: the first was a glitch, on from the baseline
    h = mt.Health()
    h.baseline_wh = 5000
    assert h.good(100, 105000) == 0 and h.good(101, 5000) == 0 and h.delta_wh == 0
    assert h.baseline_wh == 5000 and h.t_base == 101
    assert h.good(161, 105000) == 0 and h.delta_wh == 0             # bounded now: a jump


def test_health_after_a_boot_a_step_within_the_slack_is_charged_at_once():
    # what a cut leaves between the journaled baseline and the counter (the persist cadence,
    # 10 Wh) is charged at the first reading: 26 kW in no time (2 s clock slack + 1 Wh) = 15 Wh
    h = mt.Health()
    h.baseline_wh = 5000
    assert h.good(100, 5015) == 0 and h.delta_wh == 15 and h.t_base == 100
    h = mt.Health()
    h.baseline_wh = 5000
    assert h.good(100, 5016) == 0 and h.delta_wh == 0 and h.t_base is None
    assert h.good(100, 5016) == 0 and h.delta_wh == 16
    h = mt.Health(max_w=83000)                                      # SDM630: 47 Wh
    h.baseline_wh = 5000
    assert h.good(100, 5047) == 0 and h.delta_wh == 47


def test_module_fault_invalidates_and_recovery_charges():
    line = Line(Pzem())
    m, clk = module(line, retries=0, fail_polls=3)
    assert poll(m, clk) and m.voltage_dv == 2300
    line.faults = ["drop"] * 3
    assert not poll(m, clk) and m.outcome == 0 and m.voltage_dv == 2300 and not m.fresh
    assert not poll(m, clk) and m.outcome == 0
    assert not poll(m, clk) and m.outcome == mt.FAULT and m.faulted
    assert m.voltage_dv is None and m.current_ma is None and m.power_dw is None
    assert m.energy_wh == 123456                    # the last good counter stays
    line.regs.set_wh(123456 + 777)
    clk.s += 600                                    # 777 Wh in 10 minutes: plausible
    assert poll(m, clk) and m.outcome == 0 and m.delta_wh == 0   # beyond the slack: held
    assert m.voltage_dv == 2300 and not m.faulted
    clk.s += 1
    assert poll(m, clk) and m.outcome == mt.RECOVERED and m.fault_wh == 777 and m.delta_wh == 777


def test_module_counter_reset_is_tamper():
    line = Line(Pzem())
    m, clk = module(line)
    assert poll(m, clk)
    line.regs.set_wh(3)
    # confirmed by fail_polls (5) readings over a minute (one lower reading re-based before)
    out = []
    for _ in range(5):
        clk.s += 20
        out.append(poll(m, clk) and m.outcome)
    assert out == [0, 0, 0, 0, mt.COUNTER_RESET]
    assert m.delta_wh == 0 and m.health.resets == 1 and m.health.baseline_wh == 3


# --- float32 kWh -> Wh over a long run --------------------------------------------------------

def f32_kwh(wh):
    return struct.pack(">f", wh / 1000)


def test_sdm_energy_charge_equals_counter():
    # an SDM counting in Wh, read as float32 kWh; the meter charges the rounded deltas
    import random
    random.seed(3)
    for start in (0, 9000000, 16380000, 99000000):     # Wh; 16,384 kWh crossed on the 3rd
        wh = start
        h = mt.Health()
        first = mm_f32(f32_kwh(wh))
        h.good(0, first)
        charged = 0
        for t in range(1, 1500):
            wh += random.randint(0, 40)
            e = mm_f32(f32_kwh(wh))
            step = 1 if wh < 16384000 else (2 if wh < 32768000 else 8)
            assert abs(e - wh) * 2 <= step, (wh, e)          # within half a float32 step
            if wh < 16384000:
                assert e == wh                                # exact below 16,384 kWh
            h.good(t * 60, e)                                  # a poll a minute
            assert h.delta_wh >= 0
            charged += h.delta_wh
        assert charged == e - first                           # telescopes: no drift


def mm_f32(b):
    from protocol import modbus_rtu
    return modbus_rtu.f32_scaled(b, 0, 1000)


# --- heap -----------------------------------------------------------------------------------------

class StaticLine:
    """A line that allocates nothing: replays one reply (preallocated) to every request."""

    unit = 1
    clock = None

    def __init__(self, reply, noise=0):
        self.reply = bytearray(reply)
        self.pos = len(self.reply)
        self.noise = noise

    def write(self, req):
        self.pos = 0

    def readinto(self, buf):
        if self.noise:
            self.noise -= 1
            buf[0] = 0
            return 1
        n = len(self.reply) - self.pos
        if n <= 0:
            return 0
        n = min(n, len(buf))
        for i in range(n):
            buf[i] = self.reply[self.pos + i]
        self.pos += n
        return n


def test_poll_path_allocates_nothing():
    try:
        import micropython
    except ImportError:
        return   # CPython: bench/bench_modbus.py reports it
    for kind, regs, count in (("pzem004t", Pzem(), 10), ("sdm630", Sdm({0: 230.0}), 0x18)):
        body = bytearray((1, 4, 2 * count))
        for a in range(count):
            r = regs(a)
            body += bytes((r >> 8, r & 0xFF))
        line = StaticLine(with_crc(body) if kind == "pzem004t" else b"", noise=3)
        m, clk = module(line, kind, retries=1)
        poll(m, clk)                                         # warm up
        line.noise = 3
        micropython.heap_lock()
        try:
            for _ in range(5):
                poll(m, clk)
                line.noise = 2
        finally:
            micropython.heap_unlock()
        if kind == "pzem004t":
            assert m.fresh and m.energy_wh == 123456
        else:
            assert not m.fresh and m.last_error == "timeout"


def test_poll_task_yields_the_waits_and_returns_fresh():
    line = Line(Pzem())                       # the reply 10 ms after the request
    m, clk = module(line)
    line.faults = ["lead"]                    # noise before the reply
    g = m.poll()
    waits = []
    try:
        while True:
            ms = next(g)
            waits.append(ms)
            clk.ms += ms
    except StopIteration as e:
        fresh = e.value
    assert fresh is True and m.energy_wh == 123456
    assert len(waits) >= 2 and min(waits) >= 0 and sum(waits) >= 10, waits


def test_run_task_in_the_meter_loop():
    from meter.metrology import loop
    line = Line(Pzem())
    m, clk = module(line)
    seen = []

    def after():
        seen.append((clk.ms, m.fresh, m.energy_wh))
        if len(seen) == 3:
            raise KeyboardInterrupt           # ends the loop (as an exception in a task does)

    def idle(ms):
        clk.ms += ms

    try:
        loop([m.run(1000, after)], clk.ticks, idle)
    except KeyboardInterrupt:
        pass
    assert [s[1:] for s in seen] == [(True, 123456)] * 3, seen
    assert 1000 <= seen[1][0] - seen[0][0] < 1200 and len(line.requests) == 3, seen


def test_register_maps_in_words():
    """The bytes tables of meter.modules, spelt out (vendor maps: see meter/modules.py)."""
    U16, U32, F32 = mm.U16, mm.U32_LO_FIRST, mm.F32
    assert mm.blocks(mm.lookup("pzem004t")) == [(0x0000, 10)]
    assert mm.fields(mm.lookup("pzem004t")) == [
        (mm.VOLTAGE_DV, 0, 0x0000, U16, 1), (mm.CURRENT_MA, 0, 0x0001, U32, 1),
        (mm.POWER_DW, 0, 0x0003, U32, 1), (mm.IMPORT_WH, 0, 0x0005, U32, 1),
        (mm.FREQUENCY_DHZ, 0, 0x0007, U16, 1), (mm.PF_CENTI, 0, 0x0008, U16, 1),
        (mm.ALARM, 0, 0x0009, U16, 1)]
    assert mm.blocks(mm.lookup("sdm120")) == [(0x0000, 0x20), (0x0046, 6)]
    assert mm.fields(mm.lookup("sdm120")) == [
        (mm.VOLTAGE_DV, 0, 0x0000, F32, 10), (mm.CURRENT_MA, 0, 0x0006, F32, 1000),
        (mm.POWER_DW, 0, 0x000C, F32, 10), (mm.PF_CENTI, 0, 0x001E, F32, 100),
        (mm.FREQUENCY_DHZ, 1, 0x0046, F32, 10), (mm.IMPORT_WH, 1, 0x0048, F32, 1000),
        (mm.EXPORT_WH, 1, 0x004A, F32, 1000)]
    assert mm.blocks(mm.lookup("sdm630")) == [(0x0000, 0x12), (0x0034, 0x18)]
    assert mm.fields(mm.lookup("sdm630")) == [
        (mm.VOLTAGE_DV, 0, 0x0000, F32, 10), (mm.V2_DV, 0, 0x0002, F32, 10),
        (mm.V3_DV, 0, 0x0004, F32, 10), (mm.CURRENT_MA, 0, 0x0006, F32, 1000),
        (mm.I2_MA, 0, 0x0008, F32, 1000), (mm.I3_MA, 0, 0x000A, F32, 1000),
        (mm.P1_DW, 0, 0x000C, F32, 10), (mm.P2_DW, 0, 0x000E, F32, 10),
        (mm.P3_DW, 0, 0x0010, F32, 10), (mm.POWER_DW, 1, 0x0034, F32, 10),
        (mm.PF_CENTI, 1, 0x003E, F32, 100), (mm.FREQUENCY_DHZ, 1, 0x0046, F32, 10),
        (mm.IMPORT_WH, 1, 0x0048, F32, 1000), (mm.EXPORT_WH, 1, 0x004A, F32, 1000)]
    for kind in ("pzem004t", "sdm120", "sdm630"):       # every field inside its block
        bl = mm.blocks(mm.lookup(kind))
        for slot, blk, addr, knd, k in mm.fields(mm.lookup(kind)):
            a, c = bl[blk]
            assert a <= addr and addr + (1 if knd == U16 else 2) <= a + c and slot < mm.NSLOT


def test_health_window_runs_from_the_last_reading_not_the_last_change():
    # attack pass (session 11): after 10 idle hours a forged +100 kWh reply was charged when the
    # window ran from the counter's last change; it runs from the last reading
    h = mt.Health(max_w=26000)
    h.good(0, 100)
    for t in range(3600, 36001, 3600):
        assert h.good(t, 100) == 0 and h.delta_wh == 0
    assert h.good(36060, 100100) == 0 and h.delta_wh == 0 and h.glitches == 1
    assert h.good(36120, 100) == 0 and h.delta_wh == 0 and h.baseline_wh == 100


def test_health_a_forged_high_then_a_forged_zero_do_not_charge_the_counter_again():
    # attack pass (session 11): +1 Wh forged (charged), then 0 forged, then the real count for
    # half an hour: the real readings joined the forged 0's run (plausible from its first reading
    # after 23 min at 26 kW) and confirmed a "reset": 10 kWh charged a second time. Each step of a
    # run must be plausible over its own interval.
    h = mt.Health(max_w=26000)
    h.good(0, 10000)
    assert h.good(60, 10001) == 0 and h.delta_wh == 1
    assert h.good(120, 0) == 0 and h.delta_wh == 0
    charged = 0
    for t in range(180, 180 + 1800 + 1, 60):
        h.good(t, 10000)
        charged += h.delta_wh
    assert charged == 0 and h.baseline_wh in (10000, 10001)


def test_health_a_clock_set_forward_confirms_no_run():
    # the clock SET (meter.app.set_clock -> Health.shift) steps the run's times with it: a SET an
    # hour forward in the middle of a run of odd readings must not count as the run's minute
    h = mt.Health(fail_polls=2)
    h.good(0, 1000)
    assert h.good(60, 0) == 0                       # a run of one odd reading
    h.shift(3600)
    assert h.good(3670, 0) == 0 and h.resets == 0   # 10 s of the run, not 3610
    assert h.good(3730, 0) == mt.COUNTER_RESET      # a real minute later: confirmed


def test_health_a_forged_plus_one_wh_while_idle_is_no_counter_reset():
    # attack pass (session 12): at an idle load one forged reply +1 Wh was charged (plausible),
    # then the real counter, 1 Wh lower, stood still: a run of odd readings that confirmed a
    # "reset" after a minute (event 62, a false tamper event) and kept the forged Wh charged
    h = mt.Health()
    h.good(0, 5000)
    assert h.good(1, 5000) == 0 and h.delta_wh == 0
    assert h.good(2, 5001) == 0 and h.delta_wh == 1
    out = []
    charged = 1
    for t in range(3, 600):
        out.append(h.good(t, 5000))
        charged += h.delta_wh
    assert out == [0] * len(out) and h.resets == 0 and charged == 1 and h.baseline_wh == 5001
    assert h.good(600, 5001) == 0 and h.delta_wh == 0               # the forged Wh, paid once
    assert h.good(601, 5003) == 0 and h.delta_wh == 2 and charged + 2 == 5003 - 5000


def test_health_a_forged_step_beyond_the_slack_is_paid_by_the_next_wh_counted():
    # polls a minute apart: a forged +300 Wh fits 26 kW over the minute (charged); the real
    # counter stays behind it for 10 idle minutes (no run, no reset), then the load comes back:
    # nothing is charged until the counter passes the forged one, the total is the real count
    h = mt.Health()
    h.good(0, 5000)
    assert h.good(60, 5300) == 0 and h.delta_wh == 300
    charged = 300
    for t in range(120, 780, 60):
        assert h.good(t, 5000) == 0
        charged += h.delta_wh
    for t, wh in ((780, 5200), (840, 5400), (900, 5450)):
        assert h.good(t, wh) == 0
        charged += h.delta_wh
    assert charged == 450 and h.resets == 0
    # a counter really reset (to 0) is still one: below the baseline before the step
    assert [h.good(t, 0) for t in range(960, 1260, 60)] == [0, 0, 0, 0, mt.COUNTER_RESET]


def test_health_across_a_reboot_a_forged_step_within_the_slack_is_no_reset():
    # a forged +10 Wh journaled before a cut (the step before it is not journaled): after the
    # boot the real counter, 10 Wh lower, is behind within the slack, not a reset
    h = mt.Health()
    h.baseline_wh = 5010
    assert [h.good(t, 5000) for t in range(100, 400, 30)] == [0] * 10 and h.resets == 0
    assert h.delta_wh == 0 and h.baseline_wh == 5010
    assert h.good(400, 5025) == 0 and h.delta_wh == 15


def test_health_one_reading_behind_the_baseline_keeps_its_window():
    # a forged (or garbled) low reply within the slack of the baseline, then the real count: the
    # window still runs from the baseline's reading (the behind reading may be the forged one)
    h = mt.Health()
    h.good(0, 10000)
    assert h.good(60, 9990) == 0 and h.delta_wh == 0 and h.t_base == 0
    assert h.good(61, 10300) == 0 and h.delta_wh == 300              # 300 Wh in 61 s: plausible
    h = mt.Health(fail_polls=3, fail_s=0)
    h.good(0, 10000)
    for t in (60, 120, 180):
        h.bad(t)
    assert h.faulted and h.good(600, 9995) == mt.RECOVERED and h.fault_wh == 0
    assert h.good(601, 10500) == 0 and h.delta_wh == 500 and h.resets == 0


def test_health_behind_a_forged_step_the_window_still_runs_from_the_last_reading():
    # 10 idle hours behind a forged +300 Wh: the window follows the readings (from the second
    # behind one on), so a forged +100 kWh reply then is still a jump, not charged
    h = mt.Health()
    h.good(0, 5000)
    assert h.good(60, 5300) == 0 and h.delta_wh == 300
    for t in range(3600, 36001, 3600):
        assert h.good(t, 5000) == 0 and h.delta_wh == 0
    assert h.t_base == 36000 and h.baseline_wh == 5300
    assert h.good(36060, 105300) == 0 and h.delta_wh == 0 and h.glitches == 1


def test_health_a_reset_right_after_one_reading_of_a_step_from_zero_is_still_one():
    # the step from a counter at 0 (a new module) was read once, then the module reset to 0: a
    # reading at the step's start is then no proof of a forged step (a reset lands at 0 too)
    h = mt.Health()
    h.good(0, 0)
    h.good(1, 0)
    assert h.good(1800, 1000) == 0 and h.delta_wh == 1000
    assert [h.good(t, 0) for t in range(1801, 1805)] == [0] * 4
    assert h.good(2160, 200) == mt.COUNTER_RESET and h.delta_wh == 200 and h.baseline_wh == 200


def test_health_behind_two_forged_steps_in_a_row_is_no_counter_reset():
    # attack pass (session 12): two forged replies a minute apart (+300 Wh, +600 Wh) were charged;
    # the real counter behind both was below the baseline before the last step only, ran as odd
    # readings, confirmed a "reset" (false event 62) and was re-based down: 600 Wh charged twice
    h = mt.Health(max_w=26000, fail_polls=5)
    h.good(0, 33)
    for t in range(60, 1801, 60):          # idle half an hour: the floor is the counter
        h.good(t, 33)
    charged = 0
    assert h.good(1860, 333) == 0
    charged += h.delta_wh
    assert h.good(1920, 633) == 0
    charged += h.delta_wh
    assert charged == 600                  # plausible at 26 kW: charged, as any reading
    wh = 33
    for t in range(1980, 1980 + 3600, 60):  # idle 4 min, then 2 kW: the real count behind both
        if t >= 2220:
            wh += 33
        assert h.good(t, wh) & mt.COUNTER_RESET == 0
        charged += h.delta_wh
    assert h.resets == 0
    assert charged == wh - 33              # the forged Wh paid by the Wh counted after them


def replay(h, t, wh, until, step=20, creep=0):
    """Stale readings of ``wh`` (+ ``creep`` Wh a minute: a forged counter that moves) every
    ``step`` s from ``t`` to ``until``: the Wh charged (the module counts on unseen)."""
    charged = 0
    while t < until:
        t += step
        assert h.good(t, wh + creep * (t // 60)) == 0
        charged += h.delta_wh
    return charged


def real_2kw(h, t, wh, n, step=20):
    """``n`` real readings ``step`` s apart at 2 kW from (``t``, ``wh``): (Wh charged, outcomes)."""
    charged = 0
    out = 0
    for k in range(1, n + 1):
        out |= h.good(t + step * k, wh + 2000 * step * k // 3600)
        charged += h.delta_wh
    return charged, out


def test_health_a_stale_reply_replayed_half_an_hour_is_a_re_base_with_its_tamper_event():
    # attack pass (session 14): at 2 kW every poll answered by a captured reply for 30 min, then
    # the real readings: the step (1000 Wh) no reading showed is not charged, the confirmed run
    # re-bases and logs it (event 62): a line under an attacker's control can under-report
    # anyway; charging such steps let 5 forged replies charge an hour of max_w (next test)
    for creep in (0, 1):                  # verbatim, or a forged counter creeping 1 Wh a minute
        h = mt.Health()
        h.good(0, 0)
        charged, out = real_2kw(h, 0, 0, 30)                       # 10 min: 333 Wh
        assert charged == 333 and out == 0
        charged += replay(h, 600, 333, 2400, creep=creep)          # module at 1333 meanwhile
        c, out = real_2kw(h, 2400, 1333, 5)                        # a run: 5 readings, 100 s
        assert out == mt.COUNTER_RESET and h.resets == 1 and h.baseline_wh == 1388
        assert charged + c < 1388 - 900                            # the step: not charged
        assert h.good(2520, 1399) == 0 and h.delta_wh == 11        # and on from there


def test_health_a_forged_run_up_is_never_charged_beyond_what_a_reading_showed():
    # attack pass (session 14, on the stale-step rule): an hour of normal load, then 5 forged
    # replies at +26 kWh over 75 s were charged in full (credit 9622 -> -7316, relay open), and
    # two more forged replies 17 min later made it permanent behind a false re-base
    for step in (1000, 26058, 100000):
        h = mt.Health()
        h.good(0, 0)
        charged, out = real_2kw(h, 0, 0, 210)                      # 70 min at 2 kW: 2333 Wh
        wh = h.baseline_wh
        for t in range(4215, 4215 + 90, 15):
            assert h.good(t, wh + step) in (0, mt.COUNTER_RESET)
            charged += h.delta_wh
        assert charged < wh + 100 and h.resets == 1                # a re-base: the step not charged
    # the plausibility rule itself: 1 Wh a second (max_w 3600) fits its own time only
    for step, outcome in ((13, 0), (114, mt.COUNTER_RESET)):
        h = mt.Health(max_w=3600)
        h.good(0, 1000)
        h.good(100, 1000)
        out = [h.good(t, 1000 + step) for t in (110, 125, 140, 155, 170)]
        assert out[-1] == outcome and h.baseline_wh == 1000 + step


def test_health_after_a_boot_a_forged_step_confirming_the_held_one_is_paid_back():
    # attack pass (session 14, fuzz seed 2696): after a boot the first real reading is held, a
    # forged one a poll later above it (within max_w) confirms it and is charged; the real readings
    # below it then formed a run that re-based (a false event 62) and the forged Wh stayed charged
    h = mt.Health()
    h.baseline_wh = 10000
    assert h.good(1060, 10333) == 0 and h.delta_wh == 0               # held (beyond the slack)
    assert h.good(1660, 14666) == 0 and h.delta_wh == 4666            # forged, confirms it
    charged = 4666
    wh = 10333
    for t in range(1670, 1670 + 1800, 60):          # the real count at 20 kW: behind, held
        assert h.good(t, wh) == 0
        charged += h.delta_wh
        wh += 333
    assert h.resets == 0 and charged == wh - 333 - 10000
