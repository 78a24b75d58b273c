"""``meterctl get`` / ``set`` / ``action``: one attribute or method of any object by OBIS code.

``set`` and ``action`` change the meter: their outcome is checked on the meter when the answer
is lost (``host_tools.changes``: the attribute read back; for update_amount, the relay methods
and token entry the evidence of ``credit add``, ``relay`` and ``topup``; other methods leave no
evidence, so a lost answer is reported unknown)."""

import click

from host_tools import format as fmt
from host_tools import objects
from host_tools.changes import Action, SetAttribute, action_change
from host_tools.client import DlmsError
from host_tools.meterctl.common import (CONTEXT, EXIT_CODES_HELP, emit_json, link_options, make_client,
                                        refusal_name, run, run_change)
from host_tools.outcome import APPLIED

# OBIS -> interface class of every object the meter serves (host_tools.objects, the one catalogue)
KNOWN_CLASSES = {o.obis: o.ic for o in objects.OBJECTS}


class DataDecodeError(DlmsError):
    """The meter's value is not valid A-XDR."""


def _obis_arg(ctx, param, value):
    from protocol import obis

    try:
        return obis.to_str(obis.parse(value))
    except ValueError:
        raise click.BadParameter("%r is not an OBIS code (e.g. 1.0.1.8.0.255 or 1-0:1.8.0.255)" % value)


def _typed_arg(ctx, param, value):
    if value is None:
        return None
    try:
        return fmt.encode_typed(value)
    except ValueError as e:
        raise click.BadParameter(str(e))


def class_for(code, class_id):
    """The interface class: ``class_id`` if given, else guessed from ``KNOWN_CLASSES``; raises
    click.UsageError when neither."""
    if class_id is not None:
        return class_id
    if code in KNOWN_CLASSES:
        return KNOWN_CLASSES[code]
    raise click.UsageError("give --class IC for %s (interface class, e.g. 3 register, 8 clock)" % code)


def _target(f):
    """OBIS and --class of every command here (the ATTR/METHOD argument stays with the command)."""
    f = click.option("--class", "class_id", type=click.IntRange(0, 0xFFFF), default=None, metavar="IC",
                     help="Interface class (guessed for well-known OBIS codes).")(f)
    return f


def _show_value(data, base, as_json):
    from protocol import axdr_client as axdr

    try:
        value, _ = axdr.decode(data, 0)
    except axdr.AxdrError as e:
        raise DataDecodeError("undecodable value %s: %s" % (data.hex(), e))
    if as_json:
        base.update(fmt.to_jsonable(value))
        emit_json(base)
    else:
        click.echo(fmt.describe(value))


@click.command("get", context_settings=CONTEXT)
@click.argument("obis_code", metavar="OBIS", callback=_obis_arg)
@click.argument("attr", metavar="ATTR", type=click.IntRange(1, 255))
@_target
@click.option("--raw", is_flag=True, help="Print the A-XDR bytes as hex instead of decoding.")
@click.option("--selector", type=click.IntRange(1, 255), default=None, metavar="N",
              help="Selective access selector (profile generic: 1 by range, 2 by entry).")
@click.option("--access", "access", default=None, callback=_typed_arg, metavar="TYPE:VALUE",
              help="Selective access parameters (usually raw:<hex of a structure>).")
@link_options(write=False)
def get(obis_code, attr, class_id, raw, selector, access, **kw):
    """GET one attribute by OBIS code and attribute number.

    \b
    Examples:
      meterctl get 1.0.1.8.0.255 2 --class 3 --port /dev/pts/5     # energy import (Wh)
      meterctl get 0.0.1.0.0.255 2 --port /dev/pts/5               # clock (IC 8 guessed)
      meterctl get 0.0.19.10.0.255 2 --class 112 --raw -p /dev/pts/5
      # entries 1..10 of an event log (selective access by entry; the meter reader 32 may):
      meterctl get 0.0.99.98.0.255 2 --class 7 --selector 2 --client 32 --password 00000000 \\
          --access raw:02040600000001060000000A120001120000 -p /dev/pts/5
    """
    if access is not None and selector is None:
        raise click.UsageError("--access needs --selector")
    class_id = class_for(obis_code, class_id)
    client = make_client(kw, write=False)

    def body():
        with client as c:
            data = c.get_raw(class_id, obis_code, attr, selector, access or b"")
        base = {"class": class_id, "obis": obis_code, "attribute": attr, "raw": data.hex()}
        if not raw:
            _show_value(data, base, kw["as_json"])
        elif kw["as_json"]:
            emit_json(base)
        else:
            click.echo(fmt.hexs(data))

    run(body)


