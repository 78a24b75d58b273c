"""Meter-side STS token acceptance (firmware/meter/tokens.py), IEC 62055-41.

Uses the published tokens (IEC sample-table example, CTSA01 DKGA04+MISTY1, class-1 test
token) and tokens built here with protocol.sts + the same ciphers. Runs on CPython and
MicroPython (heap 190k).
"""
from meter.tokens import TokenAcceptor
from protocol import sts
from protocol.sts import Ea07, Misty1, load_tables
from protocol.sts import StsError, TokenFields, build_block

from acceptor_state import key_info, lockout_remaining, tids  # noqa: E402


def _root():
    parts = __file__.replace("\\", "/").split("/")
    up = "/".join(parts[:-3])
    return up if up else "."


TABLES = load_tables(_root() + "/firmware/sts_sample_tables.json")
DK = bytes.fromhex("0ABC12DEF3456789")
DK11 = bytes.fromhex("f94b6ed353c3bfdb113e2d3a7ea3c41d")
IEC_TOKEN = "51043465443420856213"          # TID 19EB23, 25.6 kWh (sample tables, DK above)
CTSA01_TOKEN = "59386323472137426967"       # TID 59982C, 0.1 kWh (MISTY1, DK11)
TEST_TOKEN = "56493153725450313471"         # class 1, all tests
T0 = 1767225600                             # 2026-01-01, the meter's clock


def _acc(**kw):
    return TokenAcceptor(DK, "ea07", TABLES, **kw)


def _tok(key, cls, sub, alg="ea07", **kw):
    b = build_block(TokenFields(cls, sub, **kw))
    if cls != 1:
        c = Ea07(key, TABLES) if alg == "ea07" else Misty1(key)
        b = c.encrypt_block(b)
    return sts.join_token(cls, b)


def _credit(tid, amount=10, key=DK, sub=0, rnd=3):
    return _tok(key, 0, sub, tid=tid, rnd=rnd, value=sts.amount_encode(amount))


def test_iec_token_accepted_once():
    a = _acc()
    r = a.enter(IEC_TOKEN, T0)
    assert r.ok and r.reason == "accepted" and r.action == "credit"
    assert (r.token_class, r.subclass, r.tid, r.amount) == (0, 0, 0x19EB23, 256)
    r2 = a.enter("5104 3465 4434 2085 6213", T0 + 1)
    assert not r2.ok and r2.reason == "used" and r2.amount == 0
    assert tids(a) == [0x19EB23]


def test_ea11_ctsa01_token_accepted():
    a = TokenAcceptor(DK11, "ea11")
    r = a.enter(CTSA01_TOKEN, T0)
    assert r.ok and r.amount == 1 and r.tid == 0x59982C
    assert a.enter(CTSA01_TOKEN, T0).reason == "used"
    # an EA07 meter does not accept it
    assert _acc().enter(CTSA01_TOKEN, T0).reason == "crc"


def test_used_after_restart():
    a = _acc()
    assert a.enter(IEC_TOKEN, T0).ok
    rec = a.to_record()
    assert len(rec) == 17 + 8 + 3
    b = _acc().from_record(rec)                   # power cycle: a fresh acceptor
    r = b.enter(IEC_TOKEN, T0 + 5)
    assert not r.ok and r.reason == "used"
    assert b.enter(_credit(0x19EB24), T0).ok


def test_old_and_overwrite_oldest():
    a = _acc(store_size=50)
    for t in range(1000, 1050):
        assert a.enter(_credit(t), T0).ok, t
    assert len(tids(a)) == 50
    r = a.enter(_credit(999), T0)
    assert not r.ok and r.reason == "old"
    assert a.enter(_credit(1049), T0).reason == "used"
    assert a.enter(_credit(2000), T0).ok          # overwrites the oldest (1000)
    assert tids(a)[0] == 1001 and tids(a)[-1] == 2000 and len(tids(a)) == 50
    assert a.enter(_credit(1000), T0).reason == "old"
    assert a.enter(_credit(1001), T0).reason == "used"
    # not full yet: an older TID is still fine
    b = _acc(store_size=50)
    assert b.enter(_credit(500), T0).ok and b.enter(_credit(400), T0).ok


