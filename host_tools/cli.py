"""``meterctl``: bench tool for prepaid meters speaking DLMS/COSEM over HDLC on a serial port.

Exit codes: 0 ok; 1 the meter refused or answered something wrong (access denied, object
undefined, association rejected, protocol error, port unusable); 2 usage error; 3 no answer
from the meter (link timeout). Errors are one line on stderr, never a traceback.
"""

import json
import os
import sys
import time

import click

from host_tools import format as fmt
from host_tools.client import (
    CONTROL_STATES,
    OBIS_ACCOUNT,
    OBIS_CREDIT,
    OBIS_DISCONNECT,
    DataAccessError,
    DlmsClient,
    DlmsError,
    LinkTimeout,
    PortError,
    read_summary,
)

EXIT_METER = 1
EXIT_USAGE = 2
EXIT_NO_ANSWER = 3

PUBLIC_CLIENT = 16
MANAGEMENT_CLIENT = 1

# OBIS -> IC for objects whose class is standard enough to guess when --class is omitted.
KNOWN_CLASSES = {
    "0.0.1.0.0.255": 8,      # clock
    "1.0.1.8.0.255": 3,      # active energy import
    "1.0.2.8.0.255": 3,      # active energy export
    "0.0.19.0.0.255": 111,   # account
    "0.0.19.10.0.255": 112,  # credit
    "0.0.19.40.0.255": 115,  # token gateway
    "0.0.96.3.10.255": 70,   # disconnect control
    "0.0.17.0.0.255": 71,    # limiter
    "0.0.40.0.0.255": 15,    # current association
    "0.0.42.0.0.255": 1,     # logical device name
}

CREDIT_LIMIT_PAISE = 0x3FFFFFFF   # the meter's credit register: a 31-bit small int on the boards
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# --------------------------------------------------------------------------- plumbing

def _fail(message, code):
    click.echo("meterctl: error: %s" % message, err=True)
    sys.exit(code)


def _run(fn):
    """Run a command body, turning expected failures into one line + exit code."""
    try:
        return fn()
    except LinkTimeout as e:
        _fail(str(e), EXIT_NO_ANSWER)
    except PortError as e:                  # no such port, no permission: fix the command line
        _fail(str(e), EXIT_USAGE)
    except DlmsError as e:
        _fail(str(e), EXIT_METER)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


class _Trace:
    """--trace: hex dump of every HDLC frame on stderr with a relative timestamp."""

    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self, direction, data):
        arrow = "->" if direction == "tx" else "<-"
        click.echo("%8.3f %s %s %s" % (time.monotonic() - self.t0, direction.upper(), arrow,
                                       fmt.hexs(data)), err=True)


def link_options(write):
    """Options shared by every command that talks to a meter. ``write`` commands default to
    the management client 1 (LLS) and need a password; read commands to public client 16."""
    default_client = MANAGEMENT_CLIENT if write else PUBLIC_CLIENT

    def deco(f):
        opts = [
            click.option("--port", "-p", envvar="METERCTL_PORT", required=True, metavar="PATH",
                         help="Serial port of the meter (/dev/ttyUSB0, /dev/pts/N). Env: METERCTL_PORT."),
            click.option("--baud", type=click.IntRange(300, 921600), default=9600, show_default=True,
                         help="Baud rate (8N1)."),
            click.option("--client", "client_sap", type=click.IntRange(0, 127), default=None, metavar="SAP",
                         help="Client SAP: 16 public (no security), 1 management, 32 reader, 48 "
                              "settings (LLS). Default %d." % default_client),
            click.option("--password", envvar="METERCTL_PASSWORD", default=None, metavar="TEXT",
                         help="LLS password (used with clients other than 16). Env: METERCTL_PASSWORD."),
            click.option("--server", type=click.IntRange(0, 0x3FFF), default=1, show_default=True,
                         metavar="ADDR", help="Server logical address."),
            click.option("--physical", type=click.IntRange(0, 0x3FFF), default=None, metavar="ADDR",
                         help="Server physical address (2- or 4-byte HDLC server address)."),
            click.option("--timeout", type=click.FloatRange(0.1, 120), default=3.0, show_default=True,
                         help="Seconds to wait for each answer."),
            click.option("--max-info", type=click.IntRange(32, 2030), default=128, show_default=True,
                         help="HDLC max information field we propose (both ways)."),
            click.option("--max-pdu", type=click.IntRange(12, 0xFFFF), default=0xFFFF, show_default=True,
                         help="Client max receive PDU proposed in the AARQ (the meter blocks longer answers)."),
            click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table."),
            click.option("--trace", is_flag=True, help="Hex dump every HDLC frame on stderr."),
        ]
        for o in reversed(opts):
            f = o(f)
        return f

    return deco


