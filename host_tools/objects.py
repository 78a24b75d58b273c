"""The meter's COSEM object model, written once and readable (host-only, never in a board image).

Every object the meter serves over DLMS (firmware/meter/cosem.py) is one ``Obj`` row of
``OBJECTS``: logical name (OBIS), interface class (IC) and version, number of attributes and
methods, name, the per-class argument the device uses to pick its value, unit/scaler where it
has one, and the access rights of each association (Green Book §9.4.2, IC 15 object_list
access_rights): public (client SAP 16, no security), meter reader (32, LLS), management (1,
LLS) and utility settings (48, LLS).

Generated from this table, and checked by tests/host/test_objects.py:

- the device's compact object table ``_TABLE`` and the register table ``_REGS`` in
  firmware/meter/cosem.py: ``python -m host_tools.objects --table`` prints the exact source of
  both (``--write`` replaces the generated block in cosem.py and in docs/CONTRACTS.md);
- the object table in docs/CONTRACTS.md: ``python -m host_tools.objects --markdown``.

The same rows are the host's one catalogue of the meter's objects: ``by_obis("0.0.1.0.0.255")``
and ``by_name("clock")`` return an ``Obj`` (``KeyError`` if the meter has no such object); the
named constants (``CLOCK``, ``CREDIT``, ``EVENT_LOG`` ...) are the rows host code addresses, e.g.
``client.get(CLOCK.ic, CLOCK.obis, 2)``. ``event_names()`` is the event-code catalogue of
firmware/meter/events.py as ``{code: text}``.

Rights are sets of attribute (method) numbers, 1-based. The device encodes them as two 24-bit
read masks (public; reader and both management associations), and a write and a method mask
(7 bits) for the two management associations: ``device_row`` raises ``SpecError`` for rights
the device cannot enforce.
"""
import argparse
import collections
import sys

from host_tools import firmware_src
from host_tools.eventcodes import event_names, events  # noqa: F401  (re-exported)
from host_tools.is15959_objects import COLUMN_NAMES, IS15959_OBJECTS

__all__ = ["Obj", "Access", "OBJECTS", "ASSOCIATIONS", "SpecError", "by_obis", "by_name",
           "table_source", "markdown", "event_names", "events", "EVENT_LOGS"]

# (association name, client SAP); the device's roles: 0 public, 1 reader, 2 management
ASSOCIATIONS = (("public", 16), ("reader", 32), ("management", 1), ("utility settings", 48))
_SAPS = tuple(sap for _, sap in ASSOCIATIONS)

# Blue Book units (table "Enumerated values for physical units") used by the meter's registers
UNIT_NAMES = {6: "min", 10: "currency", 27: "W", 30: "Wh", 33: "A", 35: "V", 255: "count"}
# A-XDR types of register values (protocol.axdr tags)
_VALUE_TAGS = {"double-long": 5, "long-unsigned": 18, "double-long-unsigned": 6, "octet-string": 9}

Access = collections.namedtuple("Access", "read write call")
Access.__doc__ = "Rights of one association on one object: frozensets of attribute/method numbers."

_ObjBase = collections.namedtuple(
    "_ObjBase", "obis ic version name attrs methods access arg unit scaler value_type served")


class Obj(_ObjBase):
    """One served object. ``obis`` "a.b.c.d.e.f"; ``ic``, ``version``; ``attrs``/``methods``:
    how many the class has; ``access``: {client SAP: Access}; ``arg``: the per-class argument of
    the device's row (which value of a Data/Register object, which credit); ``unit`` (Blue Book
    unit code) / ``scaler`` (power of ten) / ``value_type`` (A-XDR type name) for registers,
    else None; ``served``: what the object serves, one line."""

    __slots__ = ()

    @property
    def ln(self):
        """The logical name as 6 bytes."""
        return bytes(int(x) for x in self.obis.split("."))

    def rights(self, sap):
        """Access of the association with client SAP ``sap`` (16, 32, 1 or 48)."""
        return self.access[sap]


class SpecError(ValueError):
    """A spec row the device table cannot encode (field named in the message)."""


ALL = "all"


def _set(v, n):
    return frozenset(range(1, n + 1)) if v == ALL else frozenset(v)


