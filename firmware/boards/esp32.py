"""ESP32 board: the meter's pins, UARTs, RTC, watchdog and littlefs root on an ESP32 DevKitC.

Pin map: ``pins`` in /config.json over ``boards.pins.DEFAULT_PINS["esp32"]`` (relay GPIO26,
contact sense GPIO27, DLMS UART2 TX17/RX16, Modbus UART1 TX33/RX32 with RS-485 DE on GPIO25,
S0 on GPIO34, button GPIO0 (BOOT), LED GPIO2). The REPL stays on UART0 (USB bridge) for
``meterctl flash``.

S0 pulse input (IEC 62053-31, pulses >= 30 ms): ``machine.Counter`` (the PCNT unit, glitch
filter ``s0_filter_ns``) when the port has it (MicroPython >= 1.26); otherwise ``Pin.irq``,
which on the ESP32 is always a scheduled (soft) callback: it only adds 1 to a preallocated
array slot. The heap starts at 56 KiB and grows by regions (SPLIT_HEAP_AUTO).
"""
import machine

from boards.pins import McuBoard, feed_wdt  # noqa: F401  (feed_wdt: used by meterctl flash)

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_PCNT_UNIT = const(0)


class Esp32Board(McuBoard):
    """The board API (see boards.pins) on an ESP32."""

    wdt_max_ms = 0x7FFFFFFF

    def __init__(self, root="/", cfg=None, machine_module=None):
        McuBoard.__init__(self, machine_module or machine, "esp32", root, cfg)

    def _s0_setup(self):
        import array
        m, p = self._m, self.pins
        self._s0 = None
        self._s0_count = array.array("i", (0,))
        if p["s0"] is None:
            return
        pin = m.Pin(p["s0"], m.Pin.IN)     # GPIO34-39 have no pull-up: fit one externally
        counter = getattr(m, "Counter", None)
        if counter is not None:
            self._s0 = counter(_PCNT_UNIT, pin, edge=counter.RISING, filter_ns=p["s0_filter_ns"])
        else:
            self._s0_pin = pin
            pin.irq(self._s0_irq, m.Pin.IRQ_RISING)

    def _s0_irq(self, pin):
        self._s0_count[0] += 1

    def s0_pulses(self):
        """Pulses counted on the S0 input since boot (int), or None without S0."""
        if self._s0 is not None:
            return self._s0.value()
        if self.pins["s0"] is None:
            return None
        return self._s0_count[0]
