"""RP2040 board (Raspberry Pi Pico): the meter's pins, UARTs, RTC, watchdog and littlefs root.

Pin map: ``pins`` in /config.json over ``boards.pins.DEFAULT_PINS["rp2040"]`` (relay GP15,
contact sense GP14, DLMS UART0 TX GP0/RX GP1, Modbus UART1 TX GP4/RX GP5 with RS-485 DE on GP6,
S0 on GP16, button GP17, LED GP25). The REPL is on USB CDC for ``meterctl flash``.

S0 pulse input (IEC 62053-31): a hard IRQ on the falling edge (open-collector output pulls
low). The handler allocates nothing: it reads ``time.ticks_ms()`` (a small int), drops edges
closer than ``s0_filter_ns`` rounded up to 1 ms (contact bounce), and adds 1 to a preallocated
``array('i')`` slot. ``micropython.alloc_emergency_exception_buf`` makes an error in it
reportable. The watchdog's maximum timeout on the RP2040 is 8388 ms. The heap is the linker's
``__GcHeapStart..__GcHeapEnd`` region (about 190 KiB).
"""
import machine
import time

from boards.pins import McuBoard, feed_wdt  # noqa: F401  (feed_wdt: used by meterctl flash)

try:
    import micropython
    micropython.alloc_emergency_exception_buf(100)
except (ImportError, AttributeError):
    pass


class Rp2040Board(McuBoard):
    """The board API (see boards.pins) on an RP2040."""

    wdt_max_ms = 8388
    # littlefs on the Pico programs 256-byte pages: 4x the wear per journal write of the ESP32,
    # so consumption is journaled every 50 Wh (bench/bench_wear.py: ~8% of endurance in 20 years)
    persist_wh = 50
    # ~190 KiB of heap: the STS acceptor stays loaded after the boot check (meter.app._unload), so
    # a token entry does not read its .mpy files from flash again
    sts_resident = True

    def __init__(self, root="/", cfg=None, machine_module=None):
        McuBoard.__init__(self, machine_module or machine, "rp2040", root, cfg)

    def _s0_setup(self):
        import array
        m, p = self._m, self.pins
        # [count, last edge ticks_ms, minimum spacing ms]: preallocated, the IRQ only stores ints
        self._s0_state = array.array("i", (0, 0, max(1, (p["s0_filter_ns"] + 999999) // 1000000)))
        self._s0 = None
        if p["s0"] is None:
            return
        self._s0 = m.Pin(p["s0"], m.Pin.IN, m.Pin.PULL_UP)
        self._s0_handler = self._s0_irq        # bound once here: no allocation per edge
        self._s0.irq(self._s0_handler, m.Pin.IRQ_FALLING, hard=True)

    def _s0_irq(self, pin):
        s = self._s0_state
        now = time.ticks_ms()
        if s[0] and time.ticks_diff(now, s[1]) < s[2]:
            return
        s[1] = now
        s[0] += 1

    def s0_pulses(self):
        """Pulses counted on the S0 input since boot (int), or None without S0."""
        if self._s0 is None:
            return None
        return self._s0_state[0]
