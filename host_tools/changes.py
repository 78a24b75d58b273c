"""The changes meterctl makes to a meter, each with the evidence that tells afterwards whether
it happened (``host_tools.outcome``: ``perform`` reads ``evidence`` before sending and again
after a lost answer, ``judge`` compares).

- ``TopUp(paise)``: IC 112 0.0.19.10.0.255 update_amount. Evidence: the IS 15959 recharge total
  0.0.94.96.23.255 (it grows by exactly the amount of each top-up and never shrinks, so it is
  unique per top-up), the last recharge amount/time 0.0.94.96.21/22.255, the credit register
  and the event log's entries_in_use (0.0.99.98.0.255 attr 7); the meter's logical device name
  0.0.42.0.0.255 names the meter for the retry record (``host_tools.recharges``), and the credit
  unit (IC 111 attribute 15, ``host_tools.creditunit``: paise or 0.1 kWh) what the amounts count.
  Applied iff the total moved by the amount; not applied iff it did not move.
- ``Relay(method)``: IC 70 0.0.96.3.10.255 remote_disconnect (1) / remote_reconnect (2).
  Evidence: control_state (attr 3). Applied iff the meter is in the state asked for
  (disconnected 0; connected 1 or ready_for_reconnection 2).
- ``SetAttribute(ic, obis, attr, value)``: evidence the attribute's value. Applied iff it reads
  the value sent (a clock within ``CLOCK_SLACK_S``); not applied iff it still reads the old one.
- ``Profile(wire)``: SET 0.128.96.5.0.255 attr 2. Applied iff the meter's profile is ours.
- ``Token(digits)``: IC 115 0.0.19.40.0.255 enter. Evidence: the gateway's last token (attr 2)
  status and the credit. Processed iff the gateway holds our token; then its status says accepted
  or not. Another token at the gateway, or ours refused USED on the check: for a credit token
  (class 0) not applied iff the credit did not rise, else (or for a class 1/2 token) unknown.
  Re-entering a token is safe in any case: a meter refuses a token it has taken (USED).
- ``Action(ic, obis, method, param)``: the above for the methods they cover; any other method
  leaves no evidence meterctl knows, so a lost answer gives UNKNOWN.
"""

from protocol import axdr_client as axdr
from protocol.sts_core import StsError, split_token

from host_tools import creditunit
from host_tools.client import OBIS_ACCOUNT, OBIS_CREDIT, OBIS_DISCONNECT, DataAccessError
from host_tools.outcome import APPLIED, NOT_APPLIED, Change

__all__ = ["TopUp", "Relay", "SetAttribute", "Profile", "Token", "Action", "action_change",
           "OBIS_TOTAL_RECHARGED", "OBIS_GATEWAY", "credit_limit_paise", "credit_unit", "CLOCK_SLACK_S"]

OBIS_LDN = "0.0.42.0.0.255"
OBIS_LAST_RECHARGE = "0.0.94.96.21.255"
OBIS_LAST_RECHARGE_TIME = "0.0.94.96.22.255"
OBIS_TOTAL_RECHARGED = "0.0.94.96.23.255"
OBIS_EVENT_LOG = "0.0.99.98.0.255"
OBIS_GATEWAY = "0.0.19.40.0.255"
OBIS_PROFILE = "0.128.96.5.0.255"
OBIS_LIMITER = "0.0.17.0.0.255"
OBIS_CHARGE = "0.0.19.20.0.255"
OBIS_PROFILE_ERROR = "0.128.96.5.1.255"
CLOCK_SLACK_S = 5                 # a clock SET counts as applied within this many s (+ elapsed)


def credit_limit_paise():
    """The meter's credit register ceiling in its unit (paise or 0.1 kWh; a 31-bit small int on
    the boards), read from
    the firmware's own ``meter.account._MAX_CREDIT``. Raises FileNotFoundError without a checkout."""
    from host_tools.firmware_src import firmware_module
    return firmware_module("meter.account")._MAX_CREDIT


def read(c, ic, obis, attr):
    """GET -> tagged value, or None when the meter refuses/lacks the object (link errors raise)."""
    try:
        return c.get(ic, obis, attr)
    except DataAccessError:
        return None


def read_int(c, ic, obis, attr):
    """GET an integer value -> int or None."""
    v = read(c, ic, obis, attr)
    try:
        return int(v[1])
    except (TypeError, ValueError, IndexError):
        return None