def obj(obis, ic, version, name, attrs, methods=0, arg=0, public=(1, 2), authenticated=ALL,
        write=(), call=(), unit=None, scaler=None, value_type=None, served=""):
    """One row, written the way the rights are usually given: ``public`` reads (SAP 16),
    ``authenticated`` reads (reader 32 and management 1, 48), ``write``/``call`` by the two
    management associations (1 and 48). ``ALL`` = every attribute (method)."""
    auth = _set(authenticated, attrs)
    mgmt = Access(auth, frozenset(write), frozenset(call))
    access = {16: Access(_set(public, attrs), frozenset(), frozenset()),
              32: Access(auth, frozenset(), frozenset()), 1: mgmt, 48: mgmt}
    return Obj(obis, ic, version, name, attrs, methods, access, arg, unit, scaler, value_type, served)


# The audit trail by IS 15959 category (firmware/meter/audit.py): x of 0.0.99.98.x.255, name, codes
EVENT_CATEGORIES = ((2, "power", "power down/up, watchdog, first boot"),
                    (3, "transaction", "top-ups, tokens accepted, credit changes"),
                    (4, "other", "clock set, configuration, billing, errors"),
                    (5, "tamper", "cover (its own ring) and security: lock-outs, refused tokens"),
                    (6, "control", "relay, disconnection deferred, max power limit"))


def _event_logs():
    """Per category: the IC 7 log (arg x), its event code (16 + x) and event counter (24 + x)."""
    for x, name, what in EVENT_CATEGORIES:
        yield obj("0.0.99.98.%d.255" % x, 7, 1, name + " events", 8, 2, arg=x, public=(1,),
                  served="%s, this firmware's own event codes: %s; buffer {time, event code, occurrences}"
                  % ("IS 15959 %s category" % name if x != 5 else "tamper, security (IS 15959 non-rollover slot)", what))
        yield obj("0.0.96.11.%d.255" % x, 1, 0, name + " event code", 2, arg=16 + x,
                  served="long-unsigned, code of the last %s event" % name)
        yield obj("0.0.96.15.%d.255" % x, 1, 0, name + " event counter", 2, arg=24 + x,
                  served="double-long-unsigned, occurrences of the last %s event (repetitions "
                         "coalesced)" % name)


def _profiles():   # the IS 15959 profile rows (host_tools/is15959_objects.py: the data, one place)
    for ob, ic, name, na, nm, arg, unit, sc, vt, what in IS15959_OBJECTS:
        yield obj(ob, ic, int(ic == 7), name, na, nm, arg, (1,), call=(1,) if ic == 9 else (), unit=unit,
                  scaler=sc, value_type=vt, served=what)


