"""COSEM object table of the meter: OBIS -> interface class object, attributes, methods, access.

Each object answers ``read(meter, attr, w)`` (encodes the A-XDR value into ``w``, an
``axdr.Writer``, returns a data-access-result), ``write(meter, attr, tagged)`` and
``call(meter, method, tagged) -> (action_result, data_or_None)``. Attribute 1 (logical_name)
is served generically. Interface classes and attribute numbers: DLMS UA 1000-1 (Blue Book) and
IEC 62056-6-2; ``../shared/reference/dlms.md`` §3.

Access rights are per role: PUBLIC (client SAP 16, no security) reads the attributes listed
in ``public``; READER (SAP 32, LLS) reads everything; MANAGER (SAP 1 and 48, LLS) also writes the
attributes in ``writable`` and calls ``methods``.
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
OTHER = const(250)

_NO_DATE = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x80\x00\xff"  # date-time not specified

UNIT_WH = const(30)
UNIT_W = const(27)
UNIT_V = const(35)
UNIT_A = const(33)
UNIT_HZ = const(44)


def _obis(a, b, c, d, e, f):
    return bytes((a, b, c, d, e, f))


class CosemObject:
    class_id = 0
    version = 0
    public = (1,)
    writable = ()
    methods = ()
    n_attrs = 1

    def __init__(self, ln):
        self.ln = ln

    def can_read(self, role, attr):
        return 1 <= attr <= self.n_attrs and (role != PUBLIC or attr in self.public)

    def can_write(self, role, attr):
        return role == MANAGER and attr in self.writable

    def can_call(self, role, method):
        return role == MANAGER and method in self.methods

    def read(self, meter, attr, w):
        return UNDEFINED

    def write(self, meter, attr, tagged):
        return DENIED

    def call(self, meter, method, tagged):
        return DENIED, None


def _int_arg(tagged, tags=None):
    """Integer value of a decoded method/SET argument, or None if it is not an integer type."""
    if tagged is None:
        return None
    tag, value = tagged
    if tags is not None and tag not in tags:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


class Data(CosemObject):
    """IC 1 Data with a value supplied by a function of the meter (read-only)."""
    class_id = 1
    n_attrs = 2
    public = (1, 2)

    def __init__(self, ln, getter):
        super().__init__(ln)
        self._get = getter

    def read(self, meter, attr, w):
        self._get(meter, w)
        return OK


class Register(CosemObject):
    """IC 3 Register: value (via getter, an integer with the given A-XDR type), scaler_unit."""
    class_id = 3
    n_attrs = 3
    public = (1, 2, 3)

    def __init__(self, ln, getter, scaler, unit, kind=axdr.DOUBLE_LONG_UNSIGNED):
        super().__init__(ln)
        self._get = getter
        self.scaler = scaler
        self.unit = unit
        self.kind = kind

    def read(self, meter, attr, w):
        if attr == 2:
            v = self._get(meter)
            if v is None:
                return TEMP_FAIL
            if self.kind == axdr.DOUBLE_LONG_UNSIGNED:
                w.double_long_unsigned(v)
            elif self.kind == axdr.DOUBLE_LONG:
                w.double_long(v)
            else:
                w.long_unsigned(v)
            return OK
        w.structure(2).integer(self.scaler).enum(self.unit)
        return OK


class Clock(CosemObject):
    """IC 8 Clock v0. time (attr 2) is local time with the configured deviation."""
    class_id = 8
    n_attrs = 9
    public = (1, 2, 3, 4, 9)
    writable = (2, 3)

    def read(self, meter, attr, w):
        tz = meter.tz_minutes
        if attr == 2:
            local = meter.board.time() + tz * 60
            y, mo, d, wd, hh, mi, ss = timeutil.split(local)
            w.octet_string(axdr.datetime_bytes(y, mo, d, hh, mi, ss, 0, -tz, 0, wd))
        elif attr == 3:
            w.long(-tz)
        elif attr == 4:
            w.unsigned(0)
        elif attr in (5, 6):
            w.octet_string(_NO_DATE)
        elif attr == 7:
            w.integer(0)
        elif attr == 8:
            w.boolean(False)
        elif attr == 9:
            w.enum(1)  # internal crystal
        return OK

    def write(self, meter, attr, tagged):
        tag, value = tagged
        if attr == 2:
            if tag != axdr.OCTET_STRING or len(value) != 12:
                return TYPE_UNMATCHED
            y, mo, d, _wd, hh, mi, ss, _hs, dev, _st = axdr.parse_datetime(value)
            if not (2000 <= y <= 2099 and 1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mi < 60 and ss < 60):
                return OTHER
            epoch = timeutil.join(y, mo, d, hh, mi, ss)
            # deviation (minutes, UTC = local + deviation); 0x8000 = not specified -> our zone
            epoch += (dev if dev != -32768 else -meter.tz_minutes) * 60
            meter.set_clock(epoch)
            return OK
        if attr == 3:
            v = _int_arg(tagged, (axdr.LONG,))
            if v is None or not -720 <= v <= 720:
                return TYPE_UNMATCHED
            meter.tz_minutes = -v
            meter.persist()
            return OK
        return DENIED


class Account(CosemObject):
    """IC 111 Account v0 (prepayment). Amounts in paise (currency scale -2)."""
    class_id = 111
    n_attrs = 19
    public = (1, 2, 4, 5, 15)
    writable = (2,)

    def read(self, meter, attr, w):
        a = meter.account
        if attr == 2:
            w.structure(2).enum(a.payment_mode).enum(a.status)
        elif attr == 3:
            w.unsigned(0)  # credit_in_use: index of the token credit in credit_reference_list
        elif attr == 4:
            w.bit_string(meter.credit_status(), 8)
        elif attr == 5:
            w.double_long(a.available)
        elif attr in (6, 8):
            w.double_long(-a.credit if a.credit < 0 else 0)  # amount_to_clear / aggregated_debt
        elif attr == 7:
            w.double_long(0)  # clearance_threshold
        elif attr == 9:
            w.array(1).octet_string(meter.CREDIT_LN)
        elif attr == 10:
            w.array(0)
        elif attr == 15:
            w.structure(3).utf8_string("INR").integer(-2).enum(2)  # monetary
        elif attr == 16:
            w.double_long(meter.low_credit_threshold())
        elif attr in (13, 14):
            w.octet_string(_NO_DATE)
        else:
            return UNAVAILABLE
        return OK

    def write(self, meter, attr, tagged):
        if attr == 2:
            tag, value = tagged
            if tag != axdr.STRUCTURE or len(value) != 2:
                return TYPE_UNMATCHED
            mode = _int_arg(value[0], (axdr.ENUM,))
            if mode not in (1, 2):
                return OTHER
            meter.set_payment_mode(mode)
            return OK
        return DENIED


class Credit(CosemObject):
    """IC 112 Credit v0: the token credit register. Method 1 update_amount(double-long paise)."""
    class_id = 112
    n_attrs = 11
    public = (1, 2, 3, 8)
    methods = (1,)

    def read(self, meter, attr, w):
        a = meter.account
        if attr == 2:
            w.double_long(a.credit)
        elif attr == 3:
            w.enum(0)  # token credit
        elif attr == 4:
            w.unsigned(1)
        elif attr in (5, 6, 9, 10):
            w.double_long(0)
        elif attr == 7:
            w.bit_string(0, 5)
        elif attr == 8:
            w.enum(3 if a.credit > 0 else 4)  # in use / exhausted
        elif attr == 11:
            w.double_long_unsigned(0)
        return OK

    def call(self, meter, method, tagged):
        if method == 1:
            v = _int_arg(tagged, (axdr.DOUBLE_LONG, axdr.DOUBLE_LONG_UNSIGNED, axdr.LONG, axdr.LONG_UNSIGNED))
            if v is None:
                return TYPE_UNMATCHED, None
            if not meter.top_up(v, "dlms"):
                return OTHER, None
            return OK, None
        return UNDEFINED, None


class DisconnectControl(CosemObject):
    """IC 70 Disconnect control v1; see meter.relay for the control-mode semantics."""
    class_id = 70
    version = 1
    n_attrs = 4
    public = (1, 2, 3, 4)
    writable = (4,)
    methods = (1, 2)

    def read(self, meter, attr, w):
        dc = meter.dc
        if attr == 2:
            w.boolean(dc.output_state)
        elif attr == 3:
            w.enum(dc.control_state)
        elif attr == 4:
            w.enum(dc.control_mode)
        return OK

    def write(self, meter, attr, tagged):
        v = _int_arg(tagged, (axdr.ENUM,))
        if v is None:
            return TYPE_UNMATCHED
        if not meter.set_control_mode(v):
            return OTHER
        return OK

    def call(self, meter, method, tagged):
        if method == 1:
            ok = meter.remote_disconnect()
        elif method == 2:
            ok = meter.remote_reconnect()
        else:
            return UNDEFINED, None
        return (OK if ok else TEMP_FAIL), None


def _ldn(meter, w):
    w.octet_string(meter.logical_device_name)


def _energy(meter):
    return meter.account.import_wh


def _voltage(meter):
    return meter.metro.voltage_dv


def _current(meter):
    return meter.metro.current_ma


def _power(meter):
    return meter.metro.power_dw


def build_table():
    """All objects, keyed by the 6-byte logical name."""
    objs = (
        Clock(_obis(0, 0, 1, 0, 0, 255)),
        Data(_obis(0, 0, 42, 0, 0, 255), _ldn),
        Register(_obis(1, 0, 1, 8, 0, 255), _energy, 0, UNIT_WH),
        Register(_obis(1, 0, 32, 7, 0, 255), _voltage, -1, UNIT_V, axdr.LONG_UNSIGNED),
        Register(_obis(1, 0, 31, 7, 0, 255), _current, -3, UNIT_A),
        Register(_obis(1, 0, 1, 7, 0, 255), _power, -1, UNIT_W),
        Account(_obis(0, 0, 19, 0, 0, 255)),
        Credit(_obis(0, 0, 19, 10, 0, 255)),
        DisconnectControl(_obis(0, 0, 96, 3, 10, 255)),
    )
    t = {}
    for o in objs:
        t[o.ln] = o
    return t
