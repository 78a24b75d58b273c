"""Credit register, debt register and top-up allocation, in integers only.

Credit units (``unit``): 0 currency (integer paise, 1/100 rupee; the tariff in
``meter.tariff`` turns Wh into paise) or 1 energy (0.1 kWh units, as STS energy tokens carry;
each Wh debits 1/100 unit, the fraction carried in ``rem``).
Flat-rate debit (``consume``, the issue-2 path): ``wh`` Wh at ``rate`` paise/kWh is ``wh*rate/1000``
paise with the fraction carried in ``rem`` (milli-paise), so N Wh debit exactly floor(N*rate/1000)
however they are split (DESIGN.md §4).
Credit may go negative (arrears): in credit mode, during no-disconnection periods and emergency
credit. ``debt`` is a separate register of dues (e.g. migrated arrears) recovered as a share of
each top-up.

Top-up allocation (``top_up``), in this order, all floors:
  1. emergency credit in use is repaid first: ``ec = min(amount, ec_used)``;
  2. debt recovery takes ``min(debt, (amount - ec) * debt_pct // 100)`` of the rest;
  3. everything but the debt recovery goes to the credit register (so arrears are paid first).

COSEM mapping: Account IC 111 attr 2 {payment_mode, account_status}, attr 5 available_credit,
attr 8 aggregated_debt; Credit IC 112 attr 2 current_credit_amount, method 1 update_amount
(DLMS UA 1000-1 §4.6.2/§4.6.3).
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# payment_mode (IC 111 attr 2): 1 credit (the head-end decides), 2 prepayment (the meter
# decides); account_status: 1 new, 2 active, 3 closed; unit: 0 paise, 1 = 0.1 kWh
_PREPAYMENT = const(2)
_STATUS_ACTIVE = const(2)
_CREDIT_CURRENCY = const(0)    # credit register in paise
_CREDIT_ENERGY = const(1)      # credit register in 0.1 kWh

_CHUNK_WH = const(100000)  # keeps wh * rate a small int (rate < 10000 paise/kWh)
_MAX_CREDIT = const(0x3FFFFFFF)  # 31-bit small-int ceiling on the boards


class Account:
    def __init__(self, rate=650, credit=0, payment_mode=_PREPAYMENT, unit=_CREDIT_CURRENCY):
        """``rate`` paise/kWh (flat tariff), ``credit`` in the credit unit, ``payment_mode`` 1
        credit / 2 prepayment, ``unit`` 0 paise / 1 = 0.1 kWh. ValueError if out of range."""
        if not 0 <= rate < 100000:
            raise ValueError("tariff rate out of range")
        if unit != _CREDIT_CURRENCY and unit != _CREDIT_ENERGY:
            raise ValueError("credit unit 0 (paise) or 1 (0.1 kWh)")
        self.rate = rate
        self.credit = credit          # paise (or 0.1 kWh), may be negative
        self.rem = 0                  # flat-rate milli-paise carried 0..999; energy unit: Wh 0..99
        self.import_wh = 0            # cumulative active energy import, Wh
        self.payment_mode = payment_mode
        self.status = _STATUS_ACTIVE
        self.last_recharge = 0        # paise (or 0.1 kWh)
        self.last_recharge_time = 0   # epoch s
        self.total_recharged = 0      # paise (or 0.1 kWh)
        self.debt = 0                 # dues recovered from top-ups, >= 0
        self.last_recovered = 0       # debt recovered from the last top-up
        self.unit = unit

    def consume(self, wh):
        """Debit ``wh`` (>= 0) Wh at the flat ``rate`` (or in 0.1 kWh units). Returns the debit."""
        if wh <= 0:
            return 0
        if self.unit == _CREDIT_ENERGY:
            return self.meter(wh, 0)
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

    def meter(self, wh, paise):
        """Count ``wh`` Wh of import and debit ``paise`` (currency unit, from the tariff) or, in
        energy unit, floor of the Wh / 100 (0.1 kWh, remainder carried). Returns the debit."""
        self.import_wh += wh
        if self.unit == _CREDIT_ENERGY:
            acc = self.rem + wh
            paise = acc // 100
            self.rem = acc - paise * 100
        self.credit -= paise
        return paise

    def top_up(self, paise, now=0, ec_used=0, debt_pct=0):
        """Add a recharge (IC 112 update_amount); returns the new credit. The debt recovered
        from it is left in ``last_recovered``.

        Raises ValueError unless 0 < paise and the credit register stays below 2**30 - 1."""
        if paise <= 0:
            raise ValueError("amount must be positive")
        if self.credit + paise > _MAX_CREDIT:
            raise ValueError("credit register would overflow")
        ec = paise if paise < ec_used else ec_used
        rec = (paise - ec) * debt_pct // 100
        if rec > self.debt:
            rec = self.debt
        self.debt -= rec
        self.credit += paise - rec
        self.last_recharge = paise
        self.last_recharge_time = now
        self.total_recharged += paise
        self.last_recovered = rec
        return self.credit

    def state(self):
        return [self.credit, self.rem, self.import_wh, self.payment_mode, self.status,
                self.last_recharge, self.last_recharge_time, self.total_recharged,
                self.debt, self.unit]

    def restore(self, s):
        (self.credit, self.rem, self.import_wh, self.payment_mode, self.status,
         self.last_recharge, self.last_recharge_time, self.total_recharged) = s[:8]
        if len(s) >= 10:
            self.debt, self.unit = s[8], s[9]
