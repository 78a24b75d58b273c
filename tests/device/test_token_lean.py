"""The meter's credit path (``meter.tokjudge.judge``: a class 0 or class 2 data token judged on the
journaled acceptor record) against the acceptor (``meter.tokens.judge``): the same TokenResult
and the same record after every entry of a long mixed sequence (credit, class 2, used, old,
expired, over the ceiling, wrong subclass, other meter, mistyped, class 3, lock-outs, test tokens,
a key change), EA07 and EA11. Runs on CPython and MicroPython.
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
    return judged


def test_credit_path_judges_as_the_acceptor_ea07():
    cfg = {"decoder_key": DK, "algorithm": "ea07", "ken": 4, "store_size": 6, "lockout_after": 3}
    assert _run(cfg, "ea07", DK, 9) > 100


def test_credit_path_judges_as_the_acceptor_ea11():
    cfg = {"decoder_key": DK11, "algorithm": "ea11", "ken": 4, "store_size": 5, "lockout_after": 2,
           "lockout_max_s": 40}
    assert _run(cfg, "ea11", DK11, 11) > 100


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