def _make_client(kw, write):
    sap = kw.get("client_sap")
    if sap is None:
        sap = MANAGEMENT_CLIENT if write else PUBLIC_CLIENT
    password = kw.get("password")
    if sap == PUBLIC_CLIENT:
        password = None          # the public client never authenticates
    elif write and not password:
        raise click.UsageError(
            "client %d needs the LLS password: give --password or set METERCTL_PASSWORD" % sap)
    if kw.get("physical") is None and kw["server"] > 0x7F:
        raise click.UsageError("server address %d needs --physical (4-byte HDLC address); "
                               "1-byte addresses go up to 127" % kw["server"])
    return DlmsClient(kw["port"], baud=kw["baud"], client_sap=sap, server_logical=kw["server"],
                      server_physical=kw.get("physical"), password=password, timeout=kw["timeout"],
                      max_info=kw["max_info"], max_pdu=kw.get("max_pdu", 0xFFFF), trace=_Trace() if kw.get("trace") else None)


def _emit_json(obj):
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _obis_arg(ctx, param, value):
    from protocol import obis

    try:
        return obis.to_str(obis.parse(value))
    except ValueError:
        raise click.BadParameter("%r is not an OBIS code (e.g. 1.0.1.8.0.255 or 1-0:1.8.0.255)" % value)


def _class_for(code, class_id):
    if class_id is not None:
        return class_id
    if code in KNOWN_CLASSES:
        return KNOWN_CLASSES[code]
    raise click.UsageError("give --class IC for %s (interface class, e.g. 3 register, 8 clock)" % code)


def _typed_arg(ctx, param, value):
    if value is None:
        return None
    try:
        return fmt.encode_typed(value)
    except ValueError as e:
        raise click.BadParameter(str(e))


def _amount_arg(ctx, param, value):
    try:
        return fmt.parse_rupees(value)
    except ValueError as e:
        raise click.BadParameter(str(e))


def _relay_text(state):
    if state is None:
        return "-"
    return "connected (supply on)" if state else "disconnected (supply off)"


# --------------------------------------------------------------------------- group

@click.group(context_settings=CONTEXT)
@click.version_option(package_name="prepaid-meter", prog_name="meterctl")
def meterctl():
    """Bench tool for prepaid electricity meters (DLMS/COSEM over HDLC on a serial port).

    \b
    Examples:
      meterctl emulate                                  # start an emulated meter, prints its port
      meterctl read --port /dev/pts/5                   # energy, credit, relay, clock
      meterctl credit add --port /dev/pts/5 --amount 500.00 --password 12345678
      meterctl relay disconnect --port /dev/pts/5 --password 12345678
      meterctl get 1.0.1.8.0.255 2 --class 3 --port /dev/pts/5

    \b
    Set METERCTL_PORT and METERCTL_PASSWORD to skip --port/--password.
    Exit codes: 0 ok, 1 meter/protocol error, 2 usage error, 3 no answer from the meter.
    """


# --------------------------------------------------------------------------- read

