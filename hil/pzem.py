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

The server runs its own asyncio loop in a daemon thread; the register
values are computed from the emulator's state at each request (a pymodbus
simulator ``action`` hook), so the test thread never touches pymodbus.
"""

import asyncio
import struct
import threading

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

__all__ = ["PzemEmulator", "Sdm120Emulator", "EmulatorError", "GENERAL_ADDRESS"]

GENERAL_ADDRESS = 0xF8
_U32 = 0xFFFFFFFF

# Function codes per table: 0x04 input, 0x03/0x06/0x10 holding.
_FC_READ_INPUT = 4
_FC_READ_HOLDING = 3
_FC_WRITE_SINGLE = 6
_FC_WRITE_MULTIPLE = 16


class EmulatorError(Exception):
    """The emulator could not start, stop, or was given a bad value."""


def _lo_hi(value):
    """32-bit value -> [low word, high word] (PZEM order)."""
    value &= _U32
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
        if not emu._addressed(device_id):
            raise NoSuchIdException("no device %d on this bus" % device_id)
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


class _ModbusEmulator:
    """Common machinery: pymodbus RTU server in a background asyncio loop."""

    _START_TIMEOUT = 10.0

    def __init__(self, port_path, unit, baudrate, timeout_s=1.0):
        if not 1 <= unit <= 0xF7:
            raise EmulatorError("unit must be 1..247, got %r" % (unit,))
        self.port_path = str(port_path)
        self.baudrate = baudrate
        self._lock = threading.RLock()
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

    def _trace_pdu(self, sending, pdu):
        if not sending:
            with self._lock:
                if self._addressed(pdu.dev_id):
                    self._requests += 1
                else:
                    self._ignored += 1
        return pdu

    def _trace_packet(self, sending, data):
        if sending:
            with self._lock:
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

    # -- subclass hooks -----------------------------------------------------

    def _simdata(self):
        raise NotImplementedError

    def _custom_pdu(self):
        return None

    async def _action(self, func_code, start_address, address, count,
                      registers, set_values):
        raise NotImplementedError


class _MeteringEmulator(_ModbusEmulator):
    """Load and energy model shared by the metering-module emulators (integers)."""

    def __init__(self, port_path, unit, baudrate, voltage_dv, frequency_dhz):
        super().__init__(port_path, unit, baudrate)
        self._voltage_dv = _check_u16("voltage_dv", voltage_dv)
        self._frequency_dhz = _check_u16("frequency_dhz", frequency_dhz)
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
        watts = _check_int("watts", watts, 0, 0x7FFFFFFF // 10)
        pf_centi = _check_int("pf_centi", pf_centi, 1, 100)
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
            self._voltage_dv = _check_u16("voltage_dv", voltage_dv)
            watts, pf = self._watts, self._pf_c or 100
        self.set_load(watts, pf)

    def advance(self, seconds):
        """Integrate the present load over ``seconds`` (int >= 0).

        Energy (Wh) += watts x seconds / 3600, the remainder carried exactly in
        watt-seconds.  Returns the new energy in Wh.
        """
        seconds = _check_int("seconds", seconds, 0, None)
        with self._lock:
            ws = self._energy_ws + self._watts * seconds
            self._energy_wh = (self._energy_wh + ws // 3600) & _U32
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
        wh = _check_int("wh", wh, 0, _U32)
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


class PzemEmulator(_MeteringEmulator):
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
        self._alarm_w = _check_u16("alarm_threshold_w", alarm_threshold_w)

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
        if func_code == _FC_READ_INPUT:
            regs = self.input_registers()
            registers[0:len(regs)] = regs
            return None
        if func_code in (_FC_READ_HOLDING, _FC_WRITE_SINGLE, _FC_WRITE_MULTIPLE):
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


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int):
        raise EmulatorError("%s must be an int, got %r" % (name, value))
    if value < lo or (hi is not None and value > hi):
        raise EmulatorError("%s out of range [%s, %s]: %r" % (name, lo, hi, value))
    return value


def _check_u16(name, value):
    return _check_int(name, value, 0, 0xFFFF)


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


class Sdm120Emulator(_MeteringEmulator):
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
        if func_code != _FC_READ_INPUT:
            return ExcCodes.ILLEGAL_FUNCTION
        vals = self.values()
        for addr, name in _SDM_MAP:
            raw = struct.pack(">f", vals[name])
            off = addr - start_address
            registers[off] = (raw[0] << 8) | raw[1]
            registers[off + 1] = (raw[2] << 8) | raw[3]
        return None
