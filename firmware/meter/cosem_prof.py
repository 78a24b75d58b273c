"""The IS 15959 profiles served over DLMS (``meter.profiles`` holds them), for ``meter.cosem``.

Rows (``_ARG`` of ``meter.cosem``'s table, generated from host_tools/objects.py):

- IC 7, arg 32 block load 1.0.99.1.0.255, 33 daily 1.0.99.2.0.255, 34 billing 1.0.98.1.0.255,
  35 instantaneous 1.0.94.91.0.255 (one entry, captured on read), 36 name plate
  0.0.94.91.10.255; scaler profiles 40 instantaneous 1.0.94.91.3.255, 41 block .4, 42 daily .5,
  43 billing .6 (no event scaler profile .7: the event logs capture no register). A scaler
  profile's one entry holds {scaler, unit} (IC 3/4 attribute 3) of each register column of its
  profile, in column order; the clock and IC 1 columns have none (is15959-profiles.md §1).
- IC 4 (arg 48 + z) maximum demand 1.0.1.6.z.255 of the running cycle, z 0 total, 1..4 TZ1..4:
  2 value W, 3 scaler_unit, 4 status, 5 capture_time (end of its demand period).
- IC 1 arg 50 billing count 0.0.0.1.0.255, 51 demand integration period 1.0.0.8.0.255, 52
  profile capture period 1.0.0.8.4.255 (long-unsigned s), 53 power failures 0.0.96.7.0.255,
  54 tamper count 0.0.94.91.0.255, 55 programming count 0.0.96.2.0.255, 56 available billing
  periods 0.0.0.1.1.255.
- IC 3 attribute 2 of arg 5 billing date 0.0.0.1.2.255 (date-time of the last billing entry),
  6 cumulative power-on 0.0.94.91.14.255 and 7 power-off duration 0.0.94.91.8.255 (min).
- The other capture columns as objects (host_tools/is15959_objects.py COLUMNS): IC 3 args 8..24
  (attribute 3 from cosem_values._REGS), IC 1 args 58..63: attribute 2 = the column in the last
  entry of the profile capturing it (``_column``).

The billing buffer ends with the running cycle (IS 15959 [R3]: the entry after the closed ones),
so entries_in_use = closed cycles + 1. Selective access: 1 range_descriptor on the clock column
(the billing date for billing), 2 entry_descriptor (Blue Book IC 7 §4.3.6); columns by
selected_values or by column range.

Column rows (12 bytes): class, logical name, attribute, scaler, unit, kind (0 date-time, 1
double-long-unsigned, 2 long-unsigned, 3 unsigned, 4 double-long, 5 zero, 6 octet-string of a
name-plate field), index into the entry's values.

Heap (loaded at the first profile read, into a heap fragmented by then; docs/MEMORY.md): few
functions, names and constant objects; a buffer's rows are written straight into the response
buffer (``w``, what ``meter.server`` sends from: no Writer and no bytes copy per row).
"""
import struct

from meter import cosem_values as V

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_OK = const(0)                 # data-access-results (IEC 62056-5-3 §8)
_TYPE_UNMATCHED = const(12)
_OTHER = const(250)
_COL = const(12)
_EV_MD_RESET = const(65)       # meter.events: maximum demand reset [billing count]