def test_store_record_is_compact():
    a = _acc()
    for t in range(60):
        a.enter(_credit(100 + t), T0)
    rec = a.to_record()
    assert len(rec) == 17 + 8 + 3 * 50
    b = _acc().from_record(rec)
    assert tids(b) == tids(a) == list(range(110, 160))


def test_key_expiry_ken():
    assert _acc(ken=0x19).enter(IEC_TOKEN, T0).ok
    r = _acc(ken=0x18).enter(IEC_TOKEN, T0)
    assert not r.ok and r.reason == "key_expired" and r.tid == 0x19EB23
    assert _acc(ken=255).enter(_credit(0xFFFFFF), T0).ok


def test_format_crc_other_meter():
    a = _acc(lockout_after=0)
    assert a.enter("5104346544342085621", T0).reason == "format"
    assert a.enter("51043465443420856213 7", T0).reason == "format"
    assert a.enter("99999999999999999999", T0).reason == "format"
    assert a.enter("abcd", T0).reason == "format"
    assert a.enter(None, T0).reason == "format"
    # one wrong digit
    bad = "51043465443420856214"
    assert a.enter(bad, T0).reason == "crc"
    # a token for another meter (other decoder key)
    other = _credit(5000, key=bytes.fromhex("1122334455667788"))
    assert a.enter(other, T0).reason == "crc"
    assert tids(a) == []


def test_class1_test_token_no_credit():
    a = _acc()
    r = a.enter(TEST_TOKEN, T0)
    assert r.ok and r.action == "test" and r.amount == 0 and r.tid is None
    assert r.value == (1 << 36) - 1 and r.mfr_code == 0
    assert "load_switch" in r.tests and "display" in r.tests
    # test tokens carry no TID: entering it again is fine
    assert a.enter(TEST_TOKEN, T0).ok
    relay_only = _tok(None, 1, 0, control=1, mfr_code=7)
    r = a.enter(relay_only, T0)
    assert r.ok and r.tests == ("load_switch",) and r.mfr_code == 7
    assert tids(a) == []


def test_class2_management_actions():
    a = _acc()
    cases = (
        (0, sts.amount_encode(5000), "mpl", 5000),
        (1, 0xFFFF, "clear_credit", 0xFFFF),
        (2, 1234, "tariff", 1234),
        (5, 0, "clear_tamper", 0),
        (6, sts.amount_encode(300), "phase_unbalance", 300),
        (7, 77, "water_factor", 77),
    )
    tid = 7000
    for sub, value, action, expect in cases:
        tid += 1
        r = a.enter(_tok(DK, 2, sub, tid=tid, rnd=1, value=value), T0)
        assert r.ok and r.action == action and r.value == expect and r.amount == 0, (sub, r)
        assert a.enter(_tok(DK, 2, sub, tid=tid, rnd=1, value=value), T0).reason == "used"


def test_wrong_subclass():
    a = _acc()
    r = a.enter(_credit(42, sub=1), T0)           # water credit on an electricity meter
    assert not r.ok and r.reason == "wrong_subclass"
    assert tids(a) == []
    w = _acc(credit_subclasses=(0, 1))
    assert w.enter(_credit(42, sub=1), T0).ok


def test_lockout_engages_doubles_and_releases():
    a = _acc(lockout_after=3, lockout_base_s=10, lockout_max_s=1280)
    bad = "51043465443420856214"
    assert a.enter(bad, T0).lockout_s == 0
    assert a.enter(bad, T0).lockout_s == 0
    r = a.enter(bad, T0)
    assert r.reason == "crc" and r.lockout_s == 10
    r = a.enter(IEC_TOKEN, T0 + 5)
    assert not r.ok and r.reason == "locked_out" and r.value == 5
    assert a.enter(TEST_TOKEN, T0 + 5).ok         # class 1 still accepted
    assert lockout_remaining(a, T0 + 5) == 5
    # released after 10 s; the next wrong entry doubles the lockout
    assert a.enter(bad, T0 + 10).lockout_s == 20
    assert a.enter(bad, T0 + 30).lockout_s == 40
    t = T0 + 70
    d = 40
    for _ in range(10):
        d = min(d * 2, 1280)
        r = a.enter("1" * 19, t)
        assert r.lockout_s == d, (r.lockout_s, d)
        t += d
    assert d == 1280
    # lockout survives a restart
    b = _acc().from_record(a.to_record())
    assert b.enter(IEC_TOKEN, t - 1).reason == "locked_out"
    # an accepted token resets the counter
    assert a.enter(IEC_TOKEN, t).ok
    assert a.enter(bad, t).lockout_s == 0


