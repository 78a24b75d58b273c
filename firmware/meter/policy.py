"""Disconnect policy as data: when the meter itself opens or recloses the relay.

``Policy.evaluate(meter, now)`` runs after every metering cycle and every command. Configuration
(the ``policy`` section of ``config.json``; amounts in the credit unit, paise or 0.1 kWh)::

    min_credit        a disconnection is due when credit <= min_credit (default 0; WB: -30000)
    reconnect         after a disconnection for credit the relay recloses only when
                      credit >= reconnect (reconnection threshold after arrears; default 1)
    low_credit_pct    alert levels, % of the last recharge, descending (default [30, 10, 0]):
                      crossing one raises event 45 and sets credit_status low_credit
    ec_paise          emergency credit amount: may go this far below min_credit (0 = none)
    ec_s              emergency credit period, s, from activation (UPPCL: 3 days; 0 = none)
    ec_by             how EC is activated: any of "auto" (when credit reaches min_credit),
                      "button", "token", "dlms"
    ec_offer          EC may be selected by button/token/DLMS when credit <= ec_offer
    debt_pct          % of each top-up (after EC repayment) that recovers the debt register
    friendly          [start_min, end_min] local time with no disconnection, wraps past
                      midnight ([1080, 480] = 18:00-08:00); [] = none
    days_off          ISO weekdays with no disconnection (7 = Sunday)
    off_saturdays     which Saturdays of the month are off ([2] = second Saturdays)
    holidays          ["YYYY-MM-DD", ...] local dates with no disconnection

The ``metering`` section (a profile key of its own) is the metering-fault policy, applied by
``meter.metering``: ``metering`` = (fail_polls, fail_s, on_fault, grace_s, max_w), on_fault 0
keep supply, 1 open the relay after grace_s seconds of fault; max_w the most the supply can
deliver, 0 = the module's rating (``meter.profile.metering_params``).

A disconnection due at a moment that is not allowed waits for the next allowed moment (the
meter checks at every metering cycle). Emergency credit ends when its amount is used up
(credit <= min_credit - ec_paise) or its period is over, whichever comes first; it is re-armed by
a top-up that brings credit above min_credit. Payment mode 1 (credit mode, the head-end
decides): no local disconnection for credit; remote disconnect / reconnect are obeyed (IC 70) and
the meter keeps metering. The maximum power limit (``meter.limiter``) applies in both modes.

IC 70 (``meter.relay``): a local disconnection is transition g (connected -> ready); the reclose
is transition h, done by the meter only in control modes 5 and 6; in the other modes the relay
waits in ready_for_reconnection for the button (transition e). Errors: ``ConfigError``
(meter.tariff, raised by meter.profile while the configuration is parsed).
"""
from meter import timeutil

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# event codes (meter event log; IS 15959 control-event numbering is applied by the event log)
_EV_RELAY_OPEN_CREDIT = const(40)
_EV_RELAY_CLOSE_CREDIT = const(41)
_EV_LOW_CREDIT = const(45)
_EV_EC_ON = const(46)
_EV_EC_END = const(47)
_EV_DISCONNECT_DEFERRED = const(48)
_EV_MPL_TRIP = const(55)
_EV_MPL_RECLOSE = const(56)
_EV_MPL_LOCKOUT = const(57)

# emergency credit state ``ec_state`` (journaled): 0 available, 1 active, 2 used up
_EC_AVAILABLE = const(0)
_EC_ACTIVE = const(1)
_EC_USED = const(2)

# Policy.params (meter.profile.policy_params): the fields read only here, by index
_P_LOW_PCT = const(2)
_P_BY = const(5)
_P_OFFER = const(6)
_P_DEBT = const(7)
_P_FRIENDLY = const(8)
_P_DAYS_OFF = const(9)
_P_SATURDAYS = const(10)
_P_HOLIDAYS = const(11)
_PREPAYMENT = const(2)        # IC 111 payment_mode (meter.account)
_CONNECTED = const(1)         # IC 70 control_state (meter.relay)
_READY = const(2)
_TRIP = const(1)              # Limiter.step (meter.limiter)
_RECLOSE = const(2)
_LOCKOUT = const(3)


