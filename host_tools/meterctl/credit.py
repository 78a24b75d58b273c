"""``meterctl credit add``: top up the credit register (IC 112 0.0.19.10.0.255 update_amount)."""

import click

from host_tools import format as fmt
from host_tools.client import OBIS_ACCOUNT, OBIS_CREDIT, OBIS_DISCONNECT, DataAccessError
from host_tools.meterctl.common import CONTEXT, emit_json, link_options, make_client, relay_text, run

CREDIT_LIMIT_PAISE = 0x3FFFFFFF   # the meter's credit register: a 31-bit small int on the boards


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
      meterctl credit add --port /dev/pts/5 --amount 500.00 --password 12345678
    """


def _tolerant(c, class_id, code, attr):
    try:
        return int(c.get(class_id, code, attr)[1])
    except (DataAccessError, TypeError, ValueError):
        return None


def _add(c, amount):
    """update_amount(paise) -> the readings around it; a refusal at the register's limit says so."""
    from protocol import axdr_client as axdr

    before = _tolerant(c, 112, OBIS_CREDIT, 2)
    try:
        c.action(112, OBIS_CREDIT, 1, axdr.Writer().double_long(amount).getvalue())
    except DataAccessError as e:
        if e.dar == 250 and before is not None and before + amount > CREDIT_LIMIT_PAISE:
            raise DataAccessError(e.dar, "meter refused the top-up: credit %s + %s would pass the "
                                  "register's limit of %s" % (fmt.rupees(before), fmt.rupees(amount),
                                                              fmt.rupees(CREDIT_LIMIT_PAISE)))
        raise
    after = _tolerant(c, 112, OBIS_CREDIT, 2)          # the reads in this order: fakes script it
    available = _tolerant(c, 111, OBIS_ACCOUNT, 5)
    relay_on = _tolerant(c, 70, OBIS_DISCONNECT, 2)
    return {"amount_paise": amount, "credit_before_paise": before, "credit_after_paise": after,
            "available_credit_paise": available,
            "relay_output_state": None if relay_on is None else bool(relay_on)}


@credit.command("add", context_settings=CONTEXT)
@click.option("--amount", required=True, callback=_amount_arg, metavar="RUPEES",
              help="Rupees with up to 2 decimals, e.g. 500 or 500.00 (sent as integer paise).")
@link_options(write=True)
def credit_add(amount, **kw):
    """Top up: IC 112 update_amount(paise) as the management client (LLS).

    Prints the credit before and after.

    \b
    Examples:
      meterctl credit add --port /dev/pts/5 --amount 500.00 --password 12345678
      METERCTL_PASSWORD=12345678 meterctl credit add -p /dev/ttyUSB0 --amount 0.50
    """
    client = make_client(kw, write=True)

    def body():
        with client as c:
            out = _add(c, amount)
        if kw["as_json"]:
            emit_json(out)
            return
        click.echo("Added %s (%d paise)" % (fmt.rupees(amount), amount))
        click.echo("Credit: %s -> %s" % (fmt.rupees(out["credit_before_paise"]),
                                         fmt.rupees(out["credit_after_paise"])))
        if out["available_credit_paise"] is not None:
            click.echo("Available credit: %s" % fmt.rupees(out["available_credit_paise"]))
        if out["relay_output_state"] is not None:
            click.echo("Relay: %s" % relay_text(out["relay_output_state"]))

    run(body)
