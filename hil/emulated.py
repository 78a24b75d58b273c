"""`EmulatedRig`: the real firmware on the MicroPython unix port behind ptys.

The process contract is the ``unix`` board's (docs/CONTRACTS.md): board.json names the DLMS and
Modbus UARTs (two `hil.ptylink.PtyLink` cables; the host ends are ``rig.port`` and the PZEM
emulator's) and the control pty (`hil.ctlchannel.ControlChannel`). This module runs the process:
boot, watchdog restart, power cut, power on, stop; the control-line state is `hil.control`'s.
"""

import json
import os
import pathlib
import signal
import subprocess
import threading
import time

from . import launch
from .controlled import ControlledRig
from .ctlchannel import ControlChannel
from .env import find_micropython, lock_workdir, merge_config
from .linenoise import LineNoise
from .modules import CONFIG_KEY, config_value, module_name, open_module
from .ptylink import PtyLink
from .rig import (CAPABILITIES, DEFAULT_EPOCH, DEFAULT_METER_CONFIG, RigError, RigTimeout,
                  register_live)

__all__ = ["EmulatedRig", "WDT_SIGNAL"]

WDT_SIGNAL = 14  # SIGALRM: the unix board's watchdog (firmware/boards/unix.py)


class EmulatedRig(ControlledRig):
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
        pzem_unit: Modbus address of the emulated metering module (default: the
            config's ``modbus_unit``).
        module: the metering module on the Modbus line: "pzem" (PZEM-004T v3), "sdm120" or
            "sdm630" (Eastron), see `hil.modules` (default: the config's ``metering_module``,
            else "pzem"); the config.json written says which (``metering_module``).
            ``rig.meter_module`` is its emulator (``rig.pzem`` is the same object, the old
            name), ``rig.modbus_noise`` the `hil.linenoise.LineNoise` on that line.
        boot_timeout: seconds to wait for ``ready`` (and the first ``meter``).
        wait_first_meter: boot (start / power_on) also waits for the first two
            ``meter`` lines, i.e. two metering cycles done (default True): what the
            module counted while the meter was down is charged at the second
            reading when it is beyond the slack (``meter.metrology.Health``).
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

    @property
    def management_password(self):
        """LLS password of the management client (SAP 1) in this meter's config."""
        return self.config.get("passwords", {}).get("1")

    @property
    def management_keys(self):
        """HLS keys of the management client when this meter's config gives client 1 an HLS
        mechanism (its "security" section), our system title the test identity's; else None."""
        sec = self.config.get("security") or {}
        if not (sec.get("mech") or {}).get("1"):
            return None
        from host_tools.keystore import hls_keys
        from .identity import CLIENT_TITLE
        return hls_keys(dict(sec, mech=sec["mech"]["1"], client_title=CLIENT_TITLE.hex()))

    def __init__(self, workdir, heap="190k", config=None, clock_epoch=DEFAULT_EPOCH,
                 poll_ms=200, clock_mode="frozen", firmware_dir=None,
                 micropython=None, pzem_unit=None, boot_timeout=30.0, start=True,
                 wait_first_meter=True, relay_gates_load=True, flash=None, wdt_ms=None,
                 image=None, module=None):
        self.workdir = pathlib.Path(workdir).resolve()
        self.flash = dict(flash) if flash else None
        self.wdt_ms = wdt_ms
        self.wdt_resets = 0
        self.heap = str(heap)
        self.config = merge_config(DEFAULT_METER_CONFIG, config)
        self.module = module_name(module or self.config.get(CONFIG_KEY))  # (issue 13)
        self.config[CONFIG_KEY] = config_value(self.module)
        self.poll_ms = int(poll_ms)
        self.clock_mode = clock_mode
        code = launch.prepare_image(self.workdir, firmware_dir, image)
        self._code = code
        self.image, self.romfs, self.romfs_bytes = code.kind, code.romfs, code.romfs_bytes
        self.firmware_dir = code.firmware_dir
        self.micropython = find_micropython(micropython)
        self.boot_timeout = float(boot_timeout)
        self.state_dir = self.workdir / "state"
        self.board_json = self.workdir / "board.json"
        self.log_path = self.workdir / "firmware.log"
        self._pzem_unit = int(pzem_unit if pzem_unit is not None
                              else self.config.get("modbus_unit", 1))
        self.wh_offset = 0       # meter import Wh - PZEM Wh, taken at each boot
        self.wait_first_meter = bool(wait_first_meter)
        self.relay_gates_load = bool(relay_gates_load)
        self._epoch0 = int(clock_epoch)
        self._load = (0, 100)
        self._proc = self._monitor = self._exit_code = None
        self._boots = 0          # processes started
        self._readies_at_spawn = self._meters_at_spawn = 0
        self._stopped = False
        self.dlms_link = self.modbus_link = self.ctl = self.pzem = self._lock = None
        self.modbus_noise = None
        self._open_wiring()
        register_live(self)
        if start:
            try:
                self.start()
            except Exception:
                self.stop()
                raise

    def _open_wiring(self):
        """Lock the state directory, make the ptys, start the PZEM (all released on failure)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_workdir(self.workdir)   # one meter per flash: RigError if in use
        try:
            self.dlms_link = PtyLink(link_dir=self.workdir, names=("meter-dlms", "host-dlms"))
            self.modbus_link = PtyLink(link_dir=self.workdir,
                                       names=("meter-modbus", "pzem-modbus"))
            self.ctl = ControlChannel(self._epoch0, link_dir=self.workdir, name="meter-ctl",
                                      on_kind=self._on_kind, check=self._check_alive,
                                      context=self._context)
            self._cond = self.ctl.cond
            self._open_module()
        except Exception:
            self.stop()
            raise

    # -- the metering module and its line (issue 13: hil.modules, hil.linenoise) ----------

    def _open_module(self):
        self.pzem = open_module(self.module, self.modbus_link.b_path, unit=self._pzem_unit)
        self.modbus_noise = LineNoise(self.modbus_link)

    @property
    def meter_module(self):
        """The metering-module emulator on the Modbus line (`hil.modules`): a PzemEmulator,
        Sdm120Emulator or Sdm630Emulator (``rig.pzem`` is the same object)."""
        return self.pzem

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
            "epoch": self.clock,
            "romfs": str(self.romfs) if self.romfs is not None else None,
            "main_dir": str(self.firmware_dir),
            "poll_ms": self.poll_ms,
        }
        if self.flash:
            board["flash"] = dict(self.flash, image=str(self.flash_image))
        if self.wdt_ms is not None:
            board["wdt_ms"] = int(self.wdt_ms)
        launch.write_board_json(self.board_json, board)

    def _spawn(self):
        if self._proc is not None:
            raise RigError("firmware already running (pid %d)" % self._proc.pid)
        if not (self.firmware_dir / "main.py").is_file():
            raise RigError("no firmware at %s" % (self.firmware_dir / "main.py"))
        argv, env = launch.command(self.micropython, self.heap, self._code, self.board_json)
        with self._cond:
            self._boots += 1
            boot = self._boots
            self._exit_code = None
            self._readies_at_spawn = self.control.readies
            self._meters_at_spawn = self.control.meters
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
        """Wait for ``ready`` and then the first two ``meter`` lines of this boot, so
        the firmware has read the metering module (its baseline) and charged what it
        counted while the meter was down before the test changes anything."""
        with self._cond:
            readies, meters = self._readies_at_spawn, self._meters_at_spawn
        state = self.control
        self._wait(lambda: state.readies > readies, timeout, "'ready' from the firmware")
        if self.wait_first_meter:
            self._wait(lambda: state.meters > meters + 1, timeout,
                       "the first two 'meter' lines after boot")
            with self._cond:
                # a meter restored from an earlier state (or a swapped metering module) counts
                # from its own register: advance() expects meter Wh = module Wh + this offset
                self.wh_offset = state.telemetry.wh - self.pzem.energy_wh

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

    def power_on(self, timeout=None, cut_at=None):
        """Boot the firmware again with the same board.json and state dir.

        Bytes sent to the meter while it was off are discarded (an unpowered
        UART receives nothing).  The RTC kept time (battery): board.json gets
        the rig's present clock (`clock`, settable while off).  With a flash model,
        ``cut_at=N`` arms a power cut at the N-th program/erase of this boot (None/0:
        none); if it strikes before the meter is ready this raises RigError and
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
        from .norimage import read_wear
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

    def restart(self):
        """power_cut() then power_on()."""
        self.power_cut()
        self.power_on()

    @property
    def pid(self):
        """Process id of the running firmware (None while off)."""
        return None if self._proc is None else self._proc.pid

    def _teardown_first(self):
        return (self._kill, lambda: self.modbus_noise and self.modbus_noise.close())

    # -- the board's liveness, for waits on the control channel ------------------

    def _powered(self):
        return self._proc is not None

    def _check_alive(self, what):
        # under self._cond, at every wake-up of a wait on the control channel
        if self._proc is None:
            raise RigError("meter is powered off while waiting for %s" % what + self._context())
        if self._exit_code is not None and not (
                self._exit_code == -WDT_SIGNAL and not self._stopped):
            raise RigError("firmware exited with code %s while waiting for %s"
                           % (self._exit_code, what) + self._context())
