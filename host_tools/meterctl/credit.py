"""``meterctl credit add``: top up the credit register (IC 112 0.0.19.10.0.255 update_amount).

Exactly once, seen from the bench: the port is held for the whole command, the meter's
recharge total is read before sending and, when the answer is lost (line, Ctrl-C), again after
reconnecting, so the exit code always says whether the money went in (``host_tools.outcome``,
``host_tools.changes.TopUp``). A top-up that repeats a recent applied one is refused unless
``--force`` (``host_tools.recharges``).
"""

import sys

import click

from host_tools import format as fmt
from host_tools import portlock
from host_tools.changes import OBIS_TOTAL_RECHARGED, TopUp, credit_limit_paise
from host_tools.meterctl.common import (CONTEXT, EXIT_CODES_HELP, EXIT_USAGE, emit_json, fail, link_options,
                                        relay_text, run_change)
from host_tools.recharges import RETRY_WINDOW_S, Recharges

__all__ = ["credit", "credit_add", "confirm_amount", "CONFIRM_ABOVE"]

CONFIRM_ABOVE = "10000"         # rupees: a larger top-up needs --yes (or a yes at the terminal)


def _amount_arg(ctx, param, value):
    try:
        return fmt.parse_rupees(value)
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


def confirm_amount(amount, above, yes):
    """Refuse (exit 2, one line) an amount over the meter's credit register; ask for one over
    ``above`` paise: ``yes`` (--yes) or a "y" at the terminal (stdin a tty), else exit 2."""
    limit = credit_limit_paise()
    if amount > limit:
        fail("--amount %s is above the meter's credit register limit of %s"
             % (fmt.rupees(amount), fmt.rupees(limit)), EXIT_USAGE)
    if amount <= above or yes:
        return
    if not sys.stdin.isatty():
        fail("--amount %s is above %s: add --yes to confirm it (or --confirm-above RUPEES)"
             % (fmt.rupees(amount), fmt.rupees(above)), EXIT_USAGE)
    if not click.confirm("Top up %s (more than %s)?" % (fmt.rupees(amount), fmt.rupees(above)), err=True):
        fail("top-up of %s not confirmed: nothing was sent" % fmt.rupees(amount), EXIT_USAGE)


@credit.command("add", context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@click.option("--amount", required=True, callback=_amount_arg, metavar="RUPEES",
              help="Rupees with up to 2 decimals, e.g. 500 or 500.00 (sent as integer paise).")
@click.option("--force", is_flag=True,
              help="Top up even if the same amount went to this meter in the last %d min "
                   "(applied or unknown)." % (RETRY_WINDOW_S // 60))
@click.option("--yes", "-y", is_flag=True, help="Confirm an amount above --confirm-above without asking.")
@click.option("--confirm-above", default=CONFIRM_ABOVE, show_default=True, callback=_amount_arg,
              envvar="METERCTL_CONFIRM_ABOVE", metavar="RUPEES",
              help="A larger amount needs --yes (or a yes at the terminal). Env: METERCTL_CONFIRM_ABOVE.")
@link_options(write=True)
def credit_add(amount, force, yes, confirm_above, **kw):
    """Top up: IC 112 update_amount(paise) as the management client 1 (HLS with --key-file,
    as `meterctl emulate` provisions it; LLS with --password on a meter without HLS keys).

    Prints the credit before and after. If the meter's answer is lost (or Ctrl-C comes while
    it is awaited) meterctl reconnects and reads the meter's recharge total to tell whether the
    top-up was applied; the exit code says which. A repeat of a top-up of the same amount to the
    same meter within 10 minutes whose outcome was applied or unknown is refused (exit 2) unless
    --force. An amount above --confirm-above (₹10,000) needs --yes; one above the meter's credit
    register (₹1,07,37,418.23, the firmware's limit) is refused.

    \b
    Examples:
      meterctl credit add --port /dev/pts/5 --amount 500.00 --key-file ~/.local/state/meterctl/emulator-keys.json
      METERCTL_METER=PPM0000123 meterctl credit add -p /dev/ttyUSB0 --amount 0.50
    """
    confirm_amount(amount, confirm_above, yes)
    record = Recharges()
    claimed = {}

    def guard(before):
        meter = before.get("meter") or "port " + portlock.port_key(kw["port"])
        claimed["meter"] = meter
        claimed["id"] = record.claim(meter, amount, before, force)

    def finish(out):
        if claimed.get("id") is not None:
            record.finish(claimed["meter"], claimed["id"], out.state)

    def show(out):
        b = out.before
        d = out.details
        res = {"amount_paise": amount, "credit_before_paise": b.get("credit"),
               "credit_after_paise": d.get("credit_after_paise"),
               "available_credit_paise": d.get("available_credit_paise"),
               "relay_output_state": d.get("relay_output_state"), "meter": b.get("meter")}
        if kw["as_json"]:
            emit_json(dict(res, **out.as_dict()))
            return
        click.echo("Added %s (%d paise)" % (fmt.rupees(amount), amount))
        click.echo("Credit: %s -> %s" % (fmt.rupees(res["credit_before_paise"]),
                                         fmt.rupees(res["credit_after_paise"])))
        if res["available_credit_paise"] is not None:
            click.echo("Available credit: %s" % fmt.rupees(res["available_credit_paise"]))
        if res["relay_output_state"] is not None:
            click.echo("Relay: %s" % relay_text(res["relay_output_state"]))

    change = TopUp(amount, guard_fn=guard)
    change.what = "top-up of %s" % fmt.rupees(amount)
    run_change(kw, change, show, hint=lambda out: check_hint(kw["port"], amount, out.before),
               finish=finish)