def read_bytes(c, ic, obis, attr):
    """GET an octet-/visible-string value -> its hex text (JSON-able) or None."""
    v = read(c, ic, obis, attr)
    if v is None or not isinstance(v[1], (bytes, bytearray, str)):
        return None
    data = v[1].encode() if isinstance(v[1], str) else bytes(v[1])
    return data.hex()


def credit_unit(c):
    """The meter's credit unit -> {"credit_unit": "paise" | "0.1 kWh", "credit_unit_note": None, or
    the sentence saying paise is assumed} (IC 111 attribute 15, ``host_tools.creditunit``)."""
    unit, note = creditunit.unit_of(read(c, 111, OBIS_ACCOUNT, 15))
    return {"credit_unit": unit, "credit_unit_note": note}


def meter_name(c):
    """The logical device name as text (0.0.42.0.0.255), or None."""
    h = read_bytes(c, 1, OBIS_LDN, 2)
    if not h:
        return None
    text = bytes.fromhex(h).decode("ascii", "replace")
    return text if text.isprintable() else None


class TopUp(Change):
    """update_amount(``paise``: the amount in the meter's credit unit, paise or 0.1 kWh).
    ``guard_fn(before)`` (optional) may refuse it (a retry, an amount in the wrong unit)."""

    def __init__(self, paise, guard_fn=None):
        self.paise = int(paise)
        self.guard_fn = guard_fn
        self.what = "top-up"

    def evidence(self, c):
        return {"meter": meter_name(c),
                "total_recharged": read_int(c, 1, OBIS_TOTAL_RECHARGED, 2),
                "last_recharge": read_int(c, 1, OBIS_LAST_RECHARGE, 2),
                "last_recharge_time": read_bytes(c, 1, OBIS_LAST_RECHARGE_TIME, 2),
                "events": read_int(c, 7, OBIS_EVENT_LOG, 7),
                "credit": read_int(c, 112, OBIS_CREDIT, 2), **credit_unit(c)}

    def guard(self, c, before):
        if self.guard_fn is not None:
            self.guard_fn(before)

    def send(self, c, before):
        credit = before.get("credit")
        try:
            c.action(112, OBIS_CREDIT, 1, axdr.Writer().double_long(self.paise).getvalue())
        except DataAccessError as e:
            if e.dar == 250 and credit is not None and credit + self.paise > credit_limit_paise():
                u = before.get("credit_unit")
                raise DataAccessError(e.dar, "meter refused the top-up: credit %s + %s would pass the "
                                      "register's limit of %s" % (
                                          creditunit.amount(credit, u), creditunit.amount(self.paise, u),
                                          creditunit.amount(credit_limit_paise(), u)))
            raise
        return {"amount": self.paise}

    def judge(self, before, after):
        t0, t1 = before.get("total_recharged"), after.get("total_recharged")
        if t0 is not None and t1 is not None:
            moved = (t1 - t0) & 0xFFFFFFFF
            if moved == 0:
                return NOT_APPLIED
            return APPLIED if moved == self.paise else None
        w0, w1 = before.get("last_recharge_time"), after.get("last_recharge_time")
        if w0 is None or w1 is None:
            return None
        if w0 == w1 and before.get("last_recharge") == after.get("last_recharge"):
            return NOT_APPLIED
        return APPLIED if after.get("last_recharge") == self.paise else None

    def details(self, c, before, result):
        relay_on = read_int(c, 70, OBIS_DISCONNECT, 2)
        return {"credit_after": read_int(c, 112, OBIS_CREDIT, 2),
                "available_credit": read_int(c, 111, OBIS_ACCOUNT, 5),
                "relay_output_state": None if relay_on is None else bool(relay_on)}

    def judged(self, after):
        return {"credit_after": after.get("credit")}


