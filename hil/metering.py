"""The integer load and energy model shared by the metering-module emulators (host side).

`MeteringEmulator` is a `hil.modbus_sim.ModbusEmulator` with a load (whole watts, power factor
in 0.01), a line voltage (0.1 V) and frequency (0.1 Hz), and an energy counter kept as an
integer in Wh plus the sub-Wh remainder in watt-seconds, so many small `advance` steps and one
big step give the same counter. Each device shows the counter in its own format (PZEM: integer
Wh; Eastron: float32 kWh = float32(Wh / 1000)).
"""

from .modbus_sim import U32, ModbusEmulator, check_int, check_u16

__all__ = ["MeteringEmulator"]


class MeteringEmulator(ModbusEmulator):
    """Load and energy model shared by the metering-module emulators (integers)."""

    def __init__(self, port_path, unit, baudrate, voltage_dv, frequency_dhz):
        super().__init__(port_path, unit, baudrate)
        self._voltage_dv = check_u16("voltage_dv", voltage_dv)
        self._frequency_dhz = check_u16("frequency_dhz", frequency_dhz)
        self._watts = 0
        self._pf_c = 0
        self._current_ma = 0
        self._energy_wh = 0
        self._energy_ws = 0  # sub-Wh remainder, 0..3599 watt-seconds

    # -- test-side controls --------------------------------------------------

    def set_load(self, watts, pf_centi=100):
        """Set the active load in whole watts (>= 0) at power factor pf_centi/100.

        Current (mA) = P / (V x pf), rounded half up; pf and current read 0 at
        no load, as the PZEM shows.
        """
        watts = check_int("watts", watts, 0, 0x7FFFFFFF // 10)
        pf_centi = check_int("pf_centi", pf_centi, 1, 100)
        with self._lock:
            self._watts = watts
            if watts == 0:
                self._pf_c = 0
                self._current_ma = 0
            else:
                self._pf_c = pf_centi
                den = self._voltage_dv * pf_centi
                # I[mA] = P[W] * 1000 / (V[dV]/10 * pf[c]/100)
                self._current_ma = (watts * 1000000 + den // 2) // den

    def set_voltage(self, voltage_dv):
        """Set the line voltage (0.1 V); current follows on the next set_load."""
        with self._lock:
            self._voltage_dv = check_u16("voltage_dv", voltage_dv)
            watts, pf = self._watts, self._pf_c or 100
        self.set_load(watts, pf)

    def advance(self, seconds):
        """Integrate the present load over ``seconds`` (int >= 0).

        Energy (Wh) += watts x seconds / 3600, the remainder carried exactly in
        watt-seconds.  Returns the new energy in Wh.
        """
        seconds = check_int("seconds", seconds, 0, None)
        with self._lock:
            ws = self._energy_ws + self._watts * seconds
            self._energy_wh = (self._energy_wh + ws // 3600) & U32
            self._energy_ws = ws % 3600
            return self._energy_wh

    @property
    def energy_wh(self):
        """Energy register value (Wh)."""
        with self._lock:
            return self._energy_wh

    @property
    def energy_remainder_ws(self):
        """Sub-Wh remainder carried between steps (0..3599 watt-seconds)."""
        with self._lock:
            return self._energy_ws

    def set_energy(self, wh):
        """Set the energy register (Wh, 0..2^32-1) and clear the remainder."""
        wh = check_int("wh", wh, 0, U32)
        with self._lock:
            self._energy_wh = wh
            self._energy_ws = 0

    @property
    def watts(self):
        """Active load now (whole watts)."""
        with self._lock:
            return self._watts

    def reset_energy(self):
        """Set the energy counter back to 0 (and the sub-Wh remainder): a module reset by its
        own command (PZEM 0x42) or swapped for a new one. The meter sees its counter go
        backwards on its next poll."""
        with self._lock:
            self._energy_wh = 0
            self._energy_ws = 0
