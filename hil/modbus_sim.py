"""Metering-module emulators on a real pymodbus 3.16.1 RTU server (host side): the shared part.

`ModbusEmulator` runs a pymodbus serial server (Modbus RTU) in its own asyncio loop on a daemon
thread; the device's registers are computed from the emulator's state at each request (a pymodbus
simulator ``action`` hook), so the test thread never touches pymodbus. A request for another
address gets silence, as on a shared bus; so does every request inside a `silent` window.
`MeteringEmulator` adds the integer load and energy model. The devices: `hil.pzem.PzemEmulator`
(PZEM-004T v3.0) and `hil.sdm120.Sdm120Emulator` (Eastron SDM120).
"""

import asyncio
import contextlib
import threading

from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import SimDevice

__all__ = ["ModbusEmulator", "MeteringEmulator", "EmulatorError", "GENERAL_ADDRESS",
           "FC_READ_INPUT", "FC_READ_HOLDING", "FC_WRITE_SINGLE", "FC_WRITE_MULTIPLE",
           "check_int", "check_u16", "U32"]

GENERAL_ADDRESS = 0xF8
U32 = 0xFFFFFFFF

# Function codes per table: 0x04 input, 0x03/0x06/0x10 holding.
FC_READ_INPUT = 4
FC_READ_HOLDING = 3
FC_WRITE_SINGLE = 6
FC_WRITE_MULTIPLE = 16


class EmulatorError(Exception):
    """The emulator could not start, stop, or was given a bad value."""


class _BusContext:
    """pymodbus server context: routes a request to the emulated device if it
    is addressed to it, raises NoSuchIdException (silence) otherwise."""

    def __init__(self, simcore, emulator):
        self._core = simcore
        self._emu = emulator

    def device_ids(self):
        return [self._emu.unit]

    def _route(self, device_id):
        emu = self._emu
        if not emu._admit(device_id):
            raise NoSuchIdException("no device %d on this bus (or silent)" % device_id)
        return emu._sim_id

    async def async_getValues(self, device_id, func_code, address, count=1):
        return await self._core.async_getValues(self._route(device_id), func_code,
                                                address, count)

    async def async_setValues(self, device_id, func_code, address, values):
        return await self._core.async_setValues(self._route(device_id), func_code,
                                                address, values)

    async def reset_energy(self, device_id):
        self._route(device_id)
        self._emu._reset_energy()


