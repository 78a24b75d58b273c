"""The meter's credit path (``meter.tokjudge.judge``: a class 0 or class 2 data token judged on the
journaled acceptor record) against the acceptor (``meter.tokens.judge``): the same TokenResult
and the same record after every entry of a long mixed sequence (credit, class 2, used, old,
expired, over the ceiling, wrong subclass, other meter, mistyped, class 3, lock-outs, test tokens,
a key change), EA07 and EA11; key-change sections (``meter.tokkey``) in every turn the acceptor
tells apart, with the same pending sections. Runs on CPython and MicroPython.
"""
from meter import tokens, tokjudge
from protocol import sts
from protocol.sts import Ea07, Misty1, TokenFields, build_block, load_tables


def _root():
    parts = __file__.replace("\\", "/").split("/")
    up = "/".join(parts[:-3])
    return up if up else "."


TABLES_PATH = _root() + "/firmware/sts_sample_tables.json"
TABLES = load_tables(TABLES_PATH)
DK = "0abc12def3456789"
DK2 = "1122334455667788"
DK11 = "f94b6ed353c3bfdb113e2d3a7ea3c41d"
DK11B = "d14c3ae7a3d2e311bdfb3c353de6b49f"
T0 = 1767225600
FIELDS = ("ok", "reason", "token_class", "subclass", "tid", "amount", "action", "value", "tests",
          "mfr_code", "lockout_s")


class _Board:
    def path(self, name):
        return TABLES_PATH


class _Meter:
    def __init__(self, cfg):
        self.board = _Board()
        self.tokens = [cfg, None, [None, None, None, None], 0, None]
        self.room = 5000

    def token_room(self):
        return self.room

    def event(self, code, text, detail=None):
        pass


def _cipher(key, alg):
    return Ea07(bytes.fromhex(key), TABLES) if alg == "ea07" else Misty1(bytes.fromhex(key))


def _tok(key, alg, cls, sub, **kw):
    b = build_block(TokenFields(cls, sub, **kw))
    if cls != 1:
        b = _cipher(key, alg).encrypt_block(b)
    return sts.join_token(cls, b)


def _data(key, alg, cls, sub, tid, value):
    # a data block of any subclass (build_block refuses the currency ones), CRC and all
    b = (sub << 60) | (tid << 32) | (value << 16)
    return sts.join_token(cls, _cipher(key, alg).encrypt_block(b | sts.crc_field(cls, b)))


def _key_change(key, new, alg, ro):
    # the sections encrypted with the current key; ro=1: a TID rollover (store cleared, base date on)
    c = _cipher(key, alg)
    return [sts.join_token(2, c.encrypt_block(build_block(f)))
            for f in sts.key_sections(bytes.fromhex(new), ken=4, krn=2, kt=1, ti=3, ro=ro)]


