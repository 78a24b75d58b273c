"""Metering module over Modbus RTU: the task side of ``protocol.modbus_rtu.Master``, the
module types of ``meter.modules`` and the fault logic (``Health``); and ``loop``, the meter's
scheduler (generator tasks, in place of asyncio), which lives here because every meter loads this
module and its tick functions anyway: a module of its own costs 120-250 B of heap on 32 bits.

``Module(stream, kind, unit, ...)``; ``fresh = yield from module.poll()`` in a task: True if the
readings are new. One poll sends each request of the module's map (PZEM-004T: 1, SDM120/SDM630: 2):

1. drain: read and discard the line until it has been quiet for ``gap_ms`` (bounded by
   ``timeout_ms``): leftovers of an earlier reply, noise, a late answer are gone;
2. write the request (RS-485 driver enabled around it by ``tx_enable``);
3. feed what arrives to the framer until it finds the reply or gives up (``timeout_ms``
   with no frame, or ``gap_ms`` of silence inside a started frame);
4. a failed exchange is tried again after step 1, ``retries`` times at most; an exception
   reply is final.

``gap_ms`` is t3.5 (``modbus_rtu.silence_us``: 4.0 ms at 9600 baud) but at least ``MIN_GAP_MS``
= 20 ms: UART drivers and USB adapters hand bytes over in bursts (ESP-IDF's RX timeout, an
FTDI's 16 ms latency timer). ``readinto`` must not block (``machine.UART(timeout=0)``, a raw tty
with VMIN=VTIME=0) and may return None or 0. The poll is a non-blocking state machine,
``start()`` then ``step()`` (the ms to wait, -1 when done): a task of ``loop`` below (``poll()``,
``run()``) or a test with a fake clock. It allocates nothing on MicroPython; ``yield from
poll()`` costs the call's generator, ``run(period_ms, after)`` nothing (bench/bench_modbus.py).

Attributes after a poll (ints in the firmware's units, None when not known or invalid):
``voltage_dv``, ``current_ma``, ``power_dw`` (import, >= 0), ``energy_wh`` (import counter),
``export_wh``, ``frequency_dhz``, ``pf_centi`` (>= 0), ``alarm`` (PZEM), ``val`` (all slots of
``meter.modules``), ``fresh`` (this poll succeeded), ``errors``, ``last_error`` (a
``modbus_rtu.ERRORS`` name), ``exc_code``, ``discarded`` (bytes drained as noise), ``outcome``
(FAULT, RECOVERED, COUNTER_RESET), ``delta_wh`` (Wh to charge: 0 for an implausible reading,
``Health``), ``fault_wh`` (on RECOVERED: Wh counted during the fault), ``faulted`` (then the
instantaneous values are None; ``energy_wh`` keeps the last good counter).
"""
from meter import modules as mm
from protocol import modbus_rtu as mb

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython
    import time as _time
    from operator import add as ticks_add

    def ticks_ms():
        return int(_time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

MIN_GAP_MS = const(20)
_DRAIN = const(0)
_WAIT = const(1)

# Health outcome flags
FAULT = const(1)           # the module has just been declared faulty (once per fault)
RECOVERED = const(2)       # the first good reading after a fault (fault_wh is set)
COUNTER_RESET = const(4)   # the counter was re-based (confirmed reset or jump): tamper
_SLACK_S = const(2)        # clock slack of the plausibility rule: RTC seconds are whole
_CONFIRM_S = const(60)     # a re-base needs its odd readings to last this long (RTC s)
_HOLD_S = const(900)       # 'behind' reaches back to a baseline charged 15-30 min ago at least


class Health:
    """Fault logic of a metering module, pure (fed outcomes and times, no I/O, no heap while
    readings are minutes apart: a window of hours makes a long int on 32 bits).

    ``bad(now)`` after a failed poll, ``good(now, energy_wh)`` after a good one; ``now`` is
    seconds on any clock that does not step back (the RTC: board.time()). Both return the
    outcome flags of this poll (0, FAULT, RECOVERED, COUNTER_RESET, or RECOVERED|COUNTER_RESET):

    - FAULT once, when ``fail_polls`` polls in a row failed or ``fail_s`` s passed since the
      first (0: no time rule); ``faulted`` stays True until the next good poll, ``faults``.
    - RECOVERED on the next good poll that holds no step, judged as the first after a boot
      (below; the step also fits ``max_w`` over the fault): one forged reply at the recovery is
      not charged; ``fault_wh`` = the Wh counted since the last good reading before the fault.
    - A reading is plausible when it is at or above the baseline and the increase fits ``max_w``
      (W) over the time since the baseline reading (``t_base``, + ``_SLACK_S`` s + 1 Wh):
      charged, the new baseline. Anything else (lower: a reset or a glitch; higher: a forged or
      garbled reply) charges nothing and moves nothing (``glitches``); if the next reading is
      plausible again the odd one was a glitch: charged from the old baseline.
    - A reading below the baseline but not below a baseline from before the steps of the last
      15-30 min (the floor: it moves every ``_HOLD_S`` at most, never while readings are behind;
      not if 0: a reset lands there), or below it within the slack (``max_w`` in no time: 15 Wh
      at 26 kW), is behind forged steps that were charged: the baseline holds until the counter
      passes it (paid by the next Wh counted), no run. The baseline's time moves from the second
      such reading in a row on (the first may be forged low). After a boot the floor is the
      journaled baseline from the first charged reading on.
    - A run: ``max(2, fail_polls)`` odd readings in a row over at least ``_CONFIRM_S`` (60) s,
      each at or above the one before and plausible over its own interval (any other starts a
      new run: a forged 0 then the real count is no run): COUNTER_RESET, the counter restarted
      or jumped (reset, swapped, tampered with, or stale replies replayed), a tamper event; the
      latest reading is the new baseline, ``delta_wh`` = what was counted since the run's first
      reading, nothing for the step (the event log carries it). Charging a step no reading
      showed (stale replies) let 5 forged replies charge max_w x 1 h and open the relay (attack
      pass, session 14): a line under an attacker's control can under-report anyway.

    ``delta_wh``: the Wh to charge for this poll; ``baseline_wh``: the counter it is measured from
    (None until the first reading; the journaled value at boot: charged across a reboot);
    ``t_base``: the time of that reading, None after a boot (no battery-backed clock: the
    downtime is unknown, the first reading is bounded below only). Its increase is charged at
    once within the slack (a cut leaves less than ``persist_wh``, 10 Wh, unjournaled); a larger
    one waits for the next good reading to confirm it (at or above it, plausible over its own
    interval): charged in full, once, one poll late (a cut meanwhile leaves the journal as it
    was); else the first was forged or garbled: the next is judged as a first reading.
    """

    def __init__(self, fail_polls=5, fail_s=60, max_w=26000):
        self.fail_polls = fail_polls
        self.fail_s = fail_s
        self.max_w = max_w
        self.fails = 0
        self.since = 0
        self.faulted = False
        self.faults = 0
        self.resets = 0
        self.glitches = 0
        self.baseline_wh = None
        self.t_base = None
        self._p = None         # a baseline from before the steps of the last 15-30 min
        self._tc = 0           # when it was taken
        self.delta_wh = 0
        self.fault_wh = 0
        # odd readings in a row (-1: behind, below); the last (Wh, s); the first (Wh, s)
        self._n = self._wh = self._tp = self._w1 = self._t1 = 0
        self._rc = 0           # 1: recovered from a fault, RECOVERED not yet returned

    def bad(self, now):
        """A failed poll at ``now`` (s). Returns FAULT once per fault, else 0."""
        self.delta_wh = 0
        if self.fails == 0:
            self.since = now
        self.fails += 1
        if self.faulted:
            return 0
        if self.fails >= self.fail_polls or (self.fail_s and now - self.since >= self.fail_s):
            self.faulted = True
            self.faults += 1
            return FAULT
        return 0

    def shift(self, d):
        """The clock was set ``d`` s: the times kept here step with it (a SET confirms no run)."""
        if self.t_base is not None:
            self.t_base += d
        self._t1, self._tp, self._tc = self._t1 + d, self._tp + d, self._tc + d

    def _fits(self, d, dt):
        # d Wh in dt s: what the supply can deliver (max_w, clock slack, 1 Wh resolution)?
        return 0 <= d and (d - 1) * 3600 <= self.max_w * (max(dt, 0) + _SLACK_S)

    def good(self, now, energy_wh):
        """A good poll at ``now`` (s) with the module's import counter ``energy_wh`` (Wh).
        Returns 0 or RECOVERED and/or COUNTER_RESET; sets ``delta_wh``."""
        out = 0
        ok = 1                    # 0: a step above the baseline held for confirmation
        self.fails = 0
        last = self.baseline_wh
        tb = self.t_base
        if self.faulted:          # judged as after a boot (a forged reply was charged in full)
            self.faulted = False
            self._rc = 1
            self._n = 0
        d = 0 if last is None else energy_wh - last
        pend = tb is None or self._rc     # after a boot or a fault: beyond the slack waits
        if last is None or d >= 0 and (tb is None or self._fits(d, now - tb)) and (
                not pend or self._fits(d, 0)
                or self._n > 0 and self._fits(energy_wh - self._wh, now - self._tp)):
            # plausible; the floor moves every _HOLD_S at most, from a reading after a normal one
            if not self._p or self._n == 0 and now - self._tc >= _HOLD_S:
                self._p, self._tc = last, now
            self._n = 0
        elif d < 0 and (self._fits(-d, 0) or self._p and energy_wh >= self._p):
            # behind a forged step: the baseline holds (its time from the 2nd in a row on), no run
            now = tb if self._n >= 0 else now
            self._n = -1
            d = 0
            energy_wh = last
        else:
            self.glitches += 1
            # a run: each at or above the one before, plausible over its own interval (a forged 0
            # then the real count would confirm a "reset": the counter charged again); else anew
            if self._n > 0 and self._fits(energy_wh - self._wh, now - self._tp):
                self._n += 1
            else:
                self._n = 1
                self._w1, self._t1 = energy_wh, now
            self._wh, self._tp = energy_wh, now
            if self._n > 1 and self._n >= self.fail_polls and now - self._t1 >= _CONFIRM_S:
                self._n = 0
                out |= COUNTER_RESET          # re-based: the step itself is not charged
                self.resets += 1
                self._p, self._tc = self._w1, now     # the step charged: from the run's first
                d = energy_wh - self._w1
            else:
                ok = energy_wh <= last
                d = 0
                energy_wh, now = last, tb      # the baseline stays
        self.baseline_wh, self.t_base = energy_wh, now
        self.delta_wh = d
        if self._rc and ok:       # the first good reading after the fault that holds no step
            self._rc = 0
            out |= RECOVERED
            self.fault_wh = d
        return out


def _clock_s():
    return ticks_ms() // 1000


class Module:
    """A metering module of type ``kind`` ("pzem004t", "sdm120", "sdm630") at Modbus
    address ``unit`` on ``stream`` (see the module docstring for the exchange and the
    attributes). ``baud``: line speed (for t3.5). ``retries``: further tries per request.
    ``fail_polls``/``fail_s``: the fault rule (``Health``). ``clock``: seconds for that rule
    (board.time; default: the tick counter). ``ticks``: a ms tick function (tests).
    ValueError for an unknown kind; ModbusError('range') for a bad unit."""

    def __init__(self, stream, kind="pzem004t", unit=1, timeout_ms=500, tx_enable=None,
                 baud=9600, retries=2, fail_polls=5, fail_s=60, clock=None, ticks=None):
        fn, blocks, fields = mm.lookup(kind)
        self.kind = kind
        self._s = stream
        self._tx_enable = tx_enable
        self._gap = max(mb.silence_us(baud) // 1000 + 1, MIN_GAP_MS)
        self._fields = fields
        self._blocks = blocks
        self._masters = tuple(mb.Master(unit, fn, (blocks[i] << 8) | blocks[i + 1], blocks[i + 2],
                                        timeout_ms, self._gap) for i in range(0, len(blocks), 3))
        self._scratch = bytearray(32)
        self._ticks = ticks or ticks_ms
        self._clock = clock or _clock_s
        self.retries = retries
        self.health = Health(fail_polls, fail_s)
        self.val = [None] * mm.NSLOT
        self.voltage_dv = self.current_ma = self.power_dw = None
        self.frequency_dhz = self.pf_centi = None
        self.energy_wh = self.export_wh = None
        self.alarm = False
        self.fresh = False
        self.errors = 0
        self.last_error = ""
        self.exc_code = 0
        self.discarded = 0
        self.outcome = 0
        self.delta_wh = 0
        self.fault_wh = 0
        self.faulted = False
        self._state = _DRAIN
        self._blk = self._try = self._t0 = self._quiet = 0

    def start(self):
        """Begin a poll (then call ``step()`` until it returns -1)."""
        self._blk = self._try = 0
        self._state = _DRAIN
        self._t0 = self._quiet = self._ticks()

    def step(self):
        """Advance the poll started by ``start()`` without blocking: returns the ms to wait
        before the next call, or -1 when the poll is over (``fresh`` tells how)."""
        m = self._masters[self._blk]
        now = self._ticks()
        st = 0
        while True:
            k = self._s.readinto(self._scratch)
            if not k:
                break
            self._quiet = now
            if self._state == _DRAIN:      # input discarded until the line is quiet
                self.discarded += k
            else:                          # everything the UART holds goes to the framer
                st = m.feed(self._scratch, k)
                if st:
                    break
        if self._state == _DRAIN:
            # sent once the line was quiet for gap_ms (or at the timeout: sent anyway)
            if (ticks_diff(now, self._quiet) < self._gap
                    and ticks_diff(now, self._t0) < self._masters[0].timeout_ms):
                return self._gap
            tx = self._tx_enable
            if tx:
                tx(True)
            self._s.write(m.request)
            if tx:
                tx(False)
            m.begin()
            self._t0 = self._quiet = self._ticks()
            self._state = _WAIT
            return self._gap
        if not st:                         # then the clock decides
            st = m.idle(ticks_diff(now, self._t0), ticks_diff(now, self._quiet))
        if st == mb.NEED:
            return self._gap
        if st == mb.ERROR and self._try < self.retries:
            self._try += 1
        elif st != mb.FRAME:
            self.exc_code = m.exc_code
            self._fail(m.error)
            return -1
        else:
            self._blk += 1
            self._try = 0
            if self._blk == len(self._masters):
                self._fail(None if self._decode() else mb.E_VALUE)
                return -1
        self._state = _DRAIN       # a retry, or the next block: the line drains first
        self._t0 = self._quiet = self._ticks()
        return 0

    def poll(self):
        """Read every block of the module's map (a generator yielding the ms to wait: ``fresh =
        yield from module.poll()``); returns True if all values were refreshed."""
        self.start()
        ms = self.step()
        while ms >= 0:
            yield ms
            ms = self.step()
        return self.fresh

    def run(self, period_ms, after):
        """Poll for ever, calling ``after()`` after each poll and waiting ``period_ms``
        between polls: the task of the meter's loop (a generator yielding the ms to wait),
        without a generator object per poll (0 bytes of heap per poll on MicroPython)."""
        while True:
            self.start()
            ms = self.step()
            while ms >= 0:
                yield ms
                ms = self.step()
            after()
            yield period_ms

    def _decode(self):
        # all fields of the map into val, then the readings; False if a value is NaN/inf/out of range
        val = self.val
        f = self._fields
        b = self._blocks
        for j in range(0, len(f), 6):
            blk = f[j + 1]
            m = self._masters[blk]
            i = ((f[j + 2] << 8) | f[j + 3]) - ((b[3 * blk] << 8) | b[3 * blk + 1])
            kind = f[j + 4]
            if kind == mm.U16:
                v = m.reg(i)
            elif kind == mm.U32_LO_FIRST:
                v = m.u32_lo_first(i)
            else:
                k = 1
                for _ in range(f[j + 5]):
                    k *= 10
                v = m.f32(i, k)
                if v is None:
                    return False
            val[f[j]] = v
        self.voltage_dv = val[mm.VOLTAGE_DV]
        self.current_ma = abs(val[mm.CURRENT_MA])
        self.power_dw = max(0, val[mm.POWER_DW])
        self.frequency_dhz = val[mm.FREQUENCY_DHZ]
        self.pf_centi = abs(val[mm.PF_CENTI])
        self.energy_wh = val[mm.IMPORT_WH]
        self.export_wh = val[mm.EXPORT_WH]
        self.alarm = val[mm.ALARM] == 0xFFFF
        self.fresh = True
        self.exc_code = 0
        return True

    def _fail(self, why):
        """The poll's outcome for the health rule: a failure ``why`` (mb.ERRORS), or None after
        a good poll (its values set by ``step``)."""
        h = self.health
        if why is None:
            self.outcome = h.good(self._clock(), self.energy_wh)
        else:
            self.errors += 1
            self.last_error = mb.ERRORS[why]
            self.fresh = False
            self.outcome = h.bad(self._clock())
        self.delta_wh = h.delta_wh
        self.fault_wh = h.fault_wh
        self.faulted = h.faulted
        if why is not None and h.faulted:   # no stale value served as fresh
            self.voltage_dv = self.current_ma = self.power_dw = None
            self.frequency_dhz = self.pf_centi = None


def loop(tasks, ticks, idle):
    """The meter's scheduler (a superloop, in place of asyncio). ``tasks``: a list of generators,
    each yielding the ms to wait before it is resumed (0: let the others run; ``yield from`` for
    sub-steps). The task due first is resumed (tasks due at the same tick in turn); until then
    ``idle(ms)`` sleeps (``ticks()``: a ms tick counter). A task that returns is dropped; an
    exception in one ends the loop and is raised (the process ends, a board's watchdog resets
    it: as asyncio.gather did). Allocates nothing per pass."""
    m = n = len(tasks)
    wake = [ticks()] * m
    r = 0
    while n:
        i = -1
        for j in range(m):
            j = (r + j) % m
            if tasks[j] is not None and (i < 0 or ticks_diff(wake[j], wake[i]) < 0):
                i = j
        d = ticks_diff(wake[i], ticks())
        if d > 0:
            idle(d)
            continue
        r = i + 1
        try:
            d = next(tasks[i])
        except StopIteration:
            tasks[i] = None
            n -= 1
            continue
        wake[i] = ticks_add(ticks(), d)