# The object table, in object_list order. Amounts in the credit unit: paise or 0.1 kWh (IC 111 attr 15).
OBJECTS = (
    obj("0.0.40.0.0.255", 15, 1, "current association", 9, 4,
        public=(1, 2, 3, 4, 5, 6, 8, 9), authenticated=(1, 2, 3, 4, 5, 6, 8, 9),
        served="object_list filtered by the association's rights; attribute 7 (secret) is never read"),
    obj("0.0.42.0.0.255", 1, 0, "logical device name", 2, arg=0, served="octet-string, the serial"),
    obj("0.0.1.0.0.255", 8, 0, "clock", 9, 6, public=ALL, write=(2, 3), call=(1, 3, 6),
        served="local time with deviation; set time/time_zone; adjust to quarter/minute, shift_time"),
    obj("1.0.1.8.0.255", 3, 0, "active energy import", 3, 1, arg=0, public=ALL,
        unit=30, scaler=0, value_type="double-long-unsigned", served="Wh"),
    obj("1.0.2.8.0.255", 3, 0, "active energy export", 3, 1, arg=1, public=ALL,
        unit=30, scaler=0, value_type="double-long-unsigned", served="Wh, always 0 (import-only meter)"),
    obj("1.0.32.7.0.255", 3, 0, "voltage", 3, 1, arg=2, public=ALL,
        unit=35, scaler=-1, value_type="long-unsigned", served="0.1 V"),
    obj("1.0.31.7.0.255", 3, 0, "current", 3, 1, arg=3, public=ALL,
        unit=33, scaler=-3, value_type="double-long-unsigned", served="mA"),
    obj("1.0.1.7.0.255", 3, 0, "active power", 3, 1, arg=4, public=ALL,
        unit=27, scaler=-1, value_type="double-long-unsigned", served="0.1 W"),
    obj("0.0.19.0.0.255", 111, 0, "account", 19, 3, public=(1, 2, 4, 5, 15), write=(2,),
        served="payment mode/status, available credit; currency (15) {INR, -2, monetary} or {kWh, -1, consumption}"),
    obj("0.0.19.10.0.255", 112, 0, "token credit", 11, 3, arg=0, public=(1, 2, 3, 8), call=(1,),
        served="current_credit_amount; method 1 update_amount(double-long, paise or 0.1 kWh)"),
    obj("0.0.19.10.1.255", 112, 0, "emergency credit", 11, 3, arg=1, public=(1, 2, 3, 8), call=(3,),
        served="present when the policy offers emergency credit; method 3 invoke_credit"),
    obj("0.0.19.20.0.255", 113, 0, "charge", 13, 5, public=(1,),
        served="consumption-based charge at the tariff (paise per kWh)"),
    obj("0.0.19.40.0.255", 115, 0, "token gateway", 6, 1, public=(1, 3, 5, 6), call=(1,),
        served="present with an STS key; method 1 enter(20-digit token), attribute 6 status"),
    obj("0.0.96.3.10.255", 70, 1, "disconnect control", 4, 2, public=ALL, write=(4,), call=(1, 2),
        served="output_state, control_state, control_mode (0-6); remote disconnect/reconnect"),
    obj("0.0.17.0.0.255", 71, 0, "limiter", 11, 0, public=(1,),
        served="present with a limiter; maximum power limit on active power (0.1 W)"),
    obj("0.0.99.98.0.255", 7, 1, "event log", 8, 2, public=(1,),
        served="all events merged (IS 15959 voltage slot), this firmware's own event codes: buffer {time, "
               "event code}; selective access by range and by entry"),
    obj("0.0.96.11.0.255", 1, 0, "event code", 2, arg=1, served="long-unsigned, code of the last event"),
    *_event_logs(),
    obj("1.0.0.2.0.255", 1, 0, "firmware id", 2, arg=2, served="octet-string \"prepaid-meter <version>\""),
    obj("0.0.96.1.1.255", 1, 0, "manufacturer name", 2, arg=14,
        served="octet-string \"prepaid-meter\" (Device ID 2: IS 15959 manufacturer name, SPODES device type)"),
    obj("0.0.0.2.1.255", 1, 0, "active firmware version", 2, arg=15,
        served="octet-string, the version part of the firmware id (Blue Book abstract OBIS; SPODES reads it)"),
    obj("0.128.96.5.0.255", 1, 0, "profile", 2, arg=3, public=(1,), write=(2,),
        served="tariff/policy profile as compact JSON (meterctl config show/apply)"),
    obj("0.128.96.5.1.255", 1, 0, "profile error", 2, arg=4, public=(1,),
        served="\"field: reason\" of the last refused profile"),
    obj("0.0.94.96.19.255", 1, 0, "metering mode", 2, arg=5, served="IS 15959: 0 import only"),
    obj("0.0.94.96.20.255", 1, 0, "payment mode", 2, arg=6, served="IS 15959: 1 prepaid, 0 postpaid"),
    obj("0.0.94.96.21.255", 1, 0, "last recharge amount", 2, arg=7, served="IS 15959: paise"),
    obj("0.0.94.96.22.255", 1, 0, "last recharge time", 2, arg=8, served="IS 15959: date-time"),
    obj("0.0.94.96.23.255", 1, 0, "total recharged", 2, arg=9, served="IS 15959: paise"),
    obj("0.0.94.96.24.255", 1, 0, "balance", 2, arg=10, served="IS 15959: credit, paise"),
    obj("0.0.94.96.25.255", 1, 0, "balance time", 2, arg=11, served="IS 15959: date-time"),
    obj("0.0.97.97.0.255", 1, 0, "error register", 2, arg=13,
        served="long-unsigned, bit 0 (1): metering module fault (its V, I, P read temporary-failure)"),
    obj("0.0.43.0.1.255", 64, 0, "security setup management", 5, 2, arg=1, public=ALL, call=(1, 2),
        served="present with keys: policy, suite 0, client/server system titles (no key is ever "
               "readable); methods security_activate, global_key_transfer (RFC 3394 wrap)"),
    obj("0.0.43.0.3.255", 64, 0, "security setup utility settings", 5, 2, arg=3, public=ALL,
        call=(1, 2), served="the same key set as management (one global key set)"),
    obj("0.0.43.1.1.255", 1, 0, "frame counter management", 2, arg=12,
        served="present with keys: last receive invocation counter accepted (the client uses +1)"),
    obj("0.0.43.1.3.255", 1, 0, "frame counter utility settings", 2, arg=12,
        served="the same counter (one global key set)"),
    *_profiles(),
)

