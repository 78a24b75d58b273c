"""Plumbing every ``meterctl`` command shares: link options, the DLMS client factory, errors
as one line + exit code, JSON output, the rich console, argument converters.

Exit codes (``EXIT_CODES_HELP``, README "Exit codes"): 0 ok / applied; 1 the meter refused or
answered something wrong (access denied, object undefined, association rejected, protocol error),
or a change was checked and found not applied; 2 usage error (also a port that cannot be opened,
a port in use by another command, a refused retry, ``NotSent``); 3 no answer from the meter (link timeout;
for a change: before anything was sent); 4 a change's outcome is unknown (the answer was lost
and the meter could not be reached to check); 130 Ctrl-C before anything was sent. Errors are
one line on stderr, never a traceback.

Security (``--auth``): none (public client 16), LLS (``--password``) or HLS (``--auth hls``,
HLS-GMAC or mechanism 2 with ciphered APDUs; keys from ``--key-file`` or from the keystore by
``--meter SERIAL``; our invocation counter kept per key set in the state directory,
``host_tools.keystore.Counter``).

Default client (``default_client``; every --help states it): without --client a command that
changes the meter talks to the management client 1; a read command to the public client 16
without a secret, to the meter reader 32 with --password (LLS) and to the management client 1
with HLS keys (--auth hls, --key-file, --meter). A secret given to the public client 16 is a
usage error, never silently dropped.

Every command holds its port exclusively (``host_tools.portlock`` + the client's exclusive open);
``run_change`` runs a command that changes the meter through ``host_tools.outcome.perform``.
"""

import json
import sys
import time

import click

from host_tools import format as fmt
from host_tools import keystore as ks
from host_tools import portlock
from host_tools.client import AssociationRejected, DlmsClient, DlmsError, LinkTimeout, PortError, \
    PortInUse
from host_tools.outcome import APPLIED, NOT_APPLIED, SigintFlag, perform, report
from host_tools.recharges import RetryRefused

EXIT_METER = 1
EXIT_USAGE = 2
EXIT_NO_ANSWER = 3
EXIT_UNKNOWN = 4
EXIT_INTERRUPTED = 130
PROCESS = {"owned": False}   # set by the entry point (__main__): the process ends with the command

EXIT_CODES_HELP = (
    "\b\nExit codes:\n"
    "  0    ok; a change was applied (also when its answer was lost and a check found it)\n"
    "  1    the meter refused, or a change was checked and found not applied (safe to retry)\n"
    "  2    usage error, port unusable or in use by another command, retry refused (--force)\n"
    "  3    no answer from the meter (a change: nothing was sent)\n"
    "  4    a change's outcome is unknown: the meter could not be reached to check (the\n"
    "       message names the command that tells)\n"
    "  130  Ctrl-C before anything was sent (after sending, the outcome is checked and reported)\n"
    "--json: {\"outcome\": \"applied\" | \"not applied\" | \"unknown\", ...} (README \"Exit codes\"),\n"
    "or {\"outcome\": \"not sent\", \"reason\": ...} when it stopped before sending (exit 1-3).")

PUBLIC_CLIENT = 16
MANAGEMENT_CLIENT = 1
READER_CLIENT = 32
READ_CLIENT_HELP = ("Default 16. With a secret and no --client: 32 (reader) with --password, 1 "
                    "(management) with --auth hls.")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def fail(message, code):
    """Print ``meterctl: error: <message>`` on stderr and exit with ``code``."""
    click.echo("meterctl: error: %s" % message, err=True)
    sys.exit(code)


class NotSent(Exception):
    """A change's own refusal after reading the meter, before sending (e.g. an amount in the wrong
    credit unit): one line (``str()``), exit 2, ``{"outcome": "not sent"}`` with --json."""


READ_ONLY = "interrupted: nothing was changed on the meter (this command only reads)"


