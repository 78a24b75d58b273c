"""``meterctl vend``: the wrong inputs a technician makes, refused before anything is vended
(no token, no TID used) with one ``meterctl: error: <what is wrong and what to do>`` line and
exit 2 (new-user pass, session 15).

Checked here, from the options alone: the meter number (DRN for its IIN, the 18-digit PAN), the
amount in the token's unit (kWh with one decimal, or watts), the class and subclass (what
IEC 62055-41 defines and what this meter takes: ``meter.tokjudge``), ``--tid`` (its range, and,
unless ``--force``, not before the last TID vended for this meter nor after now), and
``--meter`` against options naming another meter. What needs the key (a bad check digit, an
unreadable key or tables file) is the library's error (``host_tools.vend``/``dkga``), also exit 2.
"""
import datetime
import time

from host_tools import tidstore
from host_tools.meterctl.common import EXIT_USAGE, fail
from protocol import sts

# class -> subclasses this meter judges (firmware meter.tokjudge: class 0 electricity only;
# class 1 tests 0-1; class 2 the data subclasses 0-7, key-change sections 3, 4, 8, 9 by --key-change)
METER_TAKES = {0: (0,), 1: (0, 1), 2: (0, 1, 2, 5, 6, 7)}
KEY_CHANGE_SECTIONS = (3, 4, 8, 9)
UNIT = {(0, 0): "kWh", (0, 1): "m3", (0, 2): "m3", (0, 3): "minutes"}
UNIT_NAME = {1: "water", 2: "gas", 3: "time"}
SLACK_S = 86400          # a --tid up to a day after now is a clock difference, not a typo


def check_meter_number(kw):
    """--drn (digits, 17 with the IIN) and --pan (18 digits)."""
    iin, drn, pan = (kw.get("iin") or "").strip(), kw.get("drn"), kw.get("pan")
    if drn is not None:
        if not iin.isdigit() or len(iin) not in (4, 6):
            fail("--iin %s: an issuer id has 6 digits (600727 in this project), or 4 (0000)" % iin, EXIT_USAGE)
        want = 17 - len(iin)
        d = drn.strip()
        if not d.isdigit():
            fail("--drn %s: a meter number (DRN) is digits only: copy it from the meter's name plate "
                 "(or give --pan, 18 digits)" % drn, EXIT_USAGE)
        if len(d) != want:
            fail("--drn %s: %d digits; with IIN %s a meter number (DRN) has %d: check it on the meter's "
                 "name plate (or give --pan, 18 digits)" % (drn, len(d), iin, want), EXIT_USAGE)
    if pan is not None:
        p = pan.strip().replace(" ", "")
        if len(p) != 18 or not p.isdigit():
            fail("--pan %s: %s; a meter PAN has 18 digits (IIN + DRN + check digit): check it, or give "
                 "--drn (the meter number alone)" % (pan, "%d digits" % len(p) if p.isdigit() else "not digits"),
                 EXIT_USAGE)


def check_class(kw):
    """Class and subclass: what the standard defines and this meter takes (``--force``: vend one
    the meter refuses, e.g. to test its wrong_subclass)."""
    cls, sub = kw["token_class"], kw["subclass"]
    if kw["key_change"]:
        return
    if cls == 2 and sub in KEY_CHANGE_SECTIONS:
        fail("class 2 subclass %d is a key-change section: they are vended as a set, give --key-change "
             "(with --new-vending-key, --new-krn, ... for the new key)" % sub, EXIT_USAGE)
    try:
        sts.refuse_currency(cls, sub)
    except sts.StsError as e:
        fail(str(e), EXIT_USAGE)
    if sts.layout_of(cls, sub) == "raw" or cls == 1 and sub > 1:
        fail("class %d subclass %d: not defined by IEC 62055-41 (proprietary); this meter refuses it as "
             "wrong_subclass. Class 0: 0 electricity; class 1: 0-1 tests; class 2: %s"
             % (cls, sub, "0 max power limit, 1 clear credit, 2 tariff rate, 5 clear tamper, 6, 7"), EXIT_USAGE)
    if sub not in METER_TAKES[cls] and not kw["force"]:
        fail("class %d subclass %d (%s credit): this meter takes electricity only (subclass 0) and refuses "
             "it as wrong_subclass; give --force to vend it anyway" % (cls, sub, UNIT_NAME.get(sub, "?")),
             EXIT_USAGE)


def check_amount(kw):
    """--amount in the token's unit: kWh (0.1 steps) for class 0, whole watts for class 2
    subclass 0/6; a raw --value for the others."""
    text, cls, sub = kw["amount"], kw["token_class"], kw["subclass"]
    if kw["key_change"] or cls == 1:
        return
    _check_value(kw, cls, sub)
    if text is None:
        return
    watts = cls == 2
    unit = "watts, a whole number (e.g. 4500)" if watts else \
        "%s with at most one decimal (e.g. 10.5)" % UNIT.get((cls, sub), "units")
    if watts and sub not in (0, 6):
        fail("--amount: class 2 subclass %d takes --value (%s), not an amount"
             % (sub, {1: "the register, 65535 = all", 2: "paise per kWh", 5: "0"}.get(sub, "a raw 16-bit value")),
             EXIT_USAGE)
    s = text.strip()
    if s.startswith("-"):
        fail("--amount %s: a token cannot take credit away (a class 2 subclass 1 token clears the credit): "
             "give %s" % (text, unit), EXIT_USAGE)
    whole, _, frac = s.lstrip("+").partition(".")
    if not (whole or frac) or not (whole or "0").isdigit() or (frac and not frac.isdigit()):
        money = any(c in s.lower() for c in ("₹", "rs", "inr", "$"))
        fail("--amount %s: %s: give %s%s" % (
            text, "a credit token carries energy, not money" if money else "not a number", unit,
            "; meterctl credit add --amount takes rupees" if money else ""), EXIT_USAGE)
    if frac and (watts or len(frac) > 1):
        fail("--amount %s: %s" % (text, unit if watts else "at most one decimal: a token carries 0.1 %s steps "
                                                         "(e.g. 10.5)" % UNIT.get((cls, sub), "unit")),
             EXIT_USAGE)
    if cls == 0 and float(s) == 0:
        fail("--amount %s: a credit token of 0 %s credits nothing and uses a TID: give more than 0"
             % (text, UNIT.get((cls, sub), "units")), EXIT_USAGE)
    most = sts.AMOUNT_MAX if watts else sts.AMOUNT_MAX / 10
    if float(s) > most:
        fail("--amount %s: more than one token carries (%s %s, the IEC 62055-41 amount field): split it "
             "into several tokens" % (text, ("%d" if watts else "%.1f") % most, "W" if watts else
                                      UNIT.get((cls, sub), "units")), EXIT_USAGE)


