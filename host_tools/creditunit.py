"""The unit of a meter's credit register, as the meter states it.

IC 111 Account 0.0.19.0.0.255 attribute 15 ``currency`` is {name, scale, unit} (Blue Book
currency_unit: 0 time, 1 consumption, 2 monetary). The firmware serves ``{"INR", -2, 2}`` for a
register in paise (config ``credit_unit`` 0, the default) and ``{"kWh", -1, 1}`` for one in
0.1 kWh (``credit_unit`` 1). The credit amounts (IC 111 attribute 5, IC 112 attribute 2,
update_amount, the recharge registers) are integers in that unit. A meter that does not serve
the attribute (other makers) or serves something else is taken as paise, the documented
default, with a note that says so.

Public API: ``PAISE``, ``DECI_KWH``, ``unit_of(tagged) -> (unit, note or None)``,
``amount(value, unit)`` ("₹5.00" / "32.5 kWh"), ``amount_raw(value, unit)`` ("₹5.00 (500 paise)" /
"32.5 kWh (325 x 0.1 kWh)"), ``parse_kwh(text) -> int`` (0.1 kWh units), ``paise_or_none``.
"""

import re

from host_tools import format as fmt

__all__ = ["PAISE", "DECI_KWH", "unit_of", "amount", "amount_raw", "parse_kwh", "paise_or_none"]

PAISE = "paise"
DECI_KWH = "0.1 kWh"
_UNITS = {0: "time", 1: "consumption", 2: "monetary"}
_KWH_RE = re.compile(r"^(\d+)(?:\.(\d))?$")


def unit_of(tagged):
    """The tagged value of IC 111 attribute 15 (None: not served) -> (PAISE or DECI_KWH, note):
    ``note`` is None when the meter stated the unit, else one sentence saying paise is assumed."""
    if tagged is None:
        return PAISE, ("the meter does not serve IC 111 attribute 15 (currency): credit taken as "
                       "paise, the documented default")
    try:
        name, scale, unit = (v for _, v in tagged[1])
        name = bytes(name).decode("utf-8", "replace") if not isinstance(name, str) else name
        scale, unit = int(scale), int(unit)
    except (TypeError, ValueError):
        return PAISE, ("the meter's IC 111 attribute 15 (currency) is not {name, scale, unit}: "
                       "credit taken as paise, the documented default")
    if unit == 1 and scale == -1 and name.lower() == "kwh":
        return DECI_KWH, None
    if unit == 2 and scale == -2 and name == "INR":
        return PAISE, None
    return PAISE, ("the meter's currency {%s, %d, %s} is neither paise {INR, -2, monetary} nor "
                   "0.1 kWh {kWh, -1, consumption}: credit taken as paise, the documented default"
                   % (name, scale, _UNITS.get(unit, unit)))


def amount(value, unit):
    """A register value in ``unit`` -> "₹5.00" (paise) or "32.5 kWh" (0.1 kWh); None -> "-"."""
    if value is None:
        return "-"
    if unit != DECI_KWH:
        return fmt.rupees(value)
    v = int(value)
    return "%s%s.%d kWh" % ("-" if v < 0 else "", "{:,}".format(abs(v) // 10), abs(v) % 10)


def amount_raw(value, unit):
    """``amount`` followed by the raw register: "₹5.00 (500 paise)", "32.5 kWh (325 x 0.1 kWh)"."""
    if value is None:
        return "-"
    return "%s (%d %s)" % (amount(value, unit), value, "paise" if unit != DECI_KWH else "x 0.1 kWh")


def paise_or_none(value, unit):
    """``value`` when the register is in paise, else None (for the ``*_paise`` JSON keys)."""
    return value if unit == PAISE else None


def parse_kwh(text, limit=None):
    """"32.5" / "50" kWh -> integer 0.1 kWh units (no floats): > 0, at most one decimal, within a
    double-long (or ``limit`` units). Raises ValueError with a one-line reason."""
    t = str(text).strip().replace("_", "")
    if t.lower().endswith("kwh"):
        t = t[:-3].strip()
    m = _KWH_RE.match(t)
    if m is None:
        if re.match(r"^\d+\.\d{2,}$", t):
            raise ValueError("%r kWh has more than 1 decimal (0.1 kWh is the smallest unit)" % (text,))
        raise ValueError("%r is not an energy amount like 50 or 32.5 (kWh)" % (text,))
    units = int(m.group(1)) * 10 + int(m.group(2) or 0)
    if units <= 0:
        raise ValueError("amount must be greater than zero")
    limit = fmt.DOUBLE_LONG_MAX if limit is None else limit
    if units > limit:
        raise ValueError("%r kWh is above the largest credit a meter holds (%s)" % (text, amount(limit, DECI_KWH)))
    return units
