"""Eastron SDM120-Modbus emulator, and the Eastron part shared with the SDM630 (hil.sdm630).

Eastron DIN-rail meters answer function 0x04 (input registers) with IEEE 754 float32 values,
2 registers each, high word first (big-endian), in V, A, W, VA, VAr, Hz and kWh. The register
map (Eastron "SDM120-Modbus" / "SDM630-Modbus" protocol documents; as listed in
plebann/eastron_SDM_HA_integration ``docs/registers-sdm630.md`` and esphome's
``components/sdm_meter/sdm_meter_registers.h``), phase 1 (the only phase of an SDM120):

=========  ==========================  =========  ==========================
address    value                       address    value
=========  ==========================  =========  ==========================
0x0000     voltage (V)                 0x001E     power factor
0x0006     current (A)                 0x0046     frequency (Hz)
0x000C     active power (W)            0x0048     import active energy (kWh)
0x0012     apparent power (VA)         0x004A     export active energy (kWh)
0x0018     reactive power (VAr)        0x0156     total active energy (kWh)
=========  ==========================  =========  ==========================

The emulator answers every register from 0x0000 to 0x004F (a master may read 0x0000-0x001F or
0x0046-0x004B in one request, as the firmware and ESPHome do; the registers without a value
here read 0.0) and 0x0156-0x0159; any other address gets exception 2, any other function
exception 1. Holding registers (settings) are not emulated.

Energy is kept as integer Wh (`hil.metering.MeteringEmulator`); an energy register shows
float32(Wh / 1000) kWh, rounded to the nearest float32 as the module's own float would be, so a
master's kWh -> Wh conversion is exercised. Import energy = the metered counter; export energy
is `export_wh` (0 unless set with `set_export_energy`).
"""

import struct

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData

from .metering import MeteringEmulator
from .modbus_sim import FC_READ_INPUT, U32, check_int

__all__ = ["EastronEmulator", "Sdm120Emulator", "f32_registers"]

_BLOCKS = ((0x0000, 0x50), (0x0156, 4))  # answered input registers: (first, count)


def f32_registers(value):
    """float -> [high word, low word] of its IEEE 754 binary32 (Eastron order)."""
    raw = struct.pack(">f", value)
    return [(raw[0] << 8) | raw[1], (raw[2] << 8) | raw[3]]


class EastronEmulator(MeteringEmulator):
    """An Eastron meter: float32 input registers computed from ``values()`` at each request.

    Subclasses set ``_MAP`` ((address, name) pairs) and define ``values()``.
    """

    _MAP = ()

    def __init__(self, port_path, unit, voltage_dv, frequency_dhz, baudrate):
        super().__init__(port_path, unit, baudrate, voltage_dv, frequency_dhz)
        self._export_wh = 0

    @property
    def export_wh(self):
        """Export active energy register (Wh)."""
        with self._lock:
            return self._export_wh

    def set_export_energy(self, wh):
        """Set the export energy register (Wh, 0..2^32-1)."""
        wh = check_int("wh", wh, 0, U32)
        with self._lock:
            self._export_wh = wh

    def reset_energy(self):
        """Both energy counters back to 0 (a reset or swapped module)."""
        with self._lock:
            super().reset_energy()
            self._export_wh = 0

    def _phase(self):
        """(V, A, W, VA, VAr, PF, Hz, import kWh, export kWh) as floats, under the lock."""
        v = self._voltage_dv / 10.0
        w = float(self._watts)
        pf = self._pf_c / 100.0 if self._pf_c else 1.0
        va = w / pf if w else 0.0
        var = (max(va * va - w * w, 0.0)) ** 0.5
        return (v, self._current_ma / 1000.0, w, va, var, pf, self._frequency_dhz / 10.0,
                self._energy_wh / 1000.0, self._export_wh / 1000.0)

    def registers(self):
        """{address: [high word, low word]} of every named register now."""
        vals = self.values()
        out = {}
        for addr, name in self._MAP:
            out[addr] = f32_registers(vals[name])
        return out

    def values(self):
        raise NotImplementedError

    def _simdata(self):
        bits = [SimData(0, count=1, values=0, datatype=DataType.BITS)]
        holding = [SimData(0, count=1, datatype=DataType.INVALID)]
        inputs = [SimData(a, count=n, values=0, datatype=DataType.REGISTERS) for a, n in _BLOCKS]
        return (bits, list(bits), holding, inputs)

    async def _action(self, func_code, start_address, address, count,
                      registers, set_values):
        if func_code != FC_READ_INPUT:
            return ExcCodes.ILLEGAL_FUNCTION
        for addr, words in self.registers().items():
            off = addr - start_address
            registers[off:off + 2] = words
        return None


class Sdm120Emulator(EastronEmulator):
    """Eastron SDM120-Modbus (single phase) on ``port_path``; map in the module docstring.

    Same load/energy controls as `hil.pzem.PzemEmulator`.

    Args:
        port_path: serial device (pty slave or USB-RS485 adapter).
        unit: Modbus address 1..247 (default 1, the factory setting).
        voltage_dv: line voltage in 0.1 V; frequency_dhz: line frequency in 0.1 Hz.
        baudrate: 2400 by default (the factory setting; configurable on the meter).
    """

    _MAP = (
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

    def __init__(self, port_path, unit=1, voltage_dv=2300, frequency_dhz=500,
                 baudrate=2400):
        super().__init__(port_path, unit, voltage_dv, frequency_dhz, baudrate)

    def values(self):
        """{name: float} of what the registers hold now (names as in ``_MAP``)."""
        with self._lock:
            v, i, w, va, var, pf, hz, imp, exp = self._phase()
        return {"voltage_v": v, "current_a": i, "active_w": w, "apparent_va": va,
                "reactive_var": var, "pf": pf, "frequency_hz": hz,
                "import_kwh": imp, "export_kwh": exp, "total_kwh": imp + exp}
