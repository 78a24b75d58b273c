"""``meterctl flash`` and ``meterctl provision``: put the firmware and a meter's identity on a board.

The work is done by ``host_tools.flash``; this module parses options and prints. For
``--board unix`` it hands the flash library the emulated board (``meterctl.unixboard``) as the
target to connect to and boot.
Exit codes as the rest of meterctl: 0 ok, 1 the board refused or failed a check, 2 usage (also a
port that cannot be opened, and a --settings file whose tariff/policy the firmware would refuse),
3 no answer (no REPL on the port, or the meter does not answer DLMS after the reset), 130 Ctrl-C.
"""

import json
import os

import click

from host_tools.firmware_src import firmware_module
from host_tools.meterctl.common import CONTEXT, EXIT_METER, EXIT_NO_ANSWER, EXIT_USAGE, fail


def _common(f):
    opts = [
        click.option("--port", envvar="METERCTL_FLASH_PORT", required=True, metavar="PATH",
                     help="The board's REPL port (/dev/ttyUSB0, /dev/ttyACM0); for --board unix a "
                          "directory: the emulated board's flash. [env METERCTL_FLASH_PORT]"),
        click.option("--board", type=click.Choice(["esp32", "rp2040", "unix"]), required=True,
                     help="Board type (selects mpy-cross -march and the board module)."),
        click.option("--serial", "meter_serial", required=True, metavar="TEXT",
                     help="Meter serial number: the COSEM logical device name 0.0.42.0.0.255."),
        click.option("--keystore", metavar="FILE", envvar="METERCTL_KEYSTORE",
                     help="Keystore with per-meter passwords/keys (created if missing; default "
                          "~/.config/meterctl/meters.keystore). [env METERCTL_KEYSTORE]"),
        click.option("--drn", metavar="DIGITS", help="STS decoder reference number (default: the "
                                                     "serial's digits, 11 wide)."),
        click.option("--sgc", type=click.IntRange(0, 999999), help="STS supply group code."),
        click.option("--ti", type=click.IntRange(0, 99), help="STS tariff index."),
        click.option("--krn", type=click.IntRange(1, 15), help="STS key revision number."),
        click.option("--settings", "settings_file", type=click.Path(exists=True, dir_okay=False),
                     help="JSON object merged into config.json (tariff, pins, policy)."),
        click.option("--physical-address", type=click.IntRange(0x10, 0x3FFD), default=None, metavar="N",
                     help="HDLC physical address on an RS-485 bus (config.json physical_address; "
                          "the meter then answers only 2/4-byte addresses carrying N). "
                          "Default: none, a point-to-point port. docs/BENCH.md \"RS-485 bus\"."),
        click.option("--baud", type=int, default=115200, show_default=True,
                     help="REPL baud rate (USB CDC ignores it)."),
        click.option("--dlms-port", metavar="PATH",
                     help="Host port on the meter's DLMS UART, to confirm over DLMS after the reset."),
        click.option("--dlms-baud", type=int, default=9600, show_default=True),
        click.option("--heap", default="320k", show_default=True,
                     help="--board unix: MicroPython heap of the emulated board. The board runs the "
                          "flashed .mpy files from RAM on the 64-bit unix port, where every object is "
                          "twice an RP2040's: 320k here is about the RP2040's 190 KiB."),
        click.option("--connect-timeout", type=click.IntRange(1, 120), default=10, show_default=True,
                     help="Seconds to wait for the board's raw REPL."),
        click.option("--no-confirm", is_flag=True, help="Skip the DLMS check after the reset."),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _settings(path):
    if not path:
        return None
    try:
        with open(path) as fh:
            settings = json.load(fh)
    except (OSError, ValueError) as e:
        fail("cannot read --settings %s: %s" % (path, e), EXIT_USAGE)
    if not isinstance(settings, dict):
        fail("--settings must hold a JSON object", EXIT_USAGE)
    _check_settings(path, settings)
    return settings


def _check_settings(path, settings):
    """The tariff/policy part of --settings through the firmware's own rules, as `meterctl config
    check` does: a tariff the meter would refuse (and then bill at its default rate) stops here."""
    profile = firmware_module("meter.profile")
    ConfigError = firmware_module("meter.tariff").ConfigError
    part = {k: v for k, v in settings.items() if k in profile.PROFILE_KEYS}
    try:
        profile.check_profile(part)
    except ConfigError as e:
        fail("--settings %s refused: %s: %s" % (path, e.field, e.reason), EXIT_USAGE)


def _connect(kw):
    """The flash target for ``--board unix`` (the emulated board); None = a serial board."""
    if kw["board"] != "unix":
        return None
    from host_tools.meterctl import unixboard

    return lambda: unixboard.UnixTarget(kw["port"], heap=kw["heap"], timeout=kw["connect_timeout"])


def _run(kw, code, romfs="auto"):
    from rich.console import Console

    from host_tools import flash as F

    settings = _settings(kw.get("settings_file"))
    if kw.get("physical_address") is not None:
        settings = dict(settings or {}, physical_address=kw["physical_address"])
    console = Console(stderr=True)
    log = None if kw["as_json"] else (lambda text: console.print(text, highlight=False))
    try:
        report = F.flash(kw["port"], kw["board"], kw["meter_serial"], keystore=kw["keystore"],
                         drn=kw["drn"], sgc=kw["sgc"], ti=kw["ti"], krn=kw["krn"],
                         settings=settings, baud=kw["baud"], dlms_port=kw["dlms_port"],
                         dlms_baud=kw["dlms_baud"], romfs=romfs,
                         confirm=not kw["no_confirm"], console=None if kw["as_json"] else console,
                         log=log, code=code, connect_timeout=kw["connect_timeout"],
                         connect=_connect(kw))
    except F.FlashError as e:
        text = str(e)
        no_answer = text.startswith("no MicroPython raw REPL") or "does not answer DLMS" in text
        # no such port, no permission, a bad serial/SGC/keystore: usage
        unopenable = text.startswith("cannot open ") or e.usage
        if "no SGC" in text:                                # a missing option: usage
            unopenable = True
            if os.environ.get("METERCTL_VIA_MAKE"):
                text = text.replace("pass --sgc", "give SGC=... to make flash")
        fail(text, EXIT_NO_ANSWER if no_answer else EXIT_USAGE if unopenable else EXIT_METER)
    if kw["as_json"]:
        click.echo(json.dumps(report, indent=1, sort_keys=True, default=str))
        return
    for w in report["warnings"]:
        console.print("[yellow]warning:[/] " + w, highlight=False)
    d = report["dlms"]
    click.echo("%s %s on %s: %d copied, %d unchanged, %d verified%s" % (
        "flashed" if code else "provisioned", kw["meter_serial"], kw["port"],
        len(report["copied"]), len(report["unchanged"]), len(report["verified"]),
        "; DLMS ok (firmware %s)" % (d["firmware"] or "id not served") if d else ""))


@click.command("flash", context_settings=CONTEXT)
@_common
@click.option("--romfs", type=click.Choice(["auto", "yes", "no"]), default="auto", show_default=True,
              help="Deploy the code as a ROMFS image where the board has one.")
def flash(romfs, **kw):
    """Build, copy, provision, verify (sha256), reset and confirm over DLMS.

    Safe to repeat: only files whose sha256 differs on the board are copied (a corrupted file
    is found and re-copied); per-meter passwords and keys come from the keystore (generated and
    stored there on first use), never from the repository. With --board unix the board's
    directory is 0700 and its config.json (those secrets) 0600; on a real board config.json is
    on the board's own filesystem, readable by whoever has its USB/REPL port.

    \b
    Examples:
      meterctl flash --board esp32 --port /dev/ttyUSB0 --serial PPM0000042 --sgc 123456 \\
                     --dlms-port /dev/ttyUSB1
      meterctl flash --board unix --port ./meter-flash --serial PPM0000042 --sgc 123456
    """
    _run(kw, code=True, romfs=romfs)


@click.command("provision", context_settings=CONTEXT)
@_common
def provision(**kw):
    """Write only the per-meter config.json (identity, passwords, keys) to a flashed board.

    \b
    Example:
      meterctl provision --board rp2040 --port /dev/ttyACM0 --serial PPM0000043 --ti 2
    """
    _run(kw, code=False)