class ModbusEmulator:
    """Common machinery: pymodbus RTU server in a background asyncio loop."""

    _START_TIMEOUT = 10.0

    def __init__(self, port_path, unit, baudrate, timeout_s=1.0):
        if not 1 <= unit <= 0xF7:
            raise EmulatorError("unit must be 1..247, got %r" % (unit,))
        self.port_path = str(port_path)
        self.baudrate = baudrate
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._silent = False     # inside a silent() window: requests get no answer
        self._in_flight = False  # a request for this device is being answered
        self._silenced = 0       # requests for this device left unanswered by silent()
        self._unit = unit
        self._new_unit = None  # address written, effective after the reply
        self._sim_id = 1  # the id of the one SimDevice inside pymodbus
        self._requests = 0
        self._ignored = 0
        self._loop = None
        self._server = None
        self._thread = None
        self._started = threading.Event()
        self._start_error = None
        self._timeout_s = timeout_s
        self.trace = None  # optional callable(sending: bool, frame: bytes)

    # -- lifecycle ----------------------------------------------------------

    def start(self):
        """Open the port and start answering; returns self.

        Raises EmulatorError if the server does not come up within 10 s.
        """
        if self._thread is not None:
            raise EmulatorError("emulator already started")
        self._started.clear()
        self._thread = threading.Thread(target=self._thread_main,
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        if not self._started.wait(self._START_TIMEOUT):
            self.stop()
            raise EmulatorError("modbus server on %s did not start within %.0f s"
                                % (self.port_path, self._START_TIMEOUT))
        if self._start_error is not None:
            err = self._start_error
            self.stop()
            raise EmulatorError("modbus server on %s failed to start: %r"
                                % (self.port_path, err))
        return self

    def stop(self):
        """Stop the server and its thread (idempotent)."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                fut.result(timeout=5.0)
            except Exception:
                pass
        thread.join(timeout=5.0)
        self._thread = None
        self._loop = None
        self._server = None

    @property
    def running(self):
        """True between a successful `start` and `stop`."""
        return self._thread is not None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _thread_main(self):
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._started.set()

    async def _serve(self):
        try:
            self._stop_evt = asyncio.Event()
            device = SimDevice(id=self._sim_id, simdata=self._simdata(),
                               action=self._action)
            self._server = ModbusSerialServer(
                device, framer=FramerType.RTU, port=self.port_path,
                baudrate=self.baudrate, bytesize=8, parity="N", stopbits=1,
                timeout=self._timeout_s, ignore_missing_devices=True,
                reconnect_delay=0.1, custom_pdu=self._custom_pdu(),
                trace_packet=self._trace_packet, trace_pdu=self._trace_pdu)
            self._server.context = _BusContext(self._server.context, self)
            await self._server.serve_forever(background=True)
        except Exception as e:
            self._start_error = e
            self._started.set()
            return
        self._started.set()
        await self._stop_evt.wait()

    async def _shutdown(self):
        if self._server is not None:
            await self._server.shutdown()
        self._stop_evt.set()

    def _addressed(self, device_id):
        with self._lock:
            return device_id in (self._unit, GENERAL_ADDRESS)

    def _admit(self, device_id):
        # the server routes a request: answer it unless it is for another device or silenced
        with self._lock:
            if not self._addressed(device_id):
                return False
            if self._silent:
                if self._in_flight:  # decoded before the window opened: it goes unanswered
                    self._in_flight = False
                    self._requests -= 1
                    self._silenced += 1
                    self._cond.notify_all()
                return False
            return True

    def _trace_pdu(self, sending, pdu):
        if not sending:
            with self._lock:
                if not self._addressed(pdu.dev_id):
                    self._ignored += 1
                elif self._silent:
                    self._silenced += 1
                else:
                    self._requests += 1
                    self._in_flight = True
                self._cond.notify_all()
        return pdu

    def _trace_packet(self, sending, data):
        if sending:
            with self._lock:
                self._in_flight = False
                self._cond.notify_all()
                if self._new_unit is not None:
                    # A new address takes effect once the reply (sent from the
                    # old address) has left, like the real module.
                    self._unit, self._new_unit = self._new_unit, None
        fn = self.trace
        if fn is not None:
            try:
                fn(sending, bytes(data))
            except Exception:
                pass
        return data

    # -- shared properties --------------------------------------------------

    @property
    def unit(self):
        """Current Modbus address of the device (a written one once replied)."""
        with self._lock:
            return self._unit if self._new_unit is None else self._new_unit

    @property
    def requests(self):
        """Requests addressed to this device (answered or exception)."""
        with self._lock:
            return self._requests

    @property
    def ignored(self):
        """Requests for other addresses (silently ignored)."""
        with self._lock:
            return self._ignored

    @property
    def silenced(self):
        """Requests for this device left unanswered inside `silent` windows."""
        with self._lock:
            return self._silenced

    @contextlib.contextmanager
    def silent(self, timeout=5.0, until_asked=True):
        """Context manager: the device stops answering (as if unplugged from the bus) until exit.

        On entry it waits until no request is being answered and, with ``until_asked``, until
        the bus master has sent one more request that got silence: a master that polls in a
        loop (read, use the reading, poll again) has then used every earlier answer. Yields
        the emulator. EmulatorError if that does not happen within ``timeout`` s (a master that
        stopped polling: pass ``until_asked=False``).
        """
        with self._cond:
            if self._silent:
                raise EmulatorError("already silent")
            self._silent = True
            asked = self._silenced
            ok = self._cond.wait_for(
                lambda: not self._in_flight and (not until_asked or self._silenced > asked),
                timeout)
            if not ok:
                self._silent = False
                raise EmulatorError("silent(): %s within %.1f s" % (
                    "a request still being answered" if self._in_flight
                    else "the bus master sent no request", timeout))
        try:
            yield self
        finally:
            with self._cond:
                self._silent = False

    # -- subclass hooks -----------------------------------------------------

    def _simdata(self):
        raise NotImplementedError

    def _custom_pdu(self):
        return None

    async def _action(self, func_code, start_address, address, count,
                      registers, set_values):
        raise NotImplementedError


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
        with self._lock:
            return self._watts

    def _reset_energy(self):
        with self._lock:
            self._energy_wh = 0
            self._energy_ws = 0


def check_int(name, value, lo, hi):
    """``value`` if it is an int (not a bool) in [lo, hi] (hi None: no bound), else EmulatorError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise EmulatorError("%s must be an int, got %r" % (name, value))
    if value < lo or (hi is not None and value > hi):
        raise EmulatorError("%s out of range [%s, %s]: %r" % (name, lo, hi, value))
    return value


def check_u16(name, value):
    """``value`` if it is an int in 0..0xFFFF, else EmulatorError."""
    return check_int(name, value, 0, 0xFFFF)
