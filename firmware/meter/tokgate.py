"""The meter's side of an STS token entry (IC 115 token gateway, ``Meter.enter_token``): the token
judged (``meter.tokjudge``, loaded for it and unloaded before the rest), its action applied to
the account, tariff or limiter, the gateway's attributes, the event; ``meter.app`` journals it once
this module is unloaded too. Per entry: each loaded module's functions and constant table (one
block, 2 B per name it uses) are heap, and a board's heap is in holes of a few hundred bytes when a
token comes, so the gateway and the judge are two modules of about half the names each
(docs/MEMORY.md).
"""
from meter.tokres import TokenResult

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# IC 115 token_status_code per STS reason (reason=digit); any other: 7 execution failure
_TOKEN_STATUS = (b" accepted=3 key_change_pending=2 key_change_restarted=2 format=4 wrong_class=4 crc=5"
                 b" key_expired=6 used=6 old=6 locked_out=6 overflow=6 ")
_EV_TOKEN_ACCEPTED = const(50)  # meter.events
_EV_TOKEN_REJECTED = const(51)
_EV_TOKEN_TEST = const(80)      # meter.events: a test token, a pending key section ("other" ring, coalesced)
# Meter.token_gateway = [token, time, STS reason text, delivery method, token_status_code]
_GW_TOKEN = const(0)
_GW_TIME = const(1)
_GW_TEXT = const(2)
_GW_DELIVERY = const(3)
_GW_STATUS = const(4)


def _judge(meter, digits, now, full):
    # meter.tokjudge (``full``: meter.tokens, the acceptor) in a frame of its own: once it returns,
    # nothing on enter's value stack keeps the module, which enter unloads
    if full:
        from meter.tokens import judge
    else:
        from meter.tokjudge import judge
    return judge(meter, digits, now)


def _drop(board, names):
    # modules ``names`` (those loaded) leave the heap now; a board with heap to spare keeps them
    # (board.sts_resident)
    if not getattr(board, "sts_resident", False):
        import gc
        from meter.acse import unload
        unload(names)
        gc.collect()


def enter(meter, raw, delivery):
    """For ``Meter.enter_token``: judge the token (``meter.tokjudge``, else ``meter.tokens``; no STS
    key: refused), apply its action, update ``meter.token_gateway`` (IC 115) -> (TokenResult,
    event, journal?): the caller journals (TID store + credit) with the event, once this module
    is unloaded, and only then returns: an acknowledgement follows the flash write. A refusal
    starting no keypad lock-out is not journaled: the wrong-entry count stays in RAM (a power cut
    resets at most ``lockout_after - 1`` entries; a lock-out is journaled when it starts)."""
    text = raw
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = raw.decode()     # no bytes() copy first
        except Exception:
            text = ""
    # no "".join of a generator: it builds a list of every character first (a 277-character entry
    # of a segmented request was a 1 KiB list, the first MemoryError of that entry at 56k; the two
    # replacements allocate 432 B in all)
    digits = text.replace(" ", "").replace("-", "")
    now = meter.board.time()
    g = meter.token_gateway
    g[_GW_TOKEN] = digits.encode()
    g[_GW_TIME] = now
    g[_GW_DELIVERY] = delivery
    if meter.tokens is None:   # no STS key provisioned: the meter cannot judge any token
        r = TokenResult(False, "no_sts_key")
    else:
        try:
            r = _judge(meter, digits, now, False)       # the credit path
            if r is None:       # no record, an unusual record: the acceptor's
                _drop(meter.board, ("meter.tokjudge",))    # (its cipher, protocol.ea07, is the acceptor's too)
                r = _judge(meter, digits, now, True)
        finally:                # judged: the judge, its cipher, the acceptor leave the heap before the rest
            _drop(meter.board, ("meter.tokjudge", "meter.tokkey", "meter.tokens", "protocol.sts_core",
                                "protocol.ea07"))
    if r.ok and r.reason == "accepted":          # the action on account, tariff, limiter
        a = meter.account
        act = r.action
        if act == "credit":
            # an electricity token carries 0.1 kWh units: an energy register (Account.unit 1)
            # takes them as they are; a currency register amount x tariff, rounded up to the
            # paisa in the customer's favour (as STS rounds amounts, IEC 62055-41 §6.3.5)
            paise = r.amount if a.unit else -((-r.amount * meter.tariff.rates[0]) // 10)
            if paise > 0:
                try:
                    meter.policy.top_up(meter, paise, meter.board.time())
                except ValueError:
                    pass
        elif act == "clear_credit":
            a.credit = a.rem = 0
        elif act == "tariff":
            meter.tariff.set_rate(r.value)          # the flat tariff the engine charges from now
        elif act == "mpl":
            meter.policy.limiter.set_mpl(r.value)    # IC 71 threshold
    d = r.reason.encode()
    i = _TOKEN_STATUS.find(b" " + d + b"=")
    g[_GW_STATUS] = _TOKEN_STATUS[i + len(d) + 2] - 48 if i >= 0 else 7
    g[_GW_TEXT] = r.text().encode()   # IC 115 description: the reason (and a lock-out's wait)
    meter.evaluate()
    if r.action == "test" or (r.ok and g[_GW_STATUS] == 2):     # (2: a key section pending)
        # changes nothing on flash (a pending section is RAM only): not journaled, not a
        # transaction, repeats coalesced whatever their detail (control bits; the reason)
        ev = (_EV_TOKEN_TEST, "token %s %s" % (r.action, r.value), r.value if r.token_class == 1 else r.reason)
    elif r.ok:
        ev = (_EV_TOKEN_ACCEPTED, "token %s %s tid %s" % (r.action, r.value, r.tid), r.tid)
    else:
        ev = (_EV_TOKEN_REJECTED, "token rejected: %s" % r.reason, r.reason)
    # journaled: a change, or a keypad lock-out starts; else nothing on flash changes
    return r, ev, ev[0] == _EV_TOKEN_ACCEPTED or r.lockout_s > 0
