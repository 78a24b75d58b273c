"""``meterctl config``: show, check and apply a tariff/policy profile (profiles/*.json).

The profile travels over DLMS as compact JSON (UTF-8) in the value (attribute 2, octet-string)
of a manufacturer-specific Data object (IC 1) ``0.128.96.5.0.255``: GET shows the meter's
profile, SET (management client, LLS) applies one. The meter validates the whole profile before
it changes anything (``Meter.apply_config``); a refused profile answers the SET with
data-access-result other-reason (250) and leaves "field: reason" in the visible-string value of
``0.128.96.5.1.255``, which ``apply`` reads and prints. ``apply`` validates the profile on the host
first with the firmware's own rules (``meter.profile.check_profile``), so a bad file never goes on
the wire.

The firmware's rules are imported from the checkout's sources with
``host_tools.firmware_src.firmware_module`` (no sys.path edit).
"""
import json
import pathlib

import click

from host_tools import objects
from host_tools.firmware_src import firmware_module
from host_tools.meterctl.common import CONTEXT, EXIT_CODES_HELP, emit_json, has_secret, json_not_sent, link_options, \
    make_client, run, run_change
from protocol import axdr_client as axdr

PROFILE_LN = objects.PROFILE.obis
PROFILE_ERROR_LN = objects.PROFILE_ERROR.obis


class ProfileError(click.ClickException):
    """A profile refused (by the host check or by the meter): ``field`` and ``reason``.
    Shown as one line on stderr, exit code 1 (meterctl convention)."""

    def __init__(self, field, reason, where="profile"):
        click.ClickException.__init__(self, "%s refused: %s: %s" % (where, field, reason))
        self.field = field
        self.reason = reason

    def show(self, file=None):
        """One ``meterctl: error:`` line on stderr (click's default adds "Error:")."""
        click.echo("meterctl: error: %s" % self.format_message(), err=True)


class FileError(ProfileError):
    """A profile file that cannot be read as JSON text: one line, exit code 2 (bad input)."""
    exit_code = 2


CHARGE_LN = "0.0.19.20.0.255"
# config.json settings a user may put in a profile file by mistake (docs/CONTRACTS.md): where they go
METER_SETTINGS = {"profiles": " --profiles", "profile_period": "", "demand_period": "", "name_plate": ""}


def _firmware_rules():
    return firmware_module("meter.profile").check_profile, firmware_module("meter.tariff").ConfigError


def load_profile(path):
    """Read a profile file (JSON object). Raises ProfileError for unreadable / non-JSON files."""
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise FileError(str(path), e.strerror or str(e), "file")
    except UnicodeDecodeError:
        raise FileError(str(path), "not a JSON text file (binary or not UTF-8)", "file")
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise FileError(str(path), "not JSON (%s)" % e, "file")
    return obj


def max_wire_len():
    """The firmware's own limit: its max receive APDU (``meter.acse``, announced in the AARE).
    A SET request longer than that is refused by the meter."""
    return getattr(firmware_module("meter.acse"), "_SERVER_MAX_PDU")


def check(profile):
    """Validate with the firmware's rules; raises ProfileError(field, reason)."""
    check_profile, ConfigError = _firmware_rules()
    try:
        check_profile(profile)
    except ConfigError as e:
        if e.field in METER_SETTINGS:
            raise ProfileError(e.field, "%s, not a tariff/policy profile field: it is set in the meter's "
                               "config.json at provisioning (meterctl provision --settings FILE; the "
                               "emulator: meterctl emulate%s)" % (e.reason, METER_SETTINGS[e.field]))
        raise ProfileError(e.field, e.reason)
    from protocol import apdu_client
    from protocol.client_assoc import obis6
    n = len(apdu_client.set_request(1, 1, obis6(PROFILE_LN), 2, encode_value(profile)))
    if n > max_wire_len():
        raise ProfileError("profile", "too long: its SET request is %d bytes, the meter receives at most %d "
                           "(shorten names, drop entries)" % (n, max_wire_len()))
    return profile


def wire_bytes(profile):
    """The profile as sent to the meter: compact JSON without the free-text ``about``."""
    slim = {k: v for k, v in profile.items() if k != "about"}
    return json.dumps(slim, separators=(",", ":"), sort_keys=True).encode()


def encode_value(profile):
    """A-XDR octet-string carrying the profile (the SET value)."""
    return axdr.Writer().octet_string(wire_bytes(profile)).getvalue()


def decode_value(tagged):
    """Profile dict from the GET answer (tagged octet-string)."""
    tag, value = tagged
    if tag not in (axdr.OCTET_STRING, axdr.VISIBLE_STRING, axdr.UTF8_STRING):
        raise click.ClickException("meter answered a %r, not an octet-string profile" % (tag,))
    data = value.encode() if isinstance(value, str) else bytes(value)
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as e:
        raise click.ClickException("meter's profile is not JSON: %s" % e)


