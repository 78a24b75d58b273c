"""Metering-module emulators on a real pymodbus 3.16.1 RTU server (host side).

`PzemEmulator` answers like a Peacefair PZEM-004T v3.0 on an RS-485 bus
(9600 8N1, Modbus RTU, map as in mandulaj/PZEM-004T-v30 and the vendor
manual):

=========  =========  ========================================  ==========
table      address    value                                     unit
=========  =========  ========================================  ==========
input      0x0000     voltage                                   0.1 V
input      0x0001-2   current, 32-bit, **low word first**       1 mA
input      0x0003-4   active power, 32-bit, low word first      0.1 W
input      0x0005-6   active energy, 32-bit, low word first     1 Wh
input      0x0007     frequency                                 0.1 Hz
input      0x0008     power factor                              0.01
input      0x0009     power alarm (0xFFFF alarm, 0x0000 none)
holding    0x0001     power alarm threshold                     1 W
holding    0x0002     Modbus address (1..0xF7)
function   0x42       reset energy (reply echoes ``addr 0x42``)
=========  =========  ========================================  ==========

The device answers at its configured address and at the general address
0xF8; requests for any other address get silence, as on a shared bus.
Unsupported function codes get exception 1, addresses outside the map
exception 2, a bad value written exception 3.

Everything is integer: ``set_load(watts)`` derives current and power factor
with integer arithmetic, ``advance(seconds)`` integrates energy in
watt-seconds and carries the sub-Wh remainder exactly, so many small steps
and one big step give the same register values.

The server (`hil.modbus_sim`) runs its own asyncio loop in a daemon thread; the register
values are computed from the emulator's state at each request, so the test thread never touches
pymodbus. ``with emu.silent():`` makes the module stop answering (a test moves energy and clock
while the meter cannot read them), ``emu.stall(True)`` until ``stall(False)``;
``emu.reset_energy()`` sets the counter back to 0 (as the 0x42 request does). `Sdm120Emulator`
(hil.sdm120) and `Sdm630Emulator` (hil.sdm630) are re-exported here.
"""

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.simulator import DataType, SimData

from .metering import MeteringEmulator
from .modbus_sim import (FC_READ_HOLDING, FC_READ_INPUT, FC_WRITE_MULTIPLE, FC_WRITE_SINGLE,
                         GENERAL_ADDRESS, U32, EmulatorError, check_u16)
from .sdm120 import Sdm120Emulator
from .sdm630 import Sdm630Emulator

__all__ = ["PzemEmulator", "Sdm120Emulator", "Sdm630Emulator", "EmulatorError",
           "GENERAL_ADDRESS"]


def _lo_hi(value):
    """32-bit value -> [low word, high word] (PZEM order)."""
    value &= U32
    return [value & 0xFFFF, value >> 16]


class _ResetEnergy(ModbusPDU):
    """PZEM-004T vendor function 0x42: reset the energy counter.

    Request and correct reply are both ``<addr> 0x42 <crc lo> <crc hi>``.
    """

    function_code = 0x42
    rtu_frame_size = 4

    def encode(self):
        return b""

    def decode(self, data):
        pass

    async def datastore_update(self, context, device_id):
        await context.reset_energy(device_id)
        return _ResetEnergy(dev_id=device_id, transaction_id=self.transaction_id)


class PzemEmulator(MeteringEmulator):
    """PZEM-004T v3.0 on ``port_path`` (see the module docstring for the map).

    Args:
        port_path: serial device (pty slave or USB-RS485 adapter).
        unit: Modbus address 1..247 (default 1).
        voltage_dv: line voltage in 0.1 V (2300 = 230.0 V).
        frequency_dhz: line frequency in 0.1 Hz (500 = 50.0 Hz).
        baudrate: 9600 (the PZEM's fixed rate).
        alarm_threshold_w: holding register 1 at power-up.
    """

    def __init__(self, port_path, unit=1, voltage_dv=2300, frequency_dhz=500,
                 baudrate=9600, alarm_threshold_w=23000):
        super().__init__(port_path, unit, baudrate, voltage_dv, frequency_dhz)
        self._alarm_w = check_u16("alarm_threshold_w", alarm_threshold_w)

    @property
    def alarm_threshold_w(self):
        with self._lock:
            return self._alarm_w

    def input_registers(self):
        """The 10 input registers as the device would send them now."""
        with self._lock:
            power_dw = self._watts * 10
            alarm = 0xFFFF if self._watts >= self._alarm_w else 0
            return ([self._voltage_dv] + _lo_hi(self._current_ma) + _lo_hi(power_dw)
                    + _lo_hi(self._energy_wh)
                    + [self._frequency_dhz, self._pf_c, alarm])

    # -- pymodbus hooks -----------------------------------------------------

    def _simdata(self):
        bits = [SimData(0, count=1, values=0, datatype=DataType.BITS)]
        holding = [SimData(1, count=2, values=0, datatype=DataType.REGISTERS)]
        inputs = [SimData(0, count=10, values=0, datatype=DataType.REGISTERS)]
        return (bits, list(bits), holding, inputs)

    def _custom_pdu(self):
        return [_ResetEnergy]

    async def _action(self, func_code, start_address, address, count,
                      registers, set_values):
        if func_code == FC_READ_INPUT:
            regs = self.input_registers()
            registers[0:len(regs)] = regs
            return None
        if func_code in (FC_READ_HOLDING, FC_WRITE_SINGLE, FC_WRITE_MULTIPLE):
            with self._lock:
                if set_values:
                    new = {address + i: v for i, v in enumerate(set_values)}
                    unit = new.get(2, self._unit)
                    if not 1 <= unit <= 0xF7:
                        return ExcCodes.ILLEGAL_VALUE
                    self._alarm_w = new.get(1, self._alarm_w)
                    if unit != self._unit:
                        self._new_unit = unit
                # holding block starts at address 1: [alarm W, address]
                registers[0] = self._alarm_w
                registers[1] = self._unit if self._new_unit is None else self._new_unit
            return None
        return ExcCodes.ILLEGAL_FUNCTION