@meterctl.command(context_settings=CONTEXT)
@link_options(write=False)
def read(**kw):
    """Read energy, credit, relay state and clock.

    \b
    Examples:
      meterctl read --port /dev/pts/5
      meterctl read --port /dev/ttyUSB0 --json
      meterctl read --port /dev/ttyUSB0 --client 32 --password 00000000
    """
    client = _make_client(kw, write=False)

    def body():
        with client as c:
            s = read_summary(c)
        s["port"] = kw["port"]
        s["server"] = kw["server"]
        if kw["as_json"]:
            _emit_json(s)
            return
        _print_summary(s, client)

    _run(body)


def _print_summary(s, client):
    from rich.table import Table

    t = Table(title="Meter on %s (server %d, client %d)" % (s["port"], s["server"], client.client_sap),
              show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value")
    wh = s.get("energy_import_wh")
    t.add_row("Energy import", "-" if wh is None else "%s (%d Wh)" % (fmt.kwh(wh), wh))
    for key, label in (("available_credit_paise", "Available credit"), ("credit_paise", "Token credit")):
        p = s.get(key)
        t.add_row(label, "-" if p is None else "%s (%d paise)" % (fmt.rupees(p), p))
    t.add_row("Relay", _relay_text(s.get("relay_output_state")))
    cs = s.get("control_state")
    cm = s.get("control_mode")
    t.add_row("Control state", "-" if cs is None else "%s%s" % (cs, "" if cm is None else ", mode %d" % cm))
    pm = s.get("payment_mode")
    st = s.get("account_status")
    t.add_row("Payment mode", "-" if pm is None else "%s%s" % (pm, "" if st is None else " (%s)" % st))
    t.add_row("Clock", s.get("clock") or "-")
    _console().print(t)


# --------------------------------------------------------------------------- credit

@meterctl.group(context_settings=CONTEXT)
def credit():
    """Credit register (IC 112 0.0.19.10.0.255).

    \b
    Example:
      meterctl credit add --port /dev/pts/5 --amount 500.00 --password 12345678
    """


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
    from protocol import axdr_client as axdr

    client = _make_client(kw, write=True)

    def tolerant(c, class_id, code, attr):
        try:
            return int(c.get(class_id, code, attr)[1])
        except (DataAccessError, TypeError, ValueError):
            return None

    def body():
        with client as c:
            before = tolerant(c, 112, OBIS_CREDIT, 2)
            try:
                c.action(112, OBIS_CREDIT, 1, axdr.Writer().double_long(amount).getvalue())
            except DataAccessError as e:
                if e.dar == 250 and before is not None and before + amount > CREDIT_LIMIT_PAISE:
                    raise DataAccessError(e.dar, "meter refused the top-up: credit %s + %s would pass the "
                                          "register's limit of %s" % (fmt.rupees(before), fmt.rupees(amount),
                                                                      fmt.rupees(CREDIT_LIMIT_PAISE)))
                raise
            after = tolerant(c, 112, OBIS_CREDIT, 2)
            available = tolerant(c, 111, OBIS_ACCOUNT, 5)
            relay_on = tolerant(c, 70, OBIS_DISCONNECT, 2)
        out = {"amount_paise": amount, "credit_before_paise": before, "credit_after_paise": after,
               "available_credit_paise": available,
               "relay_output_state": None if relay_on is None else bool(relay_on)}
        if kw["as_json"]:
            _emit_json(out)
            return
        click.echo("Added %s (%d paise)" % (fmt.rupees(amount), amount))
        click.echo("Credit: %s -> %s" % (fmt.rupees(before), fmt.rupees(after)))
        if available is not None:
            click.echo("Available credit: %s" % fmt.rupees(available))
        if relay_on is not None:
            click.echo("Relay: %s" % _relay_text(relay_on))

    _run(body)


# --------------------------------------------------------------------------- relay

@meterctl.command(context_settings=CONTEXT)
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
    from protocol import axdr_client as axdr

    method = 2 if operation == "connect" else 1
    client = _make_client(kw, write=True)

    def body():
        with client as c:
            c.action(70, OBIS_DISCONNECT, method, axdr.Writer().integer(0).getvalue())
            try:
                out_state = bool(c.get(70, OBIS_DISCONNECT, 2)[1])
            except DataAccessError:
                out_state = None
            try:
                cs = int(c.get(70, OBIS_DISCONNECT, 3)[1])
            except DataAccessError:
                cs = None
        out = {"operation": operation, "relay_output_state": out_state,
               "control_state": CONTROL_STATES.get(cs, cs)}
        if kw["as_json"]:
            _emit_json(out)
            return
        click.echo("%s: done" % ("remote_reconnect" if method == 2 else "remote_disconnect"))
        click.echo("Relay: %s" % _relay_text(out_state))
        if cs is not None:
            click.echo("Control state: %s" % CONTROL_STATES.get(cs, cs))
        if cs == 2:
            click.echo("(ready for reconnection: the consumer closes the relay with the meter's button)")

    _run(body)


# --------------------------------------------------------------------------- get / set / action

@meterctl.command(context_settings=CONTEXT)
@click.argument("obis_code", metavar="OBIS", callback=_obis_arg)
@click.argument("attr", metavar="ATTR", type=click.IntRange(1, 255))
@click.option("--class", "class_id", type=click.IntRange(0, 0xFFFF), default=None, metavar="IC",
              help="Interface class (guessed for well-known OBIS codes).")
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
      # entries 1..10 of an event log (selective access by entry):
      meterctl get 0.0.99.98.0.255 2 --class 7 --selector 2 \\
          --access raw:02040600000001060000000A120001120000 -p /dev/pts/5
    """
    if access is not None and selector is None:
        raise click.UsageError("--access needs --selector")
    class_id = _class_for(obis_code, class_id)
    client = _make_client(kw, write=False)

    def body():
        from protocol import axdr_client as axdr

        with client as c:
            data = c.get_raw(class_id, obis_code, attr, selector, access or b"")
        base = {"class": class_id, "obis": obis_code, "attribute": attr, "raw": data.hex()}
        if raw:
            if kw["as_json"]:
                _emit_json(base)
            else:
                click.echo(fmt.hexs(data))
            return
        try:
            value, _ = axdr.decode(data, 0)
        except axdr.AxdrError as e:
            raise DataDecodeError("undecodable value %s: %s" % (data.hex(), e))
        if kw["as_json"]:
            base.update(fmt.to_jsonable(value))
            _emit_json(base)
        else:
            click.echo(fmt.describe(value))

    _run(body)


class DataDecodeError(DlmsError):
    """The meter's value is not valid A-XDR."""


@meterctl.command("set", context_settings=CONTEXT)
@click.argument("obis_code", metavar="OBIS", callback=_obis_arg)
@click.argument("attr", metavar="ATTR", type=click.IntRange(1, 255))
@click.option("--class", "class_id", type=click.IntRange(0, 0xFFFF), default=None, metavar="IC",
              help="Interface class (guessed for well-known OBIS codes).")
@click.option("--value", "value", required=True, callback=_typed_arg, metavar="TYPE:VALUE",
              help="Typed value: %s." % ", ".join(fmt.VALUE_TYPES))
@link_options(write=True)
def set_cmd(obis_code, attr, class_id, value, **kw):
    """SET one attribute (management client by default).

    \b
    Examples:
      meterctl set 0.0.1.0.0.255 2 --class 8 --value date-time:2026-01-01T10:00:00+05:30 -p /dev/pts/5 --password 12345678
      meterctl set 0.0.96.3.10.255 4 --class 70 --value enum:1 -p /dev/pts/5 --password 12345678
      meterctl set 1.0.0.0.0.255 2 --class 1 --value octet-string:414243 -p /dev/ttyUSB0 --password 12345678
    """
    class_id = _class_for(obis_code, class_id)
    client = _make_client(kw, write=True)

    def body():
        with client as c:
            c.set(class_id, obis_code, attr, value)
        if kw["as_json"]:
            _emit_json({"class": class_id, "obis": obis_code, "attribute": attr, "value": value.hex(),
                        "result": "success"})
        else:
            click.echo("set IC %d %s.%d: success" % (class_id, obis_code, attr))

    _run(body)


@meterctl.command(context_settings=CONTEXT)
@click.argument("obis_code", metavar="OBIS", callback=_obis_arg)
@click.argument("method", metavar="METHOD", type=click.IntRange(1, 255))
@click.option("--class", "class_id", type=click.IntRange(0, 0xFFFF), default=None, metavar="IC",
              help="Interface class (guessed for well-known OBIS codes).")
@click.option("--param", "param", default=None, callback=_typed_arg, metavar="TYPE:VALUE",
              help="Method parameter (most methods take integer:0); omitted = no parameter.")
@link_options(write=True)
def action(obis_code, method, class_id, param, **kw):
    """ACTION: invoke a method (management client by default).

    \b
    Examples:
      meterctl action 0.0.96.3.10.255 1 --class 70 --param integer:0 -p /dev/pts/5 --password 12345678
      meterctl action 0.0.19.10.0.255 1 --class 112 --param double-long:50000 -p /dev/pts/5 --password 12345678
    """
    class_id = _class_for(obis_code, class_id)
    client = _make_client(kw, write=True)

    def body():
        with client as c:
            result, data = c.action(class_id, obis_code, method, param)
        if kw["as_json"]:
            out = {"class": class_id, "obis": obis_code, "method": method, "result": "success"}
            if data is not None:
                out["data"] = fmt.to_jsonable(data)
            _emit_json(out)
        else:
            click.echo("action IC %d %s method %d: success" % (class_id, obis_code, method))
            if data is not None:
                click.echo(fmt.describe(data))

    _run(body)


# --------------------------------------------------------------------------- emulate

@meterctl.command(context_settings=CONTEXT)
@click.option("--load", "load_w", type=click.IntRange(0, 100000), default=0, show_default=True,
              metavar="WATTS", help="Load the emulated metering module reports.")
@click.option("--heap", default="190k", show_default=True,
              help="MicroPython heap (-X heapsize) of the emulated board (190k = RP2040).")
@click.option("--state", "state_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Keep the meter's state (config, credit) in DIR (default: a temporary directory).")
@click.option("--warp", type=click.IntRange(0, 86400 * 30), default=0, show_default=True,
              metavar="SECONDS", help="Advance the emulated clock and metering module by SECONDS every real "
                                      "second, printing credit each tick (0 = real time). Energy is metered "
                                      "per tick, so a large warp may overshoot zero credit by one tick.")
def emulate(load_w, heap, state_dir, warp):
    """Run an emulated meter (the real firmware on the MicroPython unix port) until Ctrl-C.

    Prints the serial port to use with the other commands. The load is applied while the
    meter's relay is closed (an open relay carries no load).

    \b
    Examples:
      meterctl emulate --load 2000
      meterctl emulate --load 3000 --warp 600 --state ./meter-state   # 10 simulated min per second
      # in another terminal:
      meterctl read --port /dev/pts/5
    """
    _run(lambda: _emulate(load_w, heap, state_dir, warp))


def _emulate(load_w, heap, state_dir, warp):
    try:
        import hil as rigmod
    except ImportError as e:
        raise DlmsError("the emulator (hil.rig) is not available: %s" % e)
    import contextlib
    import tempfile

    with contextlib.ExitStack() as stack:
        if state_dir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="meterctl-emulate-"))
        else:
            try:
                os.makedirs(state_dir, exist_ok=True)
            except OSError as e:
                raise click.UsageError("--state %s: %s" % (state_dir, e.strerror or e))
            workdir = os.path.abspath(state_dir)
        click.echo("Starting the emulated meter (MicroPython unix port, heap %s)..." % heap)
        from hil import identity
        try:
            # the load is wired through the relay: while it is open the metering module reads 0 W.
            # Without --warp the meter's RTC runs by itself (a clock set over DLMS sticks); with
            # --warp the emulator owns the clock and moves it on every tick.
            rig = rigmod.EmulatedRig(workdir, heap=heap, clock_epoch=int(time.time()),
                                     relay_gates_load=True, clock_mode="frozen" if warp else "running",
                                     config={"sts": identity.sts_config()}, start=False)
            stack.callback(rig.stop)
            identity.install_tables(rig.state_dir)
            rig.start()
        except Exception as e:
            raise DlmsError("could not start the emulated meter: %s" % _rig_error_text(e))
        rig.set_load(load_w)
        click.echo("DLMS serial port: %s" % rig.port)
        click.echo("State directory:  %s" % os.path.join(workdir, "state"))
        click.echo("Load: %d W; clock: %s" % (
            load_w, "+%d s per second" % warp if warp else "real time"))
        click.echo("Try:  meterctl read --port %s" % rig.port)
        click.echo("      meterctl credit add --port %s --amount 100 --password %s" % (
            rig.port, rig.config.get("passwords", {}).get("1", "<management password>")))
        click.echo("      meterctl vend %s --json   # an STS token for this meter" % " ".join(identity.vend_args()))
        click.echo("      meterctl topup --port %s --password %s <20 digits>" % (
            rig.port, rig.config.get("passwords", {}).get("1", "<management password>")))
        click.echo("Stop with Ctrl-C.")
        last = None
        try:
            while True:
                time.sleep(1.0)
                try:
                    if warp:
                        t = rig.advance(warp)
                    else:
                        rig.pzem.advance(1)          # one real second of load
                        t = rig.meter
                except rigmod.RigError as e:
                    raise DlmsError("emulated meter failed: %s" % _rig_error_text(e))
                if warp and t is not None:
                    click.echo(_telemetry_line(t))
                elif t is not None and last is not None and (
                        bool(t.relay) != bool(last.relay) or t.credit_paise > last.credit_paise):
                    click.echo(_telemetry_line(t))   # relay switched or credit topped up
                last = t
        except KeyboardInterrupt:
            click.echo("\nStopping the emulated meter.")


