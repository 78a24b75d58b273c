"""Tariff engine in integers: telescopic slabs, time-of-day windows, daily fixed charge, duty.

Configuration (the ``tariff`` section of ``config.json``, a dict; all fields optional)::

    rate        paise/kWh, flat tariff (same as slabs [[0, rate]])            default 650
    slabs       [[upto_kwh, paise_per_kwh], ...] telescopic over the billing month, ascending
                upper limits, the last one 0 = no limit. 0-100 kWh at 550, 101-150 at 600 is
                [[100, 550], [150, 600], ...]
    tod         [[start_min, end_min, adj_permille], ...] local time-of-day windows; the energy
                charge in a window is multiplied by (1000 + adj) / 1000 (surcharge > 0, rebate < 0);
                start > end wraps past midnight
    fixed_paise_kw_month, sanctioned_w
                fixed charge: F = floor(fixed_paise_kw_month * sanctioned_w / 1000) paise per
                billing month, charged day by day
    duty_pm     electricity duty in per-mille of the energy and fixed charges
    billing_day day of month (1..28) the billing month starts on, 00:00 local time

Rounding rules (each one a cumulative floor with the remainder carried forever, so the result
does not depend on how consumption is split into metering intervals; DESIGN.md §4):

- Energy: an interval [t0, t1] with ``wh`` Wh is taken at constant power. Its Wh are given to the
  parts of the interval between boundaries (TOD window edges, local midnight, billing date) in
  whole Wh: the part ending at ``x`` holds ``floor(wh*(x-t0)/(t1-t0))`` Wh minus the Wh before it
  (what a 1 Wh counter started at t0 shows at x). A part's Wh are split again at slab limits.
  Energy charge total = floor(sum(Wh_i * rate_i * (1000 + adj_i)) / 10**6) paise.
- Fixed: day k (1..n) of an n-day billing month is charged floor(F*k/n) - floor(F*(k-1)/n) paise
  at 00:00 local of that day (or at commissioning for the first day): the month totals F exactly.
- Duty: total = floor(duty_pm * (energy + fixed paise charged) / 1000).

A zero-length interval (t1 <= t0: clock not moved or set back) charges its Wh at t1.
Times are UTC epoch seconds; ``tz_s`` is the local offset in seconds (IST: 19800).
Errors: ``ConfigError(field, reason)`` for a bad configuration. No floats.
"""
from meter import timeutil

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_MICRO = const(1000000)
_LIMIT = const(0x3FFFFFFF)
_DAY = const(86400)
# Tariff.seg: the duty carry and the duty segment (rebase), read only here: one list, so a Tariff
# has 17 attributes (a 136 B table, not 23 slots: 184 B, a block a profile SET's new Tariff needs)
_D_REM = const(0)     # duty carried, milli-paise, 0 <= d_rem < 1000
_D0 = const(1)
_DX = const(2)
_XX = const(3)
_CBM = const(4)


class ConfigError(ValueError):
    """A bad configuration: ``field`` (e.g. "tariff.slabs[2]") and ``reason``."""

    def __init__(self, field, reason):
        super().__init__("%s: %s" % (field, reason))
        self.field = field
        self.reason = reason



def billing_start(day, billing_day):
    """Day number (local) on which the billing month holding local day ``day`` began."""
    y, m, d = timeutil.civil_from_days(day)
    if d < billing_day:
        m -= 1
        if m == 0:
            y, m = y - 1, 12
    return timeutil.days_from_civil(y, m, billing_day)


def next_billing(start, billing_day):
    y, m, _ = timeutil.civil_from_days(start)
    m += 1
    if m == 13:
        y, m = y + 1, 1
    return timeutil.days_from_civil(y, m, billing_day)


