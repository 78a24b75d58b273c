"""The meter's scheduler (``meter.metrology.loop``, in place of asyncio) on CPython and MicroPython:
generator tasks resumed when due (yield = ms to wait), tasks due together in turn, ``idle``
called with the time to the next one, a task that returns dropped, an exception in a task
raised out of the loop (the process ends, as asyncio.gather's did), and no heap per pass.

Time is a fake ms clock that only ``idle`` advances.
"""
from meter.metrology import loop


class Clock:
    def __init__(self):
        self.ms = 1000
        self.idled = 0

    def ticks(self):
        return self.ms

    def idle(self, ms):
        assert ms > 0
        self.idled += 1
        self.ms += ms


def task(clk, log, name, period, steps):
    for _ in range(steps):
        log.append((name, clk.ms))
        yield period


def test_tasks_run_when_due_and_are_dropped_when_they_return():
    clk = Clock()
    log = []
    loop([task(clk, log, "a", 30, 3), task(clk, log, "b", 20, 4)], clk.ticks, clk.idle)
    assert log == [("a", 1000), ("b", 1000), ("b", 1020), ("a", 1030), ("b", 1040),
                   ("a", 1060), ("b", 1060)], log
    # b ended when resumed at 1080, a at 1090: then the loop returned
    assert clk.ms == 1090 and clk.idled == 6, (clk.ms, clk.idled)


def test_yield_zero_lets_the_others_run():
    clk = Clock()
    log = []
    loop([task(clk, log, "a", 0, 3), task(clk, log, "b", 0, 3), task(clk, log, "c", 5, 2)],
         clk.ticks, clk.idle)
    assert [n for n, _ in log] == ["a", "b", "c", "a", "b", "a", "b", "c"], log
    assert clk.ms == 1010


def test_an_exception_in_a_task_ends_the_loop():
    clk = Clock()
    log = []

    def bad():
        yield 15
        raise ValueError("task failed")

    try:
        loop([task(clk, log, "a", 10, 100), bad()], clk.ticks, clk.idle)
    except ValueError as e:
        assert e.args == ("task failed",)
    else:
        assert False, "the loop went on"
    assert log == [("a", 1000), ("a", 1010)], log     # bad() raised at 1015: nothing after
    assert clk.ms == 1015


def test_a_pass_allocates_nothing():
    try:
        import micropython
    except ImportError:
        return   # CPython: nothing to measure
    clk = Clock()
    locked = [False]

    def locker():
        yield 0
        micropython.heap_lock()
        locked[0] = True
        for _ in range(50):
            yield 7
        micropython.heap_unlock()
        locked[0] = False

    def ticker():
        for _ in range(100):
            yield 3

    try:
        loop([locker(), ticker()], clk.ticks, clk.idle)
    finally:
        if locked[0]:
            micropython.heap_unlock()
    assert clk.ms >= 1000 + 7 * 50 and clk.idled > 50
