"""Out of memory never changes money, loses a token nor stops the meter: meter.app.Meter (the device
code on CPython, a plain directory as its filesystem) with a MemoryError injected at each line of
device code a token entry, a top-up or a metering tick runs (a trace function raising it: the heap
of a 56 KiB board can fail any allocation). After each, RAM equals the journal (what a power cut
leaves) and the credit equals the accepted tokens and acknowledged top-ups: an error means nothing
changed (temporary-failure), and a TID is never used without its credit."""
import json
import linecache
import sys

import pytest

from hil import identity
from host_tools import vend
from meter import cosem
from meter.store import Journal, undo
from protocol import axdr_client as axdr

from fsutil import tmpdir as _tmpdir, rmtree as _rmtree  # noqa: E402
from plain_board import T0, Board, Ctx  # noqa: E402

CREDIT = (0, 0, 19, 10, 0, 255)


def _inject(n, where=("/firmware/", "/protocol/")):
    # a MemoryError at the n-th line of device code (firmware/, protocol/) from now; tracing stops there.
    # Not at a ``with`` line (CPython's event for its exit: no allocation on MicroPython, which closes
    # the file; CPython's traceback would keep it open, written but not flushed). Nor in the guards
    # themselves (Metering.after: a ``try``, a call of a bound method allocate nothing on MicroPython)
    left = [n]

    def trace(frame, event, arg):
        f = frame.f_code.co_filename.replace("\\", "/")
        if not any(w in f for w in where):
            return None
        if event == "line" and frame.f_code.co_name != "after" \
                and not linecache.getline(f, frame.f_lineno).lstrip().startswith("with "):
            left[0] -= 1
            if left[0] == 0:
                raise MemoryError("memory allocation failed (injected)")
        return trace

    sys.settrace(trace)
    return left


def _run(f, n, where=("/firmware/", "/protocol/")):
    left = _inject(n, where)
    try:
        return f(), left[0] <= 0
    except Exception as e:
        return e, True
    finally:
        sys.settrace(None)


def _norm(x):
    return json.loads(json.dumps(x))


def _agrees(m):
    # RAM == the journal a power cut leaves
    j = Journal(m.board.path("j/state"))
    s = j.load()
    a = m.account
    assert not m.stale
    assert (a.credit, a.rem, a.import_wh) == tuple(j.hot[:3])
    c = (a.credit, a.rem, a.import_wh)
    a.credit = a.rem = a.import_wh = 0              # the full record's account: its hot values zeroed
    acc = a.state()
    a.credit, a.rem, a.import_wh = c
    assert _norm(acc) == _norm(s["acc"]) and _norm(m.policy.state()) == _norm(s["pol"])
    if m.tokens is not None:
        r = m.tokens[1]
        assert (bytes(r).hex() if r else None) == s.get("tok") or not s.get("tok")
    return a.credit


def _meter(d, **cfg):
    from meter.app import Meter
    c = {"credit_paise": 1000}
    c.update(cfg)
    m = Meter(Board(d, c))
    m.persist()
    return m


def _token(k):
    return vend.vend_token(identity.decoder_key(), algorithm="ea07", tables=str(identity.TABLES), base_date=2014,
                           amount=10, issued=T0 + 60 * k, rnd=3)["token"]


@pytest.mark.parametrize("step", [pytest.param(1, marks=pytest.mark.slow), 17])
def test_a_token_entry_out_of_memory_at_any_line_changes_nothing_or_is_journaled(step):
    d = _tmpdir("oomtok")
    try:
        identity.install_tables(d)
        m = _meter(d, sts=identity.sts_config())
        per = 650                  # 1 kWh (10 x 0.1) at the default tariff
        n = k = 0
        while True:
            n += step
            k += 1
            t = _token(k)
            c0 = _agrees(m)
            r, hit = _run(lambda: m.enter_token(t), n, ("/firmware/meter/",))   # not in the ciphers' loops
            c1 = _agrees(m)
            if isinstance(r, OSError):    # temporary-failure: nothing changed (or, out of memory at a line
                assert r.args[0] == 12 and c1 in (c0, c0 + per)   # after the write, on flash: "used" next)
            elif not isinstance(r, Exception):
                assert r.reason == "accepted" and c1 == c0 + per
            again = m.enter_token(t)                         # entered again, no injection
            c2 = _agrees(m)
            # a TID used (credit on flash) or not (accepted now): never used without its credit
            assert (again.reason, c2) in (("used", c1), ("accepted", c1 + per))
            assert c2 > c0
            if not hit:
                break
        assert n > 1000                 # lines of device code an entry runs (CPython)
    finally:
        _rmtree(d)


