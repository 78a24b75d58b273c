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
_COD = const(18)               # a capture_object_definition's A-XDR bytes
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
        w.structure(4).long_unsigned(0).octet_string(bytes(6)).integer(0).long_unsigned(0)
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


def buffer(meter, x, sel, par, w):
    """Attribute 2 of view ``x``: a generator writing the entries with ``w`` (the response
    buffer's writer) or a data-access-result."""
    log = view(meter, x)
    if sel is None:
        cnt = log.count()
        return _entries(meter, cnt, log.entries(1, cnt) if cnt else (), tuple(range(_cols(x))), w)
    if len(par) < 2 or par[0] != 2 or par[1] != 4:
        return _TYPE_UNMATCHED            # not a structure of 4: neither descriptor
    if sel == 1:
        r = bytearray()                   # the columns as range_args reads them
        for ln in (V.ln(_LN_CLOCK), _ln(_EVENT_CODE, x), _ln(_COUNTER, x))[:_cols(x)]:
            r.append(1 if r else 8)       # the clock (class 8), then data objects (class 1)
            r.extend(ln)
            r.append(2)                   # attribute 2
        r = range_args(meter, par, r, 8)
        if isinstance(r, int):
            return r
        cnt = 0
        for _ in log.by_time(r[0], r[1]):
            cnt += 1
        return _entries(meter, cnt, log.by_time(r[0], r[1]), r[2], w)
    if sel != 2:
        return _OTHER
    r = entry_args(par, log.count(), _cols(x))
    if isinstance(r, int):
        return r
    a, b, c0, c1 = r
    cnt = b - a + 1 if a <= b else 0
    return _entries(meter, cnt, log.entries(a, b) if cnt else (), tuple(range(c0 - 1, c1)), w)


# The parameters are read in place from their bytes (Blue Book IC 7 §4.3.6), never decoded into
# lists: a hostile one costs no more heap than a valid one. Exact A-XDR types, nothing after them
# (protocol.apdu: a GET-Request-Normal's parameter runs to the APDU's end): else type-unmatched.

def entry_args(par, n, ncols):
    """An entry_descriptor {from_entry, to_entry double-long-unsigned, from_selected_value,
    to_selected_value long-unsigned} over ``n`` entries of ``ncols`` columns -> (first, last
    entry, first, last column), 1-based and clipped (from_entry 0: 1, as gurux's server reads
    it; to_entry or to_selected_value 0: the last); or a data-access-result."""
    if len(par) != 18 or par[2] != 6 or par[7] != 6 or par[12] != 18 or par[15] != 18:
        return _TYPE_UNMATCHED
    a = int.from_bytes(par[3:7], "big")
    b = int.from_bytes(par[8:12], "big")
    c0 = par[13] << 8 | par[14]
    c1 = par[16] << 8 | par[17]
    b = n if b == 0 or b > n else b
    c0 = 1 if c0 < 1 else c0
    c1 = ncols if c1 == 0 or c1 > ncols else c1
    return (1 if a < 1 else a, b, c0, c1) if c0 <= c1 else _OTHER


def _col(par, p, rows, k):
    """The column of ``rows`` (``k`` bytes each: class, logical name, attribute) that the
    capture_object_definition at ``par[p]`` names exactly (data_index 0): 0-based, -1 none; -2
    if it is not one (18 bytes: structure {long-unsigned class_id, octet-string(6) logical_name,
    integer attribute_index, long-unsigned data_index}). Compares in place: allocates nothing."""
    if (len(par) < p + _COD or par[p] != 2 or par[p + 1] != 4 or par[p + 2] != 18 or par[p + 5] != 9
            or par[p + 6] != 6 or par[p + 13] != 15 or par[p + 15] != 18):
        return -2
    if par[p + 3] or par[p + 16] or par[p + 17]:
        return -1
    for o in range(0, len(rows), k):
        if rows[o] == par[p + 4] and rows[o + 7] == par[p + 14]:
            i = 1
            while i < 7 and rows[o + i] == par[p + 6 + i]:
                i += 1
            if i == 7:
                return o // k
    return -1


def range_args(meter, par, rows, k):
    """A range_descriptor over the columns ``rows`` (``k`` bytes each, ``_col``; the
    restricting object must be the first, a date-time column, exactly; from/to_value date-times,
    octet-string(12) or date-time) -> (from, to epoch seconds, 0-based columns: selected_values,
    none = all); or a data-access-result (a column not captured or listed twice, or more listed
    than there are: other-reason, before any is read)."""
    j = _col(par, 2, rows, k)
    if j < -1:
        return _TYPE_UNMATCHED
    if j:
        return _OTHER
    t = [0, 0]
    p = 20
    for i in range(2):                    # octet-string(12) or date-time: no bytes literals (heap)
        if p + 2 <= len(par) and par[p] == 9 and par[p + 1] == 12:
            p += 1
        elif p >= len(par) or par[p] != 25:
            return _TYPE_UNMATCHED
        t[i] = V.parse_time(meter, par[p + 1:p + 13])
        if t[i] is None:
            return _TYPE_UNMATCHED
        p += 13
    n = len(rows) // k
    if p + 2 > len(par) or par[p] != 1:
        return _TYPE_UNMATCHED
    if par[p + 1] > n:                    # 0x80..: a longer length form, more than n anyway
        return _OTHER
    p += 2
    if len(par) != p + par[p - 1] * _COD:
        return _TYPE_UNMATCHED
    cols = []
    for p in range(p, len(par), _COD):
        j = _col(par, p, rows, k)
        if j < -1:
            return _TYPE_UNMATCHED
        if j < 0 or j in cols:
            return _OTHER
        cols.append(j)
    return t[0], t[1], tuple(cols) or tuple(range(n))


def _entries(meter, cnt, items, cols, w):
    """The entries, each written by ``w`` straight into the response buffer (``meter.server``'s:
    what its ``_fill`` extends), one per ``b""`` yielded: no Writer and no copy per entry."""
    w.array(cnt)
    yield b""
    i = 0
    for e in items:
        if i == cnt:
            break
        i += 1
        w.structure(len(cols))
        for c in cols:
            if c == 0:
                V.put_time(meter, e[0], w)
            elif c == 1:
                w.long_unsigned(e[1] & 0xFFFF)
            else:
                w.double_long_unsigned(e[3] if len(e) > 3 else 1)
        yield b""
    if i != cnt:
        # the log lost entries while it was being read: the long GET is aborted
        raise RuntimeError("event log changed")
