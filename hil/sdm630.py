"""Eastron SDM630-Modbus (three phases, four wires) emulator on a pymodbus RTU server.

Float32 input registers, high word first, as the SDM120 (`hil.sdm120`, which documents the
common part and the sources). SDM630 map used here:

=============  ==========================  =============  ==========================
address        value                       address        value
=============  ==========================  =============  ==========================
0x0000/02/04   phase 1/2/3 voltage (V)     0x0034         total system power (W)
0x0006/08/0A   phase 1/2/3 current (A)     0x0038         total apparent power (VA)
0x000C/0E/10   phase 1/2/3 power (W)       0x003C         total reactive power (VAr)
0x0012/14/16   phase 1/2/3 VA              0x003E         total power factor
0x0018/1A/1C   phase 1/2/3 VAr             0x0046         frequency (Hz)
0x001E/20/22   phase 1/2/3 power factor    0x0048/0x004A  import / export kWh
0x0030         sum of line currents (A)    0x0156         total kWh
=============  ==========================  =============  ==========================

The load is balanced: ``set_load(watts, pf_centi)`` is the total, each phase carries a third
(same voltage on every phase, same power factor); ``current_ma`` stays the model's total-load
current at one phase voltage, so a phase shows a third of it.
"""

from .sdm120 import EastronEmulator

__all__ = ["Sdm630Emulator"]


class Sdm630Emulator(EastronEmulator):
    """Eastron SDM630-Modbus on ``port_path`` (map in the module docstring).

    Args:
        port_path: serial device (pty slave or USB-RS485 adapter).
        unit: Modbus address 1..247 (default 1, the factory setting).
        voltage_dv: phase-to-neutral voltage in 0.1 V; frequency_dhz: 0.1 Hz.
        baudrate: 9600 by default (the SDM630's factory setting).
    """

    _MAP = (
        ((0x0000, "voltage_v"), (0x0002, "voltage2_v"), (0x0004, "voltage3_v"))
        + tuple((0x0006 + 2 * k, "current%d_a" % (k + 1)) for k in range(3))
        + tuple((0x000C + 2 * k, "power%d_w" % (k + 1)) for k in range(3))
        + tuple((0x0012 + 2 * k, "apparent%d_va" % (k + 1)) for k in range(3))
        + tuple((0x0018 + 2 * k, "reactive%d_var" % (k + 1)) for k in range(3))
        + tuple((0x001E + 2 * k, "pf%d" % (k + 1)) for k in range(3))
        + ((0x0030, "current_sum_a"), (0x0034, "active_w"), (0x0038, "apparent_va"),
           (0x003C, "reactive_var"), (0x003E, "pf"), (0x0046, "frequency_hz"),
           (0x0048, "import_kwh"), (0x004A, "export_kwh"), (0x0156, "total_kwh"))
    )

    def __init__(self, port_path, unit=1, voltage_dv=2300, frequency_dhz=500,
                 baudrate=9600):
        super().__init__(port_path, unit, voltage_dv, frequency_dhz, baudrate)

    def values(self):
        """{name: float} of what the registers hold now (names as in ``_MAP``)."""
        with self._lock:
            v, i, w, va, var, pf, hz, imp, exp = self._phase()
        out = {"active_w": w, "apparent_va": va, "reactive_var": var, "pf": pf,
               "frequency_hz": hz, "import_kwh": imp, "export_kwh": exp,
               "total_kwh": imp + exp, "current_sum_a": i,
               "voltage_v": v, "voltage2_v": v, "voltage3_v": v}
        for k in (1, 2, 3):
            out["current%d_a" % k] = i / 3.0
            out["power%d_w" % k] = w / 3.0
            out["apparent%d_va" % k] = va / 3.0
            out["reactive%d_var" % k] = var / 3.0
            out["pf%d" % k] = pf
        return out
