"""config.json and the tariff/policy profile of the meter (0.128.96.5.0.255), for ``meter.app``.

``config(board)`` reads config.json (keys: docs/CONTRACTS.md "config.json"); ``apply_profile_bytes``
serves the profile object's attribute 2; ``apply_config`` validates a
whole profile first and changes nothing when any field is refused (ConfigError(field, reason),
also kept in ``meter.config_error``), then writes config.json, journals and applies.
"""
import json
import os

from meter.acse import unload
from meter.tariff import ConfigError

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_EV_CONFIG = const(21)        # meter.events


def config(board):
    """config.json as a dict ({} if missing or unreadable)."""
    try:
        with open(board.path("config.json")) as f:
            cfg = json.load(f)
        return cfg if isinstance(cfg, dict) else {}
    except (OSError, ValueError):
        return {}


def apply_profile_bytes(meter, data):
    """SET of 0.128.96.5.0.255 attr 2: JSON profile bytes -> True if applied; False if
    refused, with "field: reason" in ``meter.config_error`` (served by 0.128.96.5.1.255)."""
    try:
        try:
            new = json.loads(data)     # MicroPython parses the request's view in place
        except TypeError:              # CPython: str, bytes or bytearray only
            new = json.loads(bytes(data).decode())
    except (ValueError, UnicodeError):
        meter.config_error = "profile: not JSON"
        return False
    if not isinstance(new, dict):
        meter.config_error = "profile: not a JSON object"
        return False
    try:
        apply_config(meter, new)
    except ConfigError:
        return False
    return True


def apply_config(meter, new):
    """Apply a profile (dict, keys of meter.profile.PROFILE_KEYS). Order: validate it whole (a
    bad one raises ConfigError and nothing changes), write config.json (an OSError leaves the
    meter as it was), switch to it, journal with its event. Running counters carry over."""
    from meter.profile import check_profile
    try:
        cfg = config(meter.board)
        tariff, policy = check_profile(new, cfg)
        a = meter.account
        if (1 if cfg.get("credit_unit") else 0) != a.unit and (a.credit or a.rem or a.debt):
            # the register's number would stay and mean paise <-> 0.1 kWh (x rate / 10)
            raise ConfigError("credit_unit", "not with credit or debt on the register")
    except ConfigError as e:
        meter.config_error = "%s: %s" % (e.field, e.reason)
        raise
    finally:
        check_profile = None       # its function held meter.profile's globals: freed now
        unload("meter.profile")
    tariff.carry_from(meter.tariff)
    policy.carry_from(meter.policy, "limiter" in new)
    path = meter.board.path("config.json")
    tmp = path + ".tmp"            # beside it: a rename never crosses file systems
    with open(tmp, "w") as f:
        json.dump(cfg, f)
    os.rename(tmp, path)
    meter.tariff, meter.policy = tariff, policy
    meter.config_error = ""
    meter.tz_minutes = cfg.get("tz_minutes", 330)
    a = meter.account
    a.payment_mode = cfg.get("payment_mode", 2)
    a.unit = 1 if cfg.get("credit_unit") else 0
    meter.dc.set_mode(cfg.get("control_mode", 5))
    meter._link.pending = cfg.get("physical_address")   # from the next link on (meter.link)
    meter.evaluate()
    meter.persist((_EV_CONFIG, "profile %s applied" % cfg.get("name", "?"), "profile"))