# Class versions where the Blue Book (gurux) and national companion standards disagree
# (reference notes dlms-classes.md §1): the table above holds the Blue Book version; the device
# declares the market's in the object_list after the profile's "market" (meter.cosem_values.version;
# DEFAULT_MARKET when the profile has none). IC 70: IS 15959-2 (Renesas reference) and SPODES model
# version 0, gurux / Blue Book version 1, with the same attributes and methods. IC 64 stays 0 in every
# market: version 1 adds the certificate attributes and methods of suites 1/2 this suite-0 meter lacks,
# and a client parses attributes by the declared version.
MARKETS = ("is15959", "spodes", "bluebook")
DEFAULT_MARKET = "is15959"
MARKET_VERSIONS = {70: {"is15959": 0, "spodes": 0, "bluebook": 1}}


def declared_version(o, market=DEFAULT_MARKET):
    """The version the meter declares for ``o`` in ``market`` (one of MARKETS)."""
    return MARKET_VERSIONS.get(o.ic, {}).get(market, o.version)


_BY_OBIS = {o.obis: o for o in OBJECTS}
_BY_NAME = {o.name: o for o in OBJECTS}


def by_obis(text):
    """The served object with logical name ``text`` ("0.0.1.0.0.255"); KeyError if none."""
    return _BY_OBIS[text]


def by_name(name):
    """The served object called ``name`` (``Obj.name``, e.g. "clock"); KeyError if none."""
    return _BY_NAME[name]


# the objects host code addresses by name
ASSOCIATION = by_name("current association")
LDN = by_name("logical device name")
CLOCK = by_name("clock")
ENERGY_IMPORT = by_name("active energy import")
ENERGY_EXPORT = by_name("active energy export")
VOLTAGE = by_name("voltage")
CURRENT = by_name("current")
POWER = by_name("active power")
ACCOUNT = by_name("account")
CREDIT = by_name("token credit")
EMERGENCY_CREDIT = by_name("emergency credit")
CHARGE = by_name("charge")
TOKEN_GATEWAY = by_name("token gateway")
DISCONNECT_CONTROL = by_name("disconnect control")
LIMITER = by_name("limiter")
EVENT_LOG = by_name("event log")
EVENT_CODE = by_name("event code")
# the audit trail by category (firmware/meter/audit.py): name -> (IC 7 log, event-code object)
EVENT_LOGS = {c: (by_name(c + " events"), by_name(c + " event code")) for _, c, _ in EVENT_CATEGORIES}
FIRMWARE_ID = by_name("firmware id")
MANUFACTURER = by_name("manufacturer name")
FIRMWARE_VERSION = by_name("active firmware version")
PROFILE = by_name("profile")
PROFILE_ERROR = by_name("profile error")
SECURITY_SETUP = by_name("security setup management")
SECURITY_SETUP_US = by_name("security setup utility settings")
FRAME_COUNTER = by_name("frame counter management")
FRAME_COUNTER_US = by_name("frame counter utility settings")


# ------------------------------------------------------------------ device table

def _mask(bits, n, width, what):
    m = 0
    for b in bits:
        if not 1 <= b <= n or b >= width:
            raise SpecError("%s: %d out of range 1..%d" % (what, b, min(n, width - 1)))
        m |= 1 << b
    return m


