"""``meterctl credit add``: top up the credit register (IC 112 0.0.19.10.0.255 update_amount).

Exactly once, seen from the bench: the port is held for the whole command, the meter's
recharge total is read before sending and, when the answer is lost (line, Ctrl-C), again after
reconnecting, so the exit code always says whether the money went in (``host_tools.outcome``,
``host_tools.changes.TopUp``). A top-up that repeats a recent applied one is refused unless
``--force`` (``host_tools.recharges``).
"""

import sys

import click

from host_tools import creditunit
from host_tools import format as fmt
from host_tools import portlock
from host_tools.changes import OBIS_TOTAL_RECHARGED, TopUp, credit_limit_paise
from host_tools.creditunit import DECI_KWH, PAISE
from host_tools.meterctl.common import (CONTEXT, EXIT_CODES_HELP, EXIT_USAGE, NotSent, fail, link_options,
                                        refuse, relay_text, run_change)
from host_tools.recharges import RETRY_WINDOW_S, Recharges

__all__ = ["credit", "credit_add", "confirm_amount", "CONFIRM_ABOVE", "CONFIRM_ABOVE_KWH"]

CONFIRM_ABOVE = "10000"         # rupees: a larger top-up needs --yes (or a yes at the terminal)
CONFIRM_ABOVE_KWH = "1500"      # kWh (about ₹10,000 at ₹6.50/kWh), the same for an energy register
_OPTION = {PAISE: "--amount RUPEES", DECI_KWH: "--kwh KWH"}


def _limit():
    """The meter's credit register limit (the firmware's, 2^30 - 1), or a double-long's without a
    checkout of the firmware."""
    try:
        return credit_limit_paise()
    except (OSError, ImportError, AttributeError):
        return fmt.DOUBLE_LONG_MAX


# the options parse any size: the meter's limit is checked after, in one line (``confirm_amount``)
_UNCAPPED = 1 << 62


def _amount_arg(ctx, param, value):
    try:
        return None if value is None else fmt.parse_rupees(value, _UNCAPPED)
    except ValueError as e:
        raise click.BadParameter(str(e))


def _kwh_arg(ctx, param, value):
    try:
        return None if value is None else creditunit.parse_kwh(value, _UNCAPPED)
    except ValueError as e:
        raise click.BadParameter(str(e))


@click.group("credit", context_settings=CONTEXT)
def credit():
    """Credit register (IC 112 0.0.19.10.0.255).

    \b
    Example:
      meterctl credit add --port /dev/pts/5 --amount 500.00 --key-file ~/.local/state/meterctl/emulator-keys.json
    """


def check_hint(port, amount, before):
    """The command (and the reading to expect) that tells whether a top-up was applied."""
    total = before.get("total_recharged") if before else None
    cmd = "meterctl get %s 2 --class 1 --port %s" % (OBIS_TOTAL_RECHARGED, port)
    if total is None:
        return "meterctl read --port %s (the credit)" % port
    return "%s (applied if it reads %d, not applied if %d)" % (
        cmd, (total + amount) & 0xFFFFFFFF, total)


def confirm_amount(amount, above, yes, unit=PAISE, refuse=None):
    """Refuse (exit 2, one line) an amount over the meter's credit register; ask for one over
    ``above`` (both in ``unit``: paise or 0.1 kWh): ``yes`` (--yes) or a "y" at the terminal
    (stdin a tty), else exit 2. ``refuse(text)`` (optional) refuses instead of ``fail`` (the
    command's "not sent" JSON)."""
    limit = _limit()
    opt = "--amount" if unit == PAISE else "--kwh"
    refuse = refuse or (lambda text: fail(text, EXIT_USAGE))

    def text(v):
        return creditunit.amount(v, unit)
    if amount > limit:      # the one check of the limit (the options parse any size)
        refuse("%s %s is above the meter's credit register limit of %s" % (opt, text(amount), text(limit)))
    if amount <= above or yes:
        return
    if not sys.stdin.isatty():
        refuse("%s %s is above %s: add --yes to confirm it (or %s)"
               % (opt, text(amount), text(above), "--confirm-above RUPEES" if unit == PAISE else
                  "--confirm-above-kwh KWH"))
    if not click.confirm("Top up %s (more than %s)?" % (text(amount), text(above)), err=True):
        refuse("top-up of %s not confirmed: nothing was sent" % text(amount))


def wrong_unit(before, unit):
    """The one line refusing a top-up given in ``unit`` to a meter whose register counts
    ``before["credit_unit"]``; None when they agree."""
    theirs = before.get("credit_unit") or PAISE
    if theirs == unit:
        return None
    why = before.get("credit_unit_note") or "IC 111 attribute 15 currency %s" % (
        "{kWh, -1, consumption}" if theirs == DECI_KWH else "{INR, -2, monetary}")
    return ("meter %s counts its credit in %s (%s): %s does not apply, give %s instead%s; nothing was sent"
            % (before.get("meter") or "on this port", theirs, why, _OPTION[unit].split()[0], _OPTION[theirs],
               " (0.1 kWh resolution, e.g. --kwh 32.5)" if theirs == DECI_KWH else ""))