def test_key_change_pair():
    a = _acc(krn=1, kt=2, ti=1)
    assert a.enter(_credit(300), T0).ok
    new = bytes.fromhex("1122334455667788")
    s1, s2 = sts.key_sections(new, ken=0xFE, krn=2, kt=1, ti=7, ro=0)
    t1 = _tok(DK, 2, s1.subclass, ken_half=s1.ken_half, krn=2, ro=0, kt=1, key_part=s1.key_part)
    t2 = _tok(DK, 2, s2.subclass, ken_half=s2.ken_half, ti=7, key_part=s2.key_part)
    r = a.enter(t1, T0)
    assert r.ok and r.reason == "key_change_pending" and r.value == 1
    assert key_info(a)["krn"] == 1
    r = a.enter(t2, T0 + 30)
    assert r.ok and r.reason == "accepted" and r.action == "key_change" and r.value == 2
    info = key_info(a)
    assert (info["krn"], info["kt"], info["ti"], info["ken"]) == (2, 1, 7, 0xFE)
    assert tids(a) == [300]                     # no rollover: TID store kept
    # old-key tokens are now rejected, new-key tokens accepted
    assert a.enter(_credit(301), T0).reason == "crc"
    assert a.enter(_credit(301, key=new), T0).ok
    # the new key persists across a restart
    b = _acc().from_record(a.to_record())
    assert b.enter(_credit(302, key=new), T0).ok
    assert b.enter(_credit(301, key=new), T0).reason == "used"


def test_key_change_window_and_rollover():
    a = _acc(key_change_window_s=90)
    for t in (0xF00000, 0xF00001):
        assert a.enter(_credit(t), T0).ok
    new = bytes.fromhex("0102030405060708")
    s1, s2 = sts.key_sections(new, ken=255, krn=3, kt=2, ti=1, ro=1)
    t1 = _tok(DK, 2, 3, ken_half=s1.ken_half, krn=3, ro=1, kt=2, key_part=s1.key_part)
    t2 = _tok(DK, 2, 4, ken_half=s2.ken_half, ti=1, key_part=s2.key_part)
    assert a.enter(t2, T0).reason == "key_change_pending"      # either order
    r = a.enter(t1, T0 + 91)                                   # too late: starts over
    assert r.reason == "key_change_pending"
    assert key_info(a)["krn"] == 1
    r = a.enter(t2, T0 + 100)
    assert r.ok and r.action == "key_change"
    assert tids(a) == [] and key_info(a)["base_date"] == 2014
    # after rollover a small base-2014 TID is accepted under the new key
    assert a.enter(_credit(5, key=new), T0 + 200).ok


def test_replayed_key_change_sections_change_nothing():
    # attack pass (session 13): a section entered again was a journal write and an event each
    # (100 replays: 103 block erases), and a set to the key in use with RO=1 cleared the TID
    # store every time it was entered: used credit tokens were accepted again
    a = _acc(krn=1, kt=2, ti=1)
    assert a.enter(_credit(300), T0).ok
    base = key_info(a)["base_date"]
    s1, s2 = sts.key_sections(DK, ken=255, krn=1, kt=2, ti=1, ro=1)
    t1 = _tok(DK, 2, 3, ken_half=s1.ken_half, krn=1, ro=1, kt=2, key_part=s1.key_part)
    t2 = _tok(DK, 2, 4, ken_half=s2.ken_half, ti=1, key_part=s2.key_part)
    assert a.enter(t1, T0).reason == "key_change_pending"
    r = a.enter(t1, T0 + 1)
    assert not r.ok and r.reason == "used"                     # pending already
    r = a.enter(t2, T0 + 2)
    assert not r.ok and r.reason == "used"                     # the key in use
    assert tids(a) == [300] and key_info(a)["base_date"] == base
    assert a.enter(_credit(300), T0 + 3).reason == "used"
    # a new revision of the same key is a key change (RO: the TID store starts again)
    s1, s2 = sts.key_sections(DK, ken=255, krn=2, kt=2, ti=1, ro=1)
    t1 = _tok(DK, 2, 3, ken_half=s1.ken_half, krn=2, ro=1, kt=2, key_part=s1.key_part)
    t2 = _tok(DK, 2, 4, ken_half=s2.ken_half, ti=1, key_part=s2.key_part)
    assert a.enter(t1, T0 + 4).reason == "key_change_pending"
    r = a.enter(t2, T0 + 5)
    assert r.ok and r.action == "key_change" and key_info(a)["krn"] == 2 and tids(a) == []


