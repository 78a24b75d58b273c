"""COSEM object table of the meter (DLMS UA 1000-1 "Blue Book", IEC 62056-6-2), as data.

One row per object, keyed by its 6-byte logical name (OBIS)::

    (ln, class_id, version, n_attrs, read_masks, write_mask, method_mask, n_methods, arg)

``read_masks`` = (public, reader, manager) bit masks (bit a = attribute a may be read by that
role), ``write_mask`` / ``method_mask`` = attributes / methods the manager role (client SAP 1
and 48, LLS) may write / call; the public (16, no security) and reader (32, LLS) roles never
write or call. ``arg`` is per class (getter, scaler...). The access rights in the current
association's object_list (IC 15 attr 2) are derived from the same masks, so what the meter
announces and what it enforces cannot drift apart.

Values are encoded by per-class functions: ``read(meter, row, attr, w, ctx)`` writes A-XDR into
``w`` (``axdr.Writer``) and returns a data-access-result, or returns a generator of encoded
chunks for long values (object_list, profile buffer) so the server can send them by block
transfer without building them whole. ``write(meter, row, attr, tagged) -> dar``;
``call(meter, row, method, tagged) -> (action_result, data_bytes_or_None)``.

Amounts are integer paise (currency scale -2), energy integer Wh, time epoch seconds (UTC) shown
as local time with the configured deviation (Blue Book §4.1.6.1).
"""
from protocol import axdr
from meter import timeutil

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

PUBLIC = const(0)
READER = const(1)
MANAGER = const(2)

# data-access-result / action-result codes (IEC 62056-5-3 §8)
OK = const(0)
HW_FAULT = const(1)
TEMP_FAIL = const(2)
DENIED = const(3)
UNDEFINED = const(4)
INCONSISTENT = const(9)
UNAVAILABLE = const(11)
TYPE_UNMATCHED = const(12)
SCOPE_VIOLATED = const(13)
OTHER = const(250)

UNIT_WH = const(30)
UNIT_W = const(27)
UNIT_V = const(35)
UNIT_A = const(33)

# row fields
LN = const(0)
IC = const(1)
VER = const(2)
NATTR = const(3)
RMASK = const(4)
WMASK = const(5)
MMASK = const(6)
NMETH = const(7)
ARG = const(8)

_NO_DATE = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x80\x00\xff"  # date-time not specified
CLOCK_LN = b"\x00\x00\x01\x00\x00\xff"
EVENT_CODE_LN = b"\x00\x00\x60\x0b\x00\xff"
EVENT_LOG_LN = b"\x00\x00\x63\x62\x00\xff"
ASSOC_LN = b"\x00\x00\x28\x00\x00\xff"
TOKEN_GATEWAY_LN = b"\x00\x00\x13\x28\x00\xff"
SECURITY_SETUP_LN = b"\x00\x00\x2b\x00\x00\xff"


class CosemObject:
    """Base of objects kept as classes elsewhere (``meter.token_gateway``); the table in this
    module replaces them: the server serves table rows only."""
    class_id = 0
    n_attrs = 1
    public = (1,)
    methods = ()

    def __init__(self, ln):
        self.ln = ln


def _m(*bits):
    v = 0
    for b in bits:
        v |= 1 << b
    return v


def _all(n):
    return (1 << (n + 1)) - 2


def can_read(row, role, attr):
    return 1 <= attr <= row[NATTR] and (row[RMASK][role] >> attr) & 1


def can_write(row, role, attr):
    return role == MANAGER and (row[WMASK] >> attr) & 1


def can_call(row, role, method):
    return role == MANAGER and (row[MMASK] >> method) & 1


def present(meter, row):
    """False for objects whose backing part this meter does not have (no limiter, no
    emergency credit, no token acceptor): they are left out of the object_list and
    answer object-undefined."""
    ic = row[IC]
    if ic == 71:
        return getattr(meter, "limiter", None) is not None
    if ic == 112 and row[ARG]:
        return _emergency(meter) is not None
    if ic == 115:
        return getattr(meter, "tokens", None) is not None   # no STS key: no token gateway
    if ic == 1 and row[ARG] in (_profile, _profile_error):
        return hasattr(meter, "apply_profile_bytes")
    return True