@credit.command("add", context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@click.option("--amount", callback=_amount_arg, metavar="RUPEES",
              help="Rupees with up to 2 decimals, e.g. 500 or 500.00 (sent as integer paise), for a "
                   "meter whose credit register counts paise (the default).")
@click.option("--kwh", callback=_kwh_arg, metavar="KWH",
              help="kWh with up to 1 decimal, e.g. 32.5 (sent as 0.1 kWh units), for a meter whose "
                   "credit register counts 0.1 kWh (config credit_unit 1).")
@click.option("--force", is_flag=True,
              help="Top up even if the same amount went to this meter in the last %d min "
                   "(applied or unknown)." % (RETRY_WINDOW_S // 60))
@click.option("--yes", "-y", is_flag=True, help="Confirm an amount above --confirm-above without asking.")
@click.option("--confirm-above", default=CONFIRM_ABOVE, show_default=True, callback=_amount_arg,
              envvar="METERCTL_CONFIRM_ABOVE", metavar="RUPEES",
              help="A larger amount needs --yes (or a yes at the terminal). Env: METERCTL_CONFIRM_ABOVE.")
@click.option("--confirm-above-kwh", default=CONFIRM_ABOVE_KWH, show_default=True, callback=_kwh_arg,
              envvar="METERCTL_CONFIRM_ABOVE_KWH", metavar="KWH",
              help="The same for --kwh. Env: METERCTL_CONFIRM_ABOVE_KWH.")
@link_options(write=True)
def credit_add(amount, kwh, force, yes, confirm_above, confirm_above_kwh, **kw):
    """Top up: IC 112 update_amount as the management client 1 (HLS with --key-file, as
    `meterctl emulate` provisions it; LLS with --password on a meter without HLS keys).

    The amount is in the meter's credit unit, which meterctl reads from the meter (IC 111
    attribute 15 currency) before sending: --amount RUPEES (paise) or --kwh KWH (0.1 kWh); the
    other one is refused (exit 2, nothing sent). A meter that does not state its unit is taken
    as paise (the documented default) and the output says so.

    Prints the credit before and after. If the meter's answer is lost (or Ctrl-C comes while
    it is awaited) meterctl reconnects and reads the meter's recharge total to tell whether the
    top-up was applied; the exit code says which. A repeat of a top-up of the same amount to the
    same meter within 10 minutes whose outcome was applied or unknown is refused (exit 2) unless
    --force. An amount above --confirm-above (₹10,000) or --confirm-above-kwh (1,500 kWh) needs
    --yes; one above the meter's credit register (₹1,07,37,418.23 or 107,374,182.3 kWh, the
    firmware's limit) is refused.

    \b
    Examples:
      meterctl credit add --port /dev/pts/5 --amount 500.00 --key-file ~/.local/state/meterctl/emulator-keys.json
      METERCTL_METER=PPM0000123 meterctl credit add -p /dev/ttyUSB0 --amount 0.50
      meterctl credit add -p /dev/ttyUSB0 --kwh 32.5 --password ...    (an energy-unit meter)
    """
    unit = PAISE if kwh is None else DECI_KWH

    def fields(out):
        """The top-up's JSON keys, the same whatever the outcome (None where not known)."""
        b = (out.before if out is not None else None) or {}
        d = (out.details if out is not None else None) or {}
        res = {"amount": amount if kwh is None else kwh, "credit_unit": unit,
               "credit_unit_note": b.get("credit_unit_note"), "credit_before": b.get("credit"),
               "credit_after": d.get("credit_after"), "available_credit": d.get("available_credit")}
        for key in ("amount", "credit_before", "credit_after", "available_credit"):
            res[key + "_paise"] = creditunit.paise_or_none(res[key], unit)
        res.update(relay_output_state=d.get("relay_output_state"), meter=b.get("meter"))
        return res

    if (amount is None) == (kwh is None):
        refuse(kw, "give the amount as --amount RUPEES (a meter counting paise) or --kwh KWH (a meter "
               "counting 0.1 kWh), one of them", fields=fields)
    amount = amount if kwh is None else kwh
    confirm_amount(amount, confirm_above if unit == PAISE else confirm_above_kwh, yes, unit,
                   refuse=lambda text: refuse(kw, text, fields=fields))
    record = Recharges()
    claimed = {}

    def guard(before):
        refusal = wrong_unit(before, unit)
        if refusal is not None:
            raise NotSent(refusal)
        meter = before.get("meter") or "port " + portlock.port_key(kw["port"])
        claimed["meter"] = meter
        claimed["id"] = record.claim(meter, amount, before, force, unit=unit, port=kw["port"])

    def finish(out):
        if claimed.get("id") is not None:
            record.finish(claimed["meter"], claimed["id"], out.state)

    def show(out):
        res = fields(out)
        click.echo("Added %s" % creditunit.amount_raw(amount, unit))
        click.echo("Credit: %s -> %s" % (creditunit.amount(res["credit_before"], unit),
                                         creditunit.amount(res["credit_after"], unit)))
        if res["available_credit"] is not None:
            click.echo("Available credit: %s" % creditunit.amount(res["available_credit"], unit))
        if res["relay_output_state"] is not None:
            click.echo("Relay: %s" % relay_text(res["relay_output_state"]))
        if res["credit_unit_note"]:
            click.echo("Note: %s" % res["credit_unit_note"])

    change = TopUp(amount, guard_fn=guard)
    change.what = "top-up of %s" % creditunit.amount(amount, unit)
    run_change(kw, change, show, hint=lambda out: check_hint(kw["port"], amount, out.before),
               finish=finish, fields=fields)
