"""Credit register and energy debit (prepayment), in integers only.

Units: credit in paise (1/100 rupee), energy in Wh, tariff in paise per kWh.
Rounding rule: the debit for ``wh`` Wh at ``rate`` paise/kWh is ``wh * rate / 1000`` paise; the
fraction is carried in ``rem`` (milli-paise, 0 <= rem < 1000), so the total debited for N Wh is
exactly ``floor(N * rate / 1000)`` however the consumption is split into ticks (DESIGN.md §4).
Credit may go negative (arrears) in credit mode and during no-disconnection periods.

COSEM mapping: Account IC 111 attr 2 {payment_mode, account_status}, attr 5 available_credit;
Credit IC 112 attr 2 current_credit_amount; method update_amount (Blue Book §4.6.x, IC 112 m1).
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

PAYMENT_CREDIT = const(1)      # head-end decides (IC 111 payment_mode 1)
PAYMENT_PREPAYMENT = const(2)  # meter decides (payment_mode 2)
STATUS_NEW = const(1)
STATUS_ACTIVE = const(2)
STATUS_CLOSED = const(3)

_CHUNK_WH = const(100000)  # keeps wh * rate a small int (rate < 10000 paise/kWh)
MAX_CREDIT = const(0x3FFFFFFF)  # 31-bit small-int ceiling on the boards


class Account:
    def __init__(self, rate_paise_per_kwh=650, credit=0, payment_mode=PAYMENT_PREPAYMENT):
        if not 0 <= rate_paise_per_kwh < 100000:
            raise ValueError("tariff rate out of range")
        self.rate = rate_paise_per_kwh
        self.credit = credit          # paise, may be negative
        self.rem = 0                  # milli-paise carried, 0..999
        self.import_wh = 0            # cumulative active energy import, Wh
        self.payment_mode = payment_mode
        self.status = STATUS_ACTIVE
        self.last_recharge = 0        # paise
        self.last_recharge_time = 0   # epoch s
        self.total_recharged = 0      # paise

    def consume(self, wh):
        """Debit ``wh`` (>= 0) Wh of imported energy. Returns paise debited."""
        if wh <= 0:
            return 0
        debited = 0
        while wh > 0:
            step = wh if wh < _CHUNK_WH else _CHUNK_WH
            wh -= step
            self.import_wh += step
            acc = self.rem + step * self.rate
            d = acc // 1000
            self.rem = acc - d * 1000
            debited += d
        self.credit -= debited
        return debited

    def top_up(self, paise, now=0):
        """Add credit (IC 112 update_amount). Raises ValueError if not 0 < paise and no overflow."""
        if paise <= 0:
            raise ValueError("amount must be positive")
        if self.credit + paise > MAX_CREDIT:
            raise ValueError("credit register would overflow")
        self.credit += paise
        self.last_recharge = paise
        self.last_recharge_time = now
        self.total_recharged += paise
        return self.credit

    @property
    def available(self):
        """Available credit (IC 111 attr 5), paise."""
        return self.credit

    def state(self):
        return [self.credit, self.rem, self.import_wh, self.payment_mode, self.status,
                self.last_recharge, self.last_recharge_time, self.total_recharged]

    def restore(self, s):
        (self.credit, self.rem, self.import_wh, self.payment_mode, self.status,
         self.last_recharge, self.last_recharge_time, self.total_recharged) = s[:8]
