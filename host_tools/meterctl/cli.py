"""The ``meterctl`` click group: every command registered here, explicitly, in help order.

Each command lives in its family's module and imports only ``common`` and the host library;
none imports this module back.
"""

import sys

import click

from host_tools.meterctl import attr, config, credit, dlms, emulate, events, flash, keys, profile, \
    read, relay, token, topup, vend
from host_tools.meterctl import common as COMMON
from host_tools.meterctl.common import CONTEXT


FLASH_INTERRUPTED = "interrupted: the board may be half written: run the same command again"


def _show_click_error(e):
    """A click error as this tool's errors are: a usage error is its usage hint (``Usage: ...``,
    ``Try '... -h' for help.``), then one ``meterctl: error:`` line, exit 2; any other
    ClickException one ``meterctl: error:`` line and its exit code (``token.InputError`` prints
    its own line)."""
    if type(e).show is not click.ClickException.show and not isinstance(e, click.UsageError):
        e.show()
        return e.exit_code
    if isinstance(e, click.UsageError) and e.ctx is not None:
        hint = ""
        if e.ctx.command.get_help_option(e.ctx) is not None:
            hint = "Try '%s %s' for help." % (e.ctx.command_path, e.ctx.help_option_names[0])
        click.echo("%s\n%s" % (e.ctx.get_usage(), hint) if hint else e.ctx.get_usage(), err=True)
    click.echo("meterctl: error: %s" % e.format_message(), err=True)
    return COMMON.EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code


class Meterctl(click.Group):
    """The group, run standalone (the console script, ``python -m``, click's CliRunner) with this
    tool's error format: Ctrl-C anywhere (also in commands that do not go through ``common.run``,
    e.g. ``flash``) is one line ``meterctl: error: interrupted: <what happened>`` and exit code
    130, not click's "Aborted!" and 1; a click usage error is its usage hint and one
    ``meterctl: error:`` line, exit 2, not click's ``Error:``."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """click's ``main``; with ``standalone_mode`` the errors as the class says, then exit."""
        if not standalone_mode:
            return click.Group.main(self, args, prog_name, complete_var, False, **extra)
        words = list(sys.argv[1:] if args is None else args)
        try:
            rv = click.Group.main(self, words, prog_name or "meterctl", complete_var, False, **extra)
        except (KeyboardInterrupt, click.exceptions.Abort):
            COMMON.fail(FLASH_INTERRUPTED if words[:1] in (["flash"], ["provision"]) else
                        "interrupted: nothing was sent", COMMON.EXIT_INTERRUPTED)
        except click.ClickException as e:
            sys.exit(_show_click_error(e))
        except BrokenPipeError:
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


@click.group(cls=Meterctl, context_settings=CONTEXT)
@click.version_option(package_name="prepaid-meter", prog_name="meterctl")
def meterctl():
    """Bench tool for prepaid electricity meters (DLMS/COSEM over HDLC on a serial port).

    \b
    Examples:
      meterctl emulate                                  # start an emulated meter, prints its port
      meterctl read --port /dev/pts/5                   # energy, credit, relay, clock
      meterctl credit add --port /dev/pts/5 --amount 500.00 --key-file ~/.local/state/meterctl/emulator-keys.json
      meterctl relay disconnect --port /dev/pts/5 --key-file ~/.local/state/meterctl/emulator-keys.json
      meterctl get 1.0.1.8.0.255 2 --class 3 --port /dev/pts/5

    \b
    Clients 1 and 48 use HLS (--key-file: emulate prints its file; a flashed meter: --meter
    SERIAL from the keystore); the reader 32 LLS (--password 00000000 on the emulator).
    Set METERCTL_PORT and METERCTL_KEY_FILE (or METERCTL_METER) to skip --port/--key-file.
    Exit codes: 0 ok/applied, 1 meter/protocol error or change not applied, 2 usage error or
    port in use, 3 no answer from the meter, 4 change outcome unknown, 130 Ctrl-C before
    sending (each changing command's --help explains them).
    """


COMMANDS = (
    read.read, credit.credit, relay.relay, attr.get, attr.set_cmd, attr.action, emulate.emulate,
    vend.vend, token.token, topup.topup, dlms.objects, events.events, dlms.decode, config.config,
    flash.flash, flash.provision, keys.keys, profile.profile, profile.bill,
)
for _cmd in COMMANDS:
    meterctl.add_command(_cmd)


def main(argv=None):
    """Run meterctl on ``argv`` (default ``sys.argv[1:]``); exits with its exit code (errors:
    ``Meterctl.main``)."""
    meterctl.main(args=argv, prog_name="meterctl")
