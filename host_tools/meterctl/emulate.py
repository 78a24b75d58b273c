"""``meterctl emulate``: the real firmware on the MicroPython unix port behind a pty, until Ctrl-C.

The emulator is ``hil`` (``hil.emulated.EmulatedRig`` with the test identity of ``hil.identity``);
this command layer is the only host code besides ``flash --board unix`` that uses it.
"""

import contextlib
import fcntl
import json
import os
import re
import select
import signal
import sys
import tempfile
import time

import click

from host_tools import creditunit
from host_tools import format as fmt
from host_tools import portlock
from host_tools.client import DlmsError
from host_tools.meterctl.common import CONTEXT, EXIT_USAGE, fail, run

KEY_FILE_NAME = "emulator-keys.json"


def key_file_path():
    """The well-known path of the emulator's test key file: ``<state dir>/emulator-keys.json``
    (``~/.local/state/meterctl/`` unless METERCTL_STATE_DIR / XDG_STATE_HOME say otherwise)."""
    return os.path.join(portlock.state_dir(), KEY_FILE_NAME)


def write_test_keys():
    """Write the test identity's key file at ``key_file_path()``; a file there holding other keys
    (a meter's rotated keys: ``meterctl keys rotate --key-file`` on it) is kept first as
    ``emulator-keys.json.kept-<time>``, and a note says so. Returns the kept copy's path or None."""
    from hil import identity

    path = key_file_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    kept = None
    try:
        with open(path) as f:
            theirs = json.load(f)
    except (OSError, ValueError):
        theirs = None
    if theirs is not None and any(theirs.get(k) != v for k, v in identity.keys().items() if k in ("ek", "ak", "kek")):
        kept = "%s.kept-%s" % (path, time.strftime("%Y%m%dT%H%M%S"))
        os.replace(path, kept)
        click.echo("meterctl: note: %s held other keys than the emulator's test keys (rotated with meterctl "
                   "keys rotate?): kept them as %s, wrote the test keys" % (path, kept), err=True)
    identity.write_key_file(path)
    return kept


def heap_size(ctx, param, value):
    """Click callback: a MicroPython heap size ("190k", "2M", "65536") or a usage error (exit 2);
    a size under 8k (bytes: the firmware cannot boot) asks whether k was meant."""
    text = str(value).strip()
    if not re.fullmatch(r"[1-9][0-9]*[kKmM]?", text):
        raise click.BadParameter("%r is not a heap size such as 190k, 2M or 65536" % value)
    if text.isdigit() and int(text) < 8192:
        raise click.BadParameter("%s is %s bytes, too small to boot the firmware: did you mean %sk?"
                                 % (text, text, text))
    return text


class Terminated(SystemExit):
    """SIGTERM: unwinds like Ctrl-C (the meter stopped, its temporary directory removed), exit 143."""

    def __init__(self):
        SystemExit.__init__(self, 128 + signal.SIGTERM)


def _on_sigterm(signum, frame):
    raise Terminated()


@click.command("emulate", context_settings=CONTEXT)
@click.option("--load", "load_w", type=click.IntRange(0, 100000), default=0, show_default=True,
              metavar="WATTS", help="Load the emulated metering module reports.")
@click.option("--heap", default="190k", show_default=True, callback=heap_size,
              help="MicroPython heap (-X heapsize) of the emulated board (190k = RP2040).")
@click.option("--micropython", "mp", type=click.Path(exists=True, dir_okay=False), default=None,
              envvar="METER_MICROPYTHON", metavar="PATH",
              help="MicroPython unix port to run the firmware on [default: the venv's]; e.g. the 32-bit "
                   "VM ../shared/micropython32/bin/micropython-32 (an ESP32's object sizes) with --heap 56k "
                   "(ESP32's heap, what the HIL tier runs at). "
                   "Env: METER_MICROPYTHON.")
@click.option("--state", "state_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Keep the meter's state (config, credit) in DIR (default: a temporary directory).")
@click.option("--warp", type=click.IntRange(0, 86400 * 30), default=0, show_default=True,
              metavar="SECONDS", help="Advance the emulated clock and metering module by SECONDS every real "
                                      "second, printing credit each tick (0 = real time). Energy is metered "
                                      "per tick, so a large warp may overshoot zero credit by one tick.")
@click.option("--meters", type=click.IntRange(1, 256), default=1, show_default=True, metavar="N",
              help="Run N emulated meters (serials PPM0000001...), one MicroPython process each; "
                   "prints one '<serial> <port>' line per meter (no --warp with N > 1).")
