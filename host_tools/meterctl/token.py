"""``meterctl token decode``, and what the STS commands share: token class names, amounts as
text, errors as one ``meterctl: error:`` line.

Errors are one readable line and a non-zero exit (InputError: exit 2; Rejected, a token whose
CRC does not check: exit 1; usage errors: exit 2).
"""
import json

import click

from host_tools import vend as V
from host_tools.meterctl.common import CONTEXT
from protocol import sts

UNITS = {0: "kWh", 1: "m3", 2: "m3", 3: "min"}
NAMES = {
    (0, 0): "electricity credit", (0, 1): "water credit", (0, 2): "gas credit",
    (0, 3): "time credit", (0, 4): "electricity currency credit", (0, 5): "water currency credit",
    (0, 6): "gas currency credit", (0, 7): "time currency credit",
    (1, 0): "InitiateMeterTest/Display (2-digit mfr code)",
    (1, 1): "InitiateMeterTest/Display (4-digit mfr code)",
    (2, 0): "SetMaximumPowerLimit", (2, 1): "ClearCredit", (2, 2): "SetTariffRate",
    (2, 3): "Set1stSectionDecoderKey", (2, 4): "Set2ndSectionDecoderKey",
    (2, 5): "ClearTamperCondition", (2, 6): "SetMaximumPhasePowerUnbalanceLimit",
    (2, 7): "SetWaterMeterFactor", (2, 8): "Set3rdSectionDecoderKey",
    (2, 9): "Set4thSectionDecoderKey",
}


def _tenths(v):
    return "%d.%d" % (v // 10, v % 10)


def amount_text(cls, sub, amount):
    """The 16-bit field's amount as text: class 0 tenths of a unit, MPL watts, else the number."""
    if cls == 0:
        return "%s %s" % (_tenths(amount), UNITS.get(sub, "units"))
    if cls == 2 and sub in (0, 6):
        return "%d W" % amount
    return str(amount)


class InputError(click.ClickException):
    """Bad vending input (amount, key, PAN, TID...): one ``meterctl: error:`` line, exit code 2."""
    exit_code = 2

    def show(self, file=None):
        """One ``meterctl: error:`` line on stderr."""
        click.echo("meterctl: error: %s" % self.format_message(), err=True)


class Rejected(InputError):
    """The token itself does not check (CRC): exit code 1, one ``meterctl: error:`` line."""
    exit_code = 1


def guard(fn, *a, **kw):
    """``fn(*a, **kw)`` with VendError / StsError / OSError as an InputError (exit 2)."""
    try:
        return fn(*a, **kw)
    except (V.VendError, sts.StsError) as e:
        raise InputError(str(e)) from None
    except OSError as e:
        raise InputError("%s: %s" % (getattr(e, "filename", "") or "file", e.strerror or e)) from None


def print_token(res, as_json):
    """A vended token (``vend_token`` dict): JSON, or the digits in groups and a summary line."""
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    cls, sub = res["class"], res["subclass"]
    click.echo(sts.group_digits(res["token"]))
    line = "  class %d/%d %s" % (cls, sub, NAMES.get((cls, sub), "proprietary"))
    if "tid" in res:
        line += ", TID %d, %s" % (res["tid"], amount_text(cls, sub, res["amount"]))
    click.echo(line)


@click.group("token", context_settings=CONTEXT)
def token():
    """Inspect STS tokens."""


@token.command("decode", context_settings=CONTEXT)
@click.option("--key", metavar="HEX", help="Decoder key (8 bytes EA07, 16 bytes EA11). Not needed for class 1.")
@click.option("--algorithm", type=click.Choice(["ea07", "ea11"]), default=None,
              help="Default: by key length.")
@click.option("--tables", type=click.Path(dir_okay=False), default=None,
              help="EA07 tables JSON (default: the IEC sample tables).")
@click.option("--base-date", type=click.Choice(["1993", "2014", "2035"]), default="2014", show_default=True,
              help="TID base date, as `meterctl vend --base-date` (same default).")
@click.option("--json", "as_json", is_flag=True)
@click.argument("digits", nargs=-1, required=True, metavar="TOKEN")
def token_decode(key, algorithm, tables, base_date, as_json, digits):
    """Decode a 20-digit TOKEN: class, subclass, TID (as a date), amount, CRC check.
    Exits 1 if the CRC does not check (wrong key or mistyped token).

    \b
    Examples:
      meterctl token decode 56493153725450313471                  # class 1: not encrypted
      meterctl token decode --key 0ABC12DEF3456789 --base-date 1993 5104 3465 4434 2085 6213
    """
    res = guard(V.decode_token, "".join(digits), key, algorithm, tables, int(base_date))
    if as_json:
        click.echo(json.dumps(res, indent=2))
    else:
        cls, sub = res["class"], res["subclass"]
        click.echo("token      %s" % sts.group_digits(res["token"]))
        if res["crc_ok"]:
            click.echo("class      %d/%d %s" % (cls, sub, NAMES.get((cls, sub), "proprietary")))
        else:
            click.echo("class      %d (the subclass is in the block, which did not decode)" % cls)
        click.echo("data block %s" % res["data_block"])
        if not res["crc_ok"]:
            # the fields of a block that fails its CRC are noise: don't show them as if real
            click.echo("CRC        BAD (fields not shown: wrong key, another meter, or a mistyped digit)")
        elif res["layout"] == "data":
            click.echo("TID        %d (%s UTC, base %s)" % (res["tid"], res["date"], base_date))
            click.echo("RND        %d" % res["rnd"])
            click.echo("amount     %s" % amount_text(cls, sub, res["amount"]))
        elif res["layout"] == "test":
            click.echo("control    %X (%s), mfr code %d" % (res["control"], ", ".join(res["tests"]) or "-",
                                                          res["mfr_code"]))
        elif res["layout"].startswith("key"):
            click.echo("key part   %s  KEN half %X  KRN %d  KT %d  TI %d  RO %d" % (
                res["key_part"], res["ken_half"], res["krn"], res["kt"], res["ti"], res["ro"]))
        if res["crc_ok"]:
            click.echo("CRC        ok")
    if not res["crc_ok"]:
        raise Rejected("CRC check failed: wrong key or mistyped token")
