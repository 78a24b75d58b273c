"""The event logs served over DLMS: Profile generic (IC 7) 0.0.99.98.x.255, their event-code
objects 0.0.96.11.x.255 and event counters 0.0.96.15.x.255 (IC 1), for ``meter.cosem``.

``x`` (the row's argument, ``_ARG`` in ``meter.cosem``'s table) is the category of
``meter.audit``: 0 all events, 2 power, 3 transaction, 4 other, 5 tamper, 6 control; a view is
``meter.event_log.view(x)`` (EventLog read API: count(), capacity, entries(a, b), by_time(t0,
t1), last()). Columns: the all-events view {clock, event code 0.0.96.11.0.255}; a category
{clock, event code 0.0.96.11.x.255, occurrences 0.0.96.15.x.255} where occurrences is how many
times the entry's event happened (> 1: coalesced repetitions, ``meter.audit``).

- ``view(meter, x)`` -> the view or None (not served then);
- ``read(meter, x, attr, w)`` IC 7 attributes 3..8 into ``w``, returns a data-access-result;
- ``buffer(meter, x, sel, par)`` attribute 2, optionally with selective access (Blue Book IC 7
  §4.3.6): 1 range_descriptor on the clock column, 2 entry_descriptor; a generator of chunks
  or a data-access-result;
- ``data(meter, arg, w)`` IC 1 value: arg 16 + x the code of the newest entry of view x (arg 1,
  ``meter.cosem_values``, is the all-events code), arg 24 + x its occurrences.
"""
from protocol import axdr
from meter import cosem_values as V

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_OK = const(0)                 # data-access-results (IEC 62056-5-3 §8)
_UNAVAILABLE = const(11)
_TYPE_UNMATCHED = const(12)
_OTHER = const(250)
_T_STRUCTURE = const(2)        # A-XDR tags (protocol.axdr)
_T_DOUBLE_LONG = const(5)
_T_DOUBLE_LONG_UNSIGNED = const(6)
_T_OCTET_STRING = const(9)
_T_DATE_TIME = const(25)
_LN_CLOCK = const(0)           # meter.cosem_values.ln
_EVENT_CODE = b"\x00\x00\x60\x0b"   # 0.0.96.11.x.255
_COUNTER = b"\x00\x00\x60\x0f"      # 0.0.96.15.x.255


def view(meter, x):
    log = meter.event_log
    if x == 0:
        return log
    f = getattr(log, "view", None)
    return f(x) if f is not None else None


def _cols(x):
    return 2 if x == 0 else 3


def _ln(prefix, x):
    return prefix + bytes((x, 255))


def read(meter, x, attr, w):
    """IC 7 attributes 3..8 of view ``x``."""
    log = view(meter, x)
    if attr == 3:                # capture objects: clock time, event code[, occurrences]
        w.array(_cols(x))
        w.structure(4).long_unsigned(8).octet_string(V.ln(_LN_CLOCK)).integer(2).long_unsigned(0)
        w.structure(4).long_unsigned(1).octet_string(_ln(_EVENT_CODE, x)).integer(2).long_unsigned(0)
        if x:
            w.structure(4).long_unsigned(1).octet_string(_ln(_COUNTER, x)).integer(2).long_unsigned(0)
    elif attr == 4:
        w.double_long_unsigned(0)              # capture period: on each event
    elif attr == 5:
        w.enum(1)                              # sort method: fifo
    elif attr == 6:
        w.structure(4).long_unsigned(0).octet_string(b"\x00" * 6).integer(0).long_unsigned(0)
    elif attr == 7:
        w.double_long_unsigned(log.count())
    else:
        w.double_long_unsigned(log.capacity)
    return _OK


def data(meter, arg, w):
    """IC 1 value of an event-code (arg 16 + x) or event-counter (arg 24 + x) object."""
    x = arg & 7
    log = view(meter, x)
    e = log.last() if log is not None else None
    if arg < 24:
        w.long_unsigned(0 if e is None else e[1] & 0xFFFF)
    else:
        w.double_long_unsigned(0 if e is None else (e[3] if len(e) > 3 else 1))
    return _OK


