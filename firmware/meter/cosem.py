"""COSEM object table of the meter (DLMS UA 1000-1 "Blue Book", IEC 62056-6-2), as data.

The table is one ``bytes`` literal (it stays in flash / the ROMFS image, nothing is built in RAM):
one 19-byte row per object::

    0..5   logical name (OBIS)            6  class_id (IC)       7  version
    8      number of attributes           9..11  public read mask (24 bits, little endian)
    12..14 reader/manager read mask       15 manager write mask  16 manager method mask
    17     number of methods              18 per-class argument (which value, which credit)

A read mask has bit ``a`` set when attribute ``a`` may be read. The public role (client SAP 16,
no security) reads with the public mask; the meter reader (32, LLS) and the manager (1 and 48,
LLS) with the other; only the manager writes and calls. The access rights announced in the
association's object_list (IC 15 attr 2) come from the same masks, so what the meter announces
and what it enforces cannot drift apart.

Entry points for ``meter.server`` (``item`` is one ``(class_id, ln, index, selector, params)`` of
``apdu.parse_request``, ``ctx`` the association: ``role`` 0 public / 1 reader / 2 manager,
``client``, ``server``, ``conformance``, ``max_pdu``, ``mechanism``):

- ``get(meter, ctx, item, w) -> dar``: encodes the attribute's A-XDR value into ``w``
  (``axdr.Writer``) and returns a data-access-result (0 success), or returns a generator of
  encoded chunks for long values (object_list, profile buffer) so the server can send them by
  block transfer without building them whole;
- ``put(meter, ctx, item, value) -> dar`` (``value``: the A-XDR data bytes of the SET);
- ``act(meter, ctx, item) -> (action_result, data_bytes_or_None)``.
Codes (IEC 62056-5-3 §8): 0 success, 1 hardware-fault, 2 temporary-failure, 3 read-write-denied,
4 object-undefined, 9 object-class-inconsistent, 11 object-unavailable, 12 type-unmatched,
250 other-reason.

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

# data-access-result / action-result codes (IEC 62056-5-3 §8)
_OK = const(0)
_HW_FAULT = const(1)
_TEMP_FAIL = const(2)
_DENIED = const(3)
_UNDEFINED = const(4)
_INCONSISTENT = const(9)
_UNAVAILABLE = const(11)
_TYPE_UNMATCHED = const(12)
_OTHER = const(250)

_MANAGER = const(2)            # roles: 0 public, 1 reader, 2 manager (meter.server)
_CONF_SELECTIVE = const(4)     # conformance bit selective-access (apdu.CONF_SELECTIVE_ACCESS)

# A-XDR tags (protocol.axdr)
_T_STRUCTURE = const(2)
_T_DOUBLE_LONG = const(5)
_T_DOUBLE_LONG_UNSIGNED = const(6)
_T_OCTET_STRING = const(9)
_T_LONG = const(16)
_T_LONG_UNSIGNED = const(18)
_T_ENUM = const(22)
_T_DATE_TIME = const(25)

# row layout
_ROW = const(19)
_IC = const(6)
_VER = const(7)
_NATTR = const(8)
_RPUB = const(9)
_RAUTH = const(12)
_WMASK = const(15)
_MMASK = const(16)
_NMETH = const(17)
_ARG = const(18)

_TABLE = (
    # 0.0.40.0.0.255 current association IC 15 v1: all but attribute 7 (secret); 4 methods
    b"\x00\x00\x28\x00\x00\xff\x0f\x01\x09\x7e\x03\x00\x7e\x03\x00\x00\x00\x04\x00"
    # 0.0.42.0.0.255 logical device name IC 1 (arg 0)
    b"\x00\x00\x2a\x00\x00\xff\x01\x00\x02\x06\x00\x00\x06\x00\x00\x00\x00\x00\x00"
    # 0.0.1.0.0.255 clock IC 8: all 9 read; manager writes 2, 3, calls 1, 3, 6 (of 6)
    b"\x00\x00\x01\x00\x00\xff\x08\x00\x09\xfe\x03\x00\xfe\x03\x00\x0c\x4a\x06\x00"
    # registers IC 3 (arg: _REGS row): active energy import 1.0.1.8.0.255, export 1.0.2.8.0.255,
    # voltage 1.0.32.7.0.255, current 1.0.31.7.0.255, active power 1.0.1.7.0.255
    b"\x01\x00\x01\x08\x00\xff\x03\x00\x03\x0e\x00\x00\x0e\x00\x00\x00\x00\x01\x00"
    b"\x01\x00\x02\x08\x00\xff\x03\x00\x03\x0e\x00\x00\x0e\x00\x00\x00\x00\x01\x01"
    b"\x01\x00\x20\x07\x00\xff\x03\x00\x03\x0e\x00\x00\x0e\x00\x00\x00\x00\x01\x02"
    b"\x01\x00\x1f\x07\x00\xff\x03\x00\x03\x0e\x00\x00\x0e\x00\x00\x00\x00\x01\x03"
    b"\x01\x00\x01\x07\x00\xff\x03\x00\x03\x0e\x00\x00\x0e\x00\x00\x00\x00\x01\x04"
    # 0.0.19.0.0.255 account IC 111: public 1, 2, 4, 5, 15; manager writes 2 (payment mode)
    b"\x00\x00\x13\x00\x00\xff\x6f\x00\x13\x36\x80\x00\xfe\xff\x0f\x04\x00\x03\x00"
    # 0.0.19.10.0.255 token credit IC 112 (arg 0): public 1, 2, 3, 8; method 1 update_amount
    b"\x00\x00\x13\x0a\x00\xff\x70\x00\x0b\x0e\x01\x00\xfe\x0f\x00\x00\x02\x03\x00"
    # 0.0.19.10.1.255 emergency credit IC 112 (arg 1): method 3 invoke_credit
    b"\x00\x00\x13\x0a\x01\xff\x70\x00\x0b\x0e\x01\x00\xfe\x0f\x00\x00\x08\x03\x01"
    # 0.0.19.20.0.255 charge IC 113
    b"\x00\x00\x13\x14\x00\xff\x71\x00\x0d\x02\x00\x00\xfe\x3f\x00\x00\x00\x05\x00"
    # 0.0.19.40.0.255 token gateway IC 115: public 1, 3, 5, 6; method 1 enter
    b"\x00\x00\x13\x28\x00\xff\x73\x00\x06\x6a\x00\x00\x7e\x00\x00\x00\x02\x01\x00"
    # 0.0.96.3.10.255 disconnect control IC 70 v1: manager writes 4 (control_mode), calls 1, 2
    b"\x00\x00\x60\x03\x0a\xff\x46\x01\x04\x1e\x00\x00\x1e\x00\x00\x10\x06\x02\x00"
    # 0.0.17.0.0.255 limiter IC 71
    b"\x00\x00\x11\x00\x00\xff\x47\x00\x0b\x02\x00\x00\xfe\x0f\x00\x00\x00\x00\x00"
    # 0.0.99.98.0.255 event log IC 7 v1
    b"\x00\x00\x63\x62\x00\xff\x07\x01\x08\x02\x00\x00\xfe\x01\x00\x00\x00\x02\x00"
    # Data IC 1 (arg: value, see _r_data): event code 0.0.96.11.0.255, active firmware
    # identifier 1.0.0.2.0.255, tariff/policy profile as compact JSON 0.128.96.5.0.255 (manager
    # writes 2; meterctl config show|apply) and the reason the last one was refused
    # 0.128.96.5.1.255 ("field: reason"), the profile pair readable only after LLS
    b"\x00\x00\x60\x0b\x00\xff\x01\x00\x02\x06\x00\x00\x06\x00\x00\x00\x00\x00\x01"
    b"\x01\x00\x00\x02\x00\xff\x01\x00\x02\x06\x00\x00\x06\x00\x00\x00\x00\x00\x02"
    b"\x00\x80\x60\x05\x00\xff\x01\x00\x02\x02\x00\x00\x06\x00\x00\x04\x00\x00\x03"
    b"\x00\x80\x60\x05\x01\xff\x01\x00\x02\x02\x00\x00\x06\x00\x00\x00\x00\x00\x04"
    # IS 15959 prepaid Data objects 0.0.94.96.19..25.255, read by Indian head-end systems:
    # metering mode, payment mode, last recharge amount / time, total recharged, balance / time
    b"\x00\x00\x5e\x60\x13\xff\x01\x00\x02\x06\x00\x00\x06\x00\x00\x00\x00\x00\x05"
    b"\x00\x00\x5e\x60\x14\xff\x01\x00\x02\x06\x00\x00\x06\x00\x00\x00\x00\x00\x06"
    b"\x00\x00\x5e\x60\x15\xff\x01\x00\x02\x06\x00\x00\x06\x00\x00\x00\x00\x00\x07"
    b"\x00\x00\x5e\x60\x16\xff\x01\x00\x02\x06\x00\x00\x06\x00\x00\x00\x00\x00\x08"
    b"\x00\x00\x5e\x60\x17\xff\x01\x00\x02\x06\x00\x00\x06\x00\x00\x00\x00\x00\x09"
    b"\x00\x00\x5e\x60\x18\xff\x01\x00\x02\x06\x00\x00\x06\x00\x00\x00\x00\x00\x0a"
    b"\x00\x00\x5e\x60\x19\xff\x01\x00\x02\x06\x00\x00\x06\x00\x00\x00\x00\x00\x0b"
)

# IC 3 registers, 3 bytes each: scaler (signed), unit (Blue Book table 4), value A-XDR tag.
# energy Wh (30), export Wh, voltage 0.1 V (35), current mA (33), active power 0.1 W (27)
_REGS = b"\x00\x1e\x06\x00\x1e\x06\xff\x23\x12\xfd\x21\x06\xff\x1b\x06"

_NO_DATE = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x80\x00\xff"  # date-time not specified
# logical names written inside values; each one is a slice of this literal:
# 0 clock, 6 event code, 12 energy import, 18 token credit, 24 emergency credit, 30 charge,
# 36 active power, 42 disconnect control script, 48 security setup
_LNS = (b"\x00\x00\x01\x00\x00\xff\x00\x00\x60\x0b\x00\xff\x01\x00\x01\x08\x00\xff"
        b"\x00\x00\x13\x0a\x00\xff\x00\x00\x13\x0a\x01\xff\x00\x00\x13\x14\x00\xff"
        b"\x01\x00\x01\x07\x00\xff\x00\x00\x0a\x00\x6a\xff\x00\x00\x2b\x00\x00\xff")
# 2.16.756.5.8.1.1 application context LN no ciphering, then 2.16.756.5.8.2 mechanism prefix
_OIDS = b"\x60\x85\x74\x05\x08\x01\x01\x60\x85\x74\x05\x08\x02"


def _ln(i):
    return _LNS[i:i + 6]


def _mask(o, role):
    i = o + (_RPUB if role == 0 else _RAUTH)
    return _TABLE[i] | _TABLE[i + 1] << 8 | _TABLE[i + 2] << 16


def _can(o, role, kind, n):
    """kind 0 read (attribute n), 1 write (attribute n), 2 call (method n)."""
    if kind == 0:
        return 1 <= n <= _TABLE[o + _NATTR] and (_mask(o, role) >> n) & 1
    return role == _MANAGER and 0 < n < 8 and (_TABLE[o + (_WMASK if kind == 1 else _MMASK)] >> n) & 1


def _present(meter, o):
    """False for objects whose backing part this meter does not have (no limiter, no
    emergency credit, no token acceptor, no profile support): they are left out of the
    object_list and answer object-undefined."""
    ic = _TABLE[o + _IC]
    arg = _TABLE[o + _ARG]
    if ic == 71:
        return getattr(getattr(meter, "policy", None), "limiter", None) is not None
    if ic == 112 and arg:
        return _emergency(meter) is not None
    if ic == 115:
        return getattr(meter, "tokens", None) is not None   # no STS key: no token gateway
    if ic == 1 and arg in (3, 4):
        return hasattr(meter, "apply_profile_bytes")
    return True


def _visible(meter, o, role):
    """In a role's object_list: present, and the role may read more than the logical name
    or call a method."""
    return _present(meter, o) and bool((_mask(o, role) & ~2)
                                       or (role == _MANAGER and _TABLE[o + _MMASK]))


def _lookup(meter, ctx, item, kind):
    """(row offset, 0) if ``item`` (class_id, ln, index, ...) may be read (kind 0), written (1)
    or called (2) in this association, else (-1, data-access-result)."""
    ic, ln, n = item[0], item[1], item[2]
    o = -1
    if len(ln) == 6:                  # the row of this logical name: a match at a row start
        ln = bytes(ln)
        while True:
            o = _TABLE.find(ln, o + 1)
            if o < 0 or o % _ROW == 0:
                break
    if o < 0 or not _present(meter, o):
        return -1, _UNDEFINED
    if _TABLE[o + _IC] != ic:
        return -1, _INCONSISTENT
    if not _can(o, ctx.role, kind, n):
        top = _TABLE[o + (_NMETH if kind == 2 else _NATTR)]
        return -1, (_DENIED if 1 <= n <= top else _UNDEFINED)
    return o, 0


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


def put_time(meter, t, w):
    """COSEM date-time octet-string of ``t`` (UTC epoch seconds) in local time; 0 -> not
    specified. Deviation is UTC - local in minutes (Blue Book §4.1.6.1)."""
    if not t:
        w.octet_string(_NO_DATE)
        return
    tz = meter.tz_minutes
    y, mo, d, wd, hh, mi, ss = timeutil.split(t + tz * 60)
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


def _emergency(meter):
    """The emergency credit of the policy engine (``Policy.emergency``: the IC 112 attribute
    values 2..11), or None."""
    return getattr(getattr(meter, "policy", None), "emergency", None)


# ------------------------------------------------------------------ GET

def get(meter, ctx, item, w):
    """GET of one attribute: A-XDR into ``w``; returns a dar or a generator of chunks."""
    ic, _ln6, attr, sel, par = item
    o, dar = _lookup(meter, ctx, item, 0)
    if o < 0:
        return dar
    if sel is not None and (ic != 7 or attr != 2 or not ctx.conformance & _CONF_SELECTIVE):
        return _UNAVAILABLE          # selective access: profile buffers only
    if attr == 1:
        w.octet_string(_TABLE[o:o + 6])
        return _OK
    try:
        if ic == 15 and attr == 2:
            return _object_list(meter, ctx.role)
        if ic == 7 and attr == 2:
            return _buffer(meter, meter.event_log, sel, par)
        return _read(meter, ctx, o, ic, attr, w)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return _HW_FAULT


def _read(meter, ctx, o, ic, attr, w):
    arg = _TABLE[o + _ARG]
    if ic == 1:
        return _r_data(meter, arg, w)
    if ic == 3:                                   # Register
        i = arg * 3
        if attr == 3:
            s = _REGS[i]
            w.structure(2).integer(s - 256 if s > 127 else s).enum(_REGS[i + 1])
            return _OK
        if arg == 0:
            v = meter.account.import_wh
        elif arg == 1:
            v = 0    # the metering module measures import only: nothing is ever exported
        else:
            m = meter.metro
            v = None if m is None else (m.voltage_dv if arg == 2 else
                                        (m.current_ma if arg == 3 else m.power_dw))
        if v is None:
            return _TEMP_FAIL        # the metering module has not answered yet
        if _REGS[i + 2] == _T_LONG_UNSIGNED:
            w.long_unsigned(v)
        else:
            w.double_long_unsigned(v)
    elif ic == 8:                                 # Clock
        if attr == 2:
            put_time(meter, meter.board.time(), w)
        elif attr == 3:
            w.long(-meter.tz_minutes)
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
    elif ic == 15:                                # Association LN
        if attr == 3:
            w.structure(2).integer(ctx.client).long_unsigned(ctx.server)
        elif attr == 4:
            w.octet_string(_OIDS[:7])
        elif attr == 5:
            # xDLMS context: conformance, max receive PDU (client's, ours), version 6, quality
            w.structure(6).bit_string(ctx.conformance, 24).long_unsigned(ctx.max_pdu) \
                .long_unsigned(1024).unsigned(6).integer(0).octet_string(b"")
        elif attr == 6:
            w.octet_string(_OIDS[7:] + bytes((ctx.mechanism,)))
        elif attr == 8:
            w.enum(2)                # associated
        else:
            w.octet_string(_ln(48))  # security setup
    elif ic == 7:                                 # Profile generic: the event log
        log = meter.event_log
        if attr == 3:                # capture objects: clock time, event code value
            w.array(2)
            for i, c in ((0, 8), (6, 1)):
                w.structure(4).long_unsigned(c).octet_string(_ln(i)).integer(2).long_unsigned(0)
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
    elif ic == 70:                                # Disconnect control
        dc = meter.dc
        if attr == 2:
            w.boolean(dc.output_state)
        else:
            w.enum(dc.control_state if attr == 3 else dc.control_mode)
    elif ic == 71:
        # Limiter from meter.policy.limiter (meter/limiter.py, the maximum power limit). The
        # monitored value is active power 1.0.1.7.0.255 (double-long-unsigned, 0.1 W), so the
        # thresholds are given in 0.1 W too. There is no emergency profile: threshold_emergency
        # equals the normal threshold, the profile is empty and never active. The actions are
        # the disconnect control script (0.0.10.0.106.255) selectors 1 disconnect / 2
        # reconnect, which is what the meter does.
        lim = meter.policy.limiter
        if attr == 2:
            w.structure(3).long_unsigned(3).octet_string(_ln(36)).integer(2)
        elif attr < 8:               # 3, 4, 5 thresholds, 6 / 7 min over / under duration
            w.double_long_unsigned(lim.mpl_w * 10 if attr < 6 else
                                   (lim.trip_s if attr == 6 else lim.reclose_s))
        elif attr == 8:
            w.structure(3).long_unsigned(0).octet_string(_NO_DATE).double_long_unsigned(0)
        elif attr == 9:
            w.array(0)
        elif attr == 10:
            w.boolean(False)
        else:
            w.structure(2)
            for sel in (1, 2):
                w.structure(2).octet_string(_ln(42)).long_unsigned(sel)
    elif ic == 111:
        _r_account(meter, attr, w)
    elif ic == 112:
        return _r_credit(meter, arg, attr, w)
    elif ic == 113:
        # Charge, consumption based: the tariff in paise per kWh on active energy import
        a = meter.account
        if attr == 2:
            w.double_long(a.import_wh * a.rate // 1000)   # total charged at the (single) tariff
        elif attr == 3:
            w.enum(1)                # consumption_based_collection
        elif attr == 4:
            w.unsigned(1)
        elif attr in (5, 6):
            # {charge_per_unit_scaling {commodity_scale, price_scale}, commodity, charge_table}
            w.structure(3).structure(2).integer(3).integer(-2)
            w.structure(3).long_unsigned(3).octet_string(_ln(12)).integer(2)
            w.array(1).structure(2).octet_string(b"").long(a.rate)
        elif attr in (7, 10):
            put_time(meter, 0, w)
        elif attr == 8:
            w.double_long_unsigned(0)
        elif attr == 9:
            w.bit_string(0, 2)
        elif attr in (11, 12):
            w.double_long(0)
        else:
            w.long_unsigned(0)
    else:
        # Token gateway from meter.token_gateway = [token, time, description, delivery,
        # status]: 2 token, 3 time, 4 descriptions (the STS reason as text), 5 delivery
        # method, 6 status {token_status_code, data_value bit-string(8)}
        g = getattr(meter, "token_gateway", None)
        if not g:
            return _UNAVAILABLE
        if attr == 2:
            w.octet_string(g[0])
        elif attr == 3:
            put_time(meter, g[1], w)
        elif attr == 4:
            if g[2]:
                w.array(1).octet_string(g[2])
            else:
                w.array(0)
        elif attr == 5:
            w.enum(g[3])
        else:
            w.structure(2).enum(g[4]).bit_string(0, 8)
    return _OK


def _r_data(meter, k, w):
    """IC 1 value ``k`` (the row's argument)."""
    a = meter.account
    if k == 0:
        w.octet_string(meter.logical_device_name)
    elif k == 1:                                  # code of the last event
        log = meter.event_log
        n = log.count()
        code = 0
        if n:
            for e in log.entries(n, n):
                code = e[1]
        w.long_unsigned(code & 0xFFFF)
    elif k == 2:
        w.octet_string(getattr(meter, "FIRMWARE_ID", b""))
    elif k == 3:
        w.octet_string(meter.profile_bytes())
    elif k == 4:
        w.octet_string(meter.config_error.encode())   # text, as octet-string
    elif k == 5:
        w.unsigned(0)          # IS 15959-2: 0 = import only (the PZEM-004T measures import)
    elif k == 6:
        w.unsigned(1 if a.payment_mode == 2 else 0)   # 1 prepaid, 0 postpaid
    elif k == 7:
        w.double_long_unsigned(a.last_recharge)
    elif k == 8:
        put_time(meter, a.last_recharge_time, w)
    elif k == 9:
        w.double_long_unsigned(a.total_recharged)
    elif k == 10:
        w.double_long(a.credit)
    else:
        put_time(meter, meter.board.time(), w)
    return _OK


def _r_account(meter, attr, w):
    a = meter.account
    if attr == 2:
        w.structure(2).enum(a.payment_mode).enum(a.status)
    elif attr == 3:                  # credit_in_use: 1 = the emergency credit
        em = _emergency(meter)
        w.unsigned(1 if em is not None and em[6] == 3 else 0)
    elif attr == 4:
        w.bit_string(meter.policy.credit_status(meter), 8)
    elif attr == 5:
        w.double_long(a.credit)      # available_credit
    elif attr in (6, 8):
        w.double_long(-a.credit if a.credit < 0 else 0)   # amount_to_clear / aggregated_debt
    elif attr in (7, 17):
        w.double_long(0)             # clearance / next credit threshold: none configured
    elif attr == 9:
        w.array(2).octet_string(_ln(18)).octet_string(_ln(24))
    elif attr == 10:
        w.array(1).octet_string(_ln(30))
    elif attr == 11:
        # credit_charge_configuration: {credit_reference, charge_reference, collection_config}
        w.array(1).structure(3).octet_string(_ln(18)).octet_string(_ln(30)).bit_string(0x4, 3)
    elif attr == 12:
        # token_gateway_configuration: {credit_reference, token_proportion %}
        w.array(1).structure(2).octet_string(_ln(18)).unsigned(100)
    elif attr in (13, 14):
        put_time(meter, 0, w)        # activation / closure time: not recorded
    elif attr == 15:
        w.structure(3).utf8_string("INR").integer(-2).enum(1)   # name, scale, unit currency
    elif attr == 16:
        w.double_long(meter.policy.low_credit_threshold(meter))
    elif attr == 18:
        w.long_unsigned(0)           # max_provision: no limit
    else:
        w.double_long_unsigned(0)    # max_provision_period


def _r_credit(meter, arg, attr, w):
    """IC 112 attributes 2..11: current_credit_amount, type (0 token, 2 emergency), priority,
    warning_threshold, limit, credit_configuration, status, preset_credit_amount,
    credit_available_threshold, period (s)."""
    if arg == 0:
        c = meter.account.credit
        vals = (c, 0, 1, 0, 0, 0, 3 if c > 0 else 4, 0, 0, 0)
    else:
        vals = _emergency(meter)
        if vals is None:
            return _UNAVAILABLE
    v = vals[attr - 2]
    if attr in (3, 8):
        w.enum(v)
    elif attr == 4:
        w.unsigned(v)
    elif attr == 7:
        w.bit_string(v, 5)
    elif attr == 11:
        w.double_long_unsigned(v)
    else:
        w.double_long(v)
    return _OK


# ------------------------------------------------------------------ long values

def _object_list(meter, role):
    """IC 15 attr 2: the objects this role sees, with its access rights."""
    n = 0
    for o in range(0, len(_TABLE), _ROW):
        if _visible(meter, o, role):
            n += 1
    w = axdr.Writer()
    w.array(n)
    yield bytes(w.buf)
    for o in range(0, len(_TABLE), _ROW):
        if not _visible(meter, o, role):
            continue
        ic = _TABLE[o + _IC]
        w.reset()
        w.structure(4).long_unsigned(ic).unsigned(_TABLE[o + _VER]).octet_string(_TABLE[o:o + 6])
        w.structure(2)
        n = _TABLE[o + _NATTR]
        w.array(n)
        for a in range(1, n + 1):
            w.structure(3).integer(a).enum((1 if _can(o, role, 0, a) else 0)
                                           | (2 if _can(o, role, 1, a) else 0))
            if ic == 7 and a == 2:
                w.array(2).integer(1).integer(2)   # selective access by range and by entry
            else:
                w.null()
        n = _TABLE[o + _NMETH]
        w.array(n)
        for a in range(1, n + 1):
            w.structure(2).integer(a).enum(1 if _can(o, role, 2, a) else 0)
        yield bytes(w.buf)


def _buffer(meter, log, sel, par):
    """The event log ``meter.event_log`` (meter/events.py: count(), capacity, entries(a, b)
    for entries a..b, 1-based and inclusive, by_time(t0, t1), both generators of (epoch,
    code, detail)) as the profile buffer, optionally with selective access (Blue Book IC 7 §4.3.6):
    1 range_descriptor {restricting_object, from_value, to_value, selected_values} on the
    clock column, 2 entry_descriptor {from_entry, to_entry, from_selected_value,
    to_selected_value} (1-based, 0 = to the last)."""
    cols = (0, 1)
    if sel is None:
        cnt = log.count()
        items = log.entries(1, cnt) if cnt else ()
    else:
        try:
            tag, v = axdr.decode(par, 0)[0]
        except axdr.AxdrError:
            return _TYPE_UNMATCHED
        if tag != _T_STRUCTURE or len(v) != 4:
            return _TYPE_UNMATCHED
        if sel == 1:
            ro = v[0][1]
            if (v[0][0] != _T_STRUCTURE or len(ro) < 3 or ro[0][1] != 8 or ro[1][1] != _ln(0)
                    or ro[2][1] != 2):
                return _OTHER
            t = [None, None]          # from_value, to_value: date-time or epoch seconds
            for i in (0, 1):
                tag, x = v[i + 1]
                if tag == _T_OCTET_STRING or tag == _T_DATE_TIME:
                    t[i] = parse_time(meter, x)
                elif tag in (_T_DOUBLE_LONG_UNSIGNED, _T_DOUBLE_LONG):
                    t[i] = x
            t0, t1 = t
            if t0 is None or t1 is None:
                return _TYPE_UNMATCHED
            # selected_values (capture object definitions) -> columns; none: all
            cols = []
            for tag, x in v[3][1]:
                if tag != _T_STRUCTURE or len(x) < 3:
                    return _OTHER
                if x[2][1] == 2 and x[0][1] == 8 and x[1][1] == _ln(0):
                    cols.append(0)
                elif x[2][1] == 2 and x[0][1] == 1 and x[1][1] == _ln(6):
                    cols.append(1)
                else:
                    return _OTHER
            cols = tuple(cols) or (0, 1)
            cnt = 0
            for _ in log.by_time(t0, t1):
                cnt += 1
            items = log.by_time(t0, t1)
        elif sel == 2:
            a = int_arg(v[0])
            b = int_arg(v[1])
            c0 = int_arg(v[2])
            c1 = int_arg(v[3])
            if a is None or b is None or c0 is None or c1 is None:
                return _TYPE_UNMATCHED
            n = log.count()
            if a < 1:
                a = 1
            if b == 0 or b > n:
                b = n
            c0 = 1 if c0 < 1 else c0
            c1 = 2 if c1 == 0 or c1 > 2 else c1
            if c0 > c1:
                return _OTHER
            cols = tuple(range(c0 - 1, c1))
            cnt = b - a + 1 if a <= b else 0
            items = log.entries(a, b) if cnt else ()
        else:
            return _OTHER
    return _entries(meter, cnt, items, cols)


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
        # the log lost entries while it was being read: the long GET is aborted
        raise RuntimeError("event log changed")


# ------------------------------------------------------------------ SET

def put(meter, ctx, item, value):
    """SET of one attribute from its A-XDR ``value`` bytes; returns a data-access-result."""
    ic, _ln6, attr, _sel, _par = item
    o, dar = _lookup(meter, ctx, item, 1)
    if o < 0:
        return dar
    try:
        tagged, _ = axdr.decode(value, 0)
        tag, v = tagged
        if ic == 8:                                   # Clock: 2 time, 3 time_zone
            if attr == 2:
                if tag != _T_OCTET_STRING or len(v) != 12:
                    return _TYPE_UNMATCHED
                t = parse_time(meter, v)
                if t is None:
                    return _OTHER
                meter.set_clock(t)
                return _OK
            v = int_arg(tagged, (_T_LONG,))
            if v is None or not -720 <= v <= 720:
                return _TYPE_UNMATCHED
            meter.tz_minutes = -v
            meter.persist()
            return _OK
        if ic == 70:                                  # Disconnect control: 4 control_mode
            v = int_arg(tagged, (_T_ENUM,))
            if v is None:
                return _TYPE_UNMATCHED
            return _OK if meter.set_control_mode(v) else _OTHER
        if ic == 111:                                 # Account: 2 {payment_mode, status}
            if tag != _T_STRUCTURE or len(v) != 2:
                return _TYPE_UNMATCHED
            v = int_arg(v[0], (_T_ENUM,))
            if v not in (1, 2):
                return _OTHER
            meter.set_payment_mode(v)
            return _OK
        # Data: only the tariff/policy profile (0.128.96.5.0.255) is writable. The meter
        # validates the whole profile first and keeps the old one if any field is refused.
        if tag != _T_OCTET_STRING:
            return _TYPE_UNMATCHED
        return _OK if meter.apply_profile_bytes(bytes(v)) else _OTHER
    except (axdr.AxdrError, ValueError, TypeError, IndexError):
        return _TYPE_UNMATCHED


# ------------------------------------------------------------------ ACTION

def act(meter, ctx, item):
    """ACTION: ``item`` = (class_id, ln, method, None, params bytes or None); returns
    (action_result, return data bytes or None)."""
    ic, _ln6, m, _sel, par = item
    o, dar = _lookup(meter, ctx, item, 2)
    if o < 0:
        return dar, None
    try:
        tagged = axdr.decode(par, 0)[0] if par else None
        if ic == 8:
            # Clock: 1 adjust_to_quarter, 3 adjust_to_minute (to the nearest), 6 shift_time(long s)
            t = meter.board.time()
            if m == 6:
                v = int_arg(tagged, (_T_LONG,))
                if v is None or not -900 <= v <= 900:
                    return _TYPE_UNMATCHED, None
                t += v
            else:
                q = 900 if m == 1 else 60
                t = (t + q // 2) // q * q
            meter.set_clock(t)
            return _OK, None
        if ic == 70:
            ok = meter.remote_disconnect() if m == 1 else meter.remote_reconnect()
            # a transition the control mode forbids is a temporary failure of the command
            return (_OK if ok else _TEMP_FAIL), None
        if ic == 112:
            if _TABLE[o + _ARG] == 0:
                # token credit: 1 update_amount(double-long paise) adds credit
                v = int_arg(tagged, (_T_DOUBLE_LONG, _T_DOUBLE_LONG_UNSIGNED, _T_LONG,
                                     _T_LONG_UNSIGNED))
                if v is None:
                    return _TYPE_UNMATCHED, None
                return (_OK if meter.top_up(v, "dlms") else _OTHER), None
            # emergency credit: 3 invoke_credit asks the policy engine to grant it
            f = getattr(meter, "invoke_emergency_credit", None)
            if f is None:
                return _UNAVAILABLE, None
            return (_OK if f() else _TEMP_FAIL), None
        # token gateway: enter(octet-string: 20 ASCII digits, spaces/dashes allowed); the
        # outcome is in attribute 6 status (0 formatOk .. 8 tokenReceived), the method result
        # is success when the token was processed
        f = getattr(meter, "enter_token", None)
        if f is None:
            return _UNAVAILABLE, None
        if tagged is None or tagged[0] != _T_OCTET_STRING:
            return _TYPE_UNMATCHED, None
        f(bytes(tagged[1]), 0)
        return _OK, None
    except (axdr.AxdrError, ValueError, TypeError, IndexError):
        return _TYPE_UNMATCHED, None