def _rig_error_text(e):
    """First line of a rig error plus the firmware's last log line (its exception), if any."""
    text = str(e)
    first = _first_line(e)
    marker = "--- firmware log (tail) ---"
    if marker in text:
        tail = [ln.strip() for ln in text.split(marker, 1)[1].splitlines() if ln.strip()]
        if tail and not tail[-1].startswith("---"):
            return "%s (firmware: %s)" % (first, tail[-1])
    return first


def _first_line(e):
    lines = str(e).strip().splitlines()
    return lines[0] if lines else e.__class__.__name__


def _telemetry_line(t):
    """One status line from the rig's Telemetry(epoch, wh, credit_paise, relay)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t.epoch))
    return "%s UTC  energy %s  credit %s  relay %s" % (
        stamp, fmt.kwh(t.wh), fmt.rupees(t.credit_paise), "closed" if t.relay else "OPEN")


# --------------------------------------------------------------------------- other engineers' commands

# (module, command names) other engineers' modules contribute; a missing or broken module must not
# take the whole CLI down.
OPTIONAL_COMMANDS = (
    ("host_tools.cmd_vend", ("vend", "token")),
    ("host_tools.cmd_topup", ("topup",)),
    ("host_tools.cmd_dlms", ("objects", "events", "decode")),
    ("host_tools.cmd_config", ("config",)),
    ("host_tools.cmd_flash", ("flash", "provision")),
)


def _register_optional():
    import importlib

    for modname, names in OPTIONAL_COMMANDS:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name != modname:
                click.echo("meterctl: warning: %s unavailable: %s" % (modname, e), err=True)
            continue
        except Exception as e:  # pragma: no cover - defensive
            click.echo("meterctl: warning: %s unavailable: %s" % (modname, (str(e).splitlines() or [e])[0]),
                       err=True)
            continue
        for name in names:
            cmd = getattr(mod, name, None)
            if cmd is None:
                cmd = getattr(mod, name + "_cmd", None)
            if isinstance(cmd, click.Command):
                meterctl.add_command(cmd, name)


_register_optional()


def main(argv=None):
    """Console-script entry point (``meterctl``)."""
    return meterctl.main(args=argv, prog_name="meterctl")


if __name__ == "__main__":
    main()
