"""An error answer means nothing changed, for every SET and ACTION of the meter: meter.cosem over
meter.app.Meter (the real device code on CPython, a plain directory as its filesystem). Each
refused request is answered with its result and leaves credit, clock, time zone, relay mode,
journal, event log, config.json and policy as they were; a failed journal write too."""
from meter.store import TIME_MAX

from fsutil import tmpdir as _tmpdir, rmtree as _rmtree  # noqa: E402
from plain_board import T0, Board, Ctx  # noqa: E402


def _meter(d, config=None):
    from meter.app import Meter
    m = Meter(Board(d, config))
    m.persist()
    return m


def _state(m):
    cfg = None
    try:
        with open(m.board.path("config.json")) as f:
            cfg = f.read()
    except OSError:
        pass
    return (m.account.state(), m.board.time(), m.tz_minutes, m.dc.control_mode, m.dc.control_state,
            m.journal.seq, m.event_log.count(), list(m.event_log.entries()), cfg, m.config_error,
            m.policy.state())


def _dt(y, mo, d, hh=0, mi=0, ss=0):
    from protocol import axdr_client as axdr
    return axdr.Writer().octet_string(axdr.datetime_bytes(y, mo, d, hh, mi, ss, 0, 0, 0)).getvalue()


def _w():
    from protocol import axdr_client as axdr
    return axdr.Writer()


CLOCK = b"\x00\x00\x01\x00\x00\xff"
CREDIT = b"\x00\x00\x13\x0a\x00\xff"
DC = b"\x00\x00\x60\x03\x0a\xff"
ACCOUNT = b"\x00\x00\x13\x00\x00\xff"
PROFILE = b"\x00\x80\x60\x05\x00\xff"


def test_every_refused_set_and_action_changes_nothing():
    from meter import cosem
    d = _tmpdir("aud")
    try:
        m = _meter(d)
        assert cosem.act(m, Ctx(), (112, CREDIT, 1, None, _w().double_long(5000).getvalue())) == 0
        m.board.t = 946684800 + 60                              # 2000-01-01T00:01:00Z
        m.persist()
        sets = [
            ((8, CLOCK, 2), _dt(1969, 12, 31, 23, 59, 59), 250),      # before 2000: other-reason
            ((8, CLOCK, 2), _dt(1999, 12, 31, 23, 59, 59), 250),
            ((8, CLOCK, 2), _dt(2106, 2, 7, 6, 28, 16), 250),          # after 2106-02-07T06:28:15Z
            ((8, CLOCK, 2), _dt(2200, 1, 1), 250),
            ((8, CLOCK, 2), _w().double_long_unsigned(5).getvalue(), 12),   # not a date-time
            ((8, CLOCK, 3), _w().long(900).getvalue(), 12),            # time zone out of range
            ((70, DC, 4), _w().enum(9).getvalue(), 250),               # no such control mode
            ((70, DC, 4), _w().unsigned(1).getvalue(), 12),
            ((111, ACCOUNT, 2), _w().structure(2).enum(3).enum(1).getvalue(), 250),
            ((1, PROFILE, 2), _w().octet_string(b"{not json").getvalue(), 250),
            ((1, PROFILE, 2), _w().octet_string(b"[1, 2]").getvalue(), 250),
            ((1, PROFILE, 2), _w().octet_string(b'{"payment_mode": 7}').getvalue(), 250),
            ((1, PROFILE, 2), _w().octet_string(b'{"tariff": {"slabs": []}}').getvalue(), 250),
            ((1, PROFILE, 2), _w().octet_string(b'{"no_such_key": 1}').getvalue(), 250),
        ]
        for (ic, ln, attr), value, dar in sets:
            before = _state(m)
            got = cosem.put(m, Ctx(), (ic, ln, attr, None, None), value)
            assert got == dar, (ic, attr, value, got)
            after = _state(m)
            assert after[:9] == before[:9] and after[10] == before[10], (ic, attr, value)
        actions = [
            ((112, CREDIT, 1), _w().double_long(2 ** 30).getvalue(), 250),        # credit overflow
            ((112, CREDIT, 1), _w().double_long_unsigned(2 ** 32 - 1).getvalue(), 250),
            ((112, CREDIT, 1), _w().double_long(0).getvalue(), 250),
            ((112, CREDIT, 1), _w().double_long(-5).getvalue(), 250),
            ((112, CREDIT, 1), _w().octet_string(b"5").getvalue(), 12),
            ((8, CLOCK, 6), _w().long(-900).getvalue(), 250),     # shift before 2000-01-01
            ((8, CLOCK, 6), _w().long(1000).getvalue(), 12),      # beyond the +-900 s of shift_time
        ]
        for (ic, ln, meth), value, res in actions:
            before = _state(m)
            got = cosem.act(m, Ctx(), (ic, ln, meth, None, value))
            assert got == res, (ic, meth, value, got)
            assert _state(m) == before, (ic, meth, value)
        # and the accepted ones do change what they say
        assert cosem.put(m, Ctx(), (8, CLOCK, 2, None, None), _dt(2038, 1, 19, 3, 14, 8)) == 0
        assert m.board.time() == 2 ** 31 and m.journal.hot[4] == 2 ** 31
        assert cosem.put(m, Ctx(), (8, CLOCK, 2, None, None), _dt(2106, 2, 7, 6, 28, 15)) == 0
        assert m.board.time() == TIME_MAX
        assert cosem.act(m, Ctx(), (112, CREDIT, 1, None, _w().double_long(100).getvalue())) == 0
        assert m.account.credit == 5100
    finally:
        _rmtree(d)