class Policy:
    def __init__(self, params, limiter, metering=(5, 60, 0, 900, 0)):
        """``params``: the validated policy section (``meter.profile.policy_params``; build one
        with ``meter.profile.policy(cfg)``), ``limiter``: its ``meter.limiter.Limiter``,
        ``metering``: the metering-fault policy (``meter.profile.metering_params``)."""
        self.metering = metering
        # those read only here stay in ``params`` (_P_*): 12 attributes, a 96 B table (was 19:
        # 184 B, the block a profile SET's new Policy failed on at 56k)
        self.params = params
        self.min_credit, self.reconnect, self.ec_paise, self.ec_s = params[0], params[1], params[3], params[4]
        self.limiter = limiter
        # state
        self.ec_state = _EC_AVAILABLE
        self.ec_t0 = 0
        self.low_level = 0      # alert levels crossed since the last top-up
        self.deferred = False   # a due disconnection was deferred (event sent once)
        self.dirty = False      # state changed since the caller last journaled it

    def carry_from(self, old, lim=False):
        """Keep the running state of ``old`` (a Policy replaced by configuration); an STS
        limit too unless ``lim`` (the profile has a limiter section of its own)."""
        self.ec_state, self.ec_t0, self.low_level = old.ec_state, old.ec_t0, old.low_level
        s = old.limiter.state()
        self.limiter.restore(s[:4] if lim else s)
        self.dirty = True

    def state(self):
        return [self.ec_state, self.ec_t0, self.low_level] + self.limiter.state()

    def restore(self, s):
        self.ec_state, self.ec_t0, self.low_level = s[:3]
        self.limiter.restore(s[3:])

    # --- calendar ---------------------------------------------------------------------------
    def allowed(self, now, tz_minutes):
        """True if a disconnection may happen at ``now`` (epoch s; local = UTC + tz_minutes)."""
        local = now + tz_minutes * 60
        day = local // 86400
        p = self.params
        fr = p[_P_FRIENDLY]
        if fr:
            m = (local - day * 86400) // 60
            if (fr[0] <= m < fr[1]) if fr[0] < fr[1] else (m >= fr[0] or m < fr[1]):
                return False
        wd = timeutil.weekday(day)
        if wd in p[_P_DAYS_OFF] or day in p[_P_HOLIDAYS]:
            return False
        if wd == 6 and p[_P_SATURDAYS]:
            dom = timeutil.civil_from_days(day)[2]
            if (dom - 1) // 7 + 1 in p[_P_SATURDAYS]:
                return False
        return True

    # --- credit -------------------------------------------------------------------------------
    def thresholds(self, meter):
        """Alert levels in credit units; before the first recharge only the 0 % level."""
        lr = meter.account.last_recharge
        return [lr * p // 100 for p in self.params[_P_LOW_PCT] if lr or not p]

    def low_credit_threshold(self, meter):
        """IC 111 attr 16 low_credit_threshold: the first alert level."""
        t = self.thresholds(meter)
        return t[0] if t else 0

    def _level(self, meter):
        c = meter.account.credit
        n = 0
        for t in self.thresholds(meter):
            if c <= t:
                n += 1
        return n

    def ec_selectable(self, meter):
        return ((self.ec_paise > 0 or self.ec_s > 0) and self.ec_state == _EC_AVAILABLE
                and meter.account.credit <= self.params[_P_OFFER])

    def activate_ec(self, meter, source, now):
        """Select emergency credit by ``source`` ("auto", "button", "token", "dlms")."""
        if source not in self.params[_P_BY] or not self.ec_selectable(meter):
            return False
        self.ec_state = _EC_ACTIVE
        self.ec_t0 = now
        self.dirty = True
        meter.event(_EV_EC_ON, "emergency credit on via %s t=%d" % (source, now))
        return True

    @property
    def emergency(self):
        """The emergency credit as the COSEM Credit object (IC 112, 0.0.19.10.1.255) shows it,
        attributes 2..11: (current_credit_amount, type 2 emergency, priority 2,
        warning_threshold, limit, credit_configuration, status, preset_credit_amount,
        credit_available_threshold, period s), amounts in the credit unit;
        credit_configuration bits 0x10 visual indication, 0x08 confirmation by the consumer,
        0x04 paid back; status 1 selectable, 3 in use, 4 exhausted. None without EC."""
        e = self.ec_paise
        if not (e > 0 or self.ec_s > 0):
            return None
        p = self.params
        manual = 0x18 if ("button" in p[_P_BY] or "token" in p[_P_BY]) else 0
        s = self.ec_state            # 0, 1, 2 -> status 1, 3, 4
        return (e, 2, 2, p[_P_OFFER], e, manual | 0x04, s + 1 + (s > 0), e, p[_P_OFFER], self.ec_s)

    def credit_due(self, meter, now):
        """True if a disconnection for credit is due (whether or not it is allowed now)."""
        a = meter.account
        return (a.payment_mode == _PREPAYMENT and a.credit <= self.min_credit
                and self.ec_state != _EC_ACTIVE)

    def may_manual_reconnect(self, meter, now):
        """Reclose allowed: no MPL trip, and in prepayment credit >= reconnect (or EC on);
        in credit mode the credit register does not hold the relay."""
        if self.credit_due(meter, now) or self.limiter.blocking():
            return False
        a = meter.account
        return (a.payment_mode != _PREPAYMENT or a.credit >= self.reconnect
                or self.ec_state == _EC_ACTIVE)

    def credit_status(self, meter):
        """IC 111 attr 4 credit_status (bit-string(8), bit 0 = first bit on the wire = 0x80):
        0 in_credit, 1 low_credit, 3 next_credit_selectable (EC can be selected),
        5 selectable_credit_in_use (EC active), 6 out_of_credit."""
        c = meter.account.credit
        v = 0
        if c > 0:
            v |= 0x80
            if self.low_level:
                v |= 0x40
        if self.ec_selectable(meter):
            v |= 0x10
        if self.ec_state == _EC_ACTIVE:
            v |= 0x04
        elif c <= self.min_credit:
            v |= 0x02
        return v

    def top_up(self, meter, amount, now):
        """Allocate a recharge (EC repaid first, then debt recovery; ``Account.top_up``).
        Returns the debt recovered; raises ValueError for a bad amount."""
        a = meter.account
        used = 0
        if self.ec_state != _EC_AVAILABLE and a.credit < self.min_credit:
            used = self.min_credit - a.credit
            if self.ec_paise and used > self.ec_paise:
                used = self.ec_paise
        a.top_up(amount, now, used, self.params[_P_DEBT])
        if a.credit > self.min_credit:
            self.ec_state = _EC_AVAILABLE
        self.low_level = self._level(meter)
        self.dirty = True
        return a.last_recovered

    # --- the decision -------------------------------------------------------------------------
    def evaluate(self, meter, now):
        a = meter.account
        dc = meter.dc
        # emergency credit ends when its amount is used up or its period is over
        if self.ec_state == _EC_ACTIVE and (
                (self.ec_paise and a.credit <= self.min_credit - self.ec_paise)
                or (self.ec_s > 0 and now >= self.ec_t0 + self.ec_s)):
            self.ec_state = _EC_USED
            self.dirty = True
            meter.event(_EV_EC_END, "emergency credit ended t=%d" % now)
        if (a.credit <= self.min_credit and a.payment_mode == _PREPAYMENT
                and "auto" in self.params[_P_BY]):
            self.activate_ec(meter, "auto", now)
        lv = self._level(meter)
        while self.low_level < lv:
            pct = self.params[_P_LOW_PCT][self.low_level] if a.last_recharge else 0
            self.low_level += 1
            self.dirty = True
            meter.event(_EV_LOW_CREDIT, "low credit %d%% credit=%d" % (pct, a.credit))
        if lv < self.low_level:
            self.low_level = lv
        m = meter.metro
        act = self.limiter.step(m.power_dw if m is not None and m.fresh else None, now)
        if act:
            self.dirty = True
        if act == _TRIP:
            meter.event(_EV_MPL_TRIP, "MPL trip t=%d" % now)
        elif act == _LOCKOUT:
            meter.event(_EV_MPL_LOCKOUT, "MPL lockout t=%d" % now)
        elif act == _RECLOSE:
            meter.event(_EV_MPL_RECLOSE, "MPL reclose due t=%d" % now)
        due = self.credit_due(meter, now)
        if not due:
            self.deferred = False
        st = dc.control_state
        if st == _CONNECTED:
            if due:
                if self.allowed(now, meter.tz_minutes):
                    if dc.local_disconnect("credit"):
                        meter.event(_EV_RELAY_OPEN_CREDIT, "relay open: credit t=%d credit=%d"
                                    % (now, a.credit))
                elif not self.deferred:
                    self.deferred = True
                    meter.event(_EV_DISCONNECT_DEFERRED, "disconnect deferred t=%d" % now)
            elif self.limiter.blocking():
                dc.local_disconnect("mpl")
        elif st == _READY:
            if dc.cause == "mpl" and due and self.allowed(now, meter.tz_minutes):
                dc.cause = "credit"
                meter.event(_EV_RELAY_OPEN_CREDIT, "relay open: credit t=%d credit=%d"
                            % (now, a.credit))
            if dc.cause == "credit" and self.may_manual_reconnect(meter, now):
                if dc.local_reconnect("credit"):
                    meter.event(_EV_RELAY_CLOSE_CREDIT, "relay closed: credit t=%d credit=%d"
                                % (now, a.credit))
            elif dc.cause == "mpl" and not self.limiter.blocking():
                dc.local_reconnect("mpl")
        if dc.control_state != st:
            self.dirty = True
