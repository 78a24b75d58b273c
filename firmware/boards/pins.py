"""Shared parts of the microcontroller boards (ESP32, RP2040): pin maps, RTC time, debouncing,
relay feedback, S0 pulses, watchdog, and `McuBoard`, the board API over a ``machine`` module.

This module never imports ``machine``: `McuBoard` is handed the module by ``boards/esp32.py`` /
``boards/rp2040.py`` (the only importers of ``machine``), so its pure parts run on CPython too.

Config (``/config.json``, section ``"pins"``; every key optional, defaults in DEFAULT_PINS; a pin
of ``null`` means "not fitted")::

    relay, relay_active (1 = high closes), relay_set/relay_reset + relay_pulse_ms (latching relay
    instead of ``relay``), relay_fb, relay_fb_active (contact sense level when closed),
    relay_settle_ms, dlms_uart/dlms_tx/dlms_rx/dlms_baud, modbus_uart/modbus_tx/modbus_rx/
    modbus_baud, modbus_de (RS-485 driver enable, high = transmit), s0 (pulse input),
    s0_filter_ns, button, button_active (0 = pressed pulls low), led, wdt_ms, tick_ms

Board API (what ``meter`` uses; the unix board implements the same): ``path``,
``dlms_stream``, ``modbus_stream``, ``modbus_tx_enable``, ``ticks_ms``, ``time``, ``set_time``,
``relay``, ``relay_feedback``, ``report``, ``wdt_feed``, ``control_task`` (a generator task of
the meter's loop yielding the ms to wait), ``idle(ms)`` (the loop's sleep), hooks ``on_button()``,
``on_time_set()``, ``on_relay_mismatch(commanded, sensed)``; plus ``s0_pulses()`` and ``led``.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

import json
import time

from protocol.civil import days_from_civil, civil_from_days  # noqa: F401

try:
    _ticks_ms = time.ticks_ms
    _sleep_ms = time.sleep_ms
except AttributeError:  # CPython (tests): same contract, 30-bit wrapping ticks
    def _ticks_ms():
        return int(time.monotonic() * 1000) & 0x3FFFFFFF

    def _sleep_ms(ms):
        time.sleep(ms / 1000)

EPOCH_2000 = const(946684800)    # 2000-01-01T00:00:00Z in seconds since 1970
_DAY = const(86400)

DEFAULT_PINS = {
    # ESP32 DevKitC: REPL on UART0 (USB bridge); GPIO 6-11 are the flash, 34-39 are input only
    "esp32": {"relay": 26, "relay_active": 1, "relay_set": None, "relay_reset": None,
              "relay_pulse_ms": 50, "relay_fb": 27, "relay_fb_active": 1, "relay_settle_ms": 300,
              "dlms_uart": 2, "dlms_tx": 17, "dlms_rx": 16, "dlms_baud": 9600,
              "modbus_uart": 1, "modbus_tx": 33, "modbus_rx": 32, "modbus_baud": 9600,
              "modbus_de": 25, "s0": 34, "s0_filter_ns": 10000, "button": 0, "button_active": 0,
              "led": 2, "wdt_ms": 10000, "tick_ms": 20, "cover": None, "cover_open": 1},
    # Raspberry Pi Pico: REPL on USB CDC, both UARTs free
    "rp2040": {"relay": 15, "relay_active": 1, "relay_set": None, "relay_reset": None,
               "relay_pulse_ms": 50, "relay_fb": 14, "relay_fb_active": 1, "relay_settle_ms": 300,
               "dlms_uart": 0, "dlms_tx": 0, "dlms_rx": 1, "dlms_baud": 9600,
               "modbus_uart": 1, "modbus_tx": 4, "modbus_rx": 5, "modbus_baud": 9600,
               "modbus_de": 6, "s0": 16, "s0_filter_ns": 10000, "button": 17, "button_active": 0,
               "led": 25, "wdt_ms": 8000, "tick_ms": 20, "cover": None, "cover_open": 1},
}
_PIN_KEYS = ("relay", "relay_set", "relay_reset", "relay_fb", "dlms_tx", "dlms_rx", "modbus_tx",
             "modbus_rx", "modbus_de", "s0", "button", "led", "cover")


class BoardConfigError(ValueError):
    """The ``pins`` section of config.json is not usable (message names the key)."""


# --------------------------------------------------------------------------- config

def load_config(path):
    """config.json as a dict ({} if missing or unreadable: the meter's defaults apply)."""
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def merge_pins(board, over=None):
    """DEFAULT_PINS[board] overlaid with ``over`` (the config's "pins"), checked.

    Pins are ints >= 0, a pin name string (e.g. "LED" on a Pico W) or None; other values are
    ints. Raises BoardConfigError for unknown keys or bad values.
    """
    if board not in DEFAULT_PINS:
        raise BoardConfigError("no pin map for board %r" % (board,))
    pins = dict(DEFAULT_PINS[board])
    for k, v in (over or {}).items():
        if k not in pins:
            raise BoardConfigError("pins: unknown key %r" % (k,))
        pins[k] = v
    for k, v in pins.items():
        if k in _PIN_KEYS:
            if v is None or isinstance(v, str):
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise BoardConfigError("pins: %s must be a pin number, name or null, got %r" % (k, v))
        elif not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise BoardConfigError("pins: %s must be an integer >= 0, got %r" % (k, v))
    if (pins["relay_set"] is None) != (pins["relay_reset"] is None):
        raise BoardConfigError("pins: a latching relay needs both relay_set and relay_reset")
    return pins


# --------------------------------------------------------------------------- time

def epoch_offset(gmtime0_year):
    """Seconds to add to the port's ``time.time()`` for 1970-based epoch seconds: the port's
    epoch is the year ``time.gmtime(0)`` reports (1970, or 2000 on older ports)."""
    if gmtime0_year == 1970:
        return 0
    if gmtime0_year == 2000:
        return EPOCH_2000
    raise ValueError("unknown time epoch %r" % (gmtime0_year,))


def rtc_tuple(epoch):
    """1970 epoch seconds (UTC) -> ``machine.RTC().datetime()`` tuple
    (year, month, day, weekday 0=Monday, hour, minute, second, subseconds 0)."""
    epoch = int(epoch)
    days, secs = divmod(epoch, _DAY)
    y, m, d = civil_from_days(days)
    wd = (days + 3) % 7          # 1970-01-01 was a Thursday (3)
    return (y, m, d, wd, secs // 3600, secs // 60 % 60, secs % 60, 0)


def epoch_from_rtc(dt):
    """``machine.RTC().datetime()`` tuple -> 1970 epoch seconds (weekday ignored)."""
    return days_from_civil(dt[0], dt[1], dt[2]) * _DAY + dt[4] * 3600 + dt[5] * 60 + dt[6]


# --------------------------------------------------------------------------- pure helpers

def _ticks_diff(a, b):
    f = getattr(time, "ticks_diff", None)
    return f(a, b) if f else a - b


class Debouncer:
    """A push button read by polling: a level must hold ``stable_ms`` to count.

    ``update(pressed, now_ms) -> True`` once per press (on the debounced press edge).
    """

    def __init__(self, stable_ms=40):
        self.stable_ms = stable_ms
        self.state = False         # debounced: pressed?
        self._raw = False
        self._since = 0

    def update(self, pressed, now_ms):
        pressed = bool(pressed)
        if pressed != self._raw:
            self._raw = pressed
            self._since = now_ms
            return False
        if pressed != self.state and _ticks_diff(now_ms, self._since) >= self.stable_ms:
            self.state = pressed
            return pressed
        return False


class RelayWatch:
    """Relay contact sense against the command: a mismatch lasting ``settle_ms`` after the last
    command (contact bounce, coil time) is reported once per episode.

    ``command(closed, now_ms)``; ``check(sensed, now_ms) -> None | (commanded, sensed)``.
    """

    def __init__(self, settle_ms=300):
        self.settle_ms = settle_ms
        self.commanded = None
        self._at = 0
        self._reported = False

    def command(self, closed, now_ms):
        self.commanded = bool(closed)
        self._at = now_ms
        self._reported = False

    def check(self, sensed, now_ms):
        if self.commanded is None or sensed is None:
            return None
        if bool(sensed) == self.commanded:
            self._reported = False
            return None
        if self._reported or _ticks_diff(now_ms, self._at) < self.settle_ms:
            return None
        self._reported = True
        return (self.commanded, bool(sensed))


class PulseEnergy:
    """S0 pulses (IEC 62053-31) -> whole Wh with the remainder carried.

    ``imp_per_kwh`` pulses per kWh (e.g. 1000, 3200); ``add(pulses) -> Wh`` new whole Wh.
    """

    def __init__(self, imp_per_kwh):
        if imp_per_kwh <= 0:
            raise ValueError("imp_per_kwh must be > 0")
        self.imp_per_kwh = imp_per_kwh
        self._rem = 0              # pulse x 1000 not yet a whole Wh, in units of 1/imp Wh
        self.wh = 0

    def add(self, pulses):
        if pulses < 0:
            raise ValueError("pulses must be >= 0")
        self._rem += pulses * 1000
        n = self._rem // self.imp_per_kwh
        self._rem -= n * self.imp_per_kwh
        self.wh += n
        return n


# --------------------------------------------------------------------------- watchdog

_WDT = [None]


def feed_wdt():
    """Feed the hardware watchdog if armed (also called by ``meterctl flash`` over the REPL so
    an interrupted meter is not reset half way through a copy)."""
    w = _WDT[0]
    if w is not None:
        w.feed()


# --------------------------------------------------------------------------- the board

class McuBoard:
    """The board API over a ``machine`` module (see the module docstring).

    ``machine``: the port's machine module; ``board``: "esp32"|"rp2040"; ``root``: the flash
    filesystem root ("/"); ``cfg``: config dict (default: read ``root + "config.json"``).
    Raises BoardConfigError for a bad ``pins`` section.
    """

    name = "mcu"
    wdt_max_ms = 0x7FFFFFFF
    idle = staticmethod(_sleep_ms)     # the meter's loop sleeps here until its next task is due

    def __init__(self, machine, board, root="/", cfg=None):
        self._m = machine
        self.name = board
        self.state_dir = root.rstrip("/")
        self._root = root if root.endswith("/") else root + "/"
        if cfg is None:
            cfg = load_config(self._root + "config.json")
        self.cfg = cfg
        self.pins = p = merge_pins(board, cfg.get("pins"))
        self.poll_ms = int(cfg.get("poll_ms", 1000))
        self.on_button = None
        self.on_time_set = None
        self.on_relay_mismatch = None
        self.on_cover = None           # meter cover (terminal) switch: on_cover(opened)
        # watchdog reset or power-on: the meter logs which (machine.reset_cause)
        try:
            wdt = getattr(machine, "WDT_RESET", None)
            self.reset_cause = "wdt" if wdt is not None and machine.reset_cause() == wdt else "power"
        except Exception:
            self.reset_cause = "power"
        Pin = machine.Pin
        self._relay_cmd = None
        self._relay_pin = self._set_pin = self._reset_pin = None
        if p["relay_set"] is not None:
            self._set_pin = Pin(p["relay_set"], Pin.OUT, value=0)
            self._reset_pin = Pin(p["relay_reset"], Pin.OUT, value=0)
        elif p["relay"] is not None:
            # power-on state: open (safe) until the meter decides
            self._relay_pin = Pin(p["relay"], Pin.OUT, value=0 if p["relay_active"] else 1)
        self._fb_pin = Pin(p["relay_fb"], Pin.IN, Pin.PULL_UP) if p["relay_fb"] is not None else None
        self._de = Pin(p["modbus_de"], Pin.OUT, value=0) if p["modbus_de"] is not None else None
        self._btn = Pin(p["button"], Pin.IN, Pin.PULL_UP) if p["button"] is not None else None
        self._led = Pin(p["led"], Pin.OUT, value=0) if p["led"] is not None else None
        self._cover = Pin(p["cover"], Pin.IN, Pin.PULL_UP) if p.get("cover") is not None else None
        self._cover_deb = Debouncer(40)
        self._cover_state = False      # debounced: opened? (closed at boot)
        self._deb = Debouncer(40)
        self._watch = RelayWatch(p["relay_settle_ms"])
        self._dlms = self._modbus = None
        self._epoch_off = epoch_offset(time.gmtime(0)[0])
        self._s0_setup()

    # --- files -----------------------------------------------------------------------
    def path(self, name):
        """Absolute path of a file in the flash filesystem (littlefs)."""
        return self._root + name

    # --- UARTs -----------------------------------------------------------------------
    def _uart(self, prefix, rxbuf):
        p, m = self.pins, self._m
        return m.UART(p[prefix + "_uart"], baudrate=p[prefix + "_baud"], tx=m.Pin(p[prefix + "_tx"]),
                      rx=m.Pin(p[prefix + "_rx"]), timeout=0, rxbuf=rxbuf)

    def dlms_stream(self):
        """The DLMS UART (machine.UART, ``timeout=0``: the link's task reads it without blocking)."""
        if self._dlms is None:
            self._dlms = self._uart("dlms", 1024)
        return self._dlms

    def modbus_stream(self):
        """The metering module's UART (Modbus RTU over RS-485)."""
        if self._modbus is None:
            self._modbus = self._uart("modbus", 256)
        return self._modbus

    def modbus_tx_enable(self, on):
        """RS-485 driver enable: high before a request; low only once the last stop bit has
        left the UART (``UART.flush`` waits for it), so the reply is not cut."""
        if self._de is None:
            return
        if on:
            self._de.value(1)
        else:
            u = self._modbus
            if u is not None and hasattr(u, "flush"):
                u.flush()
            self._de.value(0)

    # --- time ------------------------------------------------------------------------
    def ticks_ms(self):
        return _ticks_ms()

    def time(self):
        """RTC seconds since 1970-01-01 UTC (the port's epoch may be 2000: converted)."""
        return int(time.time()) + self._epoch_off

    def set_time(self, epoch):
        """Set the RTC (UTC) from 1970 epoch seconds."""
        self._m.RTC().datetime(rtc_tuple(epoch))

    # --- relay -----------------------------------------------------------------------
    def relay(self, closed):
        """Drive the disconnect relay: True = closed (supply on). A latching relay gets a
        ``relay_pulse_ms`` pulse on its set or reset coil."""
        closed = bool(closed)
        if closed == self._relay_cmd:
            return
        self._relay_cmd = closed
        p = self.pins
        if self._set_pin is not None:
            pin = self._set_pin if closed else self._reset_pin
            pin.value(1)
            _sleep_ms(p["relay_pulse_ms"])
            pin.value(0)
        elif self._relay_pin is not None:
            self._relay_pin.value(1 if closed == bool(p["relay_active"]) else 0)
        self._watch.command(closed, _ticks_ms())
        self.report("relay %d" % (1 if closed else 0))

    def relay_feedback(self):
        """Contact sense: True closed, False open, None if no feedback pin (then the command)."""
        if self._fb_pin is None:
            return self._relay_cmd
        return self._fb_pin.value() == self.pins["relay_fb_active"]

    # --- S0 pulse input (board-specific) ----------------------------------------------
    def _s0_setup(self):
        self._s0 = None

    def s0_pulses(self):
        """Pulses counted on the S0 input since boot (int), or None without S0."""
        return None

    # --- LED, console, watchdog ---------------------------------------------------------
    def led(self, on):
        if self._led is not None:
            self._led.value(1 if on else 0)

    def report(self, line):
        """Bench console (the REPL UART/USB): one line."""
        print(line)

    def wdt_feed(self):
        """Feed the watchdog; the first call arms it (``wdt_ms``, capped to the chip's maximum),
        so a board interrupted for flashing before the first metering cycle is never reset."""
        w = _WDT[0]
        if w is None:
            ms = min(self.pins["wdt_ms"], self.wdt_max_ms)
            if ms <= 0:
                return
            w = _WDT[0] = self._m.WDT(timeout=ms)
        w.feed()

    def poll_io(self, now_ms):
        """One pass of the slow I/O loop: button (debounced), relay contact sense, LED.
        Returns the mismatch tuple if one was reported now."""
        if self._btn is not None:
            pressed = self._btn.value() == self.pins["button_active"]
            if self._deb.update(pressed, now_ms) and self.on_button:
                self.on_button()
        if self._cover is not None:
            opened = self._cover.value() == self.pins["cover_open"]
            self._cover_deb.update(opened, now_ms)
            if self._cover_deb.state != self._cover_state:
                self._cover_state = self._cover_deb.state
                if self.on_cover:
                    self.on_cover(self._cover_state)
        mism = None
        if self._fb_pin is not None:
            mism = self._watch.check(self.relay_feedback(), now_ms)
            if mism is not None:
                if self.on_relay_mismatch:
                    self.on_relay_mismatch(mism[0], mism[1])
                else:
                    self.report("event 31 relay mismatch commanded %d sensed %d"
                                % (1 if mism[0] else 0, 1 if mism[1] else 0))
        if self._led is not None:
            self.led((now_ms // 500) & 1)      # heartbeat: the loop is alive
        return mism

    def control_task(self):
        """Button, relay feedback and LED, every ``tick_ms`` (a generator task of the meter's
        loop, ``meter.metrology.loop``)."""
        tick = self.pins["tick_ms"]
        while True:
            self.poll_io(_ticks_ms())
            yield tick