def _check_value(kw, cls, sub):
    """--value (a raw 16-bit field) and whether the token has what it needs."""
    value, text = kw["value"], kw["amount"]
    if value is not None and text is not None:
        fail("--amount %s and --value %s: give one (--amount in kWh or W, --value the raw 16-bit field)"
             % (text, value), EXIT_USAGE)
    if value is not None:
        try:
            v = int(str(value), 0)
        except ValueError:
            v = -1
        if not 0 <= v <= 0xFFFF:
            fail("--value %s: a raw 16-bit field, 0..65535%s" % (
                value, " (the tariff rate in paise per kWh)" if (cls, sub) == (2, 2) else ""), EXIT_USAGE)
    elif text is None:
        need = {0: "--amount KWH (e.g. 10.5)", 2: "--value PAISE_PER_KWH (the new tariff rate)",
                7: "--value FACTOR"}.get(sub if cls == 2 else 0)
        if cls == 2 and sub in (0, 6):
            need = "--amount WATTS (e.g. 4500)"
        if need:
            fail("class %d subclass %d needs %s" % (cls, sub, need), EXIT_USAGE)


def check_issued(kw):
    """--issued (default now, unless --tid): ISO 8601 within the base date's TIDs (from its
    1 January to 31.9 years later)."""
    if kw["tid"] is not None and not kw["issued"]:
        return
    import host_tools.vend as V
    bd = int(kw["base_date"])
    t = V.parse_issued(kw["issued"])
    first = sts.base_epoch(bd)
    if not kw["issued"] and t > first + 60 * sts.TID_MAX:
        fail("base date %d's TIDs ended %s (the STS TID rollover): a meter re-keyed since uses --base-date "
             "%d; give --issued or --tid for a token dated before" % (bd, _tid_time(sts.TID_MAX, bd),
                                                                      sts.next_base_date(bd)), EXIT_USAGE)
    if not first <= t <= first + 60 * sts.TID_MAX:
        fits = [b for b in (1993, 2014, 2035) if sts.base_epoch(b) <= t <= sts.base_epoch(b) + 60 * sts.TID_MAX]
        fail("--issued %s is %s base date %d's TIDs (%s to %s): check the year%s"
             % (kw["issued"], "before" if t < first else "after", bd, _tid_time(0, bd), _tid_time(sts.TID_MAX, bd),
                ", or give --base-date %d if the meter's key has it" % fits[-1] if fits else ""), EXIT_USAGE)


def check_tid(kw, tid, decoder_key=None, now=None):
    """An explicit --tid: 0..TID_MAX; unless --force, after the last TID vended here for this
    meter (``decoder_key``) and not after now (+ a day)."""
    if tid is None:
        return
    bd = int(kw["base_date"])
    if not 0 <= tid <= sts.TID_MAX:
        fail("--tid %d: a TID is 0..%d (minutes since the base date %d-01-01, 00:00 UTC); leave --tid out "
             "and vend takes the next free one" % (tid, sts.TID_MAX, bd), EXIT_USAGE)
    if kw["force"]:
        return
    when = _tid_time(tid, bd)
    last = tidstore.last(bytes(decoder_key), bd) if decoder_key is not None else None
    if last is not None and 0 <= last <= sts.TID_MAX and tid <= last:
        fail("--tid %d (%s) is not after the last TID vended for this meter (%d, %s): a meter that took that "
             "token refuses this one as used (the same TID) or old; leave --tid out (vend takes the next "
             "free one) or give --force" % (tid, when, last, _tid_time(last, bd)), EXIT_USAGE)
    now = time.time() if now is None else now
    if sts.base_epoch(bd) + 60 * tid > now + SLACK_S:
        fail("--tid %d is %s, after now: every later token for this meter would be vended after it (and a "
             "key with a low KEN expires); check the number (minutes since %d-01-01), leave --tid out, or "
             "give --force" % (tid, when, bd), EXIT_USAGE)


def _tid_time(tid, base_date):
    t = datetime.datetime.fromtimestamp(sts.base_epoch(base_date) + 60 * tid, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%MZ")


def check_keystore_meter(kw, given):
    """--meter SERIAL with an option naming another meter or key (``given(name)``: from the
    command line): one or the other."""
    for opt in ("drn", "pan", "decoder_key"):
        if given(opt) and kw[opt] is not None:
            fail("--meter %s and --%s: the keystore gives this meter's %s; give one or the other (a token "
                 "for one meter's key and another's number is refused by both)"
                 % (kw["meter"], opt.replace("_", "-"), "decoder key" if opt == "decoder_key" else "number"),
                 EXIT_USAGE)