@click.option("--profiles", is_flag=True, default=False,
              help="Turn the IS 15959 profiles on (config \"profiles\": true: block load survey, daily, "
                   "billing, instantaneous, name plate; read with 'meterctl profile' / 'meterctl bill'). "
                   "With --state, also sets it in a kept config.json.")
def emulate(load_w, heap, mp, state_dir, warp, meters, profiles):
    """Run an emulated meter (the real firmware on the MicroPython unix port) until Ctrl-C.

    Prints the serial port to use with the other commands and the test key file it writes
    (clients 1 and 48 need HLS: --key-file ~/.local/state/meterctl/emulator-keys.json; the
    reader 32 takes --password 00000000). The load is applied while the
    meter's relay is closed (an open relay carries no load). Exits 1 with one line if the
    firmware process dies; Ctrl-C (exit 0) and SIGTERM (exit 143) stop the meter and remove its
    temporary directory. While it runs, b + Enter presses the meter's push button (reconnect from
    ready_for_reconnection, emergency credit, an MPL lock-out) and o / c + Enter open / close its
    cover.

    \b
    Examples:
      meterctl emulate --load 2000
      meterctl emulate --load 3000 --warp 600 --state ./meter-state   # 10 simulated min per second
      meterctl emulate --meters 8 --load 500                          # a bench of 8 meters
      meterctl emulate --load 1000 --warp 1800 --profiles             # IS 15959 load survey
      # in another terminal:
      meterctl read --port /dev/pts/5
      meterctl profile block --port /dev/pts/5 --password 00000000 --csv lp.csv   # with --profiles
      meterctl credit add --port /dev/pts/5 --amount 500.00 --key-file ~/.local/state/meterctl/emulator-keys.json
    """
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if meters > 1 and warp:
            raise click.UsageError("--warp drives one meter's clock: use it without --meters")
        extra = {"profiles": True} if profiles else {}
        run(lambda: _emulate(load_w, heap, mp, state_dir, warp, extra) if meters == 1
            else _emulate_many(meters, load_w, heap, mp, state_dir, extra))
    finally:
        signal.signal(signal.SIGTERM, previous)


def _workdir(stack, state_dir):
    if state_dir is None:
        return stack.enter_context(tempfile.TemporaryDirectory(prefix="meterctl-emulate-"))
    if all(os.path.exists(os.path.join(state_dir, f)) for f in ("main.py", "config.json")):
        fail("--state %s is a board flashed by meterctl flash --board unix (main.py, config.json): emulate "
             "would start the test-identity meter beside it; give another directory (docs/BENCH.md "
             "\"Emulated board\" says how to run the flashed board)" % state_dir, EXIT_USAGE)
    try:
        os.makedirs(state_dir, exist_ok=True)
    except OSError as e:
        raise click.UsageError("--state %s: %s" % (state_dir, e.strerror or e))
    _hold_state_dir(stack, state_dir)
    return os.path.abspath(state_dir)


def _hold_state_dir(stack, state_dir):
    """flock ``<DIR>/emulate.lock`` for the emulator's life: a second ``emulate --state DIR``
    exits 2 with one line before it starts anything."""
    path = os.path.join(state_dir, "emulate.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 64).decode("ascii", "replace").strip()
        os.close(fd)
        fail("--state %s is in use by another meterctl emulate%s: give another directory"
             % (state_dir, " (pid %s)" % holder if holder.isdigit() else ""), EXIT_USAGE)
    os.ftruncate(fd, 0)
    os.write(fd, b"%d\n" % os.getpid())
    stack.callback(os.close, fd)


def _keep_config(state, extra):
    """Merge ``extra`` (--profiles) into a config.json kept from an earlier run (the rig writes
    its config only where there is none)."""
    path = os.path.join(state, "config.json")
    if extra and os.path.exists(path):
        with open(path) as f:
            cfg = json.load(f)
        cfg.update(extra)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1, sort_keys=True)
            f.write("\n")


