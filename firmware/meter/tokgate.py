"""The meter's side of an STS token entry (IC 115 token gateway, ``Meter.enter_token``): the
acceptor (``meter.tokens.TokenAcceptor``) built from ``Meter.tokens`` for one entry, its action
applied to the account, the gateway's attributes, the journal write before the acknowledgement.

A module of its own, loaded with ``meter.tokens`` per entry and unloaded after (``meter.app``): each
loaded module's constant table is one block (~2 B per name it uses), and a board's heap is in holes
of a few hundred bytes when a token comes (docs/MEMORY.md).
"""
from meter.tokens import TokenAcceptor, TokenResult

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# IC 115 token_status_code per STS reason (reason=digit); any other: 7 execution failure
_TOKEN_STATUS = (b" accepted=3 key_change_pending=2 format=4 wrong_class=4 crc=5 key_expired=6"
                 b" used=6 old=6 locked_out=6 overflow=6 ")
_EV_TOKEN_ACCEPTED = const(50)  # meter.events
_EV_TOKEN_REJECTED = const(51)
_EV_TOKEN_TEST = const(80)      # meter.events: a class 1 test token (the "other" ring, coalesced)
_EV_STORE_ERROR = const(91)
# Meter.token_gateway = [token, time, STS reason text, delivery method, token_status_code]
_GW_TOKEN = const(0)
_GW_TIME = const(1)
_GW_TEXT = const(2)
_GW_DELIVERY = const(3)
_GW_STATUS = const(4)


def acceptor(meter):
    """The TokenAcceptor of ``meter.tokens`` = [config.json's ``sts`` section (docs/CONTRACTS.md
    "config.json"), its state (``to_record``) or None, key-change sections, their
    time, EA07 tables (96 bytes: read from their JSON file once)], built for one token entry or
    the boot check; ``keep`` stores its state back and ``meter.app`` unloads this module after
    (the acceptor is heap only while it runs)."""
    s = meter.tokens
    g = s[0].get
    alg = g("algorithm", "ea07")
    t = s[4]
    if alg == "ea07" and t is None:   # else the inverse tables kept: no JSON, no check per entry
        t = meter.board.path(g("tables", "sts_tables.json"))
    a = TokenAcceptor(bytes.fromhex(s[0]["decoder_key"]), alg, t,
                      ken=g("ken", 255), store_size=g("store_size", 50), krn=g("krn", 1),
                      kt=g("kt", 2), ti=g("ti", 1), base_date=g("base_date", 1993),
                      lockout_after=g("lockout_after", 3), lockout_base_s=g("lockout_base_s", 10),
                      lockout_max_s=g("lockout_max_s", 1280))
    r = s[1]
    if r is not None:
        from protocol.sts_core import StsError
        try:
            a.from_record(r)
        except StsError:
            meter.event(_EV_STORE_ERROR, "token store record unreadable", "tok")
    a._kc, a._kc_t = s[2], s[3]
    return a


def keep(meter, a):
    s = meter.tokens
    s[1], s[2], s[3] = a.to_record(), a._kc, a._kc_t
    if a._tables is not None and s[4] is None:   # protocol.ea07.Tables keeps the inverse tables
        s[4] = a._tables.isub + a._tables.iperm


def _judge(meter, digits, now):
    # the acceptor lives in this frame only: once it returns, nothing on the caller's value stack
    # (scanned by the GC) points at it, its cipher or the protocol modules, and ``_drop`` frees them
    a = acceptor(meter)
    r = a.enter(digits, now, meter.token_room())   # the credit ceiling
    keep(meter, a)
    return r


def _drop(board):
    """The token is judged: the acceptor, its cipher, ``protocol.sts_core`` and ``protocol.ea07``
    (~2.3 KiB on 32 bits) leave the heap before the journal write, the entry's largest allocations
    (``meter.app`` unloads this module when the entry returns). A board with heap to spare keeps
    them (``board.sts_resident``)."""
    if not getattr(board, "sts_resident", False):
        import gc
        from meter.acse import unload
        unload(("protocol.sts_core", "protocol.ea07"))
        gc.collect()


def enter(meter, raw, delivery):
    """``Meter.enter_token``: judge the token (``acceptor(meter)``; no STS key: refused), apply
    its action, update ``meter.token_gateway`` (IC 115), journal (TID store + credit) and only
    then return the TokenResult: an acknowledgement follows the flash write. A refusal starting no
    keypad lock-out journals nothing: the wrong-entry count stays in RAM (a power cut resets at most
    ``lockout_after - 1`` entries; a lock-out is journaled when it starts)."""
    text = raw
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode()
        except Exception:
            text = ""
    digits = "".join(c for c in text if c not in " -")
    now = meter.board.time()
    g = meter.token_gateway
    g[_GW_TOKEN] = digits.encode()
    g[_GW_TIME] = now
    g[_GW_DELIVERY] = delivery
    if meter.tokens is None:   # no STS key provisioned: the meter cannot judge any token
        r = TokenResult(False, "no_sts_key")
    else:
        r = _judge(meter, digits, now)
        _drop(meter.board)
    if r.ok and r.reason == "accepted":          # the action on account, tariff, limiter
        a = meter.account
        act = r.action
        if act == "credit":
            # an electricity token carries 0.1 kWh units: an energy register (Account.unit 1)
            # takes them as they are; a currency register amount x tariff, rounded up to the
            # paisa in the customer's favour (as STS rounds amounts, IEC 62055-41 §6.3.5)
            paise = r.amount if a.unit else -((-r.amount * a.rate) // 10)
            if paise > 0:
                try:
                    meter.policy.top_up(meter, paise, meter.board.time())
                except ValueError:
                    pass
        elif act == "clear_credit":
            a.credit = a.rem = 0
        elif act == "tariff":
            a.rate = r.value
            meter.tariff.set_rate(r.value)          # the flat tariff the engine charges from now
        elif act == "mpl":
            meter.policy.limiter.set_mpl(r.value)    # IC 71 threshold
    d = r.reason.encode()
    i = _TOKEN_STATUS.find(b" " + d + b"=")
    g[_GW_STATUS] = _TOKEN_STATUS[i + len(d) + 2] - 48 if i >= 0 else 7
    g[_GW_TEXT] = r.text().encode()   # IC 115 description: the reason (and a lock-out's wait)
    meter.evaluate()
    if r.action == "test":    # changes nothing: not journaled, not a transaction, repeats coalesced
        ev = (_EV_TOKEN_TEST, "token test %s" % r.value, r.value)
    elif r.ok:
        ev = (_EV_TOKEN_ACCEPTED, "token %s %s tid %s" % (r.action, r.value, r.tid), r.tid)
    else:
        ev = (_EV_TOKEN_REJECTED, "token rejected: %s" % r.reason, r.reason)
    if ev[0] == _EV_TOKEN_ACCEPTED or r.lockout_s:   # a change, or a keypad lock-out starts
        meter.persist(ev)
    else:                     # nothing on flash changes: the wrong-entry count stays in RAM
        meter.event(*ev)
    return r