def buffer(meter, x, sel, par):
    """Attribute 2 of view ``x``: a generator of chunks or a data-access-result."""
    log = view(meter, x)
    cols = tuple(range(_cols(x)))
    if sel is None:
        cnt = log.count()
        return _entries(meter, cnt, log.entries(1, cnt) if cnt else (), cols)
    try:
        tag, v = axdr.decode(par, 0)[0]
    except axdr.AxdrError:
        return _TYPE_UNMATCHED
    if tag != _T_STRUCTURE or len(v) != 4:
        return _TYPE_UNMATCHED
    if sel == 1:
        return _by_range(meter, log, x, v)
    if sel != 2:
        return _OTHER
    r = entry_args(v, log.count(), len(cols))
    if isinstance(r, int):
        return r
    a, b, c0, c1 = r
    cnt = b - a + 1 if a <= b else 0
    return _entries(meter, cnt, log.entries(a, b) if cnt else (), tuple(range(c0 - 1, c1)))


def entry_args(v, n, ncols):
    """An entry_descriptor (decoded structure ``v``) over ``n`` entries of ``ncols`` columns ->
    (first, last entry, first, last column), 1-based and clipped; or a data-access-result."""
    a, b, c0, c1 = V.int_arg(v[0]), V.int_arg(v[1]), V.int_arg(v[2]), V.int_arg(v[3])
    if a is None or b is None or c0 is None or c1 is None:
        return _TYPE_UNMATCHED
    b = n if b == 0 or b > n else b
    c0 = 1 if c0 < 1 else c0
    c1 = ncols if c1 == 0 or c1 > ncols else c1
    return (1 if a < 1 else a, b, c0, c1) if c0 <= c1 else _OTHER


def time_args(meter, v):
    """(from, to) epoch seconds of a range_descriptor (decoded ``v``): date-time or epoch
    values; None if either is neither."""
    t = [None, None]          # from_value, to_value: date-time or epoch seconds
    for i in (0, 1):
        tag, y = v[i + 1]
        if tag == _T_OCTET_STRING or tag == _T_DATE_TIME:
            t[i] = V.parse_time(meter, y)
        elif tag in (_T_DOUBLE_LONG_UNSIGNED, _T_DOUBLE_LONG):
            t[i] = y
    return None if t[0] is None or t[1] is None else t


def _by_range(meter, log, x, v):
    """Selective access 1 (range_descriptor ``v``, decoded) on the clock column."""
    ro = v[0][1]
    if (v[0][0] != _T_STRUCTURE or len(ro) < 3 or ro[0][1] != 8 or ro[1][1] != V.ln(_LN_CLOCK)
            or ro[2][1] != 2):
        return _OTHER
    t = time_args(meter, v)
    if t is None:
        return _TYPE_UNMATCHED
    t0, t1 = t
    # selected_values (capture object definitions) -> columns; none: all
    cols = []
    for tag, y in v[3][1]:
        if tag != _T_STRUCTURE or len(y) < 3 or y[2][1] != 2:
            return _OTHER
        if y[0][1] == 8 and y[1][1] == V.ln(_LN_CLOCK):
            cols.append(0)
        elif y[0][1] == 1 and y[1][1] == _ln(_EVENT_CODE, x):
            cols.append(1)
        elif x and y[0][1] == 1 and y[1][1] == _ln(_COUNTER, x):
            cols.append(2)
        else:
            return _OTHER
        if cols.count(cols[-1]) > 1:       # a column twice: an answer can't be multiplied
            return _OTHER
    cnt = 0
    for _ in log.by_time(t0, t1):
        cnt += 1
    return _entries(meter, cnt, log.by_time(t0, t1), tuple(cols) or tuple(range(_cols(x))))


def _entries(meter, cnt, items, cols):
    w = axdr.Writer()
    w.array(cnt)
    yield bytes(w.buf)
    i = 0
    for e in items:
        if i == cnt:
            break
        i += 1
        w.reset()
        w.structure(len(cols))
        for c in cols:
            if c == 0:
                V.put_time(meter, e[0], w)
            elif c == 1:
                w.long_unsigned(e[1] & 0xFFFF)
            else:
                w.double_long_unsigned(e[3] if len(e) > 3 else 1)
        yield bytes(w.buf)
    if i != cnt:
        # the log lost entries while it was being read: the long GET is aborted
        raise RuntimeError("event log changed")
