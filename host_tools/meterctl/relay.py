"""``meterctl relay connect|disconnect``: IC 70 0.0.96.3.10.255 remote_reconnect / remote_disconnect.

A lost answer is checked on the meter (``host_tools.changes.Relay``: its control_state)."""

import click

from host_tools.changes import Relay
from host_tools.client import CONTROL_STATES
from host_tools.meterctl.common import CONTEXT, EXIT_CODES_HELP, link_options, relay_text, run_change


@click.command("relay", context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@click.argument("operation", type=click.Choice(["connect", "disconnect"]))
@link_options(write=True)
def relay(operation, **kw):
    """Remote connect/disconnect (IC 70 0.0.96.3.10.255 remote_reconnect / remote_disconnect).

    Depending on the meter's control_mode, connect may leave the relay ready_for_reconnection
    until someone presses the meter's button.

    \b
    Examples:
      meterctl relay disconnect --port /dev/pts/5 --key-file ~/.local/state/meterctl/emulator-keys.json
      meterctl relay connect --port /dev/pts/5 --key-file ~/.local/state/meterctl/emulator-keys.json --json
    """
    method = 2 if operation == "connect" else 1

    def fields(res):
        """The relay's JSON keys, the same whatever the outcome (control_state in words)."""
        d = (res.details if res is not None else None) or {}
        cs = d.get("control_state")
        return {"operation": operation, "relay_output_state": d.get("relay_output_state"),
                "control_state": CONTROL_STATES.get(cs, cs), "control_state_code": cs}

    def show(res):
        out = fields(res)
        out_state, cs = out["relay_output_state"], out["control_state_code"]
        click.echo("%s: done" % ("remote_reconnect" if method == 2 else "remote_disconnect"))
        click.echo("Relay: %s" % relay_text(out_state))
        if cs is not None:
            click.echo("Control state: %s" % CONTROL_STATES.get(cs, cs))
        if cs == 2:
            click.echo("(ready for reconnection: the consumer closes the relay with the meter's button)")

    change = Relay(method)
    run_change(kw, change, show, fields=fields,
               hint=lambda res: "meterctl get 0.0.96.3.10.255 3 --class 70 --port %s (control_state: "
                                "0 disconnected, 1 connected, 2 ready for reconnection)" % kw["port"])
