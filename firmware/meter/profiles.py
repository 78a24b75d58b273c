"""IS 15959 profiles on flash: block load survey, daily (midnight) snapshots, billing entries,
maximum demand per TOD zone and the cumulative counters (``../shared/reference/is15959-profiles.md``).

Served by ``meter.cosem_prof`` (IC 7 1.0.99.1.0.255, 1.0.99.2.0.255, 1.0.98.1.0.255 ...).
``Meter`` calls (meter.app): ``tick(now)`` once a metering cycle BEFORE the cycle's energy is
charged, ``bill(b)`` for each billing month the tariff closed (``Tariff.bills`` tuple),
``clock_set(old, new)`` before the RTC is set, ``count(code)`` for each event logged.

Intervals are half-open in local time: block ``[s, s + P)``, P the capture period
(``profile_period`` s, default 1800, 1.0.0.8.4.255), demand period ``[p, p + D)`` (D
``demand_period`` s, default 900, 1.0.0.8.0.255), day ``[00:00, 24:00)``. A cycle's energy and
charge belong to the interval holding the moment it is charged (its end): the first tick at or
after an interval's end closes it with the cumulative counters of that moment (the cycle is then
charged into the next one). Each entry's clock column is its interval's end (capture time).

- Block entry: clock, import Wh, average voltage (0.1 V) and current (0.01 A) over the cycles of
  the block, status, charge = paise taken from the balance in the block (``K`` = total recharged
  - credit rises by every debit: energy, fixed, duty, and by debt recovered from top-ups).
- Daily entry: clock (local midnight), cumulative import Wh, credit, the day's energy, fixed and
  duty debits (paise) and top-ups (paise). With no debt recovery, credit change = top-ups -
  (energy + fixed + duty) for every day.
- Billing entry (on the tariff's billing date, the tariff's exact month totals; or on an MD
  reset): billing date, cumulative import Wh, cumulative Wh per TOD zone (TZ1 outside the tariff's
  windows, TZ2.. its windows in order, windows beyond the third fold into TZ4), MD total and per
  zone (W, with the end of its demand period), the month's energy/fixed/duty paise, power-on
  minutes in the cycle. MD is then reset.

Status bits (block column): 1 the supply failed in the block (closed at the first tick after
power-up, with the energy journaled before the cut); 2 the clock was set in the block (the block
is closed at the old time, stamped with it; a new block starts at the new time and ends at the
next boundary: both carry 2); 4 the block did not start at its boundary (first block after
commissioning or a power-up). Blocks and days wholly inside a power cut have no entry: the gap is
covered by the power-down/power-up events of the power log (0.0.99.98.2.255).

Persistence (power-cut safe): the meter's journal is saved first (``Meter.persist``, if the
state changed since), then the ring record (``meter.ring``, its file header holding the
cumulative counters the open interval starts from); the demand/counter state is one small CRC'd
file ``<dir>/3`` rewritten when the maximum demand changes and when a counter moves, while
the running demand period, TOD-zone energies and power-on time travel in the block ring's file
header at each block end (flash wear: bench/bench_wear.py). A cut between the two leaves the interval open;
it is closed at the next tick. The demand periods after the last state write that did not set a
maximum are recounted at power-up from the energy journaled (their average).
"""
import struct
import binascii

from meter.ring import Ring

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_DAY = const(86400)
_ZONES = const(4)
_FILL = const(96)             # at most this many empty blocks filled at once (then a jump)
_ST_POWER = const(1)                # status bits
_ST_CLOCK = const(2)
_ST_LATE = const(4)
_EV_CLOCK_SET = const(20)     # meter.events codes counted
_EV_CONFIG = const(21)
_EV_COVER_OPEN = const(60)
_EV_METERING_RESET = const(62)
# record layouts (struct formats, written where used: a module-level name is an interned name):
# block ">IHHHiBx" end, Wh, avg 0.1 V, avg 0.01 A, charge paise, status; daily ">IIiiiiI" midnight,
# cum Wh, credit, energy, fixed, duty, top-ups; block ring header ">IiII4II" cum Wh, K, demand
# period start, cum Wh there, TZ Wh, on s; daily header ">iiiII" month energy, fixed, duty, total
# recharged, cycle day; billing ">II4I10I3iI" date, cum Wh, TZ1-4 Wh, MD (W, t) total + TZ1-4,
# energy, fixed, duty, on min; state ">II4I10I7II" period start, cum Wh there, TZ Wh, MD, counters
_C_PF = const(0)              # counters: power failures, power-off s, power-on s, tamper,
_C_OFF = const(1)             # programming, billing count
_C_ON = const(2)
_C_TAMPER = const(3)
_C_PROG = const(4)
_C_BILL = const(5)
_C_ON0 = const(6)             # power-on s at the last billing entry


