"""Eastron SDM120-Modbus emulator on a pymodbus RTU server (`hil.modbus_sim`)."""

import struct

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData

from .modbus_sim import FC_READ_INPUT, MeteringEmulator

__all__ = ["Sdm120Emulator"]


# SDM120 input registers: float32, big-endian (high word first), 2 registers each.
_SDM_MAP = (
    (0x0000, "voltage_v"),
    (0x0006, "current_a"),
    (0x000C, "active_w"),
    (0x0012, "apparent_va"),
    (0x0018, "reactive_var"),
    (0x001E, "pf"),
    (0x0046, "frequency_hz"),
    (0x0048, "import_kwh"),
    (0x004A, "export_kwh"),
    (0x0156, "total_kwh"),
)


class Sdm120Emulator(MeteringEmulator):
    """Eastron SDM120-Modbus: float32 big-endian input registers (fc 0x04).

    Map (2 registers each): V 0x0000, I 0x0006, W 0x000C, VA 0x0012,
    VAr 0x0018, PF 0x001E, Hz 0x0046, import kWh 0x0048, export kWh 0x004A,
    total kWh 0x0156.  Addresses between them answer exception 2.  Holding
    registers (settings) are not emulated.  Same load/energy controls as
    PzemEmulator; energy registers are ``energy_wh / 1000`` as float32.

    Args:
        baudrate: 2400 by default (the usual factory setting; configurable
            on the meter, so configurable here).
    """

    def __init__(self, port_path, unit=1, voltage_dv=2300, frequency_dhz=500,
                 baudrate=2400):
        super().__init__(port_path, unit, baudrate, voltage_dv, frequency_dhz)

    def values(self):
        """{name: float} of what the registers hold now."""
        with self._lock:
            v = self._voltage_dv / 10.0
            i = self._current_ma / 1000.0
            w = float(self._watts)
            pf = self._pf_c / 100.0 if self._pf_c else 1.0
            va = w / pf if w else 0.0
            var = (max(va * va - w * w, 0.0)) ** 0.5
            kwh = self._energy_wh / 1000.0
            return {"voltage_v": v, "current_a": i, "active_w": w, "apparent_va": va,
                    "reactive_var": var, "pf": pf, "frequency_hz": self._frequency_dhz / 10.0,
                    "import_kwh": kwh, "export_kwh": 0.0, "total_kwh": kwh}

    def _simdata(self):
        bits = [SimData(0, count=1, values=0, datatype=DataType.BITS)]
        holding = [SimData(0, count=1, datatype=DataType.INVALID)]
        inputs = [SimData(a, values=0.0, datatype=DataType.FLOAT32) for a, _ in _SDM_MAP]
        return (bits, list(bits), holding, inputs)

    async def _action(self, func_code, start_address, address, count,
                      registers, set_values):
        if func_code != FC_READ_INPUT:
            return ExcCodes.ILLEGAL_FUNCTION
        vals = self.values()
        for addr, name in _SDM_MAP:
            raw = struct.pack(">f", vals[name])
            off = addr - start_address
            registers[off] = (raw[0] << 8) | raw[1]
            registers[off + 1] = (raw[2] << 8) | raw[3]
        return None