def visible(meter, row, role):
    """In a role's object_list: present, and the role may read more than the logical name
    or call a method."""
    return present(meter, row) and bool((row[RMASK][role] & ~2) or (role == MANAGER and row[MMASK]))


# ------------------------------------------------------------------ helpers

def int_arg(tagged, tags=None):
    """Integer value of a decoded method/SET argument, or None if it is not an integer."""
    if tagged is None:
        return None
    tag, value = tagged
    if tags is not None and tag not in tags:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def put_time(meter, epoch, w):
    """COSEM date-time octet-string of ``epoch`` (UTC seconds) in local time; 0 -> not
    specified. Deviation is UTC - local in minutes (Blue Book §4.1.6.1)."""
    if not epoch:
        w.octet_string(_NO_DATE)
        return
    tz = meter.tz_minutes
    y, mo, d, wd, hh, mi, ss = timeutil.split(epoch + tz * 60)
    w.octet_string(axdr.datetime_bytes(y, mo, d, hh, mi, ss, 0, -tz, 0, wd))


def parse_time(meter, b):
    """COSEM date-time (12 bytes) -> epoch seconds (UTC), or None when not a concrete time."""
    if len(b) != 12:
        return None
    y, mo, d, _wd, hh, mi, ss, _hs, dev, _st = axdr.parse_datetime(b)
    if not (1970 <= y <= 2105 and 1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mi < 60
            and ss < 60):
        return None
    dev = dev if dev != -32768 else -meter.tz_minutes
    return timeutil.join(y, mo, d, hh, mi, ss) + dev * 60


def _ln_struct(w, class_id, ln, attr):
    w.structure(3).long_unsigned(class_id).octet_string(ln).integer(attr)


_OID_CONTEXT = b"\x60\x85\x74\x05\x08\x01\x01"   # 2.16.756.5.8.1.1 LN, no ciphering
_OID_MECH = b"\x60\x85\x74\x05\x08\x02"          # 2.16.756.5.8.2.x


# ------------------------------------------------------------------ IC 1 Data, IC 3 Register

def _r_data(meter, row, attr, w, ctx):
    return row[ARG](meter, w)


def _r_register(meter, row, attr, w, ctx):
    get, scaler, unit, kind = row[ARG]
    if attr == 3:
        w.structure(2).integer(scaler).enum(unit)
        return OK
    v = get(meter)
    if v is None:
        return TEMP_FAIL   # the metering module has not answered yet
    if kind == axdr.LONG_UNSIGNED:
        w.long_unsigned(v)
    else:
        w.double_long_unsigned(v)
    return OK


# ------------------------------------------------------------------ IC 8 Clock

def _r_clock(meter, row, attr, w, ctx):
    tz = meter.tz_minutes
    if attr == 2:
        put_time(meter, meter.board.time(), w)
    elif attr == 3:
        w.long(-tz)
    elif attr == 4:
        w.unsigned(0)            # clock status: valid, no DST
    elif attr in (5, 6):
        w.octet_string(_NO_DATE)  # no daylight saving in this meter
    elif attr == 7:
        w.integer(0)
    elif attr == 8:
        w.boolean(False)
    else:
        w.enum(1)                # clock_base: internal crystal
    return OK


def _w_clock(meter, row, attr, tagged):
    tag, value = tagged
    if attr == 2:
        if tag != axdr.OCTET_STRING or len(value) != 12:
            return TYPE_UNMATCHED
        t = parse_time(meter, value)
        if t is None:
            return OTHER
        meter.set_clock(t)
        return OK
    v = int_arg(tagged, (axdr.LONG,))
    if v is None or not -720 <= v <= 720:
        return TYPE_UNMATCHED
    meter.tz_minutes = -v
    meter.persist()
    return OK