class Profiles:
    def __init__(self, meter, path, period=1800, demand=900, t0=0):
        """``t0``: the journal's last time the meter was on (epoch s; 0: first boot)."""
        self.m = meter
        self.path = path
        self.period = period
        self.demand = demand
        try:
            import os
            os.mkdir(path)
        except OSError:
            pass
        # <path>/0 block, 1 daily, 2 billing ring, 3 the state file (the ring's name pattern)
        self.block = Ring("%s/%d" % (path, 0), 16, 5, 337, 36)    # >= 35 days of 30-min blocks
        self.daily = Ring("%s/%d" % (path, 1), 28, 3, 14, 20)     # >= 40 days
        self.billing = Ring("%s/%d" % (path, 2), 80, 1, 13)       # >= 13 closed cycles
        self._s = [0, 0, 0]            # voltage/current sums, samples
        self._state = _ST_LATE
        self._pend = False          # the next block starts after a power-up
        self._t0 = 0             # after a power-up: the journal's last time alive
        self._restore()
        if t0:                   # a power-up: count it, the block open at the cut gets status 1
            now = meter.board.time()
            self._t0 = t0
            c = self.c
            c[_C_PF] += 1
            c[_C_OFF] += now - t0 if now > t0 else 0
            self._state |= _ST_POWER
            self._pend = now >= self.b0 + self.period
            self._save()

    # --- state -----------------------------------------------------------------------------
    def _epoch(self, t, p):
        tz = self.m.tz_minutes * 60
        return (t + tz) // p * p - tz

    def _restore(self):
        m = self.m
        now = m.board.time()
        self.z = [0] * _ZONES          # cumulative Wh per zone
        self.md = [0] * (2 * _ZONES + 2)
        self.c = [0] * 7
        self.p0 = self._epoch(now, self.demand)
        self.c0 = m.account.import_wh
        seq = -1                       # block ring seq when the state file was written
        try:
            with open("%s/%d" % (self.path, 3), "rb") as f:
                b = f.read(100)          # its size (read() grows a 256 B buffer)
            if binascii.crc32(b[:-4]) == struct.unpack(">I", b[-4:])[0]:
                v = struct.unpack(">II4I10I7II", b[:-4])
                self.p0, self.c0 = v[0], v[1]
                self.z = list(v[2:6])
                self.md = list(v[6:16])
                self.c = list(v[16:23])
                seq = v[23]
        except (OSError, ValueError):
            pass
        x = self.block.extra
        if x is None:
            self.b0, self.w0, self.k0 = self._epoch(now, self.period), m.account.import_wh, (m.account.total_recharged - m.account.credit)
        else:
            v = struct.unpack(">IiII4II", x)
            self.w0, self.k0 = v[0], v[1]
            if seq < self.block.last_seq:        # the ring's header is newer than the state file
                self.p0, self.c0, self.z, self.c[_C_ON] = v[2], v[3], list(v[4:8]), v[8]
            self.b0 = struct.unpack_from(">IHHHiBx", self.block.last(), 0)[0]
            self._state = 0
        x = self.daily.extra
        self.d0 = self._epoch(now, _DAY) if x is None else struct.unpack(">I", self.daily.last()[:4])[0]
        if x is None:
            t = m.tariff
            self.dx = (t.m_energy, t.m_fixed, t.m_duty, m.account.total_recharged, t.cyc)
        else:
            self.dx = struct.unpack(">iiiII", x)

    def count(self, code):
        """An event was logged: count power failures, tampers and programming."""
        c = self.c
        if code == _EV_COVER_OPEN or code == _EV_METERING_RESET:
            c[_C_TAMPER] += 1
        elif code == _EV_CLOCK_SET or code == _EV_CONFIG:
            c[_C_PROG] += 1
        else:
            return
        self._save()

    def _save(self):
        b = struct.pack(">II4I10I7II", self.p0, self.c0, *(self.z + self.md + self.c + [self.block.last_seq]))
        with open("%s/%d" % (self.path, 3), "wb") as f:
            f.write(b + struct.pack(">I", binascii.crc32(b)))

    # --- capture ---------------------------------------------------------------------------
    def tod(self, t):
        """TOD zone (0 = TZ1 ..) of epoch ``t``: 0 outside the tariff's windows, else 1 + the
        window's index (at most 3)."""
        minute = ((t + self.m.tz_minutes * 60) % _DAY) // 60
        i = 1
        for s, e, _ in self.m.tariff.tod:
            if s <= minute < e:
                return i if i < _ZONES else _ZONES - 1
            i += 1
        return 0

    def tick(self, now):
        """Close every interval that ended by ``now`` (before this cycle's energy is charged)."""
        m = self.m
        mo = m.metro
        if mo is not None and mo.voltage_dv is not None:
            s = self._s
            s[0] += mo.voltage_dv
            s[1] += (mo.current_ma or 0) // 10
            s[2] += 1
        wh = m.account.import_wh
        save = False
        if now >= self.p0 + self.demand or now < self.p0:
            save = self._expire(now, wh)
        if now >= self.b0 + self.period or now >= self.d0 + _DAY:
            a = m.account
            h = m.journal.hot                        # the journal first: a record never runs ahead
            if h is None or h[0] != a.credit or h[2] != a.import_wh:
                m.persist()
            n = 0
            while now >= self.b0 + self.period:      # the meter was on: every block has an entry
                n += 1
                self._next_block(self.b0 + self.period, now, 0 if n < _FILL else _ST_CLOCK)
            while now >= self.d0 + _DAY:
                self.day(self.d0 + _DAY, now)
        if save:
            self._save()

    def _expire(self, now, wh):
        """Close the demand period; True if the maximum demand changed (the state file is then
        written now; else at the next block end). After a power-up the saved period start may
        be older than the last one closed: the energy since is spread over the periods up to
        the journal's last time t0 (demand = the average over them)."""
        e = wh - self.c0 if wh > self.c0 else 0
        d = self.demand
        new = False
        if now >= self.p0:
            n = 1
            if self._t0:
                n = (self._t0 - self.p0 + d - 1) // d
                n = 1 if n < 1 else n
            z = self.tod(self.p0)
            self.z[z] += e
            w = e * 3600 // (d * n)
            t = self.p0 + d * n
            md = self.md
            if w > md[0]:
                md[0], md[1] = w, t
                new = True
            if w > md[2 + 2 * z]:
                md[2 + 2 * z], md[3 + 2 * z] = w, t
                new = True
            self.c[_C_ON] += d
        self._t0 = 0
        self.p0 = self._epoch(now, d)
        self.c0 = wh
        return new

    def _next_block(self, end, now, x):
        m = self.m
        wh = m.account.import_wh
        k = (m.account.total_recharged - m.account.credit)
        s = self._s
        n = s[2] or 1
        e = wh - self.w0
        rec = struct.pack(">IHHHiBx", end, e if e < 0xFFFF else 0xFFFF, s[0] // n, s[1] // n,
                          k - self.k0, self._state | x)
        self.block.append(rec, struct.pack(">IiII4II", wh, k, self.p0, self.c0, *(self.z + [self.c[_C_ON]])))
        self.w0, self.k0 = wh, k
        self._s = [0, 0, 0]
        self.b0 = self._epoch(now, self.period) if self._pend or x else end
        self._state = x | (_ST_LATE if self._pend else 0)
        self._pend = False

    def day(self, end, now):
        m = self.m
        t = m.tariff
        a = m.account
        me, mf, md, tr, cyc = self.dx
        if t.cyc != cyc:          # a billing month closed since: its totals are the last bill's
            b = self.billing.last()
            if b is not None:
                v = struct.unpack(">II4I10I3iI", b)
                me, mf, md = me - v[16], mf - v[17], md - v[18]
            else:
                me = mf = md = 0
        rec = struct.pack(">IIiiiiI", end, a.import_wh, a.credit, t.m_energy - me, t.m_fixed - mf,
                          t.m_duty - md, a.total_recharged - tr)
        self.dx = (t.m_energy, t.m_fixed, t.m_duty, a.total_recharged, t.cyc)
        self.daily.append(rec, struct.pack(">iiiII", *self.dx))
        self.d0 = end if now - end < 3 * _DAY else self._epoch(now, _DAY)

    def bill(self, b=None):
        """Capture a billing entry and reset MD: ``b`` a closed tariff month (start day, Wh,
        energy, fixed, duty), None for an MD reset (the running month so far)."""
        m = self.m
        t = m.tariff
        if b is None:
            b = (t.cyc, t.m_wh, t.m_energy, t.m_fixed, t.m_duty)
            date = m.board.time()
            wh = m.account.import_wh
        else:
            date = t.cyc * _DAY - m.tz_minutes * 60
            wh = self.w0          # the block closed at the billing date (before this cycle)
        c = self.c
        rec = struct.pack(">II4I10I3iI", date, wh, *(self.z + self.md + [b[2], b[3], b[4],
                                                               (c[_C_ON] - c[_C_ON0]) // 60]))
        m.persist()
        self.billing.append(rec)
        c[_C_BILL] += 1
        c[_C_ON0] = c[_C_ON]
        self.md = [0] * (2 * _ZONES + 2)
        self._save()

    def clock_set(self, old, new):
        """The RTC goes from ``old`` to ``new``: the open block is closed at the old time (status
        2), a new one starts at the new time and ends at its next boundary (status 2 too)."""
        self._next_block(old, new, _ST_CLOCK)
        self.p0 = self._epoch(new, self.demand)
        self.c0 = self.m.account.import_wh
        self._save()
        if new < self.d0:
            self.d0 = self._epoch(new, _DAY)

    def state(self):
        """The running cycle as a billing-entry tuple (IS 15959: index >= entries in use)."""
        m = self.m
        t = m.tariff
        z = list(self.z)
        e = m.account.import_wh - self.c0
        z[self.tod(self.p0)] += e if e > 0 else 0
        return struct.unpack(">II4I10I3iI", struct.pack(">II4I10I3iI", m.board.time(), m.account.import_wh,
                                                *(z + self.md + [t.m_energy, t.m_fixed, t.m_duty,
                                                                 (self.c[_C_ON] - self.c[_C_ON0]) // 60])))