def run(fn, interrupted=READ_ONLY):
    """Run a command body ``fn()``, turning expected failures into one line + exit code:
    LinkTimeout 3, PortError 2, other DlmsError 1, Ctrl-C 130 (the line ``interrupted``: what
    happened, after ``meterctl: error:``)."""
    try:
        return fn()
    except LinkTimeout as e:
        fail(str(e), EXIT_NO_ANSWER)
    except (PortError, portlock.PortInUse) as e:   # no such port, no permission, in use
        fail(str(e), EXIT_USAGE)
    except DlmsError as e:
        fail(str(e), EXIT_METER)
    except KeyboardInterrupt:
        fail(interrupted, EXIT_INTERRUPTED)


def rejection_text(e, sap, hls):
    """One line for an AARE rejection ``e`` (AssociationRejected) of client ``sap`` that says
    what to do; ``hls``: we asked with HLS keys. None: ``str(e)`` says it already."""
    if e.diagnostic == 13 and e.result == 2:
        return ("association rejected (transient): this client (%d) is locked out after failed "
                "logins; retry in a little while: the meter does not say how long (config lockout: "
                "by default 10 s after the 3rd failure, doubling with each further one up to 1 h)" % sap)
    if e.diagnostic == 13:
        return ("association rejected (permanent): authentication-failure: wrong %s for client %d"
                % ("keys" if hls else "password", sap))
    if e.diagnostic in (2, 11) and not hls and sap != PUBLIC_CLIENT:
        return ("%s: client %d needs HLS here (ciphered context): add --auth hls --key-file FILE "
                "or --meter SERIAL" % (e, sap))
    return None


class Trace:
    """--trace: hex dump of every HDLC frame on stderr with a relative timestamp (seconds);
    on a ciphered association also every plaintext APDU (``apdu``), marked ``#`` so that
    ``meterctl decode`` skips those lines."""

    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self, direction, data):
        arrow = "->" if direction == "tx" else "<-"
        click.echo("%8.3f %s %s %s" % (time.monotonic() - self.t0, direction.upper(), arrow,
                                       fmt.hexs(data)), err=True)

    def apdu(self, direction, data):
        click.echo("# %6.3f %s plaintext APDU: %s" % (time.monotonic() - self.t0, direction.upper(),
                                                      fmt.hexs(data)), err=True)


