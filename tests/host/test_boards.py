"""The ESP32 and RP2040 board modules (firmware/boards/esp32.py, rp2040.py, pins.py) against a
tiny fake ``machine`` module, and the rule that only boards/ touches ``machine``."""
import ast
import datetime
import os
import pathlib
import subprocess
import sys
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- ESP32 / RP2040 boards
# There is no ESP32 or RP2040 here: the board modules run against a tiny fake ``machine`` module
# put in sys.modules by these tests only (and, for the IRQ allocation check, on the real
# MicroPython VM with the same fake on its path).

FAKE_MACHINE = '''
class Pin:
    IN = 1; OUT = 2; PULL_UP = 4; IRQ_RISING = 8; IRQ_FALLING = 16
    log = []
    def __init__(self, id, mode=None, pull=None, value=None):
        self.id, self.mode, self.pull, self.v, self.handler = id, mode, pull, value, None
        if value is not None:
            Pin.log.append((id, value))
    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        Pin.log.append((self.id, v))
    def irq(self, handler=None, trigger=None, hard=False):
        self.handler, self.trigger, self.hard = handler, trigger, hard

class UART:
    made = []
    def __init__(self, id, **kw):
        self.id, self.kw, self.flushed = id, kw, 0
        UART.made.append(self)
    def flush(self):
        self.flushed += 1
        Pin.log.append(("flush", self.id))

class RTC:
    set_to = None
    def datetime(self, dt=None):
        RTC.set_to = dt

class WDT:
    made = []
    def __init__(self, timeout):
        self.timeout, self.fed = timeout, 0
        WDT.made.append(self)
    def feed(self):
        self.fed += 1
'''

FAKE_COUNTER = '''
class Counter:
    RISING = 1; FALLING = 2
    def __init__(self, id, src, edge=1, filter_ns=0):
        self.id, self.src, self.edge, self.filter_ns, self.n = id, src, edge, filter_ns, 0
    def value(self, v=None):
        return self.n
'''


def _fake_machine(counter=False):
    mod = types.ModuleType("machine")
    exec(FAKE_MACHINE + (FAKE_COUNTER if counter else ""), mod.__dict__)
    return mod


@pytest.fixture
def board_mod(monkeypatch):
    """import boards.<name> against a fresh fake machine; returns (module, machine)."""
    def load(name, counter=False):
        fake = _fake_machine(counter)
        monkeypatch.setitem(sys.modules, "machine", fake)
        for m in ("boards.esp32", "boards.rp2040", "boards.pins"):
            monkeypatch.delitem(sys.modules, m, raising=False)
        import importlib
        mod = importlib.import_module("boards." + name)
        mod_pins = sys.modules["boards.pins"]
        monkeypatch.setattr(mod_pins, "_WDT", [None])
        return mod, fake
    return load


