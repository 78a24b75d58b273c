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

    hot = None

    def persist(self):
        a = self.account
        self.hot = (a.credit, a.rem, a.import_wh, 0, self.board.t)

    def consume(self, prof, wh):
        """One metering cycle at the board's time: tick, then charge (as Meter.meter_tick)."""
        now = self.board.t
        prof.tick(now)
        self.account.meter(wh, self.tariff.charge(now, now, wh, 19800))
        while self.tariff.bills:
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
