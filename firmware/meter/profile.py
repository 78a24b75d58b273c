"""Validation of a configuration / profile, and the Tariff, Policy and Limiter built from it.

Loaded only while a configuration is parsed (boot, ``Meter.apply_config``, ``meterctl config``):
the meter drops it from ``sys.modules`` afterwards so its bytecode does not sit in the heap.
The engines take validated parameters and never import this module (imports go one way:
profile -> tariff, policy, limiter). Every error is ``ConfigError(field, reason)`` (defined in
meter.tariff, which stays loaded, so the class is the same before and after a reload) naming the
first bad field ("tariff.slabs[1]"). The meaning of each field is documented in meter.tariff,
meter.policy and meter.limiter.

- ``build(cfg) -> (Tariff, Policy)``: the engines of a whole configuration (config.json);
- ``check_profile(p, cfg=None) -> (Tariff, Policy)``: a profile (profiles/*.json) over the
  defaults or over config.json;
- ``tariff(section)``, ``limiter(section)``, ``policy(cfg)``: one engine each.
"""
from meter import timeutil
from meter.tariff import ConfigError, Tariff
from meter.policy import Policy
from meter.limiter import Limiter

PROFILE_KEYS = ("name", "about", "tariff", "policy", "limiter", "metering", "payment_mode",
                "control_mode", "credit_unit", "tz_minutes", "market", "physical_address")
# the head-ends the meter is sold to: class versions of the object_list (meter.cosem_values.version)
MARKETS = ("is15959", "spodes", "bluebook")
_EC_SOURCES = ("auto", "button", "token", "dlms")
_ON_FAULT = ("keep_supply", "open_after")


