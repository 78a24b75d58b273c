"""IS 15959 profiles (meter.profiles over meter.ring): block, daily, billing entries and MD, kept
across a power cut (a new Profiles on the same flash), on CPython and MicroPython."""
import struct

from meter.profiles import Profiles
from meter.profile import build
from meter.account import Account

from fsutil import tmpdir as _tmpdir, rmtree as _rmtree  # noqa: E402

T0 = 1767205800                       # 2026-01-01T00:00:00+05:30
TARIFF = {"tariff": {"slabs": [[100, 550], [0, 650]], "tod": [[600, 960, -100], [1080, 1320, 100]],
                     "fixed_paise_kw_month": 11000, "sanctioned_w": 2000, "duty_pm": 50, "billing_day": 1}}


class _Board:
    def __init__(self):
        self.t = T0

    def time(self):
        return self.t


class _Meter:
    """What Profiles reads of meter.app.Meter: account, tariff, board, metro, tz, persist()."""

    def __init__(self):
        self.board = _Board()
        self.account = Account(650, 100000)
        self.tariff = build(TARIFF)[0]
        self.tz_minutes = 330
        self.metro = None
        self.journal = self
        self.bills = []

    hot = None

    def persist(self):
        a = self.account
        self.hot = (a.credit, a.rem, a.import_wh, 0, self.board.t)

    def consume(self, prof, wh, t0=None):
        """One metering cycle [t0, now] (None: zero-length) at the board's time: tick, charge,
        close, bills (as Meter.meter_tick)."""
        now = self.board.t
        prof.tick(now, t0)
        self.account.meter(wh, self.tariff.charge(now if t0 is None else t0, now, wh, 19800))
        prof.close(now)
        while self.tariff.bills:
            self.bills.append(self.tariff.bills[0])
            prof.bill(self.tariff.bills.pop(0))


def _blocks(p):
    for r in p.block.records():
        yield struct.unpack(">IHHHiBx", bytes(r))


def test_blocks_days_and_bills_survive_a_power_cut():
    d = _tmpdir("prof")
    try:
        m = _Meter()
        p = Profiles(m, d + "/pr")
        credit0 = m.account.credit
        cut = 24 * 5 + 7
        for h in range(24 * 33):                       # 33 days, 100 Wh at each hour's start
            if cut < h < cut + 3:
                continue                               # power cut: off for 3 h
            m.board.t = T0 + 3600 * h
            if h == cut + 3:                           # power-up: a new instance on the same flash
                p = Profiles(m, d + "/pr", t0=T0 + 3600 * cut)
            m.consume(p, 100)
        m.board.t = T0 + 3600 * 24 * 33
        credit_end = m.account.credit                  # the last tick closes; its charge is after
        m.consume(p, 0)
        n = wh = paise = 0
        prev = 0
        status = []
        for x in _blocks(p):              # streamed: a 35-day ring is never a list in RAM
            n += 1
            wh += x[1]
            paise += x[4]
            assert x[0] > prev                                           # in order, no duplicate
            prev = x[0]
            if x[5]:
                status.append(x[5])
        assert n == 48 * 33 - 5                        # 5 blocks inside the cut
        assert wh == m.account.import_wh
        assert paise == credit0 - credit_end           # every paisa in a block
        assert status == [4, 1, 4]                     # commissioning, power-fail, late
        days = [struct.unpack(">IIiiiiI", bytes(r)) for r in p.daily.records()]
        assert len(days) == 33
        assert days[-1][2] == credit_end
        for a, c in zip(days, days[1:]):
            assert a[2] - c[2] == c[3] + c[4] + c[5] - c[6]              # debits = credit change
        bills = list(p.billing.records())
        assert len(bills) == 1
        v = struct.unpack(">II4I10I3iI", bytes(bills[0]))
        assert v[0] == T0 + 31 * 86400 and v[1] == 31 * 24 * 100 - 200
        assert v[6] == 400 and sum(v[2:6]) == v[1]                        # MD 100 Wh in 15 min
    finally:
        _rmtree(d)