def test_a_failed_journal_write_leaves_the_state_as_it_was():
    from meter import cosem
    d = _tmpdir("aud")
    try:
        m = _meter(d)
        assert cosem.act(m, Ctx(), (112, CREDIT, 1, None, _w().double_long(5000).getvalue())) == 0
        save = m.journal.save

        def broken(*a, **k):
            raise OSError(28)        # no space left
        m.journal.save = broken
        before = _state(m)
        assert cosem.act(m, Ctx(), (112, CREDIT, 1, None, _w().double_long(700).getvalue())) == 1
        assert cosem.put(m, Ctx(), (8, CLOCK, 2, None, None), _dt(2040, 1, 1)) == 1
        assert cosem.put(m, Ctx(), (8, CLOCK, 3, None, None), _w().long(-60).getvalue()) == 1
        assert cosem.put(m, Ctx(), (111, ACCOUNT, 2, None, None),
                         _w().structure(2).enum(1).enum(1).getvalue()) == 1
        assert _state(m) == before                 # credit, clock, time zone, payment mode, log
        m.journal.save = save
        assert cosem.act(m, Ctx(), (112, CREDIT, 1, None, _w().double_long(700).getvalue())) == 0
        assert m.account.credit == 5700
    finally:
        _rmtree(d)


def _no_memory(*a, **k):
    raise MemoryError("memory allocation failed, allocating 252 bytes")     # a littlefs file


def test_out_of_memory_in_a_top_up_leaves_ram_and_journal_agreeing():
    """Out of memory on a full heap (the 56k attack soak): an event's write (the relay's, the
    credit's) no longer aborts a top-up half done (credit in RAM, not journaled, no answer, the
    link dropped); the credit event, journaled, is logged by the next persist with an event. A
    journal write out of memory reloads the state and answers temporary-failure (2): try again."""
    from meter import cosem
    from meter.store import Journal
    d = _tmpdir("oom")
    try:
        m = _meter(d)                                       # no credit: the relay is open
        append = m.event_log.append
        m.event_log.append = _no_memory
        assert cosem.act(m, Ctx(), (112, CREDIT, 1, None, _w().double_long(2528).getvalue())) == 0
        assert m.account.credit == 2528 and m.dc.output_state      # relay closed by the top-up
        j = Journal(m.board.path("j/state"))
        assert j.load() is not None and j.hot[0] == 2528            # journaled before the answer
        m.event_log.append = append
        assert cosem.act(m, Ctx(), (112, CREDIT, 1, None, _w().double_long(100).getvalue())) == 0
        assert [e[1:3] for e in m.event_log.entries() if e[1] == 10] == [(10, 2528), (10, 100)]
        m.journal.save = _no_memory
        before = _state(m)
        assert cosem.act(m, Ctx(), (112, CREDIT, 1, None, _w().double_long(700).getvalue())) == 2
        assert cosem.put(m, Ctx(), (8, CLOCK, 2, None, None), _dt(2040, 1, 1)) == 2
        assert cosem.put(m, Ctx(), (8, CLOCK, 3, None, None), _w().long(-60).getvalue()) == 2
        after = _state(m)          # an event 90 "mem" logged, its repeats coalesced (counted)
        assert after[:6] + after[8:] == before[:6] + before[8:] and after[6] == before[6] + 1
        assert [e[1:3] for e in m.event_log.entries()][-1] == (90, "mem")
    finally:
        _rmtree(d)


