"""Reference model of prepaid accounting and the disconnect policy, in exact arithmetic.

Written from the rules (README "Money, energy and rounding", ``meter/tariff.py`` and
``meter/policy.py`` docstrings), not from the firmware's integer code: amounts are
``fractions.Fraction`` of paise, calendar questions go through ``datetime`` in the meter's fixed
local offset, and each rule is applied the plain way. The firmware must agree with it to the
paisa; tests and the year-long HIL run compare the two.

The rules it encodes:

- an interval [t0, t1] with ``wh`` Wh runs at constant power; a 1 Wh counter started at t0 shows
  floor(wh * (x - t0) / (t1 - t0)) Wh at instant x, which decides how many whole Wh fall between
  two boundaries (TOD window edges, local midnight, billing date); an interval of length 0 puts
  all its Wh at t1;
- a Wh costs rate/1000 paise, rate from the telescopic slab its position in the billing month
  falls in, times (1 + adj/1000) inside a TOD window; energy charged so far = floor(exact sum);
- the billing month starts at 00:00 local on ``billing_day``; its fixed charge
  F = floor(fixed_paise_kw_month * sanctioned_w / 1000) is spread so that by the end of day k of
  n, floor(F*k/n) has been charged; a day's share is due at its 00:00 (or at commissioning);
- duty so far = floor(duty_pm/1000 * (energy + fixed paise charged so far));
- a top-up first repays emergency credit in use, then debt recovery takes debt_pct % of the
  rest (floor, at most the debt); the remainder of the top-up is credited;
- a disconnection is due when credit <= min_credit and no emergency credit is running; it is
  done at the first evaluation at an allowed moment (outside friendly hours, days off, second
  Saturdays, holidays); the relay recloses when credit >= reconnect (control modes 5, 6).
"""
import datetime
from fractions import Fraction

__all__ = ["RefTariff", "RefMeter", "RefCalendar"]


def _tz(minutes):
    return datetime.timezone(datetime.timedelta(minutes=minutes))