class Relay(Change):
    """remote_disconnect (``method`` 1) or remote_reconnect (2)."""

    def __init__(self, method, param=b"\x0f\x00"):
        self.method = int(method)
        self.param = param                  # default integer 0, as the Blue Book examples
        self.what = "remote_reconnect" if self.method == 2 else "remote_disconnect"

    def evidence(self, c):
        return {"control_state": read_int(c, 70, OBIS_DISCONNECT, 3)}

    def send(self, c, before):
        c.action(70, OBIS_DISCONNECT, self.method, self.param)
        return {}

    def judge(self, before, after):
        cs = after.get("control_state")
        if cs is None:
            return None
        return APPLIED if (cs in (1, 2) if self.method == 2 else cs == 0) else NOT_APPLIED

    def details(self, c, before, result):
        out = read_int(c, 70, OBIS_DISCONNECT, 2)
        return {"relay_output_state": None if out is None else bool(out),
                "control_state": read_int(c, 70, OBIS_DISCONNECT, 3)}

    def judged(self, after):
        return {"control_state": after.get("control_state"), "relay_output_state": None}


def _epoch(hexval):
    """A date-time octet-string (hex) -> seconds since 1970 (local fields, deviation ignored)."""
    import calendar

    try:
        b = bytes.fromhex(hexval)
        if len(b) < 12 or b[0] == 0xFF:
            return None
        return calendar.timegm(((b[0] << 8) | b[1], b[2], b[3], b[5], b[6], b[7], 0, 0, 0))
    except (TypeError, ValueError, OverflowError):
        return None


class SetAttribute(Change):
    """SET (``ic``, ``obis``, ``attr``) to ``value`` (complete A-XDR bytes)."""

    def __init__(self, ic, obis, attr, value):
        self.ic, self.obis, self.attr, self.value = ic, obis, attr, bytes(value)
        self.what = "set"

    def evidence(self, c):
        try:
            raw = c.get_raw(self.ic, self.obis, self.attr).hex()
        except DataAccessError:
            raw = None
        import time

        return {"value": raw, "host_time": time.time()}

    def send(self, c, before):
        c.set(self.ic, self.obis, self.attr, self.value)
        return {}

    def judge(self, before, after):
        now, old, sent = after.get("value"), before.get("value"), self.value.hex()
        if now is None:
            return None
        if now == sent:
            return APPLIED
        if self.ic == 8 and self.attr == 2 and len(self.value) == 14:
            t_now, t_sent = _epoch(now[4:]), _epoch(sent[4:])
            if t_now is not None and t_sent is not None:
                elapsed = after["host_time"] - before["host_time"]
                return APPLIED if abs(t_now - t_sent) <= CLOCK_SLACK_S + elapsed else NOT_APPLIED
        return NOT_APPLIED if now == old else None


class Profile(Change):
    """SET the tariff/policy profile (``wire``: the compact JSON bytes sent)."""

    def __init__(self, wire):
        self.wire = bytes(wire)
        self.what = "profile"

    def evidence(self, c):
        return {"profile": read_bytes(c, 1, OBIS_PROFILE, 2)}

    def send(self, c, before):
        try:
            c.set(1, OBIS_PROFILE, 2, axdr.Writer().octet_string(self.wire).getvalue())
        except DataAccessError as e:
            why = read_bytes(c, 1, OBIS_PROFILE_ERROR, 2)
            e.why = bytes.fromhex(why).decode("utf-8", "replace") if why else None
            raise
        return {}

    def _same(self, hexval):
        import json

        try:
            theirs = json.loads(bytes.fromhex(hexval).decode("utf-8"))
            ours = json.loads(self.wire.decode("utf-8"))
        except (TypeError, ValueError):
            return False
        return isinstance(theirs, dict) and all(theirs.get(k) == v for k, v in ours.items())

    def judge(self, before, after):
        now = after.get("profile")
        if now is None:
            return None
        if self._same(now):
            return APPLIED
        return NOT_APPLIED if now == before.get("profile") else None


