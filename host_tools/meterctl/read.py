"""``meterctl read``: energy, credit, relay state and clock in one association (public client)."""

import click

from host_tools import creditunit
from host_tools import format as fmt
from host_tools.client import read_summary
from host_tools.meterctl.common import CONTEXT, console, emit_json, link_options, make_client, \
    relay_text, run


@click.command("read", context_settings=CONTEXT)
@link_options(write=False)
def read(**kw):
    """Read energy, credit, relay state and clock.

    \b
    Examples:
      meterctl read --port /dev/pts/5
      meterctl read --port /dev/ttyUSB0 --json
      meterctl read --port /dev/ttyUSB0 --client 32 --password 00000000
      meterctl read --port /dev/ttyUSB0 --physical 17    (a meter on an RS-485 bus)
    """
    client = make_client(kw, write=False)

    def body():
        with client as c:
            s = read_summary(c)
        s["port"] = kw["port"]
        s["server"] = kw["server"]
        s["physical"] = kw.get("physical")       # HDLC physical address (None: 1-byte address)
        if kw["as_json"]:
            emit_json(s)
            return
        print_summary(s, client.client_sap)

    run(body)


def print_summary(s, client_sap):
    """The ``read_summary`` dict ``s`` as a two-column table on stdout."""
    from rich.table import Table

    where = "server %d" % s["server"]
    if s.get("physical") is not None:
        where += ", physical %d" % s["physical"]
    t = Table(title="Meter on %s (%s, client %d)" % (s["port"], where, client_sap),
              show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value")
    wh = s.get("energy_import_wh")
    t.add_row("Energy import", "-" if wh is None else "%s (%d Wh)" % (fmt.kwh(wh), wh))
    unit = s.get("credit_unit")
    for key, label in (("available_credit", "Available credit"), ("credit", "Token credit")):
        t.add_row(label, creditunit.amount_raw(s.get(key), unit))
    why = s.get("relay_reason")
    t.add_row("Relay", relay_text(s.get("relay_output_state")) + (" (%s)" % why if why else ""))
    ec, ecs = s.get("emergency_credit"), s.get("emergency_credit_status")
    if ecs is not None:
        end = s.get("emergency_credit_end") or {}
        ends = [w for w in ("at a balance of %s" % creditunit.amount(end["balance"], unit)
                            if end.get("balance") is not None else None,
                            "at %s" % end["time"] if end.get("time") else None) if w]
        t.add_row("Emergency credit", "%s%s%s" % (ecs, "" if ec is None else ", %s" % creditunit.amount(ec, unit),
                                                  "; ends %s" % " or ".join(ends) if ends else ""))
    if s.get("credit_status") is not None:
        t.add_row("Credit status", ", ".join(s["credit_status"]) or "-")
    cs = s.get("control_state")
    cm = s.get("control_mode")
    t.add_row("Control state", "-" if cs is None else "%s%s" % (cs, "" if cm is None else ", mode %d" % cm))
    pm = s.get("payment_mode")
    st = s.get("account_status")
    t.add_row("Payment mode", "-" if pm is None else "%s%s" % (pm, "" if st is None else " (%s)" % st))
    t.add_row("Clock", s.get("clock") or "-")
    console().print(t)
    if s.get("credit_unit_note") and (s.get("available_credit"), s.get("credit")) != (None, None):
        click.echo("Note: %s" % s["credit_unit_note"])