class RefCalendar:
    """When a disconnection may happen (policy section of a profile)."""

    def __init__(self, policy, tz_minutes=330):
        self.tz = _tz(tz_minutes)
        self.friendly = policy.get("friendly") or None
        self.days_off = set(policy.get("days_off", []))
        self.off_saturdays = set(policy.get("off_saturdays", []))
        self.holidays = {datetime.date.fromisoformat(h) for h in policy.get("holidays", [])}

    def local(self, epoch):
        return datetime.datetime.fromtimestamp(epoch, self.tz)

    def allowed(self, epoch):
        dt = self.local(epoch)
        if self.friendly:
            start, end = (datetime.time(m // 60, m % 60) if m < 1440 else None for m in self.friendly)
            now = dt.time()
            if end is None:
                inside = now >= start
            elif start < end:
                inside = start <= now < end
            else:
                inside = now >= start or now < end
            if inside:
                return False
        if dt.isoweekday() in self.days_off or dt.date() in self.holidays:
            return False
        if dt.isoweekday() == 6 and (dt.day + 6) // 7 in self.off_saturdays:
            return False
        return True

    def next_allowed(self, epoch):
        """The first allowed instant at or after ``epoch`` (minute resolution after the first)."""
        t = epoch
        for _ in range(60 * 24 * 40):
            if self.allowed(t):
                return t
            t = (t // 60 + 1) * 60
        raise ValueError("no allowed moment within 40 days")


class RefTariff:
    """Charges for a sequence of intervals; amounts are exact Fractions of paise."""

    def __init__(self, tariff, tz_minutes=330):
        self.tz = _tz(tz_minutes)
        if "slabs" in tariff:
            self.slabs = [(Fraction(upto * 1000) if upto else None, Fraction(rate, 1000))
                          for upto, rate in tariff["slabs"]]
        else:
            self.slabs = [(None, Fraction(tariff.get("rate", 650), 1000))]
        self.tod = []
        for start, end, adj in tariff.get("tod", []):
            self.tod.append((start, end, Fraction(1000 + adj, 1000)))
        self.fixed_month = tariff.get("fixed_paise_kw_month", 0) * tariff.get("sanctioned_w", 0) // 1000
        self.duty = Fraction(tariff.get("duty_pm", 0), 1000)
        self.billing_day = tariff.get("billing_day", 1)
        self.energy_exact = Fraction(0)     # lifetime
        self.fixed = 0                      # lifetime paise
        self.month_wh = 0
        self.month = None                   # date the current billing month began
        self.last_day = None                # last local date whose fixed share is charged
        self.month_log = []                 # closed months: dict(start, wh, energy, fixed, duty)
        self._month_base = None

    # --- calendar ----------------------------------------------------------------------------
    def _month_start(self, d):
        first = d.replace(day=self.billing_day)
        if d.day >= self.billing_day:
            return first
        return (first - datetime.timedelta(days=28)).replace(day=self.billing_day)

    def _month_len(self, start):
        y, m = (start.year, start.month + 1) if start.month < 12 else (start.year + 1, 1)
        return (datetime.date(y, m, self.billing_day) - start).days

    def energy_paise(self):
        return self.energy_exact.__floor__()

    def duty_paise(self):
        return (self.duty * (self.energy_paise() + self.fixed)).__floor__()

    def total_paise(self):
        return self.energy_paise() + self.fixed + self.duty_paise()

    def _snapshot(self):
        return (self.energy_paise(), self.fixed, self.duty_paise())

    def _close_month(self):
        e0, f0, d0 = self._month_base
        e, f, d = self._snapshot()
        self.month_log.append({"start": self.month, "wh": self.month_wh, "energy": e - e0,
                               "fixed": f - f0, "duty": d - d0})

    def _day(self, date):
        """Charge the fixed share of local ``date``; open a new billing month if it starts one."""
        if self.month is None or date >= self.month + datetime.timedelta(days=self._month_len(self.month)):
            if self.month is not None:
                self._close_month()
            self.month = self._month_start(date)
            self.month_wh = 0
            self._month_base = self._snapshot()
        n = self._month_len(self.month)
        k = (date - self.month).days + 1
        self.fixed += (self.fixed_month * k // n) - (self.fixed_month * (k - 1) // n)
        self.last_day = date

    def clock(self, epoch):
        """Let time run to ``epoch``: every day started by then has its fixed share charged."""
        today = datetime.datetime.fromtimestamp(epoch, self.tz).date()
        if self.last_day is None:
            self._day(today)
        while self.last_day < today:
            self._day(self.last_day + datetime.timedelta(days=1))

    def month_totals(self):
        """The open billing month so far: dict(start, wh, energy, fixed, duty)."""
        e0, f0, d0 = self._month_base
        e, f, d = self._snapshot()
        return {"start": self.month, "wh": self.month_wh, "energy": e - e0, "fixed": f - f0,
                "duty": d - d0}

    # --- energy --------------------------------------------------------------------------------
    def _factor(self, epoch):
        dt = datetime.datetime.fromtimestamp(epoch, self.tz)
        minute = dt.hour * 60 + dt.minute
        for start, end, f in self.tod:
            if (start <= minute < end) if start < end else (minute >= start or minute < end):
                return f
        return Fraction(1)

    def _whs_at(self, wh, factor):
        while wh > 0:
            for upto, rate in self.slabs:
                if upto is None or self.month_wh < upto:
                    break
            n = wh if upto is None else min(wh, int(upto) - self.month_wh)
            self.energy_exact += n * rate * factor
            self.month_wh += n
            wh -= n

    def _boundaries(self, t0, t1):
        """Instants strictly inside (t0, t1) where the tariff may change."""
        marks = set()
        day = datetime.datetime.fromtimestamp(t0, self.tz).replace(hour=0, minute=0, second=0)
        edges = {0}
        for start, end, _ in self.tod:
            edges.add(start)
            edges.add(end % 1440)
        while day.timestamp() < t1:
            for m in edges:
                x = int((day + datetime.timedelta(minutes=m)).timestamp())
                if t0 < x < t1:
                    marks.add(x)
            day += datetime.timedelta(days=1)
        return sorted(marks)

    def consume(self, t0, t1, wh):
        """``wh`` Wh over [t0, t1] (epoch s)."""
        if t1 <= t0:
            self.clock(t1)
            self._whs_at(wh, self._factor(t1))
            return
        self.clock(t0)
        span = t1 - t0
        def counted(x):
            return (Fraction(wh) * (x - t0) / span).__floor__()
        prev = t0
        for x in self._boundaries(t0, t1) + [t1]:
            self._whs_at(counted(x) - counted(prev), self._factor(prev))
            prev = x
            self.clock(x)


class RefMeter:
    """Credit register, top-ups, emergency credit and the relay, driven by a trace.

    Call ``clock(t)`` when time moves, ``consume(t0, t1, wh)`` for energy, ``top_up(amount, t)``,
    and ``evaluate(t)`` wherever the meter evaluates its policy. ``relay_log`` lists
    (epoch, "open"|"close"); ``credit`` is exact.
    """

    def __init__(self, profile, credit=0, start=None):
        tz = profile.get("tz_minutes", 330)
        pol = profile.get("policy", {})
        self.tariff = RefTariff(profile.get("tariff") or {"rate": profile.get("tariff_paise_per_kwh", 650)}, tz)
        self.cal = RefCalendar(pol, tz)
        self.prepayment = profile.get("payment_mode", 2) == 2
        self.auto_reconnect = profile.get("control_mode", 5) in (5, 6)
        self.min_credit = pol.get("min_credit", 0)
        self.reconnect = pol.get("reconnect", 1)
        self.ec_paise = pol.get("ec_paise", 0)
        self.ec_s = pol.get("ec_s", 0)
        self.ec_auto = "auto" in pol.get("ec_by", ["button"])
        self.debt_pct = pol.get("debt_pct", 0)
        self.credited = credit        # everything credited (top-ups less debt recovery)
        self.debt = 0
        self.ec = "available"
        self.ec_since = None
        self.closed = True
        self.relay_log = []
        self.topups = []
        if start is not None:
            self.clock(start)

    @property
    def credit(self):
        return self.credited - self.tariff.total_paise()

    def clock(self, t):
        self.tariff.clock(t)

    def consume(self, t0, t1, wh):
        self.tariff.consume(t0, t1, wh)

    def top_up(self, amount, t):
        in_use = 0
        if self.ec != "available" and self.credit < self.min_credit:
            in_use = self.min_credit - self.credit
            if self.ec_paise:
                in_use = min(in_use, self.ec_paise)
        repaid = min(amount, in_use)
        recovered = min(self.debt, (amount - repaid) * self.debt_pct // 100)
        self.debt -= recovered
        self.credited += amount - recovered
        if self.credit > self.min_credit:
            self.ec = "available"
        self.topups.append((t, amount, self.credit))

    def due(self):
        return self.prepayment and self.credit <= self.min_credit and self.ec != "active"

    def evaluate(self, t):
        if self.ec == "active":
            over_amount = self.ec_paise and self.credit <= self.min_credit - self.ec_paise
            over_time = self.ec_s and t >= self.ec_since + self.ec_s
            if over_amount or over_time:
                self.ec = "used"
        if (self.prepayment and self.credit <= self.min_credit and self.ec == "available"
                and self.ec_auto and (self.ec_paise or self.ec_s)):
            self.ec = "active"
            self.ec_since = t
        if self.closed and self.due() and self.cal.allowed(t):
            self.closed = False
            self.relay_log.append((t, "open"))
        elif (not self.closed and self.auto_reconnect and not self.due()
              and (self.credit >= self.reconnect or self.ec == "active")):
            self.closed = True
            self.relay_log.append((t, "close"))