class Tariff:
    """The tariff and its running counters.

    ``charge(t0, t1, wh, tz_s) -> paise`` charges one metering interval and returns the paise
    (energy + fixed + duty) to debit. Month totals: ``m_wh, m_energy, m_fixed, m_duty``; each
    closed billing month is appended to ``bills`` as (start_day, wh, energy, fixed, duty) for
    the caller to report and clear.
    """

    def __init__(self, lims, rates, tod, fixed_month, duty_pm, billing_day):
        """Validated parameters (``meter.profile.tariff(section)`` validates a tariff section
        and builds the Tariff): slab limits in Wh (-1 open) and their rates, TOD windows
        (start_min, end_min, adj per-mille), fixed paise per month, duty per-mille, billing day."""
        self.lims, self.rates, self.tod = lims, rates, tod
        self.fixed_month, self.duty_pm, self.billing_day = fixed_month, duty_pm, billing_day
        # running state
        self.e_rem = 0        # micro-paise carried, 0 <= e_rem < 10**6
        self.day = -1         # local day number whose fixed charge is done (-1: not in service)
        self.cyc = 0          # local day number the billing month started on
        self.cyc_n = 30       # days in that billing month
        self.m_wh = self.m_energy = self.m_fixed = self.m_duty = 0
        self.sts = 0          # the flat rate an STS SetTariffRate token set (0: the config's)
        self.seg = [0, 0, 0, 0, 0]    # d_rem, d0, dx, xx, cbm (_D_REM ...)
        self.bills = []

    # --- state ----------------------------------------------------------------------------
    # Persisted in two parts so that consumption alone changes only the journal's hot values
    # (credit, carried remainder, import Wh; meter.store): ``hot_rem()`` packs the two carries
    # into one int for the remainder slot; ``cold(credit, import_wh)`` changes only on a day
    # change, a top-up or another non-tariff credit change. ``restore`` rebuilds the month
    # totals from them: with x = energy + fixed paise charged since the last rebase and the
    # month duty = dx + (d0 + duty_pm*(x - xx) - d_rem) / 1000 (exact), the credit identity
    # credit = cbm - (energy + fixed + duty) gives x by one exact division.
    def hot_rem(self):
        return self.e_rem * 1000 + self.seg[_D_REM]

    def cold(self, credit, import_wh):
        s = self.seg
        s[_CBM] = credit + self.m_energy + self.m_fixed + self.m_duty
        return [self.day, self.cyc, self.cyc_n, import_wh - self.m_wh, self.m_fixed,
                s[_D0], s[_DX], s[_XX], s[_CBM], self.sts]

    def restore(self, cold, credit, rem, import_wh):
        s = self.seg
        (self.day, self.cyc, self.cyc_n, wh0, self.m_fixed,
         s[_D0], s[_DX], s[_XX], s[_CBM]) = cold[:9]
        if len(cold) > 9 and cold[9]:
            self.set_rate(cold[9])      # an STS SetTariffRate outlives a power cut
        self.e_rem, s[_D_REM] = rem // 1000, rem % 1000
        self.m_wh = import_wh - wh0
        pm = self.duty_pm
        x = (1000 * (s[_CBM] - credit - s[_DX]) - s[_D0] + pm * s[_XX] + s[_D_REM]) // (1000 + pm)
        self.m_energy = x - self.m_fixed
        self.m_duty = s[_CBM] - credit - x

    def rebase(self):
        """Start a new duty segment (month start, or a duty_pm change by configuration)."""
        s = self.seg
        s[_D0] = s[_D_REM]
        s[_DX] = self.m_duty
        s[_XX] = self.m_energy + self.m_fixed

    def carry_from(self, old):
        """Take the running counters of ``old`` (a Tariff being replaced by configuration)."""
        for k in "e_rem day cyc cyc_n m_wh m_energy m_fixed m_duty".split():   # one str, no tuple
            setattr(self, k, getattr(old, k))
        self.seg[_D_REM] = old.seg[_D_REM]
        if self.billing_day != old.billing_day and self.day >= 0:
            self.cyc = billing_start(self.day, self.billing_day)
            self.cyc_n = next_billing(self.cyc, self.billing_day) - self.cyc
        self.rebase()

    def set_rate(self, rate):
        """STS SetTariffRate (class 2): a flat ``rate`` paise/kWh from now on, journaled with
        the cold state until a profile replaces the tariff; counters kept."""
        self.lims = (-1,)
        self.rates = (rate,)
        self.sts = rate

    # --- lookups --------------------------------------------------------------------------
    def adj_at(self, minute):
        """TOD adjustment (per-mille) at local minute-of-day ``minute``."""
        for s, e, adj in self.tod:
            if s <= minute < e:
                return adj
        return 0

    # --- charging -------------------------------------------------------------------------
    def _duty(self, paise):
        s = self.seg
        acc = s[_D_REM] + paise * self.duty_pm
        d = acc // 1000
        s[_D_REM] = acc - d * 1000
        self.m_duty += d
        return d

    def _to_day(self, day):
        """Run the calendar forward to local day ``day``: billing months, fixed charges."""
        paise = 0
        if self.day < 0:  # commissioning: this day is the first in service
            self.cyc = billing_start(day, self.billing_day)
            self.cyc_n = next_billing(self.cyc, self.billing_day) - self.cyc
            self.day = day - 1
        while self.day < day:
            self.day += 1
            if self.day >= self.cyc + self.cyc_n:
                self.bills.append((self.cyc, self.m_wh, self.m_energy, self.m_fixed, self.m_duty))
                if len(self.bills) > 3:
                    self.bills.pop(0)
                self.m_wh = self.m_energy = self.m_fixed = self.m_duty = 0
                self.rebase()
                self.cyc += self.cyc_n
                self.cyc_n = next_billing(self.cyc, self.billing_day) - self.cyc
            f = self.fixed_month
            if f:
                k = self.day - self.cyc + 1
                c = f * k // self.cyc_n - f * (k - 1) // self.cyc_n
                self.m_fixed += c
                paise += c + self._duty(c)
        return paise

    def _energy(self, wh, adj):
        """Charge ``wh`` Wh at TOD adjustment ``adj`` through the slabs; returns paise."""
        paise = 0
        while wh > 0:
            i = 0
            while self.lims[i] != -1 and self.m_wh >= self.lims[i]:
                i += 1
            w = wh if self.lims[i] == -1 else min(wh, self.lims[i] - self.m_wh)
            f = self.rates[i] * (1000 + adj)
            if f:
                chunk = (_LIMIT - _MICRO) // f
                if w < chunk:
                    chunk = w
            else:
                chunk = w
            acc = self.e_rem + chunk * f
            p = acc // _MICRO
            self.e_rem = acc - p * _MICRO
            self.m_wh += chunk
            wh -= chunk
            self.m_energy += p
            paise += p + self._duty(p)
        return paise

    def charge(self, t0, t1, wh, tz_s=19800):
        """Charge ``wh`` Wh consumed over [t0, t1] (epoch s); return the paise to debit."""
        if wh < 0:
            raise ValueError("wh < 0")
        l1 = t1 + tz_s
        if t1 <= t0:
            paise = self._to_day(l1 // _DAY)
            return paise + self._energy(wh, self.adj_at((l1 % _DAY) // 60))
        l0 = t0 + tz_s
        span = l1 - l0
        paise = self._to_day(l0 // _DAY)
        p = l0
        done = 0          # Wh given to parts before p
        while p < l1:
            day = p // _DAY
            sod = p - day * _DAY
            q = _DAY                # the next TOD edge after sod (86400 = midnight)
            for s, e, _ in self.tod:
                for x in (s * 60, e * 60):
                    if sod < x < q:
                        q = x
            q += day * _DAY
            if q > l1:
                q = l1
            upto = wh * (q - l0) // span
            if upto > done:
                paise += self._energy(upto - done, self.adj_at(sod // 60))
                done = upto
            p = q
            if p < l1 or p % _DAY == 0:
                paise += self._to_day(p // _DAY)
        return paise
