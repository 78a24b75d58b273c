"""`BenchRig`: a real board on a USB serial port, behind the same `hil.rig.Rig` interface."""

import threading
import time

from .pzem import PzemEmulator
from .relayback import RelayReadback
from .rig import Rig, RigTimeout, register_live, unregister_live

__all__ = ["BenchRig"]


class BenchRig(RelayReadback, Rig):
    """A real board on a USB serial port.

    Args:
        meter_port: the board's DLMS UART (e.g. /dev/ttyUSB0).
        modbus_port: a USB-RS485 adapter on the board's metering bus; if
            given, a PzemEmulator answers there and ``set_load`` works.
        baud: DLMS baud rate.
        pzem_unit: Modbus address of the emulated PZEM.
        power_switch: optional callable(on: bool) driving the board's supply
            (a relay board, a USB hub port); gives the ``power_cut`` capability.
        ready_probe: optional callable() -> bool, true once the board answers
            after power-on (e.g. a DLMS SNRM/UA); `power_on` polls it.
        password: the management client's LLS password (None: the emulated meter's default).
        keys: the management client's HLS keys (``host_tools.client.HlsKeys``: a board flashed
            by ``meterctl flash``, or ``meterctl emulate``, refuses LLS to client 1); None: LLS.
        relay_sense: optional callable() -> bool (True: contact closed) reading the relay's
            contact on the bench (an auxiliary contact or current sense on a USB GPIO); without
            it the relay is read back over DLMS, the disconnect control's output_state (what
            the meter commands, not the contact: hil.relayback).

    ``relay`` (``relay_closed``/``wait_relay``) always: hil.relayback. Clock, button and
    telemetry need bench hardware this rig does not drive: tests needing them are skipped.
    """

    _PROBE_INTERVAL = 0.25

    def __init__(self, meter_port, modbus_port=None, baud=9600, pzem_unit=1,
                 power_switch=None, ready_probe=None, password=None, keys=None, relay_sense=None):
        if password:
            self.management_password = str(password)
        self.management_keys = keys
        self.meter_port = str(meter_port)
        self.modbus_port = modbus_port
        self.baud = int(baud)
        self._power_switch = power_switch
        self._ready_probe = ready_probe
        self.relay_sense = relay_sense
        caps = {"dlms", "relay"}
        self.pzem = None
        if modbus_port:
            self.pzem = PzemEmulator(modbus_port, unit=pzem_unit).start()
            caps |= {"load", "energy"}
        if power_switch is not None:
            caps.add("power_cut")
        self.capabilities = frozenset(caps)
        register_live(self)

    @property
    def port(self):
        return self.meter_port

    def set_load(self, watts, pf_centi=100):
        self.require("load")
        self.pzem.set_load(watts, pf_centi)

    def power_cut(self):
        """Switch the board's supply off."""
        self.require("power_cut")
        self._power_switch(False)

    def power_on(self, timeout=30.0):
        """Switch the supply on; with a ready_probe, wait until it answers.

        Raises RigTimeout if the probe does not succeed within ``timeout`` s.
        """
        self.require("power_cut")
        self._power_switch(True)
        if self._ready_probe is None:
            return
        deadline = time.monotonic() + timeout
        stop = threading.Event()
        while True:
            try:
                if self._ready_probe():
                    return
            except Exception:  # board still booting
                pass
            if time.monotonic() >= deadline:
                raise RigTimeout("board on %s not ready %.0f s after power-on"
                                 % (self.meter_port, timeout))
            # a real board gives no event to wait on: probe at an interval
            stop.wait(self._PROBE_INTERVAL)

    def stop(self):
        if self.pzem is not None:
            self.pzem.stop()
            self.pzem = None
        unregister_live(self)
