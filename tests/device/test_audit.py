"""The audit trail (meter.audit): categories, coalescing, the all-events view, migration; and the
token ceiling check, on CPython and MicroPython. The meter's SET/ACTION paths:
tests/host/test_error_changes_nothing.py."""
from meter.audit import Audit, category, REPEAT_S
from meter.events import EventLog

from fsutil import tmpdir as _tmpdir, rmtree as _rmtree  # noqa: E402
from acceptor_state import lockout_remaining, tids  # noqa: E402

# event codes (meter.events)
EV_FIRST_BOOT, EV_POWER_UP, EV_CREDIT, EV_CLOCK_SET, EV_CONFIG = 1, 3, 10, 20, 21
EV_AUTH_FAIL, EV_RELAY_OPEN, EV_TOKEN_OK, EV_TOKEN_BAD, EV_COVER_OPEN, EV_DLMS_ERROR = 30, 42, 50, 51, 60, 90
EV_COVER_CLOSED, EV_COUNTER_RESET = 61, 62
T0 = 1767225600                       # 2026-01-01T00:00:00Z


def test_categories_follow_is15959():
    assert [category(c) for c in (1, 2, 3, 4)] == [2, 2, 2, 2]                 # power
    assert [category(c) for c in (10, 45, 46, 47, 50)] == [3, 3, 3, 3, 3]      # transaction
    assert [category(c) for c in (20, 21, 64, 90, 91, 500)] == [4] * 6         # other
    assert [category(c) for c in (30, 31, 39, 51, 60, 61, 62)] == [5] * 7         # tamper/security
    assert [category(c) for c in (40, 41, 42, 43, 48, 55, 56, 57)] == [6] * 8  # control


def test_a_flood_in_one_category_evicts_no_other():
    d = _tmpdir("aud")
    try:
        a = Audit(d + "/ev")
        a.append(T0, EV_CREDIT, 500)
        a.append(T0 + 1, EV_COVER_OPEN, None)
        for i in range(500):            # refused tokens, each with another reason: no coalescing
            a.append(T0 + 2 + i, EV_TOKEN_BAD, "r%d" % (i % 2))
        for i in range(300):            # DLMS errors and relay commands
            a.append(T0 + 600 + i, EV_DLMS_ERROR if i % 2 else EV_RELAY_OPEN, "x%d" % (i % 2))
        assert list(a.view(3).entries()) == [(T0, EV_CREDIT, 500, 1)]
        assert (T0 + 1, EV_COVER_OPEN, None, 1) in list(a.view(5).entries())
        assert a.view(5).count() <= 40 and a.view(6).count() <= 30
        # the all-events view: every ring, in order of occurrence
        seqs = [e[0] for e in a.records()]
        assert seqs == sorted(seqs) and len(seqs) == a.count()
        assert a.capacity == sum(a.view(c).capacity for c in (2, 3, 4, 5, 6))
    finally:
        _rmtree(d)


def test_metering_counter_resets_evict_no_cover_record():
    # attack pass (session 14): 21 counter resets sent on the RS-485 bus (event 62 each, each its
    # own detail) shared the cover's ring and evicted both cover records
    d = _tmpdir("aud")
    try:
        a = Audit(d + "/ev")
        a.append(T0, EV_COVER_OPEN, None)
        a.append(T0 + 1, EV_COVER_CLOSED, None)
        for i in range(60):
            a.append(T0 + 120 * (i + 1), EV_COUNTER_RESET, i)
        tamper = list(a.view(5).entries())
        assert tamper[:2] == [(T0, EV_COVER_OPEN, None, 1), (T0 + 1, EV_COVER_CLOSED, None, 1)]
        assert [e[1] for e in tamper[2:]] == [EV_COUNTER_RESET] * 20     # the newest 20 re-bases
        assert tamper[-1][2] == 59
    finally:
        _rmtree(d)


