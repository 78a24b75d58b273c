"""`ControlledRig`: the `Rig` interface implemented over a unix-board control channel, a PZEM
emulator and a DLMS pty cable.

The meter-facing half of `hil.emulated.EmulatedRig` (which adds the firmware process): load
behind the relay, simulated time, relay/button/cover, telemetry and event waits, heap, and
`drain` (wait for the DLMS wire to fall quiet). Subclasses provide ``self.ctl``
(`hil.ctlchannel.ControlChannel`), ``self.pzem`` (`hil.pzem.PzemEmulator`), ``self.dlms_link``
(`hil.ptylink.PtyLink`, meter on side A), ``relay_gates_load``, ``wh_offset`` and `_powered`;
for `power_cut` / `stop` / `_context` also ``_proc``, ``_stopped``, ``log_path``, ``_kill`` (stop
the board at once) and ``_teardown_first`` (what stops before the shared wiring).
"""

import os

from .rig import Rig, RigError, RigTimeout, unregister_live

__all__ = ["ControlledRig"]


class ControlledRig(Rig):
    """Rig interface over the control channel (see the module docstring)."""

    relay_gates_load = True
    wh_offset = 0
    _load = (0, 100)

    def _powered(self):
        """True while the board can receive control lines (subclass hook)."""
        raise NotImplementedError

    def _kill(self):
        """Stop the board at once, whatever it is doing (subclass hook)."""
        raise NotImplementedError

    def _teardown_first(self):
        """Callables run by `stop` before the shared wiring is closed (subclass hook)."""
        return (self._kill,)

    # -- power and teardown (the same for every board on a control channel) ---------------

    def power_cut(self):
        """Kill the board (SIGKILL of its process group) at whatever it is doing; ptys and the
        metering module stay up."""
        if self._proc is None:
            raise RigError("power_cut: meter is already off")
        self._kill()
        with self.ctl.cond:
            self.control.relay_unknown()  # no supply: the relay output is undefined until boot
            self.ctl.cond.notify_all()

    @property
    def running(self):
        """True while the board's process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self):
        """Stop the board, the metering module, all ptys (idempotent); RigError listing what
        failed (every step is tried)."""
        if self._stopped:
            return
        self._stopped = True
        errors = []
        for step in self._teardown_first() + (
                lambda: self.pzem and self.pzem.stop(),
                lambda: self.dlms_link and self.dlms_link.close(),
                lambda: self.modbus_link and self.modbus_link.close(),
                lambda: self.ctl and self.ctl.close(),
                lambda: self._lock and self._lock.close()):
            try:
                step()
            except Exception as e:  # keep tearing down
                errors.append(e)
        unregister_live(self)
        if errors:
            raise RigError("errors while stopping the rig: %r" % (errors,))

    def _context(self):
        return ("\n  last telemetry: %r\n  pzem: %d Wh, %d W, %d requests"
                "\n--- control lines (last 12, repeats folded) ---\n%s\n--- firmware log (tail) ---\n%s"
                % (self.telemetry, self.pzem.energy_wh, self.pzem.watts, self.pzem.requests,
                   "\n".join(self.ctl_trace_lines(12)), self.log_tail(30)))

    def log_tail(self, lines=40):
        """Last ``lines`` lines of firmware.log (the board's output, all boots)."""
        try:
            with open(str(self.log_path), "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                data = f.read()
        except OSError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    # -- what the board said (hil.control.ControlState) ---------------------------

    @property
    def control(self):
        """The control channel's `hil.control.ControlState` (read it under no lock only for
        a snapshot: the reader thread updates it)."""
        return self.ctl.state

    @property
    def relay_history(self):
        """[(rig clock epoch, closed)] per ``relay`` line (a list; tests may clear it)."""
        return self.ctl.state.relay_history

    @property
    def telemetry(self):
        """Latest Telemetry (None before the first metering cycle)."""
        return self.ctl.state.telemetry

    @property
    def telemetry_history(self):
        """The last telemetry lines (deque of Telemetry)."""
        return self.ctl.state.telemetry_history

    @property
    def events(self):
        """[(code str, text str)] per ``event`` line."""
        return self.ctl.state.events

    @property
    def bad_lines(self):
        """Control lines that did not parse."""
        return self.ctl.state.bad_lines

    def _on_kind(self, kind):
        # under self.ctl.cond, from the control reader
        if kind == "relay":
            self._apply_load()

    # -- control channel -------------------------------------------------------

    def ctl_trace_lines(self, n=20):
        """The last ``n`` control lines as text ("> sent", "< received",
        consecutive repeats folded as " (xN)")."""
        return self.ctl.trace_lines(n)

    def send(self, line):
        """Send one raw control line to the board (``time``, ``button``, ...).
        RigError if the meter is off."""
        if not self._powered():
            raise RigError("meter is powered off; cannot send %r" % (line,))
        self.ctl.send(line)

    def mem(self, timeout=10.0):
        """Heap of the firmware now: ``(alloc, free)`` bytes after the board's gc.collect()
        (control line ``mem``). On a ROMFS rig ``alloc`` includes the image buffer
        (``romfs_bytes``)."""
        mems = self.control.mems
        with self.ctl.cond:
            n = len(mems)
        self.send("mem")
        self._wait(lambda: len(mems) > n, timeout, "'mem' answer")
        with self.ctl.cond:
            return mems[-1]

    def sync(self, timeout=10.0):
        """Round trip ``ping n`` / ``pong n``: the board has handled all
        earlier control lines."""
        n = self.ctl.next_ping()
        self.send("ping %d" % n)
        self._wait(lambda: self.control.take_pong(n), timeout, "'pong %d'" % n)

    def _wait(self, predicate, timeout, what):
        self.ctl.wait(predicate, timeout, what)

    # -- the Rig interface -----------------------------------------------------

    @property
    def port(self):
        """Host end of the DLMS UART (pty slave path)."""
        return self.dlms_link.b_path

    def drain(self, quiet_ms=100, timeout=10.0):
        """Wait until the meter has read every byte sent to its DLMS UART and no byte has
        crossed the DLMS wire either way for ``quiet_ms`` (its answers are out); built on the
        pty link's byte counters. RigTimeout (with the context) after ``timeout`` s."""
        if not self.dlms_link.wait_quiet(quiet_ms / 1000.0, timeout, side="a"):
            raise RigTimeout("DLMS wire not quiet for %d ms within %.1f s (%d bytes unread by "
                             "the meter)" % (quiet_ms, timeout, self.dlms_link.unread("a"))
                             + self.ctl.context())

    def set_load(self, watts, pf_centi=100):
        """Set the load connected behind the meter (whole watts, pf in 1/100).

        With ``relay_gates_load`` the PZEM measures downstream of the
        relay: while the relay is reported open it reads 0 W, and the load
        returns when the relay closes.
        """
        with self.ctl.cond:
            self._load = (watts, pf_centi)
            self._apply_load()

    @property
    def load_w(self):
        """The load set with `set_load` (W), whether or not the relay passes it."""
        with self.ctl.cond:
            return self._load[0]

    def _apply_load(self):
        # caller holds self.ctl.cond
        watts, pf = self._load
        if self.relay_gates_load and self.control.relay is False:
            watts = 0
        if self.pzem is not None:
            self.pzem.set_load(watts, pf)

    def advance(self, seconds, timeout=10.0, expect_wh=None):
        """Integrate the load for ``seconds``, move the RTC, wait for the meter.

        Sends ``time <epoch+seconds>`` and waits for a ``meter`` line with that
        epoch (or later) and import energy == the PZEM's + ``wh_offset`` (or ``expect_wh``).
        Returns that Telemetry.
        """
        seconds = int(seconds)
        if seconds < 0:
            raise ValueError("advance: seconds must be >= 0")
        wh = self.pzem.advance(seconds) + self.wh_offset
        if expect_wh is not None:
            wh = expect_wh
        # the meter's clock moves only once it has asked the module again: a reply with the old
        # counter read after the new time would be a counter that stood still for the whole
        # interval, and the energy of the interval would then come in no time at all (the
        # metering module's plausibility rule, meter.metrology.Health, refuses that)
        if seconds:
            self.pzem.wait_asked()
        with self.ctl.cond:
            self.control.epoch += seconds
            epoch = self.control.epoch
        self.send("time %d" % epoch)
        return self.wait_meter(lambda m: m.epoch >= epoch and m.wh == wh, timeout,
                               what="meter line with epoch >= %d and wh == %d" % (epoch, wh))

    @property
    def clock(self):
        """The rig's RTC value (epoch seconds) as last sent to the board."""
        with self.ctl.cond:
            return self.control.epoch

    @clock.setter
    def clock(self, epoch):
        self.set_clock(epoch)

    def set_clock(self, epoch, timeout=10.0):
        """Set the board's RTC (epoch s) and wait until the board has handled it.

        While the meter is off this only sets the RTC it boots with (its battery-backed clock
        moved while unpowered): `power_on` hands it to the board."""
        with self.ctl.cond:
            self.control.epoch = int(epoch)
        if not self._powered():
            return
        self.send("time %d" % int(epoch))
        self.sync(timeout)

    def relay_closed(self):
        """Last reported relay state.  Raises RigError if none reported yet."""
        with self.ctl.cond:
            state = self.control.relay
        if state is None:
            raise RigError("relay state unknown (meter off or no 'relay' line yet)")
        return state

    def wait_relay(self, closed, timeout=10.0):
        """Wait until the relay is reported closed (True) / open (False)."""
        closed = bool(closed)
        self._wait(lambda: self.control.relay is closed, timeout,
                   "relay %s" % ("closed" if closed else "open"))

    def press_button(self):
        """Send ``button`` and wait until the board has handled it."""
        self.send("button")
        self.sync()

    def set_cover(self, opened):
        """Operate the meter-cover (tamper) switch; waits until the board handled it."""
        self.send("cover %s" % ("open" if opened else "closed"))
        self.sync()

    def hang(self, ms):
        """Block the firmware's event loop for ``ms`` (a hung task: the watchdog's job)."""
        self.send("hang %d" % int(ms))

    @property
    def meter(self):
        """Latest Telemetry (None before the first metering cycle)."""
        with self.ctl.cond:
            return self.control.telemetry

    def wait_meter(self, predicate, timeout=10.0, what=None):
        """Wait for a Telemetry satisfying ``predicate``; return it.

        Checks the latest telemetry first, then each new one.
        """
        box = []

        def check():
            t = self.control.telemetry
            if t is not None and predicate(t):
                box.append(t)
                return True
            return False

        self._wait(check, timeout, what or "telemetry matching %r" % (predicate,))
        return box[0]

    def wait_event(self, code, timeout=10.0, start=0):
        """Wait for an ``event <code> ...`` at index >= ``start``; return (code, text)."""
        code = str(code)
        box = []

        def check():
            for ev in self.control.events[start:]:
                if ev[0] == code:
                    box.append(ev)
                    return True
            return False

        self._wait(check, timeout, "event %s" % code)
        return box[0]
