"""IS 15959 profiles on flash: block load survey, daily (midnight) snapshots, billing entries,
maximum demand per TOD zone and the cumulative counters (``../shared/reference/is15959-profiles.md``).

Served by ``meter.cosem_prof`` (IC 7 1.0.99.1.0.255, 1.0.99.2.0.255, 1.0.98.1.0.255 ...).
``Meter`` calls (meter.app) once a metering cycle [t0, now]: ``tick(now, t0)`` BEFORE its energy
is charged, ``close(now)`` after, then ``bill(b)`` for each billing month the tariff closed
(``Tariff.bills`` tuple); ``clock_set(old, new)`` before the RTC is set, ``count(code)`` for
each event logged.

Intervals are half-open in local time: block ``[s, s + P)``, P the capture period
(``profile_period`` s, default 1800, 1.0.0.8.4.255), demand period ``[p, p + D)`` (D
``demand_period`` s, default 900, 1.0.0.8.0.255), day ``[00:00, 24:00)``. Energy: a cycle's Wh
are taken at constant power over [t0, now] and split at the block and demand edges inside it as
``meter.tariff`` splits them (cumulative floor: the part up to edge e holds ``floor(wh * (e -
t0) / (now - t0))`` minus the Wh before it; the parts sum to wh): each block and demand period
holds the Wh of its own time (a zero-length cycle: all at ``now``, in the interval starting
there; a cycle ending on an edge: all in the interval ending there). ``close`` closes them after
the cycle is charged and journaled, so no record holds Wh the journal has not. Money: a cycle's
paise are taken at its end (in the block holding ``now``; on an edge, the one starting there); the
days close in ``tick`` with the balance and the tariff's totals of that moment. Each entry's
clock column is its interval's end (capture time).

- Block entry: clock, import Wh, average voltage (0.1 V) and current (0.01 A) over the cycles of
  the block, status, charge = paise taken from the balance in the block (``K`` = total recharged
  - credit rises by every debit: energy, fixed, duty, and by debt recovered from top-ups).
- Daily entry: clock (local midnight), cumulative import Wh (as charged before midnight's tick:
  a cycle across midnight is the next day's, like its paise), credit, the day's energy, fixed and
  duty debits (paise) and top-ups (paise). With no debt recovery, credit change = top-ups -
  (energy + fixed + duty) for every day.
- Billing entry (on the tariff's billing date, the tariff's exact month totals; or on an MD
  reset): billing date, cumulative import Wh (to the billing date: the cycle across it split, as
  the tariff splits its month's Wh), cumulative Wh per TOD zone (TZ1 outside the tariff's
  windows, TZ2.. its windows in order, windows beyond the third fold into TZ4), MD total and per
  zone (W, with the end of its demand period; the periods before the billing date), the month's energy/fixed/duty paise, power-on
  minutes in the cycle. MD is then reset.

Status bits (block column): 1 the supply failed in the block (closed at the first tick after
power-up, with the energy journaled before the cut and the share to its end of a cycle that spans
the cut: the meter's first cycle after power-up starts at the journal's last time, as the tariff
charges it); 2 the clock was set in the block (the block
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
_ST_PEND = const(8)           # (not in the record) the next block starts after a power-up
# Profiles._s: the open block's voltage/current sums and samples (0-2); the metering cycle [t0, t1]
# (``tick``) and the register's Wh and paise taken before it; after a power-up the journal's last
# time alive (else 0); the cumulative Wh and paise the open block starts from
_S_T0 = const(3)
_S_T1 = const(4)
_S_W = const(5)
_S_K = const(6)
_S_UP = const(7)
_S_W0 = const(8)
_S_K0 = const(9)
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
        self._s = [0] * 10
        self._state = _ST_LATE
        self._restore()
        if t0:                   # a power-up: count it, the block open at the cut gets status 1
            now = meter.board.time()
            self._s[_S_UP] = t0
            c = self.c
            c[_C_PF] += 1
            c[_C_OFF] += now - t0 if now > t0 else 0
            self._state |= _ST_POWER | (_ST_PEND if now >= self.b0 + self.period else 0)
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
            with open(self.block.path[:-1] + "3", "rb") as f:    # <path>/3 beside the block ring <path>/0
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
            self.b0 = self._epoch(now, self.period)
            self._s[_S_W0], self._s[_S_K0] = m.account.import_wh, m.account.total_recharged - m.account.credit
        else:
            v = struct.unpack(">IiII4II", x)
            self._s[_S_W0], self._s[_S_K0] = v[0], v[1]
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
        with open(self.block.path[:-1] + "3", "wb") as f:
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

    def tick(self, now, t0):
        """Before the metering cycle [t0, now] is charged (``t0`` None: it starts at now): note its
        span, the register's Wh and the paise taken so far (``_at``); close the days ended by now."""
        m = self.m
        a = m.account
        mo = m.metro
        s = self._s
        if mo is not None and mo.voltage_dv is not None:
            s[0] += mo.voltage_dv
            s[1] += (mo.current_ma or 0) // 10
            s[2] += 1
        s[_S_T0] = now if t0 is None else t0
        s[_S_T1] = now
        s[_S_W] = a.import_wh
        s[_S_K] = a.total_recharged - a.credit
        if now >= self.d0 + _DAY:
            h = m.journal.hot                        # the journal first: a record never runs ahead
            if h is None or h[0] != a.credit or h[2] != a.import_wh:
                m.persist()
            while now >= self.d0 + _DAY:
                self.day(self.d0 + _DAY, now)

    def close(self, now):
        """After the cycle is charged (the journal first: a record never runs ahead of it), close
        the demand periods and blocks ended by ``now``, each with the Wh of its own time (the
        cycle's split at their edges: ``_at``). Demand periods: while the tariff holds a closed
        month only up to its billing date (``bill`` goes on); after a power-up the saved period
        start may be older than the last one closed: the Wh journaled since are spread over the
        periods up to the journal's last time (demand = the average over them); the time after,
        and a jump of more than a day, is one step with its Wh in the zone and no demand. The
        state file is written when a maximum demand changed (else at the next block end)."""
        if now < self.p0 + self.demand and now >= self.p0 and now < self.b0 + self.period:
            return
        m = self.m
        h = m.journal.hot
        if h is None or h[0] != m.account.credit or h[2] != m.account.import_wh:
            m.persist()
        d = self.demand
        md = self.md
        t = m.tariff
        new = False
        if now < self.p0:                  # the clock went back (not over DLMS): a new period
            w = self._at(self._epoch(now, d))
            self.z[self.tod(self.p0)] += w - self.c0
            self.p0, self.c0 = self._epoch(now, d), w
        end = t.cyc * _DAY - m.tz_minutes * 60 if t.bills else now
        n = 0
        while now >= self.p0 + d and self.p0 < end:
            n += 1
            x = self.p0 + d
            u = self._s[_S_UP]
            if u:                          # a power-up: the periods up to t0, then a jump (the cut)
                x = self.p0 + (u - self.p0 - 1) // d * d + d
                x = self.p0 + d if x <= self.p0 else x
                self._s[_S_UP], n = 0, _FILL
            if n > _FILL or x > now:
                x = self._epoch(now, d)
            x = end if x > end else x
            w = self._at(x)
            e = w - self.c0
            z = self.tod(self.p0)
            self.z[z] += e
            if n <= _FILL:
                v = e * 3600 // (x - self.p0)
                if v > md[0]:
                    md[0], md[1] = v, x
                    new = True
                if v > md[2 + 2 * z]:
                    md[2 + 2 * z], md[3 + 2 * z] = v, x
                    new = True
                self.c[_C_ON] += d
            self.p0, self.c0 = x, w
        n = 0
        while now >= self.b0 + self.period:      # the meter was on: every block has an entry
            n += 1
            self._next_block(self.b0 + self.period, now, 0 if n < _FILL else _ST_CLOCK)
        if new:
            self._save()

    def _at(self, x):
        """Cumulative import Wh at moment ``x`` of the last cycle [t0, t1] (``tick``): its Wh at
        constant power, ``floor(wh * (x - t0) / (t1 - t0))`` up to x (``meter.tariff``'s rule: the
        parts sum to wh); all of it at t1 for a zero-length cycle (half-open: in what starts there)."""
        s = self._s
        w = self.m.account.import_wh
        t0, t1 = s[_S_T0], s[_S_T1]
        if x > t1 or (x == t1 and t1 > t0):
            return w
        if x <= t0:
            return s[_S_W]
        return s[_S_W] + (w - s[_S_W]) * (x - t0) // (t1 - t0)

    def _next_block(self, end, now, x):
        m = self.m
        a = m.account
        s = self._s
        wh = self._at(end)
        k = s[_S_K] if end <= s[_S_T1] else a.total_recharged - a.credit    # a cycle's paise: at its end
        n = s[2] or 1
        e = wh - s[_S_W0]
        st = self._state
        rec = struct.pack(">IHHHiBx", end, e if e < 0xFFFF else 0xFFFF, s[0] // n, s[1] // n,
                          k - s[_S_K0], (st | x) & 7)
        self.block.append(rec, struct.pack(">IiII4II", wh, k, self.p0, self.c0, *(self.z + [self.c[_C_ON]])))
        s[_S_W0], s[_S_K0] = wh, k
        s[0] = s[1] = s[2] = 0
        self.b0 = self._epoch(now, self.period) if st & _ST_PEND or x else end
        self._state = x | (_ST_LATE if st & _ST_PEND else 0)

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
            wh = self._at(date)   # the Wh to the billing date (the tariff's split: its month's)
        c = self.c
        rec = struct.pack(">II4I10I3iI", date, wh, *(self.z + self.md + [b[2], b[3], b[4],
                                                               (c[_C_ON] - c[_C_ON0]) // 60]))
        m.persist()
        self.billing.append(rec)
        c[_C_BILL] += 1
        c[_C_ON0] = c[_C_ON]
        self.md = [0] * (2 * _ZONES + 2)
        if date < self._s[_S_T1]:     # the demand periods of the cycle after the billing date
            self.close(self._s[_S_T1])
        self._save()

    def clock_set(self, old, new):
        """The RTC goes from ``old`` to ``new``: the open block is closed at the old time (status
        2), a new one starts at the new time and ends at its next boundary (status 2 too)."""
        self._s[_S_T1] = 0        # no cycle open: the Wh and paise of now
        self._next_block(old, new, _ST_CLOCK)
        w = self.m.account.import_wh
        self.z[self.tod(self.p0)] += w - self.c0
        self.p0 = self._epoch(new, self.demand)
        self.c0 = w
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