def test_ring_wraps_in_order_and_reopens_the_same():
    from meter.ring import Ring
    d = _tmpdir("ring")
    try:
        r = Ring(d + "/r", 4, 3, 4, 2)
        for i in range(1, 31):
            r.append(struct.pack(">I", i), struct.pack(">H", i))
        assert r.capacity == 12 and r.count() == 12
        for ring in (r, Ring(d + "/r", 4, 3, 4, 2)):     # and after a reboot
            assert [struct.unpack(">I", bytes(x))[0] for x in ring.records()] == list(range(19, 31))
            assert [struct.unpack(">I", bytes(x))[0] for x in ring.records(2, 3)] == [20, 21]
            assert ring.extra == struct.pack(">H", 30) and ring.last_seq == 30
        r.append(struct.pack(">I", 31), b"\x00\x1f")
        assert [struct.unpack(">I", bytes(x))[0] for x in r.records()] == list(range(22, 32))
    finally:
        _rmtree(d)


def test_clock_set_closes_the_block_at_the_old_time_and_starts_one_at_the_new():
    d = _tmpdir("prof")
    try:
        m = _Meter()
        p = Profiles(m, d + "/pr")
        m.board.t = T0 + 600
        m.consume(p, 50)
        p.clock_set(T0 + 700, T0 + 7200 + 1000)           # forward, mid-block
        m.board.t = T0 + 7200 + 1000
        m.consume(p, 30)
        m.board.t = T0 + 7200 + 1800
        m.consume(p, 0)
        b = list(_blocks(p))
        assert [(x[0], x[1], x[5]) for x in b] == [(T0 + 700, 50, 4 | 2), (T0 + 7200 + 1800, 30, 2)]
        p.clock_set(T0 + 7200 + 1900, T0 + 300)          # backward: entries keep their order
        m.board.t = T0 + 1800
        m.consume(p, 0)
        b = list(_blocks(p))
        assert [(x[0], x[5]) for x in b[2:]] == [(T0 + 7200 + 1900, 2), (T0 + 1800, 2)]
    finally:
        _rmtree(d)


# --- a cycle's Wh in the intervals of its own time (the tariff's split at their edges) -----------
def _truth(cycles, a, b):
    """Wh of the load in [a, b): each cycle (t0, t1, wh) at constant power (chosen so that every
    part is whole Wh), a zero-length one at t1."""
    e = 0
    for t0, t1, wh in cycles:
        if t1 > t0:
            lo, hi = max(a, t0), min(b, t1)
            if hi > lo:
                e += wh * (hi - lo) // (t1 - t0)
        elif a <= t1 < b:
            e += wh
    return e


def _fresh(run):
    """``run(m, p, path)`` with a new meter and its Profiles at ``path`` (removed after)."""
    d = _tmpdir("prof")
    try:
        m = _Meter()
        run(m, Profiles(m, d + "/pr"), d + "/pr")
    finally:
        _rmtree(d)


def _drive(m, p, cycles):
    """Meter cycles (t0, t1, wh) in turn (T0-relative); returns the debits' times and paise."""
    debits = []
    for t0, t1, wh in cycles:
        m.board.t = T0 + t1
        c = m.account.credit
        m.consume(p, wh, T0 + t0)
        debits.append((T0 + t1, c - m.account.credit))
    return debits


def test_a_cycles_wh_go_to_the_blocks_and_demand_periods_of_its_own_time():
    def run(m, p, path):
        cycles = [(0, 1200, 1200),         # 1 Wh/s, inside the first block
                  (1200, 2400, 2400),      # 2 Wh/s across the edge 1800
                  (2400, 5400, 3000),      # 1 Wh/s across 2700, 3600, 4500, ending on the edge 5400
                  (5400, 5400, 50),        # zero-length on an edge: in what starts there
                  (5400, 9400, 12000),     # 3 Wh/s across several edges
                  (9400, 10800, 0)]
        debits = _drive(m, p, cycles)
        b = list(_blocks(p))
        want = [(T0 + s + 1800, _truth(cycles, s, s + 1800)) for s in range(0, 10800, 1800)]
        assert [(x[0], x[1]) for x in b] == want
        assert [x[1] for x in b] == [2400, 2400, 1800, 5450, 5400, 1200]
        assert sum(x[1] for x in b) == m.account.import_wh
        # a cycle's paise are taken at its end (on an edge: in the block that starts there)
        assert [x[4] for x in b] == [sum(c for t, c in debits if T0 + s <= t < T0 + s + 1800)
                                     for s in range(0, 10800, 1800)]
        # demand: each 15-min period its own Wh; MD = the largest, 2750 Wh in [5400, 6300)
        peak = max(_truth(cycles, s, s + 900) for s in range(0, 10800, 900))
        assert peak == 2750 and p.md[:4] == [peak * 4, T0 + 6300, peak * 4, T0 + 6300]
        assert sum(p.z) == m.account.import_wh
    _fresh(run)