def test_board_independent_code_imports_no_machine():
    offenders = []
    files = [p for d in ("firmware/meter", "protocol") for p in (ROOT / d).rglob("*.py")]
    files += [ROOT / "firmware/main.py", ROOT / "firmware/boards/__init__.py",
              ROOT / "firmware/boards/pins.py", ROOT / "firmware/boards/unix.py"]
    for p in files:
        for node in ast.walk(ast.parse(p.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n and n.split(".")[0] == "machine" for n in names):
                offenders.append(str(p.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize("arch", ["xtensawin", "armv6m"])
def test_board_modules_compile_for_their_architecture(arch, tmp_path):
    from host_tools.build import mpy_cross
    for name in ("esp32", "rp2040", "pins"):
        out = tmp_path / (name + ".mpy")
        r = subprocess.run([mpy_cross(), "-march=" + arch, "-o", str(out),
                            str(ROOT / "firmware" / "boards" / (name + ".py"))],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes()[:2] == b"M\x06"


def test_rtc_conversion_matches_the_calendar():
    from boards import pins
    for epoch in (0, 946684800, 951782400, 1767225600, 4107542400, 1709164800 + 86399):
        d = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
        t = pins.rtc_tuple(epoch)
        assert t == (d.year, d.month, d.day, d.weekday(), d.hour, d.minute, d.second, 0)
        assert pins.epoch_from_rtc(t) == epoch
    assert pins.rtc_tuple(1767225600)[:4] == (2026, 1, 1, 3)      # a Thursday
    assert pins.epoch_offset(2000) == 946684800 and pins.epoch_offset(1970) == 0
    with pytest.raises(ValueError):
        pins.epoch_offset(1980)


def test_pin_map_defaults_overrides_and_errors():
    from boards import pins
    p = pins.merge_pins("rp2040", {"led": "LED", "s0": None, "wdt_ms": 5000})
    assert p["led"] == "LED" and p["s0"] is None and p["relay"] == 15 and p["wdt_ms"] == 5000
    for bad, msg in (({"relai": 3}, "unknown key 'relai'"), ({"relay": -1}, "relay must be"),
                     ({"dlms_baud": "fast"}, "dlms_baud must be"),
                     ({"relay_set": 3}, "both relay_set and relay_reset")):
        with pytest.raises(pins.BoardConfigError, match=msg):
            pins.merge_pins("esp32", bad)
    with pytest.raises(pins.BoardConfigError, match="no pin map"):
        pins.merge_pins("stm32")


def test_esp32_board_pins_uarts_rtc_and_counter(board_mod):
    mod, m = board_mod("esp32", counter=True)
    b = mod.Esp32Board(cfg={"pins": {"relay_active": 0}, "poll_ms": 250})
    assert b.path("config.json") == "/config.json" and b.poll_ms == 250
    assert m.Pin.log[0] == (26, 1)            # active-low relay starts open (pin high)
    u = b.dlms_stream()
    assert (u.id, u.kw["baudrate"], u.kw["tx"].id, u.kw["rx"].id, u.kw["timeout"]) == (2, 9600, 17, 16, 0)
    assert b.dlms_stream() is u and b.modbus_stream().id == 1
    # S0 on the PCNT counter with the glitch filter
    assert b._s0.src.id == 34 and b._s0.filter_ns == 10000
    b._s0.n = 7
    assert b.s0_pulses() == 7
    b.set_time(1767225600 + 3723)
    assert m.RTC.set_to == (2026, 1, 1, 3, 1, 2, 3, 0)
    b.relay(True)
    assert m.Pin.log[-1] == (26, 0)           # active low: closed = pin low
    b.relay(False)
    assert m.Pin.log[-1] == (26, 1)


def test_esp32_without_counter_counts_with_a_scheduled_pin_irq(board_mod):
    mod, m = board_mod("esp32", counter=False)
    b = mod.Esp32Board(cfg={})
    assert b._s0_pin.trigger == m.Pin.IRQ_RISING and not b._s0_pin.hard
    for _ in range(3):
        b._s0_pin.handler(b._s0_pin)
    assert b.s0_pulses() == 3


def test_rs485_driver_enable_drops_after_the_uart_has_flushed(board_mod):
    mod, m = board_mod("rp2040")
    b = mod.Rp2040Board(cfg={})
    b.modbus_stream()
    m.Pin.log.clear()
    b.modbus_tx_enable(True)
    b.modbus_tx_enable(False)
    assert m.Pin.log == [(6, 1), ("flush", 1), (6, 0)]


def test_relay_feedback_mismatch_is_one_event_after_settling(board_mod):
    mod, m = board_mod("rp2040")
    b = mod.Rp2040Board(cfg={"pins": {"relay_settle_ms": 300, "led": None, "button": None}})
    seen = []
    b.on_relay_mismatch = lambda cmd, sensed: seen.append((cmd, sensed))
    b._fb_pin.v = 0                            # contacts open
    b.relay(True)
    t0 = b._watch._at
    assert b.poll_io(t0 + 100) is None         # still settling
    assert b.poll_io(t0 + 301) == (True, False)
    assert b.poll_io(t0 + 900) is None         # reported once per episode
    b._fb_pin.v = 1                            # contacts closed: agrees again
    assert b.poll_io(t0 + 950) is None and b.relay_feedback() is True
    b._fb_pin.v = 0                            # welded/dropped later: a new episode
    assert b.poll_io(t0 + 2000) == (True, False)
    assert seen == [(True, False), (True, False)]


def test_latching_relay_gets_a_pulse_on_the_right_coil(board_mod, monkeypatch):
    mod, m = board_mod("esp32")
    monkeypatch.setattr(sys.modules["boards.pins"], "_sleep_ms", lambda ms: m.Pin.log.append(("sleep", ms)))
    b = mod.Esp32Board(cfg={"pins": {"relay": None, "relay_set": 12, "relay_reset": 13}})
    m.Pin.log.clear()
    b.relay(True)
    b.relay(True)                              # no second pulse for the same state
    b.relay(False)
    assert m.Pin.log == [(12, 1), ("sleep", 50), (12, 0), (13, 1), ("sleep", 50), (13, 0)]


def test_button_is_debounced(board_mod):
    mod, m = board_mod("rp2040")
    b = mod.Rp2040Board(cfg={"pins": {"relay_fb": None, "led": None}})
    presses = []
    b.on_button = lambda: presses.append(1)
    # active low: bounce 0/1/0 within 40 ms, then held, released, pressed again
    for t, level in ((0, 0), (5, 1), (8, 0), (30, 0), (49, 0), (60, 0), (200, 1), (260, 1),
                     (300, 0), (345, 0)):
        b._btn.v = level
        b.poll_io(t)
    assert len(presses) == 2


def test_watchdog_arms_on_first_feed_capped_to_the_chip(board_mod):
    mod, m = board_mod("rp2040")
    b = mod.Rp2040Board(cfg={"pins": {"wdt_ms": 20000}})
    assert m.WDT.made == []                    # interrupted before the first cycle: never armed
    b.wdt_feed()
    b.wdt_feed()
    mod.feed_wdt()                             # what meterctl flash calls between chunks
    assert [w.timeout for w in m.WDT.made] == [8388] and m.WDT.made[0].fed == 3


def test_rp2040_s0_hard_irq_counts_without_allocating_on_micropython(tmp_path):
    """The RP2040 S0 handler under micropython.heap_lock() on the real VM: a heap allocation
    would raise MemoryError (reference micropython.md §2)."""
    (tmp_path / "machine.py").write_text(FAKE_MACHINE)
    script = tmp_path / "irq.py"
    script.write_text(
        "import micropython, time\n"
        "from boards.rp2040 import Rp2040Board\n"
        "b = Rp2040Board(cfg={'pins': {'s0_filter_ns': 2000000}})\n"
        "pin = b._s0\n"
        "assert pin.hard and pin.trigger == pin.IRQ_FALLING\n"
        "h = pin.handler\n"
        "micropython.heap_lock()\n"
        "try:\n"
        "    h(pin); h(pin)\n"            # the second edge is within 2 ms: bounce, dropped
        "finally:\n"
        "    micropython.heap_unlock()\n"
        "time.sleep_ms(3)\n"
        "micropython.heap_lock()\n"
        "h(pin)\n"
        "micropython.heap_unlock()\n"
        "print('pulses', b.s0_pulses())\n")
    from hil.env import find_micropython
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(tmp_path), str(ROOT / "firmware"), str(ROOT), ".frozen"]))
    r = subprocess.run([find_micropython(), "-X", "heapsize=190k", str(script)], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "pulses 2"


def test_pulse_energy_carries_the_remainder():
    from boards.pins import PulseEnergy
    e = PulseEnergy(3200)                      # 3200 imp/kWh: 0.3125 Wh per pulse
    got = sum(e.add(1) for _ in range(3200 * 3 + 5))
    assert got == e.wh == 3001                 # 9605 pulses = 3001.5625 Wh -> 3001 whole Wh
    one = PulseEnergy(3200)
    assert one.add(9605) == 3001
    with pytest.raises(ValueError):
        PulseEnergy(0)


def test_cover_switch_and_watchdog_reset_cause(board_mod):
    mod, m = board_mod("esp32")
    m.WDT_RESET = 3
    m.reset_cause = lambda: 3
    b = mod.Esp32Board(cfg={"pins": {"relay_fb": None, "led": None, "button": None, "cover": 13}})
    assert b.reset_cause == "wdt"           # the meter logs the watchdog reset at boot
    seen = []
    b.on_cover = seen.append
    # closed (0) at boot: nothing; opened and held 40 ms: one event; a bounce: nothing more
    for t, level in ((0, 0), (10, 0), (100, 1), (120, 0), (130, 1), (175, 1), (180, 1), (400, 0), (450, 0)):
        b._cover.v = level
        b.poll_io(t)
    assert seen == [True, False]
    m.reset_cause = lambda: 1               # power-on reset
    assert mod.Esp32Board(cfg={"pins": {"relay_fb": None, "led": None}}).reset_cause == "power"


def test_rp2040_journals_consumption_less_often_for_flash_wear(board_mod):
    mod, _ = board_mod("rp2040")
    assert mod.Rp2040Board.persist_wh == 50