def test_ea11_four_section_key_change():
    a = TokenAcceptor(DK11, "ea11")
    new = bytes.fromhex("00112233445566778899aabbccddeeff")
    secs = sts.key_sections(new, ken=255, krn=4, kt=2, ti=5, sgc=123457)
    toks = []
    for f in secs:
        toks.append(sts.join_token(2, Misty1(DK11).encrypt_block(build_block(f))))
    for t in toks[:3]:
        assert a.enter(t, T0).reason == "key_change_pending"
    r = a.enter(toks[3], T0 + 1)
    assert r.ok and r.action == "key_change" and key_info(a)["krn"] == 4
    old = sts.join_token(0, Misty1(DK11).encrypt_block(
        build_block(TokenFields(0, 0, rnd=1, tid=11, value=5))))
    assert a.enter(old, T0).reason == "crc"
    ok = sts.join_token(0, Misty1(new).encrypt_block(
        build_block(TokenFields(0, 0, rnd=1, tid=10, value=5))))
    assert a.enter(ok, T0).ok
    # 3rd/4th sections mean nothing to an EA07 meter
    e = _acc()
    t3 = _tok(DK, 2, 8, sgc_half=1, key_part=2)
    assert e.enter(t3, T0).reason == "wrong_subclass"


def test_record_errors():
    a = _acc()
    for bad in (b"", b"XX", b"TK\x01\x00\x08", a.to_record()[:-1], a.to_record() + b"\x00"):
        try:
            a.from_record(bad)
            assert False, bad
        except StsError as e:
            assert e.reason == "record"
    try:
        TokenAcceptor(DK11, "ea11").from_record(a.to_record())
        assert False
    except StsError as e:
        assert e.reason == "record"
    try:
        TokenAcceptor(DK, "ea11")
        assert False
    except StsError as e:
        assert e.reason == "key"
    try:
        TokenAcceptor(DK, "ea07")
        assert False
    except StsError as e:
        assert e.reason == "tables"


def test_currency_token_refused_never_credited():
    # class 0 subclass 4..7 (currency) is not implemented: a block that decrypts and checks is
    # refused with a defined reason, and nothing is stored or credited
    a = _acc(credit_subclasses=(0, 4))
    for sub in (4, 5, 6, 7):
        blk = sts.with_crc(0, (sub << 60) | (3 << 56) | ((0x100 + sub) << 32) | (0x0100 << 16))
        r = a.enter(sts.join_token(0, Ea07(DK, TABLES).encrypt_block(blk)), T0)
        assert (r.ok, r.reason, r.subclass, r.amount) == (False, "wrong_subclass", sub, 0)
    assert tids(a) == []


def test_base_date_2035_record_and_rollover():
    a = _acc(base_date=2014)
    assert a.enter(_credit(0xF00000), T0).ok
    new = bytes.fromhex("0102030405060708")
    s1, s2 = sts.key_sections(new, ken=255, krn=2, kt=2, ti=1, ro=1)
    a.enter(_tok(DK, 2, 3, ken_half=s1.ken_half, krn=2, ro=1, kt=2, key_part=s1.key_part), T0)
    r = a.enter(_tok(DK, 2, 4, ken_half=s2.ken_half, ti=1, key_part=s2.key_part), T0)
    assert r.ok and key_info(a)["base_date"] == 2035 and tids(a) == []
    b = TokenAcceptor(new, "ea07", TABLES).from_record(a.to_record())     # power cycle
    assert key_info(b)["base_date"] == 2035
    assert b.enter(_credit(60, key=new), T0).ok                          # 2035-01-01 01:00


def test_lockout_result_says_how_long():
    a = _acc(lockout_after=3, lockout_base_s=10)
    for _ in range(3):
        r = a.enter("12345678901234567890", T0)
    assert r.lockout_s == 10 and r.text() == "crc: keypad locked for 10 s"
    r = a.enter(_credit(7), T0 + 4)
    assert r.reason == "locked_out" and r.value == 6 and r.text() == "locked_out: wait 6 s"