class _LockMeter:
    """What meter.lockout uses of a meter: its board and ``event`` (the codes logged)."""

    def __init__(self, board):
        self.board = board
        self.events = []

    def event(self, code, text, detail=None):
        self.events.append(code)


def test_a_failed_login_is_counted_in_place_and_out_of_memory_for_its_file_still_answered():
    """meter.lockout: a client's record is updated in place (a new list per failure was a
    long-lived block allocated between a request's, the attack soak's holes); a failure whose
    ``lock`` file finds no room (MemoryError: a littlefs file is a 252 B block) is counted in RAM,
    the lock-out starts and the AARE goes out (it dropped the link)."""
    from meter import lockout

    d = _tmpdir("lk")
    try:
        m = _LockMeter(Board(d))
        lk = lockout.Lockout(m, {"after": 2, "base_s": 5, "max_s": 20})
        lk.fail(32)
        rec = lk._locks[32]
        lockout.open = _no_memory
        try:
            lk.fail(32)                                     # the 2nd: locked out, its file out of memory
        finally:
            del lockout.open
        assert lk._locks[32] is rec and rec == [1, T0 + 5, 0, T0] and lk.left(32) == 5
        assert m.events == [31]                             # one event: the lock-out started
    finally:
        _rmtree(d)


def test_a_good_login_between_guesses_does_not_log_another_lockout_within_a_day():
    """meter.lockout: event 31 for a client's first lock-out and not again within a day, good logins
    between or not (attack pass 2, session 16: the reader logging in once per round re-armed it, 48
    guesses were 16 records, and a metering counter's tamper record left the security ring); the
    lock-out itself starts again at ``base_s`` after a good login, and the day survives a reboot."""
    from meter import lockout

    d = _tmpdir("lk3")
    try:
        m = _LockMeter(Board(d))
        cfg = {"after": 3, "base_s": 10, "max_s": 3600}
        lk = lockout.Lockout(m, cfg)
        for rnd in range(16):
            for _ in range(3):
                lk.fail(32)
            assert lk.left(32) == 10                        # base_s each time: the level was cleared
            m.board.t += 11
            lk.ok(32)                                       # the reader logs in between rounds
        assert m.events == [31]
        lk = lockout.Lockout(m, cfg)                        # a reboot: the day is on flash
        for _ in range(3):
            lk.fail(32)
        assert m.events == [31]
        m.board.t -= 30                                     # a clock set back re-arms nothing
        lk.ok(32)
        for _ in range(3):
            lk.fail(32)
        assert m.events == [31]
        m.board.t = T0 + 86400
        lk.ok(32)
        for _ in range(3):
            lk.fail(32)
        assert m.events == [31, 31]                         # a day later: logged again
        # base_s = max_s (a fixed lock-out): its first lock-out after a good login within the day
        # locked nothing (attack pass 3: base_s << -1, ValueError before the count was kept)
        lk = lockout.Lockout(m, {"after": 3, "base_s": 60, "max_s": 60})
        lk.ok(32)
        for _ in range(3):
            lk.fail(32)
        assert lk.left(32) == 60 and m.events == [31, 31]
    finally:
        _rmtree(d)


def test_a_lock_file_write_that_fails_half_way_keeps_every_lockout():
    """meter.lockout._save: the text is made whole before the file is opened. A streamed ``json.dump``
    that ran out of memory half way left ``{"1":`` on flash (littlefs commits on close, also after an
    error), and the next boot dropped every client's lock-out (attack pass 15)."""
    import json
    from meter import lockout

    class HalfJson:
        load = staticmethod(json.load)

        @staticmethod
        def dump(obj, f):
            f.write('{"1":')
            raise MemoryError

        @staticmethod
        def dumps(obj):
            raise MemoryError

    d = _tmpdir("lk2")
    try:
        m = _LockMeter(Board(d))
        lk = lockout.Lockout(m, {"after": 1, "base_s": 3600, "max_s": 3600})
        lk.fail(1)                                          # client 1 locked out for an hour, on flash
        lockout.json = HalfJson
        try:
            lk.fail(2)                                      # another client: its write fails half way
        finally:
            lockout.json = json
        assert lockout.Lockout(m, {"after": 1, "base_s": 3600, "max_s": 3600}).left(1) == 3600
    finally:
        _rmtree(d)
