"""The metering task: polls the metering module (``meter.metrology.Module``), hands each poll to
the meter's tick, and acts on the module's faults (issue 13).

``Metering(meter, kind, unit)``: ``kind`` is config.json ``metering_module`` ("pzem004t",
"sdm120", "sdm630"; an unknown name falls back to "pzem004t" and logs a config event),
``unit`` its Modbus address (``modbus_unit``). ``metering.run()`` returns the task (a generator
for ``meter.metrology.loop``): it builds the ``Module`` at once on the board's Modbus UART (baud ``board.modbus_baud``, default 9600; fault
clock ``board.time``), carries the energy baseline over from the journal (``meter.module_wh``:
energy counted while the meter was down is charged at the first reading if within the slack,
else at the next one that confirms it: ``Health``) and polls for ever
with ``Module.run`` (no heap per poll). After each poll ``after()``:

- logs the module's outcome: FAULT -> event 70 "metering module fault" (once per fault, after
  ``fail_polls`` failed polls in a row or ``fail_s`` seconds), RECOVERED -> event 71 with the
  Wh the module counted during the fault (charged by this tick, over the fault's interval),
  COUNTER_RESET -> event 62, a tamper event: the counter went backwards (module reset or
  swapped) or jumped beyond what the supply can deliver (``max_w``: the profile's
  ``metering.max_w``, 0 = the module's rating, 26 kW single-phase, 83 kW SDM630), confirmed
  over ``fail_polls`` readings and a minute (``meter.metrology.Health``: one odd reading is a
  glitch and moves no money); nothing is credited nor charged for the unknown part and the
  new counter is the baseline (a stale counter's step too: docs/CONTRACTS.md);
- applies the fault policy (``Policy.metering``: the profile's ``metering`` section):
  "keep_supply" leaves the relay alone; "open_after" opens it (IC 70 local disconnect, cause
  "metering", event 42) once the fault has lasted ``grace_s`` seconds, and recloses it (local
  reconnect: control modes 5, 6; else the button) at the first good reading, also after a
  reboot (the cause is journaled);
- runs ``meter.meter_tick()`` (charges ``module.delta_wh``) and feeds the watchdog (also after an
  error: ``after``).

While the module is faulted its instantaneous values are None (``Module``): voltage, current
and power answer temporary-failure over DLMS, and the error register 0.0.97.97.0.255 has bit 0
set (``meter.cosem_values``). Nothing is estimated during a fault: the module keeps counting,
and its counter is charged at recovery.
"""
from meter.metrology import Module
from meter.store import undo

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# outcome flags (meter.metrology)
_FAULT = const(1)
_RECOVERED = const(2)
_COUNTER_RESET = const(4)
# event codes (meter.events)
_EV_CONFIG = const(21)
_EV_METERING_RESET = const(62)
_EV_METERING_FAULT = const(70)
_EV_METERING_RECOVERED = const(71)
_READY = const(2)              # IC 70 ready_for_reconnection (meter.relay)
_ON_FAULT_OPEN = const(1)      # Policy.metering[2]: 0 keep supply, 1 open after grace_s
# max_w default (Policy.metering[4] 0): the module's rating, its max current x max voltage
_MAX_W_1P = const(26000)       # PZEM-004T 100 A x 260 V (SDM120: 45 A x 276 V is below)
_MAX_W_3P = const(83000)       # SDM630 3 x 100 A x 276 V


class Metering:
    """The metering task of ``meter`` (see the module docstring)."""

    def __init__(self, meter, kind="pzem004t", unit=1):
        self.meter = meter
        self.kind = kind
        self.unit = unit
        self.t_fault = 0       # RTC s of the fault event (for grace_s)

    def build(self):
        """The metering module, built while the meter boots (``Meter.__init__``: its 296 B
        instance dict, masters and buffers before the journal and event-log scans fragment the
        heap); an unknown kind builds a pzem004t, logged by ``run``."""
        b = self.meter.board
        kw = {"baud": getattr(b, "modbus_baud", 9600), "clock": b.time}
        try:
            return Module(b.modbus_stream(), self.kind, self.unit, tx_enable=b.modbus_tx_enable, **kw)
        except ValueError:
            return Module(b.modbus_stream(), "pzem004t", self.unit, tx_enable=b.modbus_tx_enable, **kw)

    def _limits(self, h):
        # the profile's metering rules into the module's Health (a profile applied since boot)
        p = self.meter.policy.metering
        h.fail_polls, h.fail_s = p[0], p[1]
        h.max_w = p[4] or (_MAX_W_3P if self.kind == "sdm630" else _MAX_W_1P)

    def run(self):
        """The task that polls the module (``meter.metro``, ``build``) for ever (``after()``
        after each poll), started before the meter says ``ready``."""
        mt = self.meter
        m = mt.metro
        if m.kind != self.kind:
            mt.event(_EV_CONFIG, "metering_module %s unknown: pzem004t" % self.kind, "module")
            self.kind = m.kind
        h = m.health
        h.baseline_wh = mt.module_wh   # charge across a reboot (None: first reading)
        self._limits(h)
        return m.run(mt.board.poll_ms, self.after)

    def after(self):
        """After each poll: events, fault policy, the meter's tick, the watchdog. Out of memory or a journal
        write refused: the meter's state and the metrology baseline back to the journal (``meter.store.undo``:
        this poll's Wh charged by the next one), and the task goes on (the firmware ran out before)."""
        try:
            self._after()
        except (MemoryError, OSError) as e:
            try:
                undo(self.meter, e)
            except OSError:
                pass
        self.meter.board.wdt_feed()

    def _after(self):
        mt = self.meter
        m = mt.metro
        p = mt.policy.metering
        h = m.health
        self._limits(h)
        o = m.outcome
        now = mt.board.time()
        if o & _FAULT:
            self.t_fault = now
            mt.event(_EV_METERING_FAULT, "metering module fault: %s after %d polls"
                     % (m.last_error, h.fails), h.fails)
        if o & _RECOVERED:
            mt.event(_EV_METERING_RECOVERED, "metering module recovered: %d Wh counted during "
                     "the fault" % m.fault_wh, m.fault_wh)
        if o & _COUNTER_RESET:
            mt.event(_EV_METERING_RESET, "tamper: metering counter re-based at %d Wh"
                     % m.energy_wh, m.energy_wh)
        dc = mt.dc
        if m.faulted:
            if (p[2] == _ON_FAULT_OPEN and now - self.t_fault >= p[3]
                    and dc.local_disconnect("metering")):
                mt.policy.dirty = True
        elif m.fresh and dc.control_state == _READY and dc.cause == "metering":
            if dc.local_reconnect("metering"):
                mt.policy.dirty = True
        mt.meter_tick()