def _top_up(m, paise):
    return cosem.act(m, Ctx(), (112, CREDIT, 1, None, axdr.Writer().double_long(paise).getvalue()))


def test_a_top_up_out_of_memory_at_any_line_is_acknowledged_and_journaled_or_refused_and_absent():
    d = _tmpdir("oomtop")
    try:
        m = _meter(d)
        n = 0
        while True:
            n += 1
            c0 = _agrees(m)
            r, hit = _run(lambda: _top_up(m, 100), n)
            if isinstance(r, Exception):                     # meter.link's catch-all: the link dropped
                with pytest.raises(OSError):
                    undo(m, r)
            c1 = _agrees(m)
            if r == 0:
                assert c1 == c0 + 100                        # acknowledged: on flash
            elif isinstance(r, int):
                assert r == 2 and c1 == c0                   # temporary-failure: nothing changed
            else:
                assert isinstance(r, MemoryError) and c1 in (c0, c0 + 100)   # no answer (link dropped)
            if not hit:
                break
        assert n > 30
    finally:
        _rmtree(d)


@pytest.mark.parametrize("fail_reload", [False, True])
def test_a_metering_tick_out_of_memory_at_any_line_loses_no_energy_and_the_task_goes_on(fail_reload):
    d = _tmpdir("oomtick")
    try:
        m = _meter(d, persist_wh=1)
        mt = m.metro
        wh = 5000
        total = 0
        n = 0

        def poll():                                        # meter.metrology.Module's good poll
            mt.fresh = True
            mt.outcome = mt.health.good(m.board.t, wh)
            mt.delta_wh = mt.health.delta_wh

        poll()                                             # the first reading: the baseline, journaled
        m.metering.after()
        m.persist()
        w0 = m.account.import_wh
        while True:
            n += 1
            m.board.t += 10
            wh += 3
            total += 3
            load = m.journal.load
            if fail_reload and n % 2:
                m.journal.load = lambda: (_ for _ in ()).throw(MemoryError("injected"))
            poll()
            r, hit = _run(m.metering.after, n)
            m.journal.load = load
            assert r is None or isinstance(r, MemoryError) is False, r    # the task never raises
            if not m.stale:
                _agrees(m)
            if not hit:
                break
        for _ in range(3):                                 # no injection: every Wh charged
            m.board.t += 10
            poll()
            m.metering.after()
        assert not m.stale
        assert _agrees(m) is not None and m.account.import_wh - w0 == total
    finally:
        _rmtree(d)


def test_a_tick_that_reloads_a_stale_state_charges_its_reading_once():
    """A command and its reload out of memory (``Meter.stale``); polls while stale charge nothing; the tick
    whose ``fresh`` reloads charges nothing either (its reading's Wh were taken against the baseline before
    the reload), the next charges from the journal's baseline: every module Wh charged exactly once (attack
    pass 15: that tick's Wh were charged twice, the journal kept import Wh ahead of the module for good)."""
    d = _tmpdir("oomstale")
    try:
        m = _meter(d, credit_paise=100000)
        mt = m.metro
        wh = [5000]

        def poll(step=3):
            m.board.t += 10
            wh[0] += step
            mt.fresh = True
            mt.outcome = mt.health.good(m.board.t, wh[0])
            mt.delta_wh = mt.health.delta_wh
            m.metering.after()

        poll(0)
        for _ in range(3):
            poll()
        m.persist()
        w0, wh0 = m.account.import_wh, wh[0]
        load = m.journal.load
        m.journal.load = lambda: (_ for _ in ()).throw(MemoryError("injected"))
        with pytest.raises(OSError):
            undo(m, MemoryError("a command"))
        for _ in range(3):
            poll()
            assert m.stale
        m.journal.load = load
        for _ in range(6):
            poll()
            assert not m.stale and m.account.import_wh - w0 <= wh[0] - wh0
        assert m.account.import_wh - w0 == wh[0] - wh0
        for _ in range(3):       # and on: the journal keeps the register in step with the module
            poll()
        assert m.account.import_wh - w0 == wh[0] - wh0
    finally:
        _rmtree(d)
