"""`make demo`: the main job on an emulated meter, end to end, in well under a minute.

The real firmware runs on the MicroPython unix port (heap capped at the RP2040's 190 KB) behind a
pty "UART"; a pymodbus RTU server plays the PZEM-004T metering module. The bench technician's
tool, ``meterctl``, tops the meter up over that serial port; the emulated clock and the metering
module are advanced an hour at a time until the credit runs out and the relay opens; a second
top-up recloses it.
"""
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

from rich.console import Console

from hil import identity
from hil.emulated import EmulatedRig
from host_tools.firmware_src import ROOT

EPOCH = 1767225600  # the emulated RTC at first boot: 2026-01-01 00:00 UTC

console = Console(highlight=False)
# meterctl as the console script runs it, from this checkout (python -m puts the cwd first)
METERCTL = [sys.executable, "-m", "host_tools.meterctl"]


def _run(args):
    return subprocess.run(METERCTL + list(args), capture_output=True, text=True, timeout=60,
                          cwd=str(ROOT))


def meterctl(*args):
    """Show and run ``meterctl args``; its stdout. Exits the demo if meterctl fails."""
    shown = ["meterctl", *args]
    console.print("[bold cyan]$ %s[/]" % " ".join(shlex.quote(a) for a in shown))
    r = _run(args)
    out = (r.stdout + r.stderr).rstrip()
    if out:
        console.print(out, markup=False)
    if r.returncode:
        raise SystemExit("demo: meterctl failed (exit %d)" % r.returncode)
    return r.stdout


def rupees(paise):
    """Paise (int) -> "₹12.34" text (sign first)."""
    sign = "-" if paise < 0 else ""
    return "%s₹%d.%02d" % (sign, abs(paise) // 100, abs(paise) % 100)


def main():
    """``make demo``: the emulated meter from token top-up to relay open and back (see above)."""
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="meter-demo-")
    work = pathlib.Path(tmp.name)
    console.rule("[bold]Prepaid meter demo: MicroPython firmware on an emulated board")
    config = {"tariff_paise_per_kwh": 650, "sts": identity.sts_config(),
              "security": identity.security_config()}
    keys = str(identity.write_key_file(work / "keys.json"))   # HLS-GMAC: the test identity
    os.environ.setdefault("METERCTL_STATE_DIR", str(work / "state-meterctl"))
    with EmulatedRig(work, heap="190k", config=config, clock_epoch=EPOCH, start=False) as rig:
        identity.install_tables(rig.state_dir)
        rig.start()
        port = rig.port
        console.print("Meter UART (DLMS/HDLC, 9600 8N1) on [bold]%s[/]; PZEM-004T emulator on Modbus RTU; "
                      "tariff ₹6.50/kWh; firmware log %s" % (port, rig.log_path))
        console.print("Relay at boot with zero credit: [bold]%s[/]" % ("closed" if rig.relay_closed() else "OPEN"))
        meterctl("read", "--port", port)
        console.rule("Vend a 4.0 kWh STS token for this meter (DKGA02 key, EA07 sample tables)")
        out = meterctl("vend", *identity.vend_args("4.0"), "--issued", "2026-01-01T00:00", "--json")
        token = json.loads(out)["token"]
        console.rule("Enter it over the serial port (IC 115 token gateway)")
        meterctl("topup", "--port", port, "--auth", "hls", "--key-file", keys,
                 *[token[i:i + 4] for i in range(0, 20, 4)])
        rig.wait_relay(True)
        console.print("Relay: [bold green]closed[/]")
        console.rule("Load 1.5 kW; the emulated clock and metering module advance 15 min per step")
        rig.set_load(1500)
        step = 0
        while rig.relay_closed() and step < 80:
            t = rig.advance(900)
            step += 1
            console.print("  %s  import %6d Wh   credit %9s   relay %s" % (
                _iso(t.epoch), t.wh, rupees(t.credit), "closed" if t.relay else "[bold red]OPEN[/]"))
            if not t.relay:
                break
        rig.wait_relay(False)
        console.print("[bold red]Credit exhausted: the meter opened its relay.[/]")
        meterctl("read", "--port", port)
        console.rule("The same token again is refused (STS: USED)")
        r = _run(["topup", "--port", port, "--auth", "hls", "--key-file", keys, token])
        console.print("[bold cyan]$ meterctl topup --port %s --auth hls --key-file %s %s[/]" % (port, keys, token))
        console.print((r.stderr or r.stdout).strip() + "   (exit code %d)" % r.returncode, markup=False)
        if r.returncode != 1:
            raise SystemExit("demo: a re-entered token was not refused")
        console.rule("Top up ₹10.00 (IC 112 update_amount): the relay recloses")
        meterctl("credit", "add", "--port", port, "--amount", "10.00", "--auth", "hls", "--key-file", keys)
        rig.wait_relay(True)
        t = rig.advance(60)
        console.print("  %s  import %6d Wh   credit %9s   relay %s" % (
            _iso(t.epoch), t.wh, rupees(t.credit), "closed" if t.relay else "OPEN"))
        meterctl("read", "--port", port, "--json")
    tmp.cleanup()
    console.rule("[bold green]demo finished in %.1f s" % (time.monotonic() - t0))


def _iso(epoch):
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


if __name__ == "__main__":
    main()