def _result(out):
    """A change's "result" for --json: "success" when applied, the name of the meter's refusal
    (data-access-result), else None (not sent, unknown, or found not applied by a check)."""
    if out is not None and out.state == APPLIED:
        return "success"
    return refusal_name(out)


@click.command("set", context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@click.argument("obis_code", metavar="OBIS", callback=_obis_arg)
@click.argument("attr", metavar="ATTR", type=click.IntRange(1, 255))
@_target
@click.option("--value", "value", required=True, callback=_typed_arg, metavar="TYPE:VALUE",
              help="Typed value: %s." % ", ".join(fmt.VALUE_TYPES))
@link_options(write=True)
def set_cmd(obis_code, attr, class_id, value, **kw):
    """SET one attribute (management client by default).

    \b
    Examples:
      meterctl set 0.0.1.0.0.255 2 --class 8 --value date-time:2026-01-01T10:00:00+05:30 -p /dev/pts/5 --key-file ~/.local/state/meterctl/emulator-keys.json
      meterctl set 0.0.96.3.10.255 4 --class 70 --value enum:1 -p /dev/pts/5 --key-file ~/.local/state/meterctl/emulator-keys.json
      meterctl set 1.0.0.0.0.255 2 --class 1 --value octet-string:414243 -p /dev/ttyUSB0 --meter PPM0000123
    """
    class_id = class_for(obis_code, class_id)

    def fields(out):
        """The SET's JSON keys, the same whatever the outcome: "result" the meter's answer
        ("success", or the data-access-result's name when refused), null when not known."""
        return {"class": class_id, "obis": obis_code, "attribute": attr, "value": value.hex(),
                "result": _result(out)}

    def show(out):
        click.echo("set IC %d %s.%d: success" % (class_id, obis_code, attr))

    change = SetAttribute(class_id, obis_code, attr, value)
    change.what = "set IC %d %s.%d" % (class_id, obis_code, attr)
    run_change(kw, change, show, fields=fields,
               hint=lambda out: "meterctl get %s %d --class %d --port %s --password ... (applied if it "
               "reads %s)" % (obis_code, attr, class_id, kw["port"], value.hex()))


@click.command("action", context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@click.argument("obis_code", metavar="OBIS", callback=_obis_arg)
@click.argument("method", metavar="METHOD", type=click.IntRange(1, 255))
@_target
@click.option("--param", "param", default=None, callback=_typed_arg, metavar="TYPE:VALUE",
              help="Method parameter (most methods take integer:0); omitted = no parameter.")
@link_options(write=True)
def action(obis_code, method, class_id, param, **kw):
    """ACTION: invoke a method (management client by default).

    \b
    Examples:
      meterctl action 0.0.96.3.10.255 1 --class 70 --param integer:0 -p /dev/pts/5 --key-file ~/.local/state/meterctl/emulator-keys.json
      meterctl action 0.0.19.10.0.255 1 --class 112 --param double-long:50000 -p /dev/pts/5 --key-file ~/.local/state/meterctl/emulator-keys.json
    """
    class_id = class_for(obis_code, class_id)
    change = action_change(class_id, obis_code, method, param)
    change.what = "action IC %d %s method %d" % (class_id, obis_code, method)

    def data_of(res):
        r = res.result if res is not None and isinstance(change, Action) else None
        return r.get("data") if isinstance(r, dict) else None

    def fields(res):
        """The ACTION's JSON keys, the same whatever the outcome (null where not known)."""
        data = data_of(res)
        return {"class": class_id, "obis": obis_code, "method": method, "result": _result(res),
                "data": fmt.to_jsonable(data) if data is not None else None}

    def show(res):
        data = data_of(res)
        click.echo("action IC %d %s method %d: success" % (class_id, obis_code, method))
        if data is not None:
            click.echo(fmt.describe(data))

    run_change(kw, change, show, fields=fields)