def apply(client, profile):
    """Check ``profile`` on the host, SET it on the meter; on a refusal raise ProfileError with
    the meter's own "field: reason"."""
    from host_tools.client import DataAccessError
    check(profile)
    try:
        client.set(1, PROFILE_LN, 2, encode_value(profile))
    except DataAccessError as e:
        why = None
        try:
            tag, v = client.get(1, PROFILE_ERROR_LN, 2)
            why = v.decode() if isinstance(v, (bytes, bytearray)) else str(v)
        except DataAccessError:
            pass
        if why and ":" in why:
            field, reason = why.split(":", 1)
            raise ProfileError(field.strip(), reason.strip(), "meter")
        raise ProfileError("profile", str(e), "meter")


@click.group("config", context_settings=CONTEXT)
def config():
    """Tariff and disconnect-policy profile of a meter (profiles/*.json)."""


@config.command("check", context_settings=CONTEXT)
@click.argument("profile", type=click.Path(dir_okay=False))
def check_cmd(profile):
    """Validate PROFILE with the firmware's rules, offline.

    Exit 0 valid, 1 the profile breaks a rule ("profile refused: FIELD: REASON"), 2 the file
    cannot be read as JSON. (`config apply` refuses such a profile before sending: exit 2.)"""
    p = check(load_profile(profile))
    click.echo("%s: ok (%d bytes on the wire)" % (p.get("name", profile), len(wire_bytes(p))))


@config.command("show", context_settings=CONTEXT)
@link_options(write=True)            # not public: management client 1 by default (its --help says so)
def show(**kw):
    """Read the meter's profile (GET 0.128.96.5.0.255 attribute 2).

    The profile is not public: the default client is management 1 (HLS: --key-file or --meter;
    LLS --password only on a meter provisioned with passwords alone), or use --client 32 with the
    reader's password.

    \b
    Examples:
      meterctl config show --port /dev/ttyUSB0 --meter PPM0000123
      meterctl config show --port /dev/ttyUSB0 --client 32 --password 00000000 --json
    """
    if kw.get("client_sap") is None:
        kw["client_sap"] = 1
    if not has_secret(kw):
        raise click.UsageError("the profile is read by the reader (32) or a management client (1, 48): "
                               "give --password (or METERCTL_PASSWORD)")

    def body():
        with make_client(kw, False) as c:
            prof = decode_value(c.get(1, PROFILE_LN, 2))
            if not prof.get("tariff"):
                # a meter without a tariff section bills at its flat rate (config.json
                # tariff_paise_per_kwh): show that rate, read from Charge IC 113 attr 5
                rate = _charge_rate(c)
                if rate is not None:
                    prof["tariff"] = {"rate": rate}
        if kw.get("as_json"):
            emit_json(prof)
        else:
            click.echo(json.dumps(prof, indent=1, sort_keys=True))
    return run(body)


def _charge_rate(c):
    """Paise per kWh from Charge IC 113 attr 5 (``host_tools.changes.charge_rate``), or None if
    the meter does not serve it."""
    from host_tools.changes import charge_rate, read
    return charge_rate(read(c, 113, CHARGE_LN, 5))


def _was(before):
    """The profile the meter had before (its "name"), as ``config show`` shows it, for the hint."""
    try:
        return "profile %r" % json.loads(bytes.fromhex(before["profile"]).decode("utf-8")).get("name")
    except (TypeError, KeyError, ValueError, AttributeError):
        return "the profile it had before"


@config.command("apply", context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@click.argument("profile", type=click.Path(dir_okay=False))
@link_options(write=True)
def apply_cmd(profile, **kw):
    """Validate PROFILE and apply it (SET 0.128.96.5.0.255 attribute 2, management client).
    A refused profile prints the field and the reason; the meter keeps its old one. A lost
    answer is checked by reading the meter's profile back.

    \b
    Examples:
      meterctl config apply profiles/uppcl_like.json --port /dev/ttyUSB0 --meter PPM0000123
      meterctl config check profiles/sts_keypad.json      # offline, before going to the meter
    """
    from host_tools.changes import Profile

    from host_tools.outcome import APPLIED
    p = None

    def fields(out):
        """The profile's JSON keys, the same whatever the outcome: "applied" its name when applied
        (else null), "bytes" its size on the wire (null when the host check refused it)."""
        name = p.get("name", profile) if p is not None else profile
        return {"profile": name, "applied": name if out is not None and out.state == APPLIED else None,
                "bytes": len(wire_bytes(p)) if p is not None else None}

    try:
        p = check(load_profile(profile))
    except ProfileError as e:       # refused on the host: a bad argument, nothing sent (usage)
        e.exit_code = 2
        json_not_sent(kw, e.format_message(), fields)
        raise

    def show(out):
        msg = fields(out)
        click.echo("applied %s (%d bytes)" % (msg["applied"], msg["bytes"]))

    def refused(out):
        if out.refused is None:
            return None
        why = getattr(out.refused, "why", None)
        if why and ":" in why:
            field, reason = why.split(":", 1)
            return ProfileError(field.strip(), reason.strip(), "meter").format_message()
        return ProfileError("profile", str(out.refused), "meter").format_message()

    change = Profile(wire_bytes(p))
    change.what = "profile %s" % p.get("name", profile)
    run_change(kw, change, show, refused=refused, fields=fields,
               hint=lambda out: "meterctl config show --port %s --password ... (applied if it shows "
                                "profile %r, not applied if %s)" % (kw["port"], p.get("name", profile),
                                                                  _was(out.before)))