def link_options(write, client_help=None, port_required=True):
    """Decorator: the options of every command that talks to a meter. ``write`` commands default
    to the management client 1 and need a secret; read commands as ``default_client`` says.
    ``client_help`` replaces the --client default's sentence; ``port_required`` False: the
    command checks --port itself (it has a way without a meter)."""
    client_help = client_help or ("Default 1." if write else READ_CLIENT_HELP)
    opts = [
        click.option("--port", "-p", envvar="METERCTL_PORT", required=port_required, metavar="PATH",
                     help="Serial port of the meter (/dev/ttyUSB0, /dev/pts/N). Env: METERCTL_PORT."),
        click.option("--baud", type=click.IntRange(300, 921600), default=9600, show_default=True,
                     help="Baud rate (8N1)."),
        click.option("--client", "client_sap", type=click.IntRange(0, 127), default=None, metavar="SAP",
                     help="Client SAP: 16 public (no security), 1 management, 32 reader, 48 "
                          "settings. " + client_help),
        click.option("--password", envvar="METERCTL_PASSWORD", default=None, metavar="TEXT",
                     help="LLS password (clients other than 16; the emulator's client 1 and 48 need "
                     "--auth hls). Env: METERCTL_PASSWORD. Given on the command line it wins over "
                     "METERCTL_KEY_FILE/METERCTL_METER (LLS; --key-file/--meter given too: HLS)."),
        click.option("--auth", type=click.Choice(["none", "lls", "hls"]), envvar="METERCTL_AUTH",
                     default=None, help="Authentication: none (client 16), lls (--password) or hls "
                     "(HLS + ciphered APDUs; keys from --key-file or --meter). Default: hls with "
                     "--key-file/--meter, lls with --password. Env: METERCTL_AUTH."),
        click.option("--key-file", envvar="METERCTL_KEY_FILE", default=None, metavar="FILE",
                     type=click.Path(dir_okay=False),
                     help="JSON with the meter's DLMS keys (ek, ak, client_title, [hls, mech, kek]) "
                          "for --auth hls. Env: METERCTL_KEY_FILE."),
        click.option("--meter", "meter_serial", envvar="METERCTL_METER", default=None, metavar="SERIAL",
                     help="Meter serial: its keys come from the keystore (--auth hls). Env: METERCTL_METER."),
        click.option("--keystore", envvar="METERCTL_KEYSTORE", default=None, metavar="FILE",
                     help="Keystore for --meter (default ~/.config/meterctl/meters.keystore)."),
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


class LockedClient(DlmsClient):
    """A DlmsClient that holds the meterctl port lock (naming this command) while open."""

    holder = "meterctl"
    port_lock = None

    def open(self):
        """Take the port lock, then open the port exclusively. Raises PortInUse, PortError."""
        if self.port_lock is None:
            try:
                self.port_lock = portlock.acquire(self.port, self.holder)
            except portlock.PortInUse as e:
                raise PortInUse(e.port, e.holder)
        try:
            DlmsClient.open(self)
        except BaseException:
            self.close()
            raise

    def connect(self):
        """DlmsClient.connect; an AARE rejection says what to do (``rejection_text``)."""
        try:
            DlmsClient.connect(self)
        except AssociationRejected as e:
            text = rejection_text(e, self.client_sap, self.hls is not None)
            if text is None:
                raise
            raise AssociationRejected(e.diagnostic, e.result, text) from None

    def close(self):
        """Close the port and drop the lock (idempotent)."""
        DlmsClient.close(self)
        if self.port_lock is not None:
            self.port_lock.release()
            self.port_lock = None


def command_text():
    """This command as the lock file names it: pid's command path, e.g. "meterctl credit add"."""
    ctx = click.get_current_context(silent=True)
    return ctx.command_path if ctx is not None else "meterctl"


def _from_env(name):
    """True when option ``name`` of the running command took its value from the environment."""
    ctx = click.get_current_context(silent=True)
    try:
        return ctx is not None and ctx.get_parameter_source(name) == click.core.ParameterSource.ENVIRONMENT
    except (AttributeError, KeyError):
        return False


def auth_mode(kw):
    """"none", "lls" or "hls": ``--auth``, else hls with --key-file/--meter, lls with --password.
    An explicit --password (command line) wins over keys from the environment (METERCTL_KEY_FILE,
    METERCTL_METER): those are dropped from ``kw``; keys given on the command line stay HLS."""
    if kw.get("auth"):
        return kw["auth"]
    if kw.get("password") and not _from_env("password"):
        for name in ("key_file", "meter_serial"):
            if kw.get(name) and _from_env(name):
                kw[name] = None
    if kw.get("key_file") or kw.get("meter_serial"):
        return "hls"
    return "lls" if kw.get("password") else "none"


def has_secret(kw):
    """True when the options authenticate (an LLS password or HLS keys)."""
    return auth_mode(kw) != "none"


def load_keys(kw):
    """The ``HlsKeys`` of --key-file or of --meter's keystore record. Raises click.UsageError."""
    if not (kw.get("key_file") or kw.get("meter_serial")):
        raise click.UsageError("--auth hls needs the meter's keys: --key-file FILE or --meter "
                               "SERIAL (from the keystore)")
    try:
        return ks.load_hls_keys(kw.get("key_file"), kw.get("meter_serial"), kw.get("keystore"))
    except ks.KeystoreError as e:
        raise click.UsageError(str(e))


def default_client(kw, write):
    """The client SAP when --client is not given: 1 for a change; for a read 1 with HLS, the
    reader 32 with --password, else the public 16."""
    auth = auth_mode(kw)
    if write or auth == "hls":
        return MANAGEMENT_CLIENT
    return READER_CLIENT if auth == "lls" else PUBLIC_CLIENT


def make_client(kw, write, cancel=None, keys=None):
    """A DlmsClient (not yet connected; holds the port lock while open) from the link options
    ``kw``; ``cancel`` as DlmsClient's; ``keys`` (HlsKeys) instead of the options' keys. Raises
    click.UsageError for a missing password or keys, or a server address that needs --physical."""
    auth = auth_mode(kw)
    sap = kw.get("client_sap")
    if sap is None:
        sap = default_client(kw, write)
    if sap == PUBLIC_CLIENT and auth != "none" and keys is None:
        raise click.UsageError("client 16 is public (no security): drop --password/--auth/--key-file/"
                               "--meter, or name the client they are for (--client 32 or 1)")
    password = kw.get("password") if auth == "lls" else None
    if keys is None and auth == "hls" and sap != PUBLIC_CLIENT:
        keys = load_keys(kw)
    if sap != PUBLIC_CLIENT and write and not (password or keys):
        raise click.UsageError(
            "client %d needs the LLS password or HLS keys: give --password (METERCTL_PASSWORD), or "
            "--auth hls with --key-file/--meter" % sap)
    if kw.get("physical") is None and kw["server"] > 0x7F:
        raise click.UsageError("server address %d needs --physical (4-byte HDLC address); "
                               "1-byte addresses go up to 127" % kw["server"])
    trace = Trace() if kw.get("trace") else None
    c = LockedClient(kw["port"], baud=kw["baud"], client_sap=sap, server_logical=kw["server"],
                     server_physical=kw.get("physical"), password=password, timeout=kw["timeout"],
                     max_info=kw["max_info"], max_pdu=kw.get("max_pdu", 0xFFFF), trace=trace,
                     cancel=cancel, hls=keys, counter=ks.Counter(keys.ek, keys.ak) if keys else None,
                     trace_apdu=trace.apdu if trace and keys else None)
    c.holder = command_text()
    return c


def run_change(kw, change, show, hint=None, refused=None, finish=None, fields=None):
    """Run a command that changes the meter: hold its port, apply ``change`` with
    ``host_tools.outcome.perform`` (Ctrl-C stops an exchange at a known point and is checked,
    never raised elsewhere), then report and exit by the outcome:

    - applied: ``show(out)`` prints it (exit 0; not called with --json); a note on stderr when
      it took a check;
    - not applied: the meter's refusal (``refused(out)`` may word it) or the check's finding,
      exit 1;
    - unknown: what happened and ``hint(out)`` (the command that tells), exit 4;
    - stopped before sending: exit 2 (port in use, refused retry, a usage error such as an
      unreadable key file), 3 (no answer), 130 (Ctrl-C; with ``kw["raise_interrupt"]``
      KeyboardInterrupt is raised instead: nothing was sent).

    ``finish(out)`` (optional) runs first with the outcome (the top-up record). With --json one
    object is printed in every case (``host_tools.outcome.report``: the outcome's keys and the
    command's ``fields(out)``; ``fields(None)`` when not sent); with ``kw["json_sink"]`` (a
    callable) these objects go there instead of stdout."""
    try:
        make_client(kw, True)                # usage errors before the port is touched
    except click.UsageError as e:
        json_not_sent(kw, e.format_message(), fields)
        raise
    with SigintFlag(ignore_after=PROCESS["owned"]) as flag:
        out = _perform(kw, change, flag, fields)
        if finish is not None:
            finish(out)
        _report(kw, change, out, show, hint, refused, fields)


def json_not_sent(kw, text, fields=None):
    """With --json, print the "not sent" object of a change stopped before sending (``text`` the
    reason; ``fields`` the command's keys, ``report``)."""
    if kw.get("as_json"):
        (kw.get("json_sink") or emit_json)(report(None, fields, text))


def refuse(kw, text, code=EXIT_USAGE, fields=None):
    """A change refused on the host before sending: its "not sent" object with --json, then the
    one error line and exit ``code`` (2: bad usage)."""
    json_not_sent(kw, text, fields)
    fail(text, code)


def _perform(kw, change, flag, fields):
    def doubt(text):
        flag.patient()
        click.echo("meterctl: %s: %s; checking on the meter whether it was applied (Ctrl-C "
                   "twice to stop checking)" % (change.what, text), err=True)

    try:
        with portlock.hold(kw["port"], command_text()):
            return perform(lambda: make_client(kw, True, cancel=flag.take), change, on_doubt=doubt)
    except (RetryRefused, NotSent, portlock.PortInUse) as e:
        refuse(kw, str(e), EXIT_USAGE, fields)
    except LinkTimeout as e:
        refuse(kw, "%s (no change was sent)" % e, EXIT_NO_ANSWER, fields)
    except PortError as e:
        refuse(kw, str(e), EXIT_USAGE, fields)
    except DlmsError as e:               # the association or the evidence read failed
        refuse(kw, "%s (no change was sent)" % e, EXIT_METER, fields)
    except KeyboardInterrupt:
        if kw.get("raise_interrupt"):    # the caller says what else was sent (topup's several tokens)
            raise
        refuse(kw, "interrupted: nothing was sent", EXIT_INTERRUPTED, fields)


def _lost(change, out):
    """How the answer went missing: "interrupted after sending: <what>" for a Ctrl-C."""
    if str(out.doubt or "").startswith("interrupted"):
        return "interrupted after sending: %s" % change.what
    return "%s: the answer was lost (%s)" % (change.what, out.doubt)


def _report(kw, change, out, show, hint, refused, fields):
    if kw.get("as_json"):
        (kw.get("json_sink") or emit_json)(report(out, fields))
    if out.state == APPLIED:
        if out.checked:
            click.echo("meterctl: %s; checked on the meter: applied" % _lost(change, out), err=True)
        if not kw.get("as_json"):
            show(out)
        return
    if out.state == NOT_APPLIED:
        text = refused(out) if refused else None
        if text is None and not out.checked:
            text = refusal_text(out.refused) if out.refused is not None else out.reason
        fail(text or "%s; checked on the meter: not applied, no trace of it (safe to retry)"
             % _lost(change, out), EXIT_METER)
    tell = hint(out) if hint else "meterctl read --port %s" % kw["port"]
    fail("%s; outcome unknown: %s; check with: %s" % (_lost(change, out), out.reason, tell), EXIT_UNKNOWN)


def refusal_name(out):
    """The name of the meter's refusal of a change ("temporary-failure"), or None (``out`` None,
    not refused)."""
    from protocol import apdu_client

    dar = getattr(out.refused if out is not None else None, "dar", None)
    return None if dar is None else apdu_client.DAR_NAMES.get(dar, "result %d" % dar)


def refusal_text(e):
    """One line for the meter's refusal ``e`` (DataAccessError) of a change: a temporary-failure
    (the meter had no room or was busy) says it was not applied and to retry."""
    if getattr(e, "dar", None) == 2:
        return "%s: not applied (the meter had no room or was busy): retry in a moment" % e
    return str(e)


def emit_json(obj):
    """Print ``obj`` as indented JSON (UTF-8 kept) on stdout."""
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def console(stderr=False):
    """A rich Console for tables (no highlighting, soft wrap); on stderr with ``stderr``. Not a
    terminal (piped, a file): no 80-column limit (tables keep whole clocks and headers) unless
    COLUMNS says one."""
    import os

    from rich.console import Console

    c = Console(highlight=False, soft_wrap=True, stderr=stderr)
    if c.is_terminal or os.environ.get("COLUMNS"):
        return c
    return Console(highlight=False, soft_wrap=True, stderr=stderr, width=1000)


def relay_text(state):
    """Relay output state (bool/int/None) -> words."""
    if state is None:
        return "-"
    return "connected (supply on)" if state else "disconnected (supply off)"
