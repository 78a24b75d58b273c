"""IC 7 selective-access parameters (Blue Book IC 7 §4.3.6) read in place by meter.cosem_log
(the event logs and, with their column rows, the IS 15959 profiles): exact A-XDR types, nothing
after them, the restricting object exactly the first column, selected_values bounded by the column
count before any is read. On CPython and MicroPython (there also: a hostile parameter allocates no
more than the largest valid one)."""
from meter import cosem_log as L

CLOCK = b"\x00\x00\x01\x00\x00\xff"
CODE = b"\x00\x00\x60\x0b\x00\xff"
ROWS = b"\x08" + CLOCK + b"\x02" + b"\x01" + CODE + b"\x02"     # (class, logical name, attribute)


def cod(ic, ln, attr=2):
    """A capture_object_definition {class long-unsigned, logical name, attribute integer, data
    index long-unsigned 0}."""
    return b"\x02\x04\x12\x00" + bytes((ic,)) + b"\x09\x06" + ln + bytes((15, attr, 18, 0, 0))


class Meter:
    tz_minutes = 330


def dt(year, hour=0):
    return b"\x09\x0c" + year.to_bytes(2, "big") + bytes((1, 1, 0xFF, hour, 0, 0, 0, 0x80, 0, 0))


def rng(ro=None, lo=None, hi=None, cols=()):
    return (b"\x02\x04" + (ro or cod(8, CLOCK)) + (lo or dt(2000)) + (hi or dt(2099)) + b"\x01"
            + bytes((len(cols),)) + b"".join(cols))


def ent(a, b, c0=1, c1=0):
    return (b"\x02\x04\x06" + a.to_bytes(4, "big") + b"\x06" + b.to_bytes(4, "big") + b"\x12"
            + c0.to_bytes(2, "big") + b"\x12" + c1.to_bytes(2, "big"))


def test_entry_descriptor():
    assert L.entry_args(ent(2, 3), 5, 2) == (2, 3, 1, 2)
    assert L.entry_args(memoryview(ent(2, 0, 2, 0)), 5, 2) == (2, 5, 2, 2)
    assert L.entry_args(ent(0, 9), 5, 2) == (1, 5, 1, 2)         # from_entry 0 reads as 1
    assert L.entry_args(ent(1, 1, 3, 0), 5, 2) == 250            # no such column
    good = ent(1, 1)
    for bad in (good + b"\x00", good[:-1], good[:2] + b"\x11" + good[3:],            # junk, short, unsigned
                good[:7] + b"\x05" + good[8:], good[:12] + b"\x10" + good[13:],      # double-long, long
                good[:15] + b"\x0f" + good[16:]):                                    # integer
        assert L.entry_args(bad, 5, 2) == 12, bad


def test_range_descriptor():
    t = L.range_args(Meter, rng(), ROWS, 8)
    assert t == (946665000, 4070889000, (0, 1))          # local (IST) midnights, UTC seconds
    ev = cod(1, CODE)
    assert L.range_args(Meter, memoryview(rng(cols=[ev])), ROWS, 8)[2] == (1,)
    assert L.range_args(Meter, rng(lo=b"\x19" + dt(2001)[2:]), ROWS, 8)[0] == 978287400   # date-time tag
    ro = cod(8, CLOCK)
    for bad, dar in ((rng() + b"\xff", 12), (rng(cols=[ev]) + b"\x00", 12),
                     (rng(lo=b"\x06\x00\x00\x00\x00"), 12), (rng(hi=dt(2099, hour=0xFF)), 12),
                     (rng(ro[:2] + b"\x10" + ro[3:]), 12), (rng(cols=[ev[:-3] + b"\x11\x00"]), 12),
                     (rng(b"\x02\x04\x12\xff\xff" + ro[5:]), 250), (rng(ro[:14] + b"\x00" + ro[15:]), 250),
                     (rng(ro[:-1] + b"\x01"), 250), (rng(cod(1, CODE)), 250),
                     (rng(cols=[ev, ev]), 250), (rng(cols=[ro[:4] + b"\x09" + ro[5:]]), 250),
                     (rng(cols=[ev] * 3), 250)):
        assert L.range_args(Meter, bad, ROWS, 8) == dar, bad


def test_a_hostile_parameter_costs_no_more_heap_than_a_valid_one():
    import gc
    if not hasattr(gc, "mem_alloc"):
        return                                    # CPython: nothing to measure
    cols = [cod(8, CLOCK), cod(1, CODE)]
    used = []
    for par in (rng(cols=cols), rng(cols=cols * 20), rng(cols=[cols[0]] * 200)):
        par = memoryview(par)
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        r = L.range_args(Meter, par, ROWS, 8)
        used.append(gc.mem_alloc() - a)
        gc.enable()
        assert isinstance(r, int) == (len(used) > 1), r
    assert used[1] <= used[0] and used[2] <= used[0], used
