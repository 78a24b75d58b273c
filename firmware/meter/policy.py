"""Disconnect policy: when the meter itself opens or recloses the relay (prepayment mode).

``Policy.evaluate(meter, now)`` is called after every metering cycle and after every command.
It decides, from the account and the clock, whether a local disconnect (IC 70 transition g) or a
local reconnect (transition h) is due, and returns the credit_status bits for IC 111 attr 4.

Issue-2 rules: in prepayment mode the relay opens when available credit <= 0 and recloses when a
top-up brings it above 0 (if the control mode allows local reconnection; otherwise the meter waits
in ready_for_reconnection for the button). In credit mode (payment_mode 1) the head-end decides:
the meter only obeys remote_disconnect / remote_reconnect.
"""
from meter.account import PAYMENT_PREPAYMENT
from meter.relay import CONNECTED, READY

# event codes (meter event log; IS 15959 control-event numbering is applied by the event log)
EV_RELAY_OPEN_CREDIT = 40
EV_RELAY_CLOSE_CREDIT = 41
EV_LOW_CREDIT = 45


class Policy:
    def __init__(self, cfg):
        self.low_pct = int(cfg.get("low_credit_pct", 10))

    def must_disconnect(self, meter, now):
        a = meter.account
        return a.payment_mode == PAYMENT_PREPAYMENT and a.available <= 0

    def low_credit_threshold(self, meter):
        return meter.account.last_recharge * self.low_pct // 100

    def credit_status(self, meter):
        """IC 111 credit_status (bit-string, bit 0 first on the wire): in-credit, low-credit, ...,
        out-of-credit (bit 6)."""
        a = meter.account
        v = 0
        if a.available > 0:
            v |= 0x80
        if 0 < a.available <= self.low_credit_threshold(meter):
            v |= 0x40
        if a.available <= 0:
            v |= 0x02
        return v

    def may_manual_reconnect(self, meter, now):
        return not self.must_disconnect(meter, now)

    def evaluate(self, meter, now):
        dc = meter.dc
        if self.must_disconnect(meter, now):
            if dc.control_state == CONNECTED and dc.local_disconnect("credit"):
                meter.event(EV_RELAY_OPEN_CREDIT, "relay open: credit exhausted")
        elif dc.control_state == READY and dc.cause == "credit":
            if dc.local_reconnect("credit"):
                meter.event(EV_RELAY_CLOSE_CREDIT, "relay closed: credit restored")
