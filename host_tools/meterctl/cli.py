"""The ``meterctl`` click group: every command registered here, explicitly, in help order.

Each command lives in its family's module and imports only ``common`` and the host library;
none imports this module back.
"""

import sys

import click

from host_tools.meterctl import attr, config, credit, dlms, emulate, events, flash, keys, profile, \
    read, relay, token, topup, vend
from host_tools.meterctl.common import CONTEXT


@click.group(context_settings=CONTEXT)
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


FLASH_INTERRUPTED = "interrupted: the board may be half written: run the same command again"


def main(argv=None):
    """Run meterctl on ``argv`` (default ``sys.argv[1:]``); exits with its exit code.

    Like click's standalone mode, except that Ctrl-C anywhere (also in commands that do not go
    through ``common.run``, e.g. ``flash``) is one line "interrupted: <what happened>" and exit code 130, not
    click's "Aborted!" and 1."""
    try:
        rv = meterctl.main(args=argv, prog_name="meterctl", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        words = sys.argv[1:] if argv is None else argv
        click.echo(FLASH_INTERRUPTED if words[:1] in (["flash"], ["provision"]) else
                   "interrupted: nothing was sent", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)