class _Lcg:
    def __init__(self, seed):
        self.x = seed

    def next(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def _sequence(alg, key, rnd, n):
    """``n`` tokens: every outcome the credit path judges, and some it leaves to the acceptor."""
    out = []
    for i in range(n):
        c = rnd.next(16)
        tid = 1000 + i // 2 + rnd.next(12)
        if c < 5:
            out.append(_tok(key, alg, 0, 0, tid=tid, rnd=3, value=sts.amount_encode(1 + rnd.next(900))))
        elif c == 5:
            out.append(_tok(key, alg, 0, 0, tid=0x50000 + tid, value=5))        # KEN 4: expired
        elif c == 6:
            out.append(_tok(key, alg, 0, 0, tid=tid, value=sts.amount_encode(9000)))   # over room
        elif c == 7:
            sub = (0, 1, 2, 5, 6, 7, 10, 15)[rnd.next(8)]
            out.append(_tok(key, alg, 2, sub, tid=tid, value=rnd.next(0x10000)))
        elif c == 8:
            out.append(_data(key, alg, 0, 1 + rnd.next(15), tid, 7))      # not electricity
        elif c == 9:
            out.append(_tok(DK2 if alg == "ea07" else DK11B, alg, 0, 0, tid=tid, value=9))
        elif c == 10:
            out.append(("1234567890123456789", "123456789012345678x", "99999999999999999999",
                        "")[rnd.next(4)])
        elif c == 11:
            out.append(sts.join_token(3, rnd.next(1 << 30) << 30))
        elif c == 12 and out:
            out.append(out[-1 - rnd.next(len(out) if len(out) < 4 else 4)])   # again: used?
        elif c == 13:
            sub = rnd.next(4)                 # test tokens; subclasses 2 and 3: no test layout
            out.append(_tok(key, alg, 1, sub, control=rnd.next(1 << 28), mfr_code=rnd.next(256)) if sub < 2
                       else sts.join_token(1, (sub << 60) | (5 << 16) | sts.crc_field(1, (sub << 60) | (5 << 16))))
        else:
            out.append(_tok(key, alg, 0, 0, tid=2000 + i, value=sts.amount_encode(10)))
    return out


def _run(cfg, alg, key, seed):
    lean, ref = _Meter(dict(cfg)), _Meter(dict(cfg))
    tokens.judge(lean, None, 0)
    tokens.judge(ref, None, 0)
    rnd = _Lcg(seed)
    new = DK2 if alg == "ea07" else DK11B
    kc = _key_change(key, new, alg, seed & 1)
    seq = _sequence(alg, key, rnd, 100) + kc + _sequence(alg, new, rnd, 70)
    now = T0
    judged = 0
    for j, t in enumerate(seq):
        if j == 100:
            now += 2000          # past any lock-out: the sections within the change window
        elif t not in kc:
            now += (0, 1, 7, 60, 700)[rnd.next(5)]
        lean.room = ref.room = (5000, 20, None)[rnd.next(3)]
        r = tokjudge.judge(lean, t, now)
        if r is None:
            r = tokens.judge(lean, t, now)
        else:
            judged += 1
        e = tokens.judge(ref, t, now)
        assert [getattr(r, f) for f in FIELDS] == [getattr(e, f) for f in FIELDS], (j, t)
        assert r.text() == e.text()
        assert lean.tokens[1] == ref.tokens[1], (j, t)
    assert lean.tokens[1][5:5 + len(new) // 2] == bytes.fromhex(new)   # the key changed
    assert judged == len(seq)        # every entry on the record: the key-change sections too
    return judged


def test_credit_path_judges_as_the_acceptor_ea07():
    cfg = {"decoder_key": DK, "algorithm": "ea07", "ken": 4, "store_size": 6, "lockout_after": 3}
    _run(cfg, "ea07", DK, 9)


def test_credit_path_judges_as_the_acceptor_ea11():
    cfg = {"decoder_key": DK11, "algorithm": "ea11", "ken": 4, "store_size": 5, "lockout_after": 2,
           "lockout_max_s": 40}
    _run(cfg, "ea11", DK11, 11)


def _sections(key, new, alg, krn=2, ro=0, res=0, ti=3):
    # the sections of a change from ``key`` to ``new``, encrypted with ``key`` (res: key1's reserved bit)
    fs = sts.key_sections(bytes.fromhex(new), ken=0x4F, krn=krn, kt=1, ti=ti, ro=ro, sgc=0x123456)
    fs[0].res = res
    c = _cipher(key, alg)
    return [sts.join_token(2, c.encrypt_block(build_block(f))) for f in fs]


def _key_script(alg, a, b, c):
    """(token, seconds since the previous entry, expected reason) through every turn of a key
    change: a section twice, sections in any order, credit between them, the window passing, the
    clock going back, a replayed set (the key in use), a reserved bit, RO, a lock-out, sections 3
    and 4 on EA07."""
    ea07 = alg == "ea07"
    s = _sections(a, b, alg)                       # a -> b, the last section first
    order = [1, 0] if ea07 else [3, 1, 0, 2]
    out = [(s[order[0]], 0, "key_change_pending"), (s[order[0]], 1, "used"),
           (_tok(a, alg, 0, 0, tid=1001, value=5), 1, "accepted")]
    out += [(s[i], 5, "key_change_pending") for i in order[1:-1]]
    out += [(s[order[-1]], 5, "accepted"), (s[0], 1, "crc"),                # now under b: crc
            (_tok(b, alg, 0, 0, tid=1002, value=5), 1, "accepted")]
    r = _sections(b, b, alg)                       # the key in use, same KRN, KT, TI: a replay
    out += [(t, 1, "key_change_pending") for t in r[:-1]] + [(r[-1], 1, "used")]
    t = _sections(b, c, alg, krn=5, ro=1, res=1)   # b -> c with a TID rollover
    u = _sections(b, c, alg, krn=5, ro=1)          # its first section, the reserved bit clear
    out += [(t[0], 1, "key_change_pending"), (u[0], 2, "used")]
    out += [(x, 200, "key_change_pending") for x in t[1:2]]         # the window passed: anew
    out += [(x, 1, "key_change_pending") for x in t[2:]] + [(t[0], 1, "accepted")]
    out += [(_tok(c, alg, 0, 0, tid=1001, value=5), 1, "accepted")]  # the store was cleared
    k3 = _tok(c, alg, 2, 8, sgc_half=1, key_part=7)
    out += [(k3, 1, "wrong_subclass" if ea07 else "key_change_pending")]
    v = _sections(c, a, alg, krn=3)                # c -> a: the clock goes back between sections
    out += [(v[0], 100, "key_change_pending"), (v[1], -50, "key_change_pending")]
    out += [(x, 1, "key_change_pending") for x in v[2:]] + [(v[0], 1, "accepted")]
    w = _sections(a, b, alg, krn=6)                # a lock-out: a section waits for its end
    out += [("1234", 1, "format"), ("1234", 1, "format"), ("1234", 1, "format")]
    out += [(w[0], 1, "locked_out"), (w[0], 20, "key_change_pending")]
    out += [(x, 1, "key_change_pending") for x in w[1:-1]] + [(w[-1], 1, "accepted")]
    return out


def _key_run(cfg, alg, a, b, c, script=None):
    lean, ref = _Meter(dict(cfg)), _Meter(dict(cfg))
    tokens.judge(lean, None, 0)
    tokens.judge(ref, None, 0)
    now = T0
    for j, (t, dt, why) in enumerate(script or _key_script(alg, a, b, c)):
        now += dt
        r = tokjudge.judge(lean, t, now)
        e = tokens.judge(ref, t, now)
        assert r is not None, j      # judged on the record (meter.tokkey), not left to the acceptor
        assert [getattr(r, f) for f in FIELDS] == [getattr(e, f) for f in FIELDS], (j, t)
        assert r.reason == why, (j, r.reason, why)
        assert lean.tokens[1:4] == ref.tokens[1:4], j        # record, pending sections, their time
    if b is not None:
        assert lean.tokens[1][5:5 + len(b) // 2] == bytes.fromhex(b)
    return lean.tokens[1]


def test_key_changes_are_judged_on_the_record_as_the_acceptor_does_ea07():
    cfg = {"decoder_key": DK, "algorithm": "ea07", "store_size": 6, "lockout_after": 3}
    rec = _key_run(cfg, "ea07", DK, DK2, "55aa55aa0f0f0f0f")
    assert rec[13:17] == bytes((6, 1, 3, 0x4F)) and rec[17] == 1      # KRN KT TI KEN, base 2014


def test_key_changes_are_judged_on_the_record_as_the_acceptor_does_ea11():
    cfg = {"decoder_key": DK11, "algorithm": "ea11", "store_size": 5, "lockout_after": 3}
    rec = _key_run(cfg, "ea11", DK11, DK11B, "00112233445566778899aabbccddeeff")
    assert rec[21:25] == bytes((6, 1, 3, 0x4F)) and rec[25] == 1


def test_a_section_of_another_set_restarts_the_pending_set_ea11():
    # attack pass (session 14): sections of two un-entered sets made a key nobody holds. A second
    # section for a slot already pending is the other set's: the pending set restarts from it
    cfg = {"decoder_key": DK11, "algorithm": "ea11", "store_size": 5, "lockout_after": 3}
    c = "00112233445566778899aabbccddeeff"
    s, t = _sections(DK11, DK11B, "ea11", krn=2), _sections(DK11, c, "ea11", krn=3, ti=9)
    script = [(x, 1, "key_change_pending") for x in s[:3]]             # b's 1st..3rd
    script += [(t[0], 1, "key_change_restarted"),                     # c's 1st: b's dropped
               (s[3], 1, "key_change_pending"),                       # (was: b's 2nd, 3rd + c's 1st)
               (t[3], 1, "key_change_restarted"),                     # c's 4th: b's 4th dropped
               (t[0], 40, "key_change_pending"), (t[1], 40, "key_change_pending"),
               (t[2], 5, "accepted")]       # 85 s after c's 4th restarted the set, 168 after b's 1st
    rec = _key_run(cfg, "ea11", DK11, c, None, script)
    assert rec[21:24] == bytes((3, 1, 9))                              # c's KRN, KT, TI


def test_a_restarted_set_is_its_own_result_and_keeps_the_new_section_ea07():
    cfg = {"decoder_key": DK, "algorithm": "ea07", "store_size": 6, "lockout_after": 3}
    s, t = _sections(DK, DK2, "ea07", krn=2), _sections(DK, "55aa55aa0f0f0f0f", "ea07", krn=3)
    script = [(t[0], 0, "key_change_pending"), (s[0], 80, "key_change_restarted"), (s[0], 1, "used"),
              (s[1], 70, "accepted")]         # 151 s after c's 1st, 71 after b's: b's window
    rec = _key_run(cfg, "ea07", DK, DK2, None, script)
    assert rec[13] == 2
    m = _Meter(dict(cfg))
    tokens.judge(m, None, 0)
    assert tokjudge.judge(m, t[0], T0).reason == "key_change_pending"
    r = tokjudge.judge(m, s[0], T0 + 1)
    assert (r.ok, r.reason, r.action, r.value, r.text()) == (
        False, "key_change_restarted", None, 1, "key_change_restarted")
    assert m.tokens[2][1:] == [None, None, None] and m.tokens[3] == T0 + 1


def test_a_mixed_ea07_pair_is_what_the_tokens_allow():
    # the documented limit (docs/CONTRACTS.md): sections 1 and 2 share no field, so another set's
    # 2nd completes a pending 1st; the meter refuses only what it can tell apart (a slot twice)
    cfg = {"decoder_key": DK, "algorithm": "ea07", "store_size": 6, "lockout_after": 3}
    c = "55aa55aa0f0f0f0f"
    s, t = _sections(DK, DK2, "ea07", krn=2), _sections(DK, c, "ea07", krn=3)
    rec = _key_run(cfg, "ea07", DK, None, None, [(t[1], 1, "key_change_pending"), (s[0], 1, "accepted")])
    assert rec[5:13] == bytes.fromhex(DK2[:8] + c[8:])


def test_only_a_completed_or_refused_key_change_is_a_transaction_event():
    # attack pass (session 14): a section re-entered every 91 s (past the window) was a journal
    # write and a transaction event each: the ring flushed in ~83 min, ~1 block erase per entry
    from meter import tokgate
    cfg = {"decoder_key": DK, "algorithm": "ea07", "store_size": 6, "lockout_after": 3}
    m = _Meter(dict(cfg))
    m.board.sts_resident = True             # no module unloaded (meter.tokgate._drop)
    m.board.time = lambda: now
    m.token_gateway = [None] * 5
    m.evaluate = lambda: None
    m.account = None                        # a key change applies nothing to it
    tokens.judge(m, None, 0)
    s, t = _sections(DK, DK2, "ea07", krn=2), _sections(DK, "55aa55aa0f0f0f0f", "ea07", krn=3)
    got = []
    now = T0
    for x, dt in ((s[0], 91), (s[0], 91), (t[0], 1)):
        now += dt
        r, ev, journal = tokgate.enter(m, x, 0)
        got.append((r.reason, ev[0], ev[2], journal, m.token_gateway[4]))
    assert got == [("key_change_pending", 80, "key_change_pending", False, 2),    # RAM only
                   ("key_change_pending", 80, "key_change_pending", False, 2),    # window passed
                   ("key_change_restarted", 51, "key_change_restarted", False, 2)]
    now += 1
    r, ev, journal = tokgate.enter(m, t[1], 0)
    assert (r.reason, r.action, ev[0], journal, m.token_gateway[4]) == ("accepted", "key_change", 50, True, 3)


def test_an_unusual_record_is_left_to_the_acceptor():
    m = _Meter({"decoder_key": DK, "algorithm": "ea07", "store_size": 6})
    tokens.judge(m, None, 0)
    t = _tok(DK, "ea07", 0, 0, tid=1, value=5)
    rec = m.tokens[1]
    for bad in (None, rec[:-1], b"TX" + rec[2:], rec[:17] + b"\x07" + rec[18:]):   # store size 7
        m.tokens[1] = bad
        assert tokjudge.judge(m, t, T0) is None
    m.tokens[1] = rec
    m.tokens[4] = None                      # no EA07 tables kept (an EA11 meter's)
    assert tokjudge.judge(m, t, T0) is None


def test_amount_is_the_codec_s():
    for f in range(0, 0x10000, 7):
        assert tokjudge._amount(f) == sts.amount_decode(f)