def _c_clock(meter, row, method, tagged):
    """1 adjust_to_quarter, 3 adjust_to_minute (round to the nearest), 6 shift_time(long s)."""
    t = meter.board.time()
    if method == 6:
        v = int_arg(tagged, (axdr.LONG,))
        if v is None or not -900 <= v <= 900:
            return TYPE_UNMATCHED, None
        t += v
    else:
        q = 900 if method == 1 else 60
        t = (t + q // 2) // q * q
    meter.set_clock(t)
    return OK, None


# ------------------------------------------------------------------ IC 15 Association LN

def _r_assoc(meter, row, attr, w, ctx):
    if attr == 2:
        return _object_list(meter, ctx.role)
    if attr == 3:
        w.structure(2).integer(ctx.client).long_unsigned(ctx.server)
    elif attr == 4:
        w.octet_string(_OID_CONTEXT)
    elif attr == 5:
        w.structure(6).bit_string(ctx.conformance, 24).long_unsigned(ctx.max_pdu) \
            .long_unsigned(ctx.server_max_pdu).unsigned(6).integer(0).octet_string(b"")
    elif attr == 6:
        w.octet_string(_OID_MECH + bytes((ctx.mechanism,)))
    elif attr == 8:
        w.enum(2)                 # associated
    else:
        w.octet_string(SECURITY_SETUP_LN)
    return OK


def _object_list(meter, role):
    objs = meter.objects
    n = 0
    for row in objs.values():
        if visible(meter, row, role):
            n += 1
    w = axdr.Writer()
    w.array(n)
    yield bytes(w.buf)
    for row in objs.values():
        if not visible(meter, row, role):
            continue
        w.reset()
        w.structure(4).long_unsigned(row[IC]).unsigned(row[VER]).octet_string(row[LN])
        w.structure(2)
        na = row[NATTR]
        w.array(na)
        for a in range(1, na + 1):
            mode = (1 if can_read(row, role, a) else 0) | (2 if can_write(row, role, a) else 0)
            w.structure(3).integer(a).enum(mode)
            if row[IC] == 7 and a == 2:
                w.array(2).integer(1).integer(2)   # selective access by range and by entry
            else:
                w.null()
        nm = row[NMETH]
        w.array(nm)
        for m in range(1, nm + 1):
            w.structure(2).integer(m).enum(1 if can_call(row, role, m) else 0)
        yield bytes(w.buf)


# ------------------------------------------------------------------ IC 7 Profile generic (event log)

def _log(meter):
    """The event log: ``meter.event_log`` (meter/events.py: count(), capacity, entries(a, b),
    by_time(t0, t1), generators of (epoch, code, detail)) or the in-RAM list ``meter.events``."""
    return getattr(meter, "event_log", None) or getattr(meter, "events", [])


def _log_count(log):
    if isinstance(log, list):
        return len(log)
    return log.count()


def _log_entries(log, a, b):
    """Entries a..b (1-based, inclusive, both within 1..count) as (epoch, code, ...)."""
    if isinstance(log, list):
        return log[a - 1:b]
    return log.entries(a, b)


def _log_by_time(log, t0, t1):
    if isinstance(log, list):
        return [e for e in log if t0 <= e[0] <= t1]
    return log.by_time(t0, t1)


_CAPTURE = ((8, CLOCK_LN, 2), (1, EVENT_CODE_LN, 2))


def _r_profile(meter, row, attr, w, ctx):
    log = _log(meter)
    if attr == 2:
        return _buffer(meter, log, ctx.selector, ctx.params)
    if attr == 3:
        w.array(len(_CAPTURE))
        for ic, ln, a in _CAPTURE:
            w.structure(4).long_unsigned(ic).octet_string(ln).integer(a).long_unsigned(0)
    elif attr in (4, 7, 8):
        if attr == 4:
            v = 0                        # asynchronous: captured on each event
        elif attr == 7:
            v = _log_count(log)
        else:
            v = getattr(log, "capacity", 0) or 20   # the in-RAM list keeps 20
        w.double_long_unsigned(v)
    elif attr == 5:
        w.enum(1)                        # fifo
    else:
        w.structure(4).long_unsigned(0).octet_string(b"\x00" * 6).integer(0).long_unsigned(0)
    return OK


def _columns(sel):
    """selected_values (array of capture object definitions) -> column indexes, or None."""
    if not sel:
        return (0, 1)
    cols = []
    for tag, v in sel:
        if tag != axdr.STRUCTURE or len(v) < 3:
            return None
        key = (v[0][1], v[1][1], v[2][1])
        for i, c in enumerate(_CAPTURE):
            if c == key:
                cols.append(i)
                break
        else:
            return None
    return tuple(cols)


def _buffer(meter, log, selector, params):
    """Profile buffer, optionally with selective access (Blue Book IC 7 §4.3.6):
    1 range_descriptor {restricting_object, from_value, to_value, selected_values} on the
    clock column, 2 entry_descriptor {from_entry, to_entry, from_selected_value,
    to_selected_value} (1-based, 0 = to the last)."""
    cols = (0, 1)
    if selector is None:
        cnt = _log_count(log)
        items = _log_entries(log, 1, cnt) if cnt else ()
    else:
        try:
            tag, v = axdr.decode(params, 0)[0]
        except axdr.AxdrError:
            return TYPE_UNMATCHED
        if tag != axdr.STRUCTURE or len(v) != 4:
            return TYPE_UNMATCHED
        if selector == 1:
            ro = v[0][1]
            if (v[0][0] != axdr.STRUCTURE or len(ro) < 3 or ro[0][1] != 8 or ro[1][1] != CLOCK_LN
                    or ro[2][1] != 2):
                return OTHER
            t0 = _sel_time(meter, v[1])
            t1 = _sel_time(meter, v[2])
            if t0 is None or t1 is None:
                return TYPE_UNMATCHED
            cols = _columns(v[3][1])
            if cols is None:
                return OTHER
            cnt = 0
            for _ in _log_by_time(log, t0, t1):
                cnt += 1
            items = _log_by_time(log, t0, t1)
        elif selector == 2:
            a = int_arg(v[0])
            b = int_arg(v[1])
            c0 = int_arg(v[2])
            c1 = int_arg(v[3])
            if a is None or b is None or c0 is None or c1 is None:
                return TYPE_UNMATCHED
            n = _log_count(log)
            if a < 1:
                a = 1
            if b == 0 or b > n:
                b = n
            c0 = 1 if c0 < 1 else c0
            c1 = len(_CAPTURE) if c1 == 0 or c1 > len(_CAPTURE) else c1
            if c0 > c1:
                return OTHER
            cols = tuple(range(c0 - 1, c1))
            cnt = b - a + 1 if a <= b else 0
            items = _log_entries(log, a, b) if cnt else ()
        else:
            return OTHER
    return _entries(meter, cnt, items, cols)


def _sel_time(meter, tagged):
    tag, v = tagged
    if tag == axdr.OCTET_STRING or tag == axdr.DATE_TIME:
        return parse_time(meter, v)
    if tag in (axdr.DOUBLE_LONG_UNSIGNED, axdr.DOUBLE_LONG):
        return v
    return None


class ProfileChanged(Exception):
    """The log lost entries while it was being read: the long GET is aborted."""


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
                put_time(meter, e[0], w)
            else:
                w.long_unsigned(e[1] & 0xFFFF)
        yield bytes(w.buf)
    if i != cnt:
        raise ProfileChanged()


# ------------------------------------------------------------------ IC 70 Disconnect control

def _r_dc(meter, row, attr, w, ctx):
    dc = meter.dc
    if attr == 2:
        w.boolean(dc.output_state)
    elif attr == 3:
        w.enum(dc.control_state)
    else:
        w.enum(dc.control_mode)
    return OK


def _w_dc(meter, row, attr, tagged):
    v = int_arg(tagged, (axdr.ENUM,))
    if v is None:
        return TYPE_UNMATCHED
    return OK if meter.set_control_mode(v) else OTHER


def _c_dc(meter, row, method, tagged):
    ok = meter.remote_disconnect() if method == 1 else meter.remote_reconnect()
    # a transition the control mode forbids is a temporary failure of the command
    return (OK if ok else TEMP_FAIL), None


# ------------------------------------------------------------------ IC 71 Limiter

def _r_limiter(meter, row, attr, w, ctx):
    """Served from ``meter.limiter`` (meter/limiter.py, the maximum power limit). The monitored
    value is active power 1.0.1.7.0.255 (double-long-unsigned, 0.1 W), so the thresholds are
    given in 0.1 W too. There is no emergency profile: threshold_emergency equals the normal
    threshold, the profile is empty and never active. The actions are the disconnect control
    script (0.0.10.0.106.255) selectors 1 disconnect / 2 reconnect, which is what the meter does."""
    lim = meter.limiter
    if attr == 2:
        _ln_struct(w, 3, b"\x01\x00\x01\x07\x00\xff", 2)
    elif attr in (3, 4, 5):
        w.double_long_unsigned((lim.threshold_active if attr == 3 else lim.threshold_normal) * 10)
    elif attr == 6:
        w.double_long_unsigned(lim.min_over_threshold_duration)
    elif attr == 7:
        w.double_long_unsigned(lim.min_under_threshold_duration)
    elif attr == 8:
        w.structure(3).long_unsigned(0).octet_string(_NO_DATE).double_long_unsigned(0)
    elif attr == 9:
        w.array(0)
    elif attr == 10:
        w.boolean(False)
    else:
        w.structure(2)
        for sel in (1, 2):
            w.structure(2).octet_string(b"\x00\x00\x0a\x00\x6a\xff").long_unsigned(sel)
    return OK


# ------------------------------------------------------------------ IC 111 Account

def _r_account(meter, row, attr, w, ctx):
    a = meter.account
    if attr == 2:
        w.structure(2).enum(a.payment_mode).enum(a.status)
    elif attr == 3:
        w.unsigned(_credit_in_use(meter))
    elif attr == 4:
        w.bit_string(meter.credit_status(), 8)
    elif attr == 5:
        w.double_long(a.available)
    elif attr in (6, 8):
        w.double_long(-a.credit if a.credit < 0 else 0)   # amount_to_clear / aggregated_debt
    elif attr in (7, 17):
        w.double_long(0)                # clearance / next credit threshold: none configured
    elif attr == 9:
        w.array(2).octet_string(TOKEN_CREDIT_LN).octet_string(EMERGENCY_CREDIT_LN)
    elif attr == 10:
        w.array(1).octet_string(CHARGE_LN)
    elif attr == 11:
        # credit_charge_configuration: {credit_reference, charge_reference, collection_config}
        w.array(1).structure(3).octet_string(TOKEN_CREDIT_LN).octet_string(CHARGE_LN) \
            .bit_string(0x4, 3)
    elif attr == 12:
        # token_gateway_configuration: {credit_reference, token_proportion %}
        w.array(1).structure(2).octet_string(TOKEN_CREDIT_LN).unsigned(100)
    elif attr == 13:
        put_time(meter, getattr(a, "activation_time", 0), w)
    elif attr == 14:
        put_time(meter, getattr(a, "closure_time", 0), w)
    elif attr == 15:
        w.structure(3).utf8_string("INR").integer(-2).enum(1)   # name, scale, unit currency
    elif attr == 16:
        w.double_long(meter.low_credit_threshold())
    elif attr == 18:
        w.long_unsigned(0)              # max_provision: no limit
    else:
        w.double_long_unsigned(0)       # max_provision_period
    return OK


def _w_account(meter, row, attr, tagged):
    tag, value = tagged
    if tag != axdr.STRUCTURE or len(value) != 2:
        return TYPE_UNMATCHED
    mode = int_arg(value[0], (axdr.ENUM,))
    if mode not in (1, 2):
        return OTHER
    meter.set_payment_mode(mode)
    return OK


def _credit_in_use(meter):
    em = _emergency(meter)
    return 1 if em is not None and _em_get(em, "in_use", False) else 0


# ------------------------------------------------------------------ IC 112 Credit

def _emergency(meter):
    """The emergency credit of the policy engine (meter/policy.py), or None."""
    return getattr(meter, "emergency", None) or getattr(getattr(meter, "policy", None),
                                                        "emergency", None)


def _em_get(em, name, default=None):
    if isinstance(em, dict):
        return em.get(name, default)
    return getattr(em, name, default)


def _r_credit(meter, row, attr, w, ctx):
    if row[ARG] == 0:
        a = meter.account
        vals = (a.credit, 0, 1, 0, 0, 0, 3 if a.credit > 0 else 4, 0, 0, 0)
    else:
        em = _emergency(meter)
        if em is None:
            return UNAVAILABLE
        g = _em_get
        st = 3 if g(em, "in_use", False) else (4 if g(em, "consumed", False) else
                                                (1 if g(em, "selectable", False) else 0))
        vals = (g(em, "amount", 0), 2, 2, g(em, "warning_threshold", 0), g(em, "limit", 0),
                g(em, "configuration", 0), st, g(em, "preset_amount", 0),
                g(em, "available_threshold", 0), g(em, "period", 0))
    v = vals[attr - 2]
    if attr in (3, 8):
        w.enum(v)                      # type: 0 token, 2 emergency; status
    elif attr == 4:
        w.unsigned(v)                  # priority
    elif attr == 7:
        w.bit_string(v, 5)             # credit_configuration
    elif attr == 11:
        w.double_long_unsigned(v)      # period (s)
    else:
        w.double_long(v)
    return OK


def _c_credit(meter, row, method, tagged):
    """Token credit: 1 update_amount(double-long paise) adds credit; emergency credit:
    3 invoke_credit asks the policy engine to grant it."""
    if row[ARG] == 0:
        v = int_arg(tagged, (axdr.DOUBLE_LONG, axdr.DOUBLE_LONG_UNSIGNED, axdr.LONG,
                             axdr.LONG_UNSIGNED))
        if v is None:
            return TYPE_UNMATCHED, None
        return (OK if meter.top_up(v, "dlms") else OTHER), None
    f = getattr(meter, "invoke_emergency_credit", None)
    if f is None:
        return UNAVAILABLE, None
    return (OK if f() else TEMP_FAIL), None


# ------------------------------------------------------------------ IC 113 Charge

def _r_charge(meter, row, attr, w, ctx):
    """Consumption-based charge: the tariff in paise per kWh on active energy import."""
    a = meter.account
    if attr == 2:
        w.double_long(a.import_wh * a.rate // 1000)   # total charged at the (single) tariff
    elif attr == 3:
        w.enum(1)                       # consumption_based_collection
    elif attr == 4:
        w.unsigned(1)
    elif attr in (5, 6):
        # {charge_per_unit_scaling {commodity_scale, price_scale}, commodity, charge_table}
        w.structure(3).structure(2).integer(3).integer(-2)
        _ln_struct(w, 3, ENERGY_LN, 2)
        w.array(1).structure(2).octet_string(b"").long(a.rate)
    elif attr in (7, 10):
        put_time(meter, 0, w)
    elif attr == 8:
        w.double_long_unsigned(0)
    elif attr == 9:
        w.bit_string(0, 2)
    elif attr == 11:
        w.double_long(0)
    elif attr == 12:
        w.double_long(0)
    else:
        w.long_unsigned(0)
    return OK


# ------------------------------------------------------------------ IC 115 Token gateway

def _r_tokgw(meter, row, attr, w, ctx):
    g = getattr(meter, "token_gateway", None)
    if not g:
        return UNAVAILABLE
    if attr == 2:
        w.octet_string(g["token"])
    elif attr == 3:
        put_time(meter, g["time"], w)
    elif attr == 4:
        ds = g["descriptions"]
        w.array(len(ds))
        for d in ds:
            w.octet_string(d)
    elif attr == 5:
        w.enum(g["delivery"])
    else:
        w.structure(2).enum(g["status"]).bit_string(g["status_bits"], 8)
    return OK


def _c_tokgw(meter, row, method, tagged):
    """enter(octet-string: 20 ASCII digits, spaces/dashes allowed): the outcome is in
    attribute 6 status (0 formatOk .. 8 tokenReceived), the method result is success when
    the token was processed."""
    f = getattr(meter, "enter_token", None)
    if f is None:
        return UNAVAILABLE, None
    if tagged is None or tagged[0] != axdr.OCTET_STRING:
        return TYPE_UNMATCHED, None
    f(bytes(tagged[1]), 0)
    return OK, None


# ------------------------------------------------------------------ object values

def _ldn(meter, w):
    w.octet_string(meter.logical_device_name)
    return OK


def _event_code(meter, w):
    log = _log(meter)
    n = _log_count(log)
    code = 0
    if n:
        for e in _log_entries(log, n, n):
            code = e[1]
    w.long_unsigned(code & 0xFFFF)
    return OK


def _is_metering_mode(meter, w):
    w.unsigned(0)          # IS 15959-2: 0 = import only (the PZEM-004T measures import)
    return OK


def _is_payment_mode(meter, w):
    w.unsigned(1 if meter.account.payment_mode == 2 else 0)   # 1 prepaid, 0 postpaid
    return OK


def _is_last_recharge(meter, w):
    w.double_long_unsigned(meter.account.last_recharge)
    return OK


def _is_last_recharge_time(meter, w):
    put_time(meter, meter.account.last_recharge_time, w)
    return OK


def _is_total_recharged(meter, w):
    w.double_long_unsigned(meter.account.total_recharged)
    return OK


def _is_balance(meter, w):
    w.double_long(meter.account.available)
    return OK


def _is_balance_time(meter, w):
    put_time(meter, meter.board.time(), w)
    return OK


def _fw_version(meter, w):
    w.octet_string(getattr(meter, "FIRMWARE_ID", b""))
    return OK


def _profile(meter, w):
    w.octet_string(meter.profile_bytes())
    return OK


def _profile_error(meter, w):
    w.octet_string(meter.config_error.encode())   # text, as octet-string (device A-XDR subset)
    return OK


def _w_data(meter, row, attr, tagged):
    """SET of a Data value: only the tariff/policy profile (0.128.96.5.0.255) is writable. The
    meter validates the whole profile first and keeps the old one if any field is refused."""
    if row[LN] != PROFILE_LN:
        return DENIED
    if tagged[0] != axdr.OCTET_STRING:
        return TYPE_UNMATCHED
    return OK if meter.apply_profile_bytes(bytes(tagged[1])) else OTHER


def _energy(meter):
    return meter.account.import_wh


def _export(meter):
    return 0     # the metering module measures import only: nothing is ever exported


def _metro(name):
    def get(meter):
        m = meter.metro
        return None if m is None else getattr(m, name)
    return get


ENERGY_LN = b"\x01\x00\x01\x08\x00\xff"
TOKEN_CREDIT_LN = b"\x00\x00\x13\x0a\x00\xff"
EMERGENCY_CREDIT_LN = b"\x00\x00\x13\x0a\x01\xff"
CHARGE_LN = b"\x00\x00\x13\x14\x00\xff"
PROFILE_LN = b"\x00\x80\x60\x05\x00\xff"        # manufacturer-specific: tariff/policy profile

READ = {1: _r_data, 3: _r_register, 7: _r_profile, 8: _r_clock, 15: _r_assoc, 70: _r_dc,
        71: _r_limiter, 111: _r_account, 112: _r_credit, 113: _r_charge, 115: _r_tokgw}
WRITE = {1: _w_data, 8: _w_clock, 70: _w_dc, 111: _w_account}
CALL = {8: _c_clock, 70: _c_dc, 112: _c_credit, 115: _c_tokgw}


def build_table():
    """All objects: dict logical name (6 bytes) -> row (see module doc)."""
    pub_data = (6, 6, 6)                       # value readable by every role
    reg = (14, 14, 14)                         # value + scaler_unit
    rows = (
        # current association: everything but the secret (7)
        (ASSOC_LN, 15, 1, 9, (_all(9) & ~_m(7),) * 3, 0, 0, 4, None),
        (b"\x00\x00\x2a\x00\x00\xff", 1, 0, 2, pub_data, 0, 0, 0, _ldn),
        (CLOCK_LN, 8, 0, 9, (_all(9),) * 3, _m(2, 3), _m(1, 3, 6), 6, None),
        (ENERGY_LN, 3, 0, 3, reg, 0, 0, 1, (_energy, 0, UNIT_WH, axdr.DOUBLE_LONG_UNSIGNED)),
        (b"\x01\x00\x02\x08\x00\xff", 3, 0, 3, reg, 0, 0, 1,
         (_export, 0, UNIT_WH, axdr.DOUBLE_LONG_UNSIGNED)),
        (b"\x01\x00\x20\x07\x00\xff", 3, 0, 3, reg, 0, 0, 1,
         (_metro("voltage_dv"), -1, UNIT_V, axdr.LONG_UNSIGNED)),
        (b"\x01\x00\x1f\x07\x00\xff", 3, 0, 3, reg, 0, 0, 1,
         (_metro("current_ma"), -3, UNIT_A, axdr.DOUBLE_LONG_UNSIGNED)),
        (b"\x01\x00\x01\x07\x00\xff", 3, 0, 3, reg, 0, 0, 1,
         (_metro("power_dw"), -1, UNIT_W, axdr.DOUBLE_LONG_UNSIGNED)),
        (b"\x00\x00\x13\x00\x00\xff", 111, 0, 19, (_m(1, 2, 4, 5, 15), _all(19), _all(19)),
         _m(2), 0, 3, None),
        (TOKEN_CREDIT_LN, 112, 0, 11, (_m(1, 2, 3, 8), _all(11), _all(11)), 0, _m(1), 3, 0),
        (EMERGENCY_CREDIT_LN, 112, 0, 11, (_m(1, 2, 3, 8), _all(11), _all(11)), 0, _m(3), 3, 1),
        (CHARGE_LN, 113, 0, 13, (_m(1), _all(13), _all(13)), 0, 0, 5, None),
        (TOKEN_GATEWAY_LN, 115, 0, 6, (_m(1, 3, 5, 6), _all(6), _all(6)), 0, _m(1), 1, None),
        (b"\x00\x00\x60\x03\x0a\xff", 70, 1, 4, (_all(4),) * 3, _m(4), _m(1, 2), 2, None),
        (b"\x00\x00\x11\x00\x00\xff", 71, 0, 11, (_m(1), _all(11), _all(11)), 0, 0, 0, None),
        (EVENT_LOG_LN, 7, 1, 8, (_m(1), _all(8), _all(8)), 0, 0, 2, None),
        (EVENT_CODE_LN, 1, 0, 2, pub_data, 0, 0, 0, _event_code),
        # active firmware identifier
        (b"\x01\x00\x00\x02\x00\xff", 1, 0, 2, pub_data, 0, 0, 0, _fw_version),
        # tariff/policy profile as compact JSON (meterctl config show|apply) and the reason the
        # last one was refused ("field: reason")
        (PROFILE_LN, 1, 0, 2, (2, 6, 6), _m(2), 0, 0, _profile),
        (b"\x00\x80\x60\x05\x01\xff", 1, 0, 2, (2, 6, 6), 0, 0, 0, _profile_error),
        # IS 15959 prepaid Data objects (class 1), read by Indian head-end systems
        (b"\x00\x00\x5e\x60\x13\xff", 1, 0, 2, pub_data, 0, 0, 0, _is_metering_mode),
        (b"\x00\x00\x5e\x60\x14\xff", 1, 0, 2, pub_data, 0, 0, 0, _is_payment_mode),
        (b"\x00\x00\x5e\x60\x15\xff", 1, 0, 2, pub_data, 0, 0, 0, _is_last_recharge),
        (b"\x00\x00\x5e\x60\x16\xff", 1, 0, 2, pub_data, 0, 0, 0, _is_last_recharge_time),
        (b"\x00\x00\x5e\x60\x17\xff", 1, 0, 2, pub_data, 0, 0, 0, _is_total_recharged),
        (b"\x00\x00\x5e\x60\x18\xff", 1, 0, 2, pub_data, 0, 0, 0, _is_balance),
        (b"\x00\x00\x5e\x60\x19\xff", 1, 0, 2, pub_data, 0, 0, 0, _is_balance_time),
    )
    t = {}
    for r in rows:
        t[r[LN]] = r
    return t