def _state_config(state):
    """The meter's config.json in ``state`` ({} if unreadable); a profile SET rewrites it."""
    try:
        with open(os.path.join(state, "config.json")) as f:
            cfg = json.load(f)
    except (OSError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _profiles_on(state):
    return _state_config(state).get("profiles") is True


def _credit_unit(state):
    """The unit of the meter's credit register (config credit_unit 1: 0.1 kWh, else paise)."""
    return creditunit.DECI_KWH if _state_config(state).get("credit_unit") else creditunit.PAISE


def _start(stack, workdir, heap, mp, warp, extra):
    """Start the emulated meter; stopped when ``stack`` closes."""
    try:
        from hil import emulated as rigmod, identity
    except ImportError as e:
        raise DlmsError("the emulator (hil.emulated) is not available: %s" % e)
    try:
        # the load is wired through the relay: while it is open the metering module reads 0 W.
        # Without --warp the meter's RTC runs by itself (a clock set over DLMS sticks); with
        # --warp the emulator owns the clock and moves it on every tick.
        t0 = int(time.time())
        if warp and (1800 % warp == 0 or warp % 1800 == 0):
            t0 -= t0 % 1800      # ticks on the 30 min block edges (one tick a block; one across an edge is split)
        rig = rigmod.EmulatedRig(workdir, heap=heap, micropython=mp, clock_epoch=t0,
                                 relay_gates_load=True, clock_mode="frozen" if warp else "running",
                                 config=dict(extra, sts=identity.sts_config(),
                                             security=identity.security_config()), start=False)
        stack.callback(rig.stop)
        identity.install_tables(rig.state_dir)
        _keep_config(str(rig.state_dir), extra)
        write_test_keys()                                 # the same test identity for every emulator
        rig.start()
    except Exception as e:
        raise DlmsError("could not start the emulated meter: %s" % _rig_error_text(e))
    return rig


def _banner(rig, workdir, load_w, warp):
    from hil import identity

    auth = "--key-file %s" % key_file_path()
    click.echo("DLMS serial port: %s" % rig.port)
    click.echo("Firmware pid:     %s" % rig.pid)
    click.echo("State directory:  %s" % os.path.join(workdir, "state"))
    click.echo("Firmware log:     %s" % rig.log_path)
    click.echo("Load: %d W; clock: %s" % (load_w, "+%d s per second" % warp if warp else "real time"))
    click.echo("Keys:             %s (HLS, clients 1 and 48; the test identity, hil/identity.py)"
               % key_file_path())
    click.echo("Reader password:  %s (client 32, LLS)" % identity.PASSWORDS["32"])
    click.echo("Try:  meterctl read --port %s" % rig.port)
    click.echo("      meterctl credit add --port %s %s %s" % (
        rig.port, "--kwh 10" if _credit_unit(str(rig.state_dir)) == creditunit.DECI_KWH else "--amount 100", auth))
    click.echo("      meterctl vend %s --json   # an STS token for this meter" % " ".join(identity.vend_args()))
    click.echo("      meterctl topup --port %s %s <20 digits>" % (rig.port, auth))
    click.echo("      meterctl events --state %s   # the event log with each event's detail (TID, paise, cause)"
               % os.path.join(workdir, "state"))
    if _profiles_on(str(rig.state_dir)):
        click.echo("      meterctl profile block --port %s --password %s --csv lp.csv   # IS 15959 profiles: on"
                   % (rig.port, identity.PASSWORDS["32"]))
    else:
        click.echo("IS 15959 profiles (load survey, billing): off; --profiles turns them on")
    click.echo("Buttons: b + Enter presses the meter's push button (reconnect after a top-up in control"
               " mode 5, emergency credit, an MPL lock-out); o / c + Enter open / close its cover.")
    click.echo("Stop with Ctrl-C.")


def _tick_forever(rig, warp):
    """One tick a real second: advance (--warp) or let a second of load run; print changes."""
    from hil.rig import RigError

    last = None
    keys = [sys.stdin is not None and not sys.stdin.closed]
    while True:
        _second(rig, keys)
        if not rig.running:
            tail = [ln.strip() for ln in rig.log_tail(5).splitlines() if ln.strip()]
            raise DlmsError("the emulated meter's firmware process died%s"
                            % (" (firmware: %s)" % tail[-1] if tail else ""))
        try:
            if warp:
                t = rig.advance(warp)
            else:
                rig.pzem.advance(1)          # one real second of load
                t = rig.meter
        except RigError as e:
            raise DlmsError("emulated meter failed: %s" % _rig_error_text(e))
        if warp and t is not None:
            click.echo(_telemetry_line(t, _credit_unit(str(rig.state_dir))))
        elif t is not None and last is not None and (
                bool(t.relay) != bool(last.relay) or t.credit_paise > last.credit_paise):
            click.echo(_telemetry_line(t, _credit_unit(str(rig.state_dir))))   # relay switched or credit topped up
        last = t


def _second(rig, keys):
    """Wait a second; a line typed meanwhile is a key of the meter: b the push button (reconnect
    from ready_for_reconnection, emergency credit, an MPL lock-out), o / c the cover opened /
    closed. ``keys[0]`` False: stdin is not read (closed, or at its end)."""
    end = time.monotonic() + 1.0
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        if not keys[0]:
            time.sleep(left)
            return
        if not select.select([sys.stdin], [], [], left)[0]:
            return
        line = sys.stdin.readline()
        if not line:
            keys[0] = False
            continue
        k = line.strip().lower()
        if k == "b":
            rig.press_button()
            click.echo("button pressed")
        elif k in ("o", "c"):
            rig.set_cover(k == "o")
            click.echo("cover %s" % ("opened" if k == "o" else "closed"))
        elif k:
            click.echo("keys: b + Enter the push button, o / c + Enter the cover opened / closed")


def _emulate(load_w, heap, mp, state_dir, warp, extra):
    with contextlib.ExitStack() as stack:
        workdir = _workdir(stack, state_dir)
        click.echo("Starting the emulated meter (MicroPython unix port %s, heap %s)..." % (mp or "of the venv", heap))
        rig = _start(stack, workdir, heap, mp, warp, extra)
        rig.set_load(load_w)
        _banner(rig, workdir, load_w, warp)
        try:
            _tick_forever(rig, warp)
        except KeyboardInterrupt:
            click.echo("\nStopping the emulated meter.")


def _emulate_many(n, load_w, heap, mp, state_dir, extra):
    """N meters (``hil.multi``), each with the STS and HLS test identity (the same keys: the key file
    of a single emulator), until Ctrl-C or a firmware dies."""
    from hil import identity
    from hil.multi import start_meters, stop_meters
    with contextlib.ExitStack() as stack:
        workdir = _workdir(stack, state_dir)
        click.echo("Starting %d emulated meters (MicroPython unix port %s, heap %s)..." % (n, mp or "of the venv", heap))
        for i in range(n):                         # STS tables, read at boot (hil.multi's layout)
            state = os.path.join(workdir, "meter%d" % i, "state")
            os.makedirs(state, exist_ok=True)
            identity.install_tables(state)
            _keep_config(state, extra)
        try:
            rigs = start_meters(n, workdir, heap=heap, micropython=mp, clock_epoch=int(time.time()),
                                clock_mode="running", relay_gates_load=True,
                                config=dict(extra, sts=identity.sts_config(),
                                            security=identity.security_config()), poll_ms=1000)
        except Exception as e:
            raise DlmsError("could not start the emulated meters: %s" % _rig_error_text(e))
        stack.callback(stop_meters, rigs)
        write_test_keys()
        for r in rigs:
            r.set_load(load_w)
            click.echo("%s %s" % (r.config["serial"], r.port))
        click.echo("Keys: %s (HLS, clients 1 and 48: --key-file); reader password %s (client 32)"
                   % (key_file_path(), identity.PASSWORDS["32"]))
        click.echo("Stop with Ctrl-C.")
        try:
            while all(r.running for r in rigs):
                time.sleep(1.0)
            dead = [r.config["serial"] for r in rigs if not r.running]
            raise DlmsError("the firmware process of %s died" % ", ".join(dead))
        except KeyboardInterrupt:
            click.echo("\nStopping the emulated meters.")


def _rig_error_text(e):
    """First line of a rig error plus the firmware's last log line (its exception), if any."""
    text = str(e)
    lines = text.strip().splitlines()
    first = lines[0] if lines else e.__class__.__name__
    marker = "--- firmware log (tail) ---"
    if marker in text:
        tail = [ln.strip() for ln in text.split(marker, 1)[1].splitlines() if ln.strip()]
        if tail and not tail[-1].startswith("---"):
            return "%s (firmware: %s)" % (first, tail[-1])
    return first


def _telemetry_line(t, unit=creditunit.PAISE):
    """One status line from the rig's Telemetry(epoch, wh, credit register, relay); the credit in
    ``unit`` (paise or 0.1 kWh)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t.epoch))
    return "%s UTC  energy %s  credit %s  relay %s" % (
        stamp, fmt.kwh(t.wh), creditunit.amount(t.credit_paise, unit), "closed" if t.relay else "OPEN")