def device_row(o):
    """The device's 19-byte row of ``o`` (layout in firmware/meter/cosem.py). Raises SpecError
    if the rights do not fit it: reader and both management associations must read alike, only
    management (1 and 48, alike) may write or call, methods and written attributes below 8."""
    where = "%s (%s)" % (o.obis, o.name)
    pub, rd, m1, m48 = (o.access[s] for s in _SAPS)
    if pub.write or pub.call or rd.write or rd.call:
        raise SpecError("%s: only the management associations may write or call" % where)
    if not rd.read == m1.read == m48.read:
        raise SpecError("%s: reader (32) and management (1, 48) must read the same" % where)
    if m1 != m48:
        raise SpecError("%s: management 1 and utility settings 48 must have the same rights" % where)
    if not 1 <= o.attrs <= 23 or not 0 <= o.methods <= 255 or not 0 <= o.arg <= 255:
        raise SpecError("%s: attrs/methods/arg out of range" % where)
    rpub = _mask(pub.read, o.attrs, 24, where + " public read")
    rauth = _mask(rd.read, o.attrs, 24, where + " read")
    w = _mask(m1.write, o.attrs, 8, where + " write")
    m = _mask(m1.call, o.methods, 8, where + " call")
    return (o.ln + bytes((o.ic, o.version, o.attrs)) + rpub.to_bytes(3, "little")
            + rauth.to_bytes(3, "little") + bytes((w, m, o.methods, o.arg)))


def table_bytes():
    """``cosem._TABLE``: the rows of every object, in order."""
    return b"".join(device_row(o) for o in OBJECTS)


def regs_bytes():
    """``cosem._REGS``: per IC 3 object, by ``arg``, 3 bytes: scaler (signed), unit, value tag."""
    regs = sorted((o for o in OBJECTS if o.ic == 3), key=lambda o: o.arg)
    if [o.arg for o in regs] != list(range(len(regs))):
        raise SpecError("registers: arguments must be 0..%d" % (len(regs) - 1))
    return b"".join(bytes((o.scaler & 0xFF, o.unit, _VALUE_TAGS[o.value_type])) for o in regs)


def _hex(b):
    return "".join("\\x%02x" % x for x in b)


def _rights_text(a):
    parts = []
    for tag, s in (("r", a.read), ("w", a.write), ("m", a.call)):
        if s:
            parts.append("%s %s" % (tag, _ranges(sorted(s))))
    return "; ".join(parts) or "-"


def _ranges(nums):
    out, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if j == i else "%d-%d" % (nums[i], nums[j]))
        i = j + 1
    return ",".join(out)


TABLE_BEGIN = "# --- BEGIN generated by `python -m host_tools.objects --table` (host_tools/objects.py)"
REGS_BEGIN = "# --- BEGIN generated by `python -m host_tools.objects --regs` (host_tools/objects.py)"
TABLE_END = "# --- END generated"


def table_source():
    """Python source of cosem.py's generated block (markers included): ``_TABLE``, one
    commented row per object (management rights, and public reads where they differ)."""
    lines = [TABLE_BEGIN, "_TABLE = ("]
    for o in (o for o in OBJECTS if o.obis not in COLUMN_NAMES):     # the columns: below
        pub = o.access[16].read
        lines.append("    # %s %s, IC %d v%d arg %d: %s%s" % (
            o.obis, o.name, o.ic, o.version, o.arg, _rights_text(o.access[1]),
            "" if pub == o.access[1].read else " (public r %s)" % _ranges(sorted(pub))))
        lines.append('    b"%s"' % _hex(device_row(o)))
    cols = [o for o in OBJECTS if o.obis in COLUMN_NAMES]     # in few lines: cosem.py's size
    lines.append("    # IS 15959 capture columns (host_tools/is15959_objects.py COLUMNS), IC 3 args %s, "
                 "IC 1 args %s: r 1-3 / 1-2 (public r 1)" % (
                     _ranges([o.arg for o in cols if o.ic == 3]), _ranges([o.arg for o in cols if o.ic == 1])))
    for i in range(0, len(cols), 8):
        lines.append('    b"%s"' % "".join(_hex(device_row(o)) for o in cols[i:i + 8]))
    lines += [")", TABLE_END]
    return "\n".join(lines) + "\n"