def test_repetitions_are_coalesced_with_a_count_and_written_at_most_twice():
    d = _tmpdir("aud")
    try:
        a = Audit(d + "/ev")
        ring = a._rings[4]                                   # the security ring
        for i in range(1000):
            a.append(T0 + i // 100, EV_AUTH_FAIL, None)
        assert a.view(5).last() == (T0, EV_AUTH_FAIL, None, 1000)          # seen before flushed
        assert ring.pending() == 1000
        # on flash: only the first occurrence until the window is over
        assert list(Audit(d + "/ev").view(5).entries()) == [(T0, EV_AUTH_FAIL, None, 1)]
        a.tick(T0 + REPEAT_S)                                # window not over yet: no write
        assert ring.pending() == 1000
        a.tick(T0 + REPEAT_S + 1)
        assert ring.pending() == 0
        assert list(Audit(d + "/ev").view(5).entries()) == [(T0, EV_AUTH_FAIL, None, 1000)]
        # after the window a repetition starts a new entry; another code flushes the run first
        a.append(T0 + REPEAT_S + 2, EV_AUTH_FAIL, None)
        a.append(T0 + REPEAT_S + 3, EV_AUTH_FAIL, None)
        a.append(T0 + REPEAT_S + 4, EV_TOKEN_BAD, "crc")       # same ring, another event
        got = list(Audit(d + "/ev").view(5).entries())
        assert [e[3] for e in got] == [1000, 2, 1] and got[-1][1:3] == (EV_TOKEN_BAD, "crc")
        # state changes are never coalesced
        a.append(T0, EV_CREDIT, 100)
        a.append(T0, EV_CREDIT, 100)
        assert [e[3] for e in a.view(3).entries()] == [1, 1]
    finally:
        _rmtree(d)


def test_test_tokens_alternated_are_one_record_and_flush_nothing():
    # attack pass (session 13): two test tokens entered in turn (control 1, control 2) were a
    # record each: 34 entries pushed the clock-set record out of the "other" ring
    d = _tmpdir("aud")
    try:
        a = Audit(d + "/ev")
        a.append(T0, EV_CLOCK_SET, "remote")
        for i in range(34):
            a.append(T0 + 1 + i, 80, 1 + i % 2)
        a.flush()
        assert list(a.view(4).entries()) == [(T0, EV_CLOCK_SET, "remote", 1), (T0 + 1, 80, 2, 34)]
    finally:
        _rmtree(d)


def test_refused_tokens_alternating_reasons_are_one_record_and_keep_the_lockout_record():
    # attack pass (session 15): a used credit token and a class 0 subclass 1 token entered in turn
    # (neither counts as a wrong entry: no keypad lock-out stops them) were a record each: 24 entries
    # pushed a lock-out's record (31) out of the security ring
    d = _tmpdir("aud")
    try:
        a = Audit(d + "/ev")
        a.append(T0, 31, 1)
        for i in range(40):
            a.append(T0 + 1 + i, EV_TOKEN_BAD, "used" if i % 2 else "wrong_subclass")
        a.flush()
        got = list(Audit(d + "/ev").view(5).entries())
        assert [e[1] for e in got] == [31, EV_TOKEN_BAD] and got[-1][3] == 40
    finally:
        _rmtree(d)


def test_the_single_log_of_earlier_firmware_is_migrated_into_the_categories():
    import os
    d = _tmpdir("aud")
    try:
        old = EventLog(d + "/ev", 20)
        codes = [EV_FIRST_BOOT, EV_CREDIT, EV_COVER_OPEN, EV_AUTH_FAIL, EV_RELAY_OPEN, EV_CLOCK_SET]
        for i in range(1, 31):
            old.append(T0 + i, codes[i % 6], i)
        before = list(old.entries())
        a = Audit(d + "/ev")
        assert list(a.entries()) == before                  # same records, same order
        assert [e[2] for e in a.view(3).entries()] == [i for i in range(1, 31) if i % 6 == 1]
        assert a.next_seq == 31
        assert [n for n in os.listdir(d + "/ev") if len(n) > 1] == []     # old segments gone
        assert list(Audit(d + "/ev").entries()) == before
        # a cut during the migration (old segments there, no marker): the rings hold part of it
        old = EventLog(d + "/ev2", 20)
        for i in range(1, 8):
            old.append(T0 + i, codes[i % 6], i)
        before = list(old.entries())
        part = EventLog(d + "/ev2/t", 10)
        part.append(T0 + 1, EV_CREDIT, 1, 1)
        assert list(Audit(d + "/ev2").entries()) == before   # done again from scratch, once
        # a cut after the marker: the copy is complete, only the old segments are removed
        old = EventLog(d + "/ev3", 20)
        for i in range(1, 8):
            old.append(T0 + i, codes[i % 6], i)
        before = list(old.entries())
        Audit(d + "/ev3")
        stale = EventLog(d + "/ev3", 20)                      # old segments left by the cut ...
        for i in range(1, 3):
            stale.append(T0 + 100 + i, EV_CREDIT, 100 + i)
        with open(d + "/ev3/migrated", "w") as f:
            f.write("1")
        assert list(Audit(d + "/ev3").entries()) == before   # ... and are not copied twice
        assert [n for n in os.listdir(d + "/ev3") if len(n) > 1] == []
    finally:
        _rmtree(d)


def test_token_amount_beyond_the_register_is_refused_before_its_tid_is_stored():
    from meter.tokens import TokenAcceptor
    acc = TokenAcceptor(bytes.fromhex("f94b6ed353c3bfdb113e2d3a7ea3c41d"), "ea11")
    tok = "59386323472137426967"             # IEC 62055-41 CTSA01 (MISTY1): TID 59982C, 0.1 kWh
    r = acc.enter(tok, T0, room=0)
    assert (r.ok, r.reason, r.tid, tids(acc)) == (False, "overflow", 0x59982C, [])
    assert lockout_remaining(acc, T0) == 0    # not a wrong entry: no lock-out count
    r = acc.enter(tok, T0, room=1)
    assert (r.ok, r.reason, r.amount, tids(acc)) == (True, "accepted", 1, [0x59982C])
    assert acc.enter(tok, T0, room=1).reason == "used"