class Token(Change):
    """Enter a 20-digit STS token (``digits`` str) at the token gateway."""

    def __init__(self, digits):
        self.digits = digits
        self.what = "token"

    def evidence(self, c):
        st = read(c, 115, OBIS_GATEWAY, 6)
        return dict({"token": _digits(read_bytes(c, 115, OBIS_GATEWAY, 2)), "status": _status(st),
                     "reasons": _reasons(read(c, 115, OBIS_GATEWAY, 4))}, **_settings(c), **credit_unit(c))

    def send(self, c, before):
        c.action(115, OBIS_GATEWAY, 1, axdr.Writer().octet_string(self.digits.encode()).getvalue())
        code = _status(c.get(115, OBIS_GATEWAY, 6))
        return {"status": code, "reasons": _reasons(c.get(115, OBIS_GATEWAY, 4))}

    def settle(self, result):
        return APPLIED if result.get("status") in (2, 3) else NOT_APPLIED

    def why_not(self, result):
        return "token rejected: %s (IC 115 status %s)" % (
            ", ".join(result.get("reasons") or []) or "no reason given", result.get("status"))

    def judge(self, before, after):
        tok, st = after.get("token"), after.get("status")
        if tok is None or st is None:
            return None
        if tok != self.digits or (after.get("reasons") or [""])[0].startswith("used"):
            # another token is the last, or ours refused USED: for a credit token (class 0) not
            # applied iff the credit did not rise (ours never reached the gateway, or this entry was
            # refused, e.g. a token of the same TID taken before); a rise is ours taken before another
            # entry (the keypad, a second master, ours entered again) or a top-up beside it: unknown.
            # A class 1/2 token changes no credit: nothing tells, unknown (attack passes, session 16)
            c0, c1 = before.get("credit"), after.get("credit")
            if _token_class(self.digits) != 0 or c0 is None or c1 is None or c1 > c0:
                return None
            return NOT_APPLIED
        return self.settle(after)

    def details(self, c, before, result):
        after = _settings(c)
        return {"credit_after": after["credit"], "after": after}

    def judged(self, after):
        return {"status": after.get("status"), "reasons": after.get("reasons"),
                "credit_after": after.get("credit"), "after": after}


def _token_class(digits):
    """The STS token class of 20 digits (IEC 62055-41 §6.4: in clear in the token number), or None."""
    try:
        return split_token(digits)[0]
    except (StsError, ValueError):
        return None


def _settings(c):
    """What a token may change, read from the meter: ``credit`` (IC 112 attr 2, in the meter's
    credit unit), ``mpl_w`` (the max power limit, IC 71 0.0.17.0.0.255 threshold_active, served
    in 0.1 W) and ``rate`` (paise per kWh, IC 113 0.0.19.20.0.255 unit_charge_active); None where
    not served."""
    mpl = read_int(c, 71, OBIS_LIMITER, 3)
    return {"credit": read_int(c, 112, OBIS_CREDIT, 2), "mpl_w": None if mpl is None else mpl // 10,
            "rate": charge_rate(read(c, 113, OBIS_CHARGE, 5))}


def charge_rate(tagged):
    """Paise per kWh from IC 113 attribute 5 (unit_charge_active: {scaling, commodity,
    charge_table [{index, charge}]}) as served (tagged), or None."""
    try:
        return int(tagged[1][2][1][0][1][1][1])
    except (TypeError, ValueError, IndexError):
        return None


def _digits(hex_text):
    """The gateway's last token (hex of its octet-string) as the digits it holds; hex kept when
    it is not ASCII digits; None stays None."""
    if hex_text is None:
        return None
    raw = bytes.fromhex(hex_text)
    return raw.decode("ascii") if raw.isdigit() else hex_text


def _status(tagged):
    try:
        return int(tagged[1][0][1])
    except (TypeError, ValueError, IndexError):
        return None


def _reasons(tagged):
    try:
        return [bytes(v).decode("ascii", "replace") for _, v in tagged[1]]
    except (TypeError, ValueError):
        return []


class Action(Change):
    """Any other method: sent as is, no evidence (a lost answer gives UNKNOWN)."""

    def __init__(self, ic, obis, method, param):
        self.ic, self.obis, self.method, self.param = ic, obis, method, param
        self.what = "action"

    def send(self, c, before):
        result, data = c.action(self.ic, self.obis, self.method, self.param)
        return {"result": result, "data": data}


def action_change(ic, obis, method, param):
    """The Change for ACTION (``ic``, ``obis``, ``method``) with A-XDR ``param`` (or None):
    a TopUp, Relay or Token when the method is one of theirs, else an ``Action``. The
    ``result`` of every one is a dict; an ``Action`` keeps the method's return ``data``."""
    if ic == 112 and obis == OBIS_CREDIT and method == 1 and param and param[0] == 5 and len(param) == 5:
        return TopUp(int.from_bytes(param[1:5], "big", signed=True))
    if ic == 70 and obis == OBIS_DISCONNECT and method in (1, 2):
        return Relay(method, param)
    if ic == 115 and obis == OBIS_GATEWAY and method == 1 and param and param[0] == 9:
        return Token(param[2:2 + param[1]].decode("ascii", "replace"))
    return Action(ic, obis, method, param)