def regs_source():
    """Python source of cosem_values.py's generated block (markers included): ``_REGS``."""
    regs = sorted((o for o in OBJECTS if o.ic == 3), key=lambda o: o.arg)
    lines = [REGS_BEGIN, "# IC 3 registers by arg, 3 bytes each: scaler, unit, value tag"]
    for o in (o for o in regs if o.obis not in COLUMN_NAMES):
        lines.append("#   %d %s %s: 10^%d %s, %s" % (o.arg, o.obis, o.name, o.scaler,
                                                   UNIT_NAMES[o.unit], o.value_type))
    lines.append("#   %s IS 15959 capture columns (host_tools/is15959_objects.py COLUMNS)"
                 % _ranges([o.arg for o in regs if o.obis in COLUMN_NAMES]))
    lines += ['_REGS = b"%s"' % _hex(regs_bytes()), TABLE_END]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ docs

MD_BEGIN = "<!-- BEGIN objects: generated by `python -m host_tools.objects --markdown` -->"
MD_END = "<!-- END objects -->"


def markdown():
    """The object table of docs/CONTRACTS.md (markers included), one row per object."""
    head = ["object", "OBIS", "IC (v)", "attrs/methods"] + [
        "%s %d" % (n, sap) for n, sap in ASSOCIATIONS] + ["serves"]
    lines = [MD_BEGIN,
             "Rights: r = read attributes, w = write attributes, m = call methods (numbers 1-based).",
             "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for o in OBJECTS:
        unit = ""
        if o.unit is not None:
            unit = " (scaler %d, unit %s)" % (o.scaler, UNIT_NAMES[o.unit])
        cells = [o.name, o.obis, "%d (%d)" % (o.ic, o.version), "%d/%d" % (o.attrs, o.methods)]
        cells += [_rights_text(o.access[sap]) for _, sap in ASSOCIATIONS]
        cells.append(o.served + unit)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(MD_END)
    return "\n".join(lines) + "\n"


def replace_block(text, begin, end, block):
    """``text`` with the lines from ``begin`` to ``end`` (inclusive) replaced by ``block``
    (which carries its own markers). ValueError if the markers are missing."""
    i = text.index(begin)
    j = text.index(end, i)
    j = text.index("\n", j) + 1 if "\n" in text[j:] else len(text)
    return text[:i] + block + text[j:]


def committed_block(text, begin, end):
    """The block between ``begin`` and ``end`` (inclusive, with its final newline) in ``text``;
    ValueError if a marker is missing."""
    i = text.index(begin)
    j = text.index(end, i)
    return text[i:text.index("\n", j) + 1]


COSEM_PY = firmware_src.FIRMWARE_DIR / "meter" / "cosem.py"
COSEM_VALUES_PY = firmware_src.FIRMWARE_DIR / "meter" / "cosem_values.py"
CONTRACTS_MD = firmware_src.ROOT / "docs" / "CONTRACTS.md"


def write_generated():
    """Regenerate the blocks in firmware/meter/cosem.py, cosem_values.py and docs/CONTRACTS.md;
    returns the paths that changed."""
    changed = []
    for path, begin, end, block in ((COSEM_PY, TABLE_BEGIN, TABLE_END, table_source()),
                                    (COSEM_VALUES_PY, REGS_BEGIN, TABLE_END, regs_source()),
                                    (CONTRACTS_MD, MD_BEGIN, MD_END, markdown())):
        old = path.read_text()
        new = replace_block(old, begin, end, block)
        if new != old:
            path.write_text(new)
            changed.append(path)
    return changed


# ------------------------------------------------------------------ events

def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.objects", description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--table", action="store_true", help="print cosem.py's generated _TABLE block")
    g.add_argument("--regs", action="store_true", help="print cosem_values.py's generated _REGS block")
    g.add_argument("--markdown", action="store_true", help="print the object table of docs/CONTRACTS.md")
    g.add_argument("--write", action="store_true", help="regenerate both blocks in place")
    g.add_argument("--events", action="store_true", help="print the event codes and texts")
    a = ap.parse_args(argv)
    if a.table:
        sys.stdout.write(table_source())
    elif a.regs:
        sys.stdout.write(regs_source())
    elif a.markdown:
        sys.stdout.write(markdown())
    elif a.events:
        for code, name, text, detail in events():
            print("%3d %-24s %s%s" % (code, name, text, " [%s]" % detail if detail else ""))
    else:
        for p in write_generated():
            print("rewrote %s" % p.relative_to(firmware_src.ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
