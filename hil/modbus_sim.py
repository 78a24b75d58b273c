"""Metering-module emulators on a real pymodbus 3.16.1 RTU server (host side): the shared part.

`ModbusEmulator` runs a pymodbus serial server (Modbus RTU) in its own asyncio loop on a daemon
thread; the device's registers are computed from the emulator's state at each request (a pymodbus
simulator ``action`` hook), so the test thread never touches pymodbus. A request for another
address gets silence, as on a shared bus; so does every request inside a `silent` window or
while `stall` is on. Like a real slave, the server ends a frame at a silence (t3.5, here at
least `FRAME_GAP_S`): bytes of a frame left incomplete (a request that lost bytes on the line,
a stray byte) are discarded when the line has been quiet that long, so the next request is
read clean (pymodbus alone would prepend them to it).
`hil.metering.MeteringEmulator` adds the integer load and energy model. The devices:
`hil.pzem.PzemEmulator` (PZEM-004T v3.0), `hil.sdm120.Sdm120Emulator` and
`hil.sdm630.Sdm630Emulator` (Eastron); `hil.modules` picks one by name.
"""

import asyncio
import contextlib
import threading
import time

from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import SimDevice

__all__ = ["ModbusEmulator", "EmulatorError", "GENERAL_ADDRESS", "FRAME_GAP_S",
           "FC_READ_INPUT", "FC_READ_HOLDING", "FC_WRITE_SINGLE", "FC_WRITE_MULTIPLE",
           "check_int", "check_u16", "U32"]

GENERAL_ADDRESS = 0xF8
U32 = 0xFFFFFFFF
# Silence that ends a frame on the server side (s): t3.5 is 4 ms at 9600 baud, 16 ms at 2400,
# but a pty under load hands bytes over late; every master waits far longer between frames.
FRAME_GAP_S = 0.05

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
        self._emu.reset_energy()


class _Handler(ServerRequestHandler):
    """pymodbus's per-connection handler plus the RTU silence rule: input that waited
    longer than ``frame_gap_s`` without completing a frame is dropped before new bytes."""

    emulator = None
    _last_rx = 0.0

    def datagram_received(self, data, addr):
        now = time.monotonic()
        if self.recv_buffer and now - self._last_rx > self.emulator.frame_gap_s:
            self.emulator._count_stale(len(self.recv_buffer))
            self.recv_buffer = b""
        self._last_rx = now
        super().datagram_received(data, addr)


class _Server(ModbusSerialServer):
    emulator = None

    def callback_new_connection(self):
        handler = _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)
        handler.emulator = self.emulator
        return handler


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
        self._stalled = False    # stall(True): no answers until stall(False)
        self._stale = 0          # bytes of incomplete frames discarded at a silence
        self.frame_gap_s = FRAME_GAP_S
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
            self._server = _Server(
                device, framer=FramerType.RTU, port=self.port_path,
                baudrate=self.baudrate, bytesize=8, parity="N", stopbits=1,
                timeout=self._timeout_s, ignore_missing_devices=True,
                reconnect_delay=0.1, custom_pdu=self._custom_pdu(),
                trace_packet=self._trace_packet, trace_pdu=self._trace_pdu)
            self._server.emulator = self
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
            if self._silent or self._stalled:
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
                elif self._silent or self._stalled:
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

    @property
    def stale_bytes(self):
        """Bytes of incomplete request frames the device discarded at a silence (t3.5 rule)."""
        with self._lock:
            return self._stale

    def _count_stale(self, n):
        with self._lock:
            self._stale += n

    def stall(self, on=True):
        """Stall (``on`` true) or revive the device: while stalled it answers no request at
        its address (a hung or unpowered module; counted in `silenced`), at once and until
        ``stall(False)``. Unlike `silent` it does not wait for anything: a request already
        being answered may still get its reply. EmulatorError inside a `silent` window."""
        with self._cond:
            if self._silent:
                raise EmulatorError("stall() inside a silent() window")
            self._stalled = bool(on)
            self._cond.notify_all()

    @property
    def stalled(self):
        """True while `stall` is on."""
        with self._lock:
            return self._stalled

    def wait_asked(self, timeout=2.0):
        """Wait until the bus master sends one more request (answered or not): a master that
        polls in a loop has then used every answer given before this call. True if it came
        within ``timeout`` s, False otherwise (a master that stopped polling)."""
        with self._cond:
            seen = self._requests + self._silenced
            return self._cond.wait_for(lambda: self._requests + self._silenced > seen, timeout)

    @contextlib.contextmanager
    def silent(self, timeout=5.0, until_asked=True):
        """Context manager: the device stops answering (as if unplugged from the bus) until exit.

        On entry it waits until no request is being answered and, with ``until_asked``, until
        the bus master has sent one more request that got silence: a master that polls in a
        loop (read, use the reading, poll again) has then used every earlier answer. Yields
        the emulator. EmulatorError if that does not happen within ``timeout`` s (a master that
        stopped polling: pass ``until_asked=False``), or at once while `stall` is on.
        """
        with self._cond:
            if self._silent or self._stalled:
                raise EmulatorError("already silent" if self._silent else "stalled")
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
