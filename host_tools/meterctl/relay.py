"""``meterctl relay connect|disconnect``: IC 70 0.0.96.3.10.255 remote_reconnect / remote_disconnect."""

import click

from host_tools.client import CONTROL_STATES, OBIS_DISCONNECT, DataAccessError
from host_tools.meterctl.common import CONTEXT, emit_json, link_options, make_client, relay_text, run


def _switch(c, method):
    """Invoke the method, then read output_state (bool|None) and control_state (int|None)."""
    from protocol import axdr_client as axdr

    c.action(70, OBIS_DISCONNECT, method, axdr.Writer().integer(0).getvalue())
    try:
        out_state = bool(c.get(70, OBIS_DISCONNECT, 2)[1])
    except DataAccessError:
        out_state = None
    try:
        cs = int(c.get(70, OBIS_DISCONNECT, 3)[1])
    except DataAccessError:
        cs = None
    return out_state, cs


@click.command("relay", context_settings=CONTEXT)
@click.argument("operation", type=click.Choice(["connect", "disconnect"]))
@link_options(write=True)
def relay(operation, **kw):
    """Remote connect/disconnect (IC 70 0.0.96.3.10.255 remote_reconnect / remote_disconnect).

    Depending on the meter's control_mode, connect may leave the relay ready_for_reconnection
    until someone presses the meter's button.

    \b
    Examples:
      meterctl relay disconnect --port /dev/pts/5 --password 12345678
      meterctl relay connect --port /dev/pts/5 --password 12345678 --json
    """
    method = 2 if operation == "connect" else 1
    client = make_client(kw, write=True)

    def body():
        with client as c:
            out_state, cs = _switch(c, method)
        out = {"operation": operation, "relay_output_state": out_state,
               "control_state": CONTROL_STATES.get(cs, cs)}
        if kw["as_json"]:
            emit_json(out)
            return
        click.echo("%s: done" % ("remote_reconnect" if method == 2 else "remote_disconnect"))
        click.echo("Relay: %s" % relay_text(out_state))
        if cs is not None:
            click.echo("Control state: %s" % CONTROL_STATES.get(cs, cs))
        if cs == 2:
            click.echo("(ready for reconnection: the consumer closes the relay with the meter's button)")

    run(body)
