"""Plumbing every ``meterctl`` command shares: link options, the DLMS client factory, errors
as one line + exit code, JSON output, the rich console, argument converters.

Exit codes: 0 ok; 1 the meter refused or answered something wrong (access denied, object
undefined, association rejected, protocol error); 2 usage error (also a port that cannot be
opened); 3 no answer from the meter (link timeout). Errors are one line on stderr, never a
traceback.
"""

import json
import sys
import time

import click

from host_tools import format as fmt
from host_tools.client import DlmsClient, DlmsError, LinkTimeout, PortError

EXIT_METER = 1
EXIT_USAGE = 2
EXIT_NO_ANSWER = 3

PUBLIC_CLIENT = 16
MANAGEMENT_CLIENT = 1

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def fail(message, code):
    """Print ``meterctl: error: <message>`` on stderr and exit with ``code``."""
    click.echo("meterctl: error: %s" % message, err=True)
    sys.exit(code)


def run(fn):
    """Run a command body ``fn()``, turning expected failures into one line + exit code:
    LinkTimeout 3, PortError 2, other DlmsError 1, Ctrl-C 130."""
    try:
        return fn()
    except LinkTimeout as e:
        fail(str(e), EXIT_NO_ANSWER)
    except PortError as e:                  # no such port, no permission: fix the command line
        fail(str(e), EXIT_USAGE)
    except DlmsError as e:
        fail(str(e), EXIT_METER)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


class Trace:
    """--trace: hex dump of every HDLC frame on stderr with a relative timestamp (seconds)."""

    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self, direction, data):
        arrow = "->" if direction == "tx" else "<-"
        click.echo("%8.3f %s %s %s" % (time.monotonic() - self.t0, direction.upper(), arrow,
                                       fmt.hexs(data)), err=True)


def link_options(write):
    """Decorator: the options of every command that talks to a meter. ``write`` commands default
    to the management client 1 (LLS) and need a password; read commands to public client 16."""
    default_client = MANAGEMENT_CLIENT if write else PUBLIC_CLIENT
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

    def deco(f):
        for o in reversed(opts):
            f = o(f)
        return f

    return deco


def make_client(kw, write):
    """A DlmsClient (not yet connected) from the link options ``kw``. Raises click.UsageError
    for a missing password or a server address that needs --physical."""
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
                      max_info=kw["max_info"], max_pdu=kw.get("max_pdu", 0xFFFF),
                      trace=Trace() if kw.get("trace") else None)


def emit_json(obj):
    """Print ``obj`` as indented JSON (UTF-8 kept) on stdout."""
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def console(stderr=False):
    """A rich Console for tables (no highlighting, soft wrap); on stderr with ``stderr``."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, stderr=stderr)


def relay_text(state):
    """Relay output state (bool/int/None) -> words."""
    if state is None:
        return "-"
    return "connected (supply on)" if state else "disconnected (supply off)"