# column rows of the block load, daily, billing, instantaneous and name-plate profiles in one
# literal (one interned name) after 6 bytes: profile a's rows are rows _TABLE[a] .. _TABLE[a + 1]
_TABLE = (
    b"\x00\x07\x0f\x23\x32\x39"
    b"\x08\x00\x00\x01\x00\x00\xff\x02\x00\xff\x00\x00"  # 0.0.1.0.0.255 clock a2
    b"\x03\x01\x00\x01\x1d\x00\xff\x02\x00\x1e\x01\x01"  # 1.0.1.29.0.255 block energy import Wh a2
    b"\x03\x01\x00\x02\x1d\x00\xff\x02\x00\x1e\x05\x00"  # 1.0.2.29.0.255 block energy export Wh (import-only meter: 0) a2
    b"\x03\x01\x00\x0c\x1b\x00\xff\x02\xff\x23\x02\x02"  # 1.0.12.27.0.255 average voltage 0.1 V a2
    b"\x03\x01\x00\x0b\x1b\x00\xff\x02\xfe\x21\x02\x03"  # 1.0.11.27.0.255 average current 0.01 A a2
    b"\x01\x00\x00\x60\x0a\x01\xff\x02\x00\xff\x03\x05"  # 0.0.96.10.1.255 status a2
    b"\x03\x00\x80\x5e\x60\x01\xff\x02\xfe\x0a\x04\x04"  # 0.128.94.96.1.255 block charge paise a2
    b"\x08\x00\x00\x01\x00\x00\xff\x02\x00\xff\x00\x00"  # 0.0.1.0.0.255 clock a2
    b"\x03\x01\x00\x01\x08\x00\xff\x02\x00\x1e\x01\x01"  # 1.0.1.8.0.255 energy import Wh a2
    b"\x03\x01\x00\x02\x08\x00\xff\x02\x00\x1e\x05\x00"  # 1.0.2.8.0.255 energy export Wh a2
    b"\x01\x00\x00\x5e\x60\x18\xff\x02\x00\xff\x04\x02"  # 0.0.94.96.24.255 balance paise a2
    b"\x03\x00\x80\x5e\x60\x02\xff\x02\xfe\x0a\x04\x03"  # 0.128.94.96.2.255 day energy charge a2
    b"\x03\x00\x80\x5e\x60\x03\xff\x02\xfe\x0a\x04\x04"  # 0.128.94.96.3.255 day fixed charge a2
    b"\x03\x00\x80\x5e\x60\x04\xff\x02\xfe\x0a\x04\x05"  # 0.128.94.96.4.255 day duty a2
    b"\x03\x00\x80\x5e\x60\x05\xff\x02\xfe\x0a\x01\x06"  # 0.128.94.96.5.255 day top-ups a2
    b"\x03\x00\x00\x00\x01\x02\xff\x02\x00\xff\x00\x00"  # 0.0.0.1.2.255 billing date a2
    b"\x03\x01\x00\x01\x08\x00\xff\x02\x00\x1e\x01\x01"  # 1.0.1.8.0.255 energy import Wh a2
    b"\x03\x01\x00\x01\x08\x01\xff\x02\x00\x1e\x01\x02"  # 1.0.1.8.1.255 TZ1 a2
    b"\x03\x01\x00\x01\x08\x02\xff\x02\x00\x1e\x01\x03"  # 1.0.1.8.2.255 TZ2 a2
    b"\x03\x01\x00\x01\x08\x03\xff\x02\x00\x1e\x01\x04"  # 1.0.1.8.3.255 TZ3 a2
    b"\x03\x01\x00\x01\x08\x04\xff\x02\x00\x1e\x01\x05"  # 1.0.1.8.4.255 TZ4 a2
    b"\x04\x01\x00\x01\x06\x00\xff\x02\x00\x1b\x01\x06"  # 1.0.1.6.0.255 MD W a2
    b"\x04\x01\x00\x01\x06\x00\xff\x05\x00\xff\x00\x07"  # 1.0.1.6.0.255 MD time a5
    b"\x04\x01\x00\x01\x06\x01\xff\x02\x00\x1b\x01\x08"  # 1.0.1.6.1.255 MD TZ1 a2
    b"\x04\x01\x00\x01\x06\x01\xff\x05\x00\xff\x00\x09"  # 1.0.1.6.1.255 time a5
    b"\x04\x01\x00\x01\x06\x02\xff\x02\x00\x1b\x01\x0a"  # 1.0.1.6.2.255 MD TZ2 a2
    b"\x04\x01\x00\x01\x06\x02\xff\x05\x00\xff\x00\x0b"  # 1.0.1.6.2.255 time a5
    b"\x04\x01\x00\x01\x06\x03\xff\x02\x00\x1b\x01\x0c"  # 1.0.1.6.3.255 MD TZ3 a2
    b"\x04\x01\x00\x01\x06\x03\xff\x05\x00\xff\x00\x0d"  # 1.0.1.6.3.255 time a5
    b"\x04\x01\x00\x01\x06\x04\xff\x02\x00\x1b\x01\x0e"  # 1.0.1.6.4.255 MD TZ4 a2
    b"\x04\x01\x00\x01\x06\x04\xff\x05\x00\xff\x00\x0f"  # 1.0.1.6.4.255 time a5
    b"\x03\x00\x80\x5e\x60\x06\xff\x02\xfe\x0a\x04\x10"  # 0.128.94.96.6.255 cycle energy charge a2
    b"\x03\x00\x80\x5e\x60\x07\xff\x02\xfe\x0a\x04\x11"  # 0.128.94.96.7.255 cycle fixed charge a2
    b"\x03\x00\x80\x5e\x60\x08\xff\x02\xfe\x0a\x04\x12"  # 0.128.94.96.8.255 cycle duty a2
    b"\x03\x00\x00\x5e\x5b\x0d\xff\x02\x00\x06\x01\x13"  # 0.0.94.91.13.255 cycle power-on minutes a2
    b"\x08\x00\x00\x01\x00\x00\xff\x02\x00\xff\x00\x00"  # 0.0.1.0.0.255 clock a2
    b"\x03\x01\x00\x20\x07\x00\xff\x02\xff\x23\x02\x01"  # 1.0.32.7.0.255 voltage a2
    b"\x03\x01\x00\x1f\x07\x00\xff\x02\xfd\x21\x01\x02"  # 1.0.31.7.0.255 current mA a2
    b"\x03\x01\x00\x01\x07\x00\xff\x02\xff\x1b\x01\x03"  # 1.0.1.7.0.255 power 0.1 W a2
    b"\x03\x01\x00\x01\x08\x00\xff\x02\x00\x1e\x01\x04"  # 1.0.1.8.0.255 import Wh a2
    b"\x03\x01\x00\x02\x08\x00\xff\x02\x00\x1e\x05\x00"  # 1.0.2.8.0.255 export Wh a2
    b"\x04\x01\x00\x01\x06\x00\xff\x02\x00\x1b\x01\x05"  # 1.0.1.6.0.255 MD a2
    b"\x04\x01\x00\x01\x06\x00\xff\x05\x00\xff\x00\x06"  # 1.0.1.6.0.255 MD time a5
    b"\x03\x00\x00\x5e\x5b\x0e\xff\x02\x00\x06\x01\x07"  # 0.0.94.91.14.255 power-on min a2
    b"\x01\x00\x00\x60\x07\x00\xff\x02\x00\xff\x01\x08"  # 0.0.96.7.0.255 power failures a2
    b"\x03\x00\x00\x5e\x5b\x08\xff\x02\x00\x06\x01\x09"  # 0.0.94.91.8.255 power-off min a2
    b"\x01\x00\x00\x5e\x5b\x00\xff\x02\x00\xff\x01\x0a"  # 0.0.94.91.0.255 tamper count a2
    b"\x01\x00\x00\x00\x01\x00\xff\x02\x00\xff\x01\x0b"  # 0.0.0.1.0.255 billing count a2
    b"\x01\x00\x00\x60\x02\x00\xff\x02\x00\xff\x01\x0c"  # 0.0.96.2.0.255 programming count a2
    b"\x01\x00\x00\x5e\x60\x18\xff\x02\x00\xff\x04\x0d"  # 0.0.94.96.24.255 balance paise a2
    b"\x01\x00\x00\x60\x01\x00\xff\x02\x00\xff\x06\x00"  # 0.0.96.1.0.255 serial a2
    b"\x01\x00\x00\x60\x01\x01\xff\x02\x00\xff\x06\x01"  # 0.0.96.1.1.255 manufacturer a2
    b"\x01\x01\x00\x00\x02\x00\xff\x02\x00\xff\x06\x02"  # 1.0.0.2.0.255 firmware a2
    b"\x01\x00\x00\x5e\x5b\x09\xff\x02\x00\xff\x03\x03"  # 0.0.94.91.9.255 meter type a2
    b"\x01\x00\x00\x5e\x5b\x0b\xff\x02\x00\xff\x06\x04"  # 0.0.94.91.11.255 category a2
    b"\x01\x00\x00\x5e\x5b\x0c\xff\x02\x00\xff\x06\x05"  # 0.0.94.91.12.255 current rating a2
    b"\x01\x00\x00\x60\x01\x04\xff\x02\x00\xff\x06\x06"  # 0.0.96.1.4.255 year of manufacture a2
)