def test_the_bill_takes_the_wh_and_demand_up_to_its_billing_date():
    def run(m, p, path):
        bd = 31 * 86400                                   # February 1st, 00:00 local
        cycles = [(0, 1800, 900), (bd - 1800, bd - 900, 900),    # 1 Wh/s: 3600 W
                  (bd - 900, bd + 900, 3600)]                    # 2 Wh/s across the billing date
        _drive(m, p, cycles)
        v = struct.unpack(">II4I10I3iI", bytes(list(p.billing.records())[0]))
        assert v[0] == T0 + bd and v[1] == 900 + 900 + 1800 == m.bills[0][1]     # the tariff's month Wh
        assert v[6:8] == (7200, T0 + bd) and sum(v[2:6]) == v[1]          # 1800 Wh in [bd-900, bd)
        assert p.md[:2] == [7200, T0 + bd + 900]                       # the new month's first period
    _fresh(run)


def test_clock_set_forward_and_back_with_cycles_across_edges():
    def run(m, p, path):
        _drive(m, p, [(0, 1200, 1200), (1200, 2400, 1200)])          # 1 Wh/s across 1800
        p.clock_set(T0 + 2500, T0 + 20000)                            # forward, between two cycles
        _drive(m, p, [(2400, 20700, 100),       # the meter's cycle spans the set: in the new block
                      (20700, 21700, 1000),     # 1 Wh/s across 21600
                      (21700, 23400, 1700)])
        p.clock_set(T0 + 23500, T0 + 5000)                            # backward
        _drive(m, p, [(23400, 5100, 50),        # starts after its end: all of it at its end
                      (5100, 5700, 600),        # across 5400
                      (5700, 7200, 0)])
        b = [(x[0] - T0, x[1], x[5]) for x in _blocks(p)]
        assert b == [(1800, 1800, 4), (2500, 600, 2), (21600, 1000, 2), (23400, 1800, 0),
                     (23500, 0, 2), (5400, 350, 2), (7200, 300, 0)]
        assert sum(x[1] for x in b) == m.account.import_wh
        assert sum(p.state()[2:6]) == m.account.import_wh
    _fresh(run)


def test_rounding_and_power_cuts_lose_or_make_no_wh():
    """Uneven cycles (every split rounds) with power cuts: the register's Wh at a block's end (the
    ring header the next block starts from) follow the split rule of the cycle that closed it,
    the blocks sum to the register, no block record runs ahead of the journal, the TOD-zone Wh
    sum to the register too."""
    def run(m, p, path):
        x = 12345
        t = 0
        seq = -1
        for i in range(400):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            dt = x % 2700 if i % 7 else 0
            t0, t = t, t + dt
            w = m.account.import_wh
            _drive(m, p, [(t0, t, (x >> 8) % 997)])
            wh = m.account.import_wh - w
            last = p.block.extra
            if last is not None and p.block.last_seq != seq:               # a block closed
                seq = p.block.last_seq
                cum = struct.unpack(">IiII4II", last)[0]
                assert cum <= m.hot[2]                                        # journaled first
                e = struct.unpack_from(">I", p.block.last(), 0)[0] - T0
                assert cum == w + (wh if e == t > t0 else wh * (e - t0) // (t - t0) if t0 < e else 0)
            if i % 97 == 96:                                                  # a cut: RAM from the journal
                a = m.account
                a.credit, a.rem, a.import_wh = m.hot[0], m.hot[1], m.hot[2]
                off = 3600 + x % 9000
                p = Profiles(m, path, t0=m.hot[4])
                t += off
                m.board.t = T0 + t
        _drive(m, p, [(t, t + 3 * 1800, 0)])
        b = list(_blocks(p))
        assert sum(x[1] for x in b) == m.account.import_wh > 50000
        assert sum(p.state()[2:6]) == m.account.import_wh
        ids = [x[0] for x in b]     # ascending, no repeat (no set: a 4 KiB table at the runner's heap)
        assert all(ids[i] < ids[i + 1] for i in range(len(ids) - 1))
    _fresh(run)
