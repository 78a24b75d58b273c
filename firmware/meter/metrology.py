"""Metering module over Modbus RTU: a minimal async master for the PZEM-004T v3.

PZEM-004T v3 input registers 0x0000-0x0009 (function 0x04), 9600 8N1 (reference micropython.md §4):
voltage 0.1 V; current mA (32-bit, low word first); power 0.1 W (32-bit, low word first);
energy Wh (32-bit, low word first); frequency 0.1 Hz; power factor 0.01; alarm (0xFFFF = alarm).
The whole 10-register read is one 8-byte request and a 25-byte reply.

Buffers are preallocated; a poll allocates nothing but the awaitables. Values are small ints.
Errors: ``poll()`` returns False on timeout, CRC error or an exception reply and counts it in
``errors``/``last_error``; the previous readings stay (``fresh`` goes False).
"""
import asyncio

from protocol import modbus_rtu

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_FN_INPUT = const(4)
_NREG = const(10)
_REPLY = const(25)


class Pzem004t:
    def __init__(self, stream, unit=1, timeout_ms=500, tx_enable=None):
        # one asyncio Stream both ways (MicroPython's StreamReader and StreamWriter are the same
        # class): one object less on the heap
        self._io = asyncio.StreamWriter(stream)
        self._req = modbus_rtu.read_request(unit, _FN_INPUT, 0, _NREG)
        self._buf = bytearray(32)
        self._mv = memoryview(self._buf)
        self._unit = unit
        self._timeout = timeout_ms
        self._tx_enable = tx_enable
        self.voltage_dv = None
        self.current_ma = None
        self.power_dw = None
        self.energy_wh = None
        self.frequency_dhz = None
        self.pf_centi = None
        self.alarm = False
        self.fresh = False
        self.errors = 0
        self.last_error = ""

    async def _read_exact(self, n, start):
        got = start
        while got < n:
            k = await self._io.readinto(self._mv[got:n])
            if not k:
                await asyncio.sleep_ms(5)
                continue
            got += k
        return got

    async def poll(self):
        """Read all 10 input registers; True if the readings were refreshed."""
        if self._tx_enable:
            self._tx_enable(True)
        self._io.write(self._req)
        await self._io.drain()
        if self._tx_enable:
            self._tx_enable(False)
        try:
            # an exception reply is 5 bytes; a normal one 25
            await asyncio.wait_for_ms(self._read_exact(5, 0), self._timeout)
            n = 5
            if not self._buf[1] & 0x80:
                await asyncio.wait_for_ms(self._read_exact(_REPLY, 5), self._timeout)
                n = _REPLY
            code = modbus_rtu.check_response(self._buf, n, self._unit, _FN_INPUT)
        except asyncio.TimeoutError:
            return self._fail("timeout")
        except modbus_rtu.ModbusError as e:
            await asyncio.sleep_ms(50)  # let the rest of a damaged reply pass (t3.5 and more)
            return self._fail("bad reply: %s" % e)
        if code:
            return self._fail("exception %d" % code)
        b = self._buf
        self.voltage_dv = modbus_rtu.reg(b, 0)
        self.current_ma = modbus_rtu.u32_lo_first(b, 1)
        self.power_dw = modbus_rtu.u32_lo_first(b, 3)
        self.energy_wh = modbus_rtu.u32_lo_first(b, 5)
        self.frequency_dhz = modbus_rtu.reg(b, 7)
        self.pf_centi = modbus_rtu.reg(b, 8)
        self.alarm = modbus_rtu.reg(b, 9) == 0xFFFF
        self.fresh = True
        return True

    def _fail(self, why):
        self.errors += 1
        self.last_error = why
        self.fresh = False
        return False