def _isint(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _int(cfg, sec, key, lo, hi, dflt):
    v = cfg.get(key, dflt)
    if not _isint(v) or not lo <= v <= hi:
        raise ConfigError(sec + key, "integer %d..%d expected" % (lo, hi))
    return v


def _lists(cfg, sec, key, n, maxlen, lo=-0x3FFFFFFF, hi=0x3FFFFFFF, dflt=None):
    """A list of at most ``maxlen`` items, each a list of ``n`` ints (n = 0: plain ints)."""
    v = cfg.get(key, [] if dflt is None else dflt)
    if not isinstance(v, list) or len(v) > maxlen:
        raise ConfigError(sec + key, "list of at most %d entries expected" % maxlen)
    for i, e in enumerate(v):
        items = e if n else [e]
        if (n and (not isinstance(e, list) or len(e) != n)) or \
                [x for x in items if not _isint(x) or not lo <= x <= hi]:
            raise ConfigError("%s%s[%d]" % (sec, key, i),
                              "%d integers expected" % n if n else "integer %d..%d expected" % (lo, hi))
    return v


def _section(cfg, name):
    v = cfg.get(name) or {}
    if not isinstance(v, dict):
        raise ConfigError(name, "not an object")
    return v


def _known(cfg, sec, names):
    """Refuse a key of a section not in ``names`` (" a b ... "): a typo was silently ignored
    (a tariff's "fixed_paise_kw_mnth" billed no fixed charge)."""
    for k in cfg:
        if " " in k or names.find(" %s " % k) < 0:     # "rate slabs" is no key
            raise ConfigError(sec + k, "unknown setting")


def tariff_params(cfg):
    """-> (lims, rates, tod, fixed_month, duty_pm, billing_day) for meter.tariff.Tariff."""
    cfg = cfg or {}
    if not isinstance(cfg, dict):
        raise ConfigError("tariff", "not an object")
    sec = "tariff."
    _known(cfg, sec, " rate slabs tod fixed_paise_kw_month sanctioned_w duty_pm billing_day ")
    if "slabs" in cfg:
        slabs = _lists(cfg, sec, "slabs", 2, 8)
        if not slabs:
            raise ConfigError("tariff.slabs", "empty")
    else:
        slabs = [[0, _int(cfg, sec, "rate", 0, 5000, 650)]]
    lims = []
    rates = []
    prev = 0
    for i, (upto, rate) in enumerate(slabs):
        f = "tariff.slabs[%d]" % i
        if not 0 <= rate <= 5000:
            raise ConfigError(f, "rate out of range 0..5000 paise/kWh")
        if upto == 0 and i < len(slabs) - 1:
            raise ConfigError(f, "only the last slab may be open (0)")
        if upto and (upto <= prev or upto > 100000):
            raise ConfigError(f, "limits must ascend, at most 100000 kWh")
        lims.append(upto * 1000 if upto else -1)
        rates.append(rate)
        prev = upto
    if lims[-1] != -1:
        raise ConfigError("tariff.slabs", "last slab must be open (limit 0)")
    tod = []
    for i, (s, e, adj) in enumerate(_lists(cfg, sec, "tod", 3, 6)):
        f = "tariff.tod[%d]" % i
        if not (0 <= s < 1440 and 0 <= e <= 1440 and s != e):
            raise ConfigError(f, "window must be start 0..1439, end 0..1440, start != end")
        if not -1000 <= adj <= 1000:
            raise ConfigError(f, "adj out of range -1000..1000 per-mille")
        if s < e:
            tod.append((s, e, adj))
        else:
            tod.append((s, 1440, adj))
            if e:
                tod.append((0, e, adj))
    tod.sort()
    for i in range(1, len(tod)):
        if tod[i][0] < tod[i - 1][1]:
            raise ConfigError("tariff.tod", "windows overlap")
    fixed = _int(cfg, sec, "fixed_paise_kw_month", 0, 100000, 0)
    sw = _int(cfg, sec, "sanctioned_w", 0, 100000, 0)
    return (tuple(lims), tuple(rates), tuple(tod), fixed * sw // 1000,
            _int(cfg, sec, "duty_pm", 0, 1000, 0), _int(cfg, sec, "billing_day", 1, 28, 1))


def limiter_params(cfg):
    """-> (mpl_w, trip_s, reclose_s, lockout_trips, window_s) for meter.limiter.Limiter."""
    cfg = cfg or {}
    if not isinstance(cfg, dict):
        raise ConfigError("limiter", "not an object")
    sec = "limiter."
    _known(cfg, sec, " mpl_w trip_s reclose_s lockout_trips window_s ")
    return (_int(cfg, sec, "mpl_w", 0, 1000000, 0), _int(cfg, sec, "trip_s", 0, 86400, 10),
            _int(cfg, sec, "reclose_s", 0, 86400, 60), _int(cfg, sec, "lockout_trips", 0, 100, 3),
            _int(cfg, sec, "window_s", 1, 604800, 3600))


def parse_date(text):
    """"YYYY-MM-DD" -> day number; ValueError if malformed."""
    if not isinstance(text, str) or len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(text)
    y, m, d = int(text[:4]), int(text[5:7]), int(text[8:])
    day = timeutil.days_from_civil(y, m, d)
    if not 2000 <= y <= 2099 or timeutil.civil_from_days(day) != (y, m, d):
        raise ValueError(text)
    return day


def policy_params(cfg):
    """-> (min_credit, reconnect, low_pct, ec_paise, ec_s, ec_by, ec_offer, debt_pct, friendly,
    days_off, off_sat, holidays) for meter.policy.Policy; ``cfg`` is the whole configuration."""
    pc = _section(cfg, "policy")
    sec = "policy."
    _known(pc, sec, " min_credit reconnect low_credit_pct ec_paise ec_by friendly holidays ec_s ec_offer"
           " debt_pct days_off off_saturdays ")
    big = 10000000
    mn = _int(pc, sec, "min_credit", -big, big, 0)
    rc = _int(pc, sec, "reconnect", -big, big, 1)
    if rc <= mn:
        raise ConfigError("policy.reconnect", "must be above min_credit")
    low = _lists(pc, sec, "low_credit_pct", 0, 4, 0, 100, cfg.get("low_credit_pct", [30, 10, 0]))
    for i in range(1, len(low)):
        if low[i] >= low[i - 1]:
            raise ConfigError("policy.low_credit_pct", "levels must descend")
    ec = _int(pc, sec, "ec_paise", 0, big, 0)
    by = pc.get("ec_by", ["button"])
    if not isinstance(by, list) or [x for x in by if x not in _EC_SOURCES]:
        raise ConfigError("policy.ec_by", "list of auto, button, token, dlms expected")
    fr = _lists(pc, sec, "friendly", 0, 2, 0, 1440)
    if len(fr) == 1 or (fr and fr[0] == fr[1]):
        raise ConfigError("policy.friendly", "[start_min, end_min] or [] expected")
    hol = pc.get("holidays", [])
    if not isinstance(hol, list) or len(hol) > 64:
        raise ConfigError("policy.holidays", "list of at most 64 dates expected")
    days = []
    for i, h in enumerate(hol):
        try:
            days.append(parse_date(h))
        except (ValueError, TypeError):
            raise ConfigError("policy.holidays[%d]" % i, "date YYYY-MM-DD expected")
    return (mn, rc, tuple(low), ec, _int(pc, sec, "ec_s", 0, 90 * 86400, 0), tuple(by),
            _int(pc, sec, "ec_offer", -0x3FFFFFFF, 0x3FFFFFFF, ec), _int(pc, sec, "debt_pct", 0, 100, 0),
            tuple(fr), tuple(_lists(pc, sec, "days_off", 0, 7, 1, 7)),
            tuple(_lists(pc, sec, "off_saturdays", 0, 5, 1, 5)), tuple(days))


def metering_params(cfg):
    """-> (fail_polls, fail_s, on_fault 0 keep_supply / 1 open_after, grace_s, max_w (0: the
    module's rating, meter.metering)) for
    meter.policy.Policy.metering; ``cfg`` is the whole configuration (its ``metering``)."""
    mc = _section(cfg, "metering")
    sec = "metering."
    _known(mc, sec, " fail_polls fail_s on_fault grace_s max_w ")
    of = mc.get("on_fault", "keep_supply")
    if of not in _ON_FAULT:
        raise ConfigError("metering.on_fault", "keep_supply or open_after expected")
    return (_int(mc, sec, "fail_polls", 1, 1000, 5), _int(mc, sec, "fail_s", 0, 86400, 60),
            _ON_FAULT.index(of), _int(mc, sec, "grace_s", 0, 7 * 86400, 900),
            _int(mc, sec, "max_w", 0, 100000000, 0))


def tariff(section):
    """Tariff of a tariff section (dict or None: the defaults). Raises ConfigError."""
    return Tariff(*tariff_params(section))


def limiter(section):
    """Limiter of a limiter section (dict or None: the defaults). Raises ConfigError."""
    return Limiter(*limiter_params(section))


def policy(cfg):
    """Policy (with its Limiter) of a whole configuration ``cfg``: its policy, limiter and
    metering sections. Raises ConfigError."""
    return Policy(policy_params(cfg), limiter(cfg.get("limiter", {})), metering_params(cfg))


def build(cfg):
    """(Tariff, Policy) of a whole configuration (config.json, or the profile applied over
    it): the flat ``tariff_paise_per_kwh`` when there is no tariff section. Raises ConfigError."""
    for key, ok, dflt in (("payment_mode", (1, 2), 2), ("control_mode", tuple(range(7)), 5),
                          ("credit_unit", (0, 1), 0)):
        if cfg.get(key, dflt) not in ok:
            raise ConfigError(key, "one of %r expected" % (ok,))
    return tariff(cfg.get("tariff") or {"rate": cfg.get("tariff_paise_per_kwh", 650)}), policy(cfg)


def check_profile(p, cfg=None):
    """Validate a profile (profiles/*.json: keys of PROFILE_KEYS, all optional) over the
    built-in defaults, or applied over the configuration ``cfg`` (config.json: updated with it,
    without its ``about``); returns the (Tariff, Policy) of the result. Raises
    ConfigError(field, reason). The meter (Meter.apply_config, with its config.json: one pair of
    engines built, not two) and ``meterctl config`` both use it."""
    if not isinstance(p, dict):
        raise ConfigError("profile", "not an object")
    for k in p:
        if k not in PROFILE_KEYS:
            raise ConfigError(k, "unknown setting")
    for key, lo, hi in (("payment_mode", 1, 2), ("control_mode", 0, 6), ("credit_unit", 0, 1),
                        ("tz_minutes", -720, 840)):
        _int(p, "", key, lo, hi, lo)
    if p.get("physical_address") is not None:   # HDLC lower address, IEC 62056-46: 0x10..0x3FFD usable
        _int(p, "", "physical_address", 0x10, 0x3FFD, 0x10)   # (None: a point-to-point port)
    for key in ("name", "about"):
        if key in p and not isinstance(p[key], str):
            raise ConfigError(key, "text expected")
    if p.get("market", MARKETS[0]) not in MARKETS:
        raise ConfigError("market", "one of %s expected" % ", ".join(MARKETS))
    if cfg is None:
        return tariff(p.get("tariff") or {}), policy(p)
    cfg.update(p)
    cfg.pop("about", None)
    return build(cfg)