def _ring(meter, arg):
    """Profile ``arg``'s ring (block load, daily, billing), else None; with its entry count
    (the billing buffer ends with the running cycle; the others' one entry is captured on read)."""
    p = meter.profiles
    r = p.block if arg == 32 else p.daily if arg == 33 else p.billing if arg == 34 else None
    return r, 1 if r is None else r.count() + (arg == 34)


def _rows(meter, arg, a, b):
    """Entries a..b (1-based, b clipped to the count): the ring's records (memoryviews of its
    buffer, decoded per column by ``_get``: no tuple of up to 24 values per row), or the entry
    captured now (a tuple). No generator of its own for a ring (each one is a 128-160 B block)."""
    r, n = _ring(meter, arg)
    if r is None:
        return iter([_live(meter, arg)])
    n -= arg == 34
    g = r.records(a, b if b <= n else n)
    return _bill(g, meter) if arg == 34 and a <= n + 1 <= b else g


def _bill(g, meter):
    """The billing buffer: the closed cycles, then the running one."""
    for v in g:
        yield v
    yield meter.profiles.state()


def _live(m, arg):
    """The entry captured now: the name plate (config.json's, ``meter.cfgkey``), else the
    instantaneous profile."""
    if arg == 36:
        from meter.cfgkey import get
        g = get(m.board, "name_plate")
        g = (g if isinstance(g, dict) else {}).get
        return (m.logical_device_name, V.manufacturer(m, g), getattr(m, "FIRMWARE_ID", b""),
                g("meter_type", 6), g("category", ""), g("current_rating", ""), g("year", ""))
    p = m.profiles
    a = m.account
    mo = m.metro
    c = p.c
    md = p.md
    if mo is None or mo.voltage_dv is None:
        mo = None
    return (m.board.time(), mo.voltage_dv if mo else 0, mo.current_ma or 0 if mo else 0,
            mo.power_dw or 0 if mo else 0, a.import_wh, md[0], md[1], c[2] // 60, c[0],
            c[1] // 60, c[3], c[5], c[4], a.credit)


def _get(v, i, k=1):
    """Value ``i`` of an entry: a tuple's item, or read from a ring record (block ">IHHHiBx",
    16 bytes; daily and billing 4-byte values); ``k`` 4: signed (double-long)."""
    if not isinstance(v, memoryview):
        return v[i]
    if len(v) != 16:
        return struct.unpack_from(">i" if k == 4 else ">I", v, 4 * i)[0]
    return struct.unpack_from(">I" if i == 0 else ">i" if i == 4 else "B" if i == 5 else ">H", v,
                              0 if i == 0 else 14 if i == 5 else 2 * i + 2)[0]


def _write(meter, w, c, v):
    k = c[10]
    x = _get(v, c[11], k) if k != 6 else v[c[11]]
    if k == 0:
        V.put_time(meter, x, w)
    elif k == 1:
        w.double_long_unsigned(x)
    elif k == 2:
        w.long_unsigned(x)
    elif k == 3:
        w.unsigned(x)
    elif k == 4:
        w.double_long(x)
    elif k == 5:
        w.double_long_unsigned(0)
    else:
        w.octet_string(x.encode() if isinstance(x, str) else bytes(x))


def ic7(meter, arg, attr, sel, par, w):
    """IC 7 attribute ``attr`` into the response buffer's Writer ``w``: a data-access-result, or
    (attribute 2) a generator writing one entry into ``w`` per step (yielding b"")."""
    a = (arg - 37) % 4 if arg >= 40 else arg - 32     # 40..43: the rows of profiles 3, 0, 1, 2
    cols = memoryview(_TABLE)[6 + _TABLE[a] * _COL:6 + _TABLE[a + 1] * _COL]   # (no copy)
    k = len(cols) // _COL
    n = 0                              # a scaler profile's register columns (with a scaler_unit)
    for o in range(0, len(cols), _COL):
        if cols[o] != 1 and cols[o] != 8 and cols[o + 7] == 2:
            n += 1
    if attr == 3:                      # capture objects (a scaler profile: attribute 3 of each
        x = arg >= 40                  # register column)
        w.array(n if x else k)
        for o in range(0, len(cols), _COL):
            c = cols[o:o + _COL]
            if not x or (c[0] != 1 and c[0] != 8 and c[7] == 2):
                w.structure(4).long_unsigned(c[0]).octet_string(c[1:7]).integer(3 if x else c[7]) \
                    .long_unsigned(0)
    elif attr == 4:
        w.double_long_unsigned(meter.profiles.period if arg == 32 else 86400 if arg == 33 else 0)
    elif attr == 5:
        w.enum(1)                              # fifo
    elif attr == 6:
        w.structure(4).long_unsigned(0).octet_string(bytes(6)).integer(0).long_unsigned(0)
    elif attr == 7:
        w.double_long_unsigned(_ring(meter, arg)[1] if arg < 40 else (1 if k else 0))
    elif attr == 8:
        r = _ring(meter, arg)[0] if arg < 40 else None
        w.double_long_unsigned(1 if r is None else r.capacity + (arg == 34))
    elif arg >= 40:                    # the scaler profile's buffer: one entry {scaler, unit} per
        w.array(1 if n else 0)         # register column (none: empty)
        if n:
            w.structure(n)
            for o in range(0, len(cols), _COL):
                if cols[o] != 1 and cols[o] != 8 and cols[o + 7] == 2:
                    x = cols[o + 8]
                    w.structure(2).integer(x - 256 if x > 127 else x).enum(cols[o + 9])
    else:
        from meter import cosem_log as L
        n = _ring(meter, arg)[1]
        if sel is None:
            return _entries(meter, _rows(meter, arg, 1, n), n, None, cols, range(k), w)
        if len(par) < 2 or par[0] != 2 or par[1] != 4:
            return _TYPE_UNMATCHED            # not a structure of 4: neither descriptor
        if sel == 2:
            r = L.entry_args(par, n, k)
            if isinstance(r, int):
                return r
            return _entries(meter, _rows(meter, arg, r[0], r[1]), r[1] - r[0] + 1 if r[0] <= r[1] else 0,
                            None, cols, range(r[2] - 1, r[3]), w)
        if sel != 1 or cols[10]:               # by range: on the first column, a date-time
            return _OTHER
        r = L.range_args(meter, par, cols, _COL)
        if isinstance(r, int):
            return r
        return _entries(meter, _rows(meter, arg, 1, n), _count(_rows(meter, arg, 1, n), r), r, cols, r[2], w)
    return _OK


def _count(g, t):
    """How many entries of ``g`` have their clock in [t0, t1]."""
    n = 0
    for v in g:
        if t[0] <= _get(v, 0) <= t[1]:
            n += 1
    return n


def _entries(meter, g, n, t, cols, sel, w):
    """``n`` entries of ``g`` (``_rows``; if ``t``, only those whose clock is in [t0, t1]), written
    into ``w``'s buffer as the blocks go (the array's head at the first step). Loops by next() and
    index: a for-loop over an iterator holds 4 more slots of this generator's state."""
    w.array(n)
    yield b""
    i = 0
    while i < n:
        v = next(g, None)
        if v is None:
            break
        if t is not None and not t[0] <= _get(v, 0) <= t[1]:
            continue
        i += 1
        w.structure(len(sel))
        for j in range(len(sel)):
            v2 = sel[j] * _COL
            _write(meter, w, cols[v2:v2 + _COL], v)
        yield b""
    if i != n:
        raise RuntimeError("profile changed")     # the ring moved on while read: GET aborted


def act(meter, tagged):
    """IC 9 MD reset script, method 1 execute(script 1): a billing entry of the running cycle,
    then MD reset (event 65 with the billing count)."""
    if V.int_arg(tagged) != 1:
        return _OTHER
    p = meter.profiles
    p.bill(None)            # the tariff's month goes on: its entry at the billing date has it whole
    meter.event(_EV_MD_RESET, "maximum demand reset", p.c[5])
    return _OK


def value(meter, ic, arg, attr, w, ln=b""):
    """IC 4 maximum demand, the IC 1 counters and periods, IC 3 attribute 2 (see above); a
    capture column served as an object (IC 3 args 8.., IC 1 args 58..): its value in the last
    entry of the profile that captures it (0 before the first entry)."""
    if (ic == 3 and arg >= 8) or arg >= 58:
        ln = bytes(ln)
        for a in range(5):
            for i in range(_TABLE[a], _TABLE[a + 1]):
                c = _TABLE[6 + i * _COL:6 + i * _COL + _COL]
                if c[1:7] == ln:
                    n = _ring(meter, 32 + a)[1]
                    for v in _rows(meter, 32 + a, n, n):
                        _write(meter, w, c, v)
                        return _OK
                    _write(meter, w, c, [0] * 20)
                    return _OK
        return _OTHER
    p = meter.profiles
    c = p.c
    if ic == 9:                                # scripts: 1 = execute capture of 1.0.98.1.0.255
        w.array(1).structure(2).long_unsigned(1).array(1).structure(5).enum(2).long_unsigned(7) \
            .octet_string(b"\x01\x00\x62\x01\x00\xff").integer(2).integer(0)
    elif ic == 4:
        z = 2 * (arg - 48)
        if attr == 2:
            w.double_long_unsigned(p.md[z])
        elif attr == 3:
            w.structure(2).integer(0).enum(27)
        elif attr == 4:
            w.unsigned(0)
        else:
            V.put_time(meter, p.md[z + 1], w)
    elif ic == 3:
        if arg == 5:
            b = p.billing.last()
            V.put_time(meter, struct.unpack_from(">I", b, 0)[0] if b else 0, w)
        else:
            w.double_long_unsigned(c[2 if arg == 6 else 1] // 60)
    elif arg == 51 or arg == 52:
        w.long_unsigned(p.demand if arg == 51 else p.period)
    elif arg == 56:
        w.unsigned(p.billing.count())
    else:                                      # 50 billing count, 53 power failures, 54 tampers,
        w.double_long_unsigned(c[5 if arg == 50 else 0 if arg == 53 else arg - 51])   # 55 programming
    return _OK
