"""`PicoRig`: the firmware's RP2040 board on the real MicroPython rp2 port inside rp2040js.

The runner (``hil/pico/picorun.mjs``, Node + rp2040js 1.4.1, ``npm ci`` in hil/pico) executes the
MicroPython RPI_PICO UF2 on an emulated RP2040 and wires it to ptys: UART0 (the DLMS UART of
``boards/rp2040.py``) and UART1 (its Modbus UART, the metering-module emulator on the far end),
the USB CDC REPL (``rig.repl_port``: mpremote and ``meterctl flash --board rp2040`` work there) and
a control line. The board prints its ``ready`` / ``relay`` / ``meter`` / ``event`` lines on the
console (``McuBoard.report``); the runner forwards them to the control line, so telemetry, events
and relay waits are the `hil.controlled.ControlledRig` ones. The runner answers ``time <epoch>``
(the RTC register, frozen between sets as the unix board's ``frozen`` clock), ``button`` (GP17
held low 150 ms of guest time) and ``ping``. Contact sense (GP14) follows the relay output (GP15).

Flash: the whole 2 MB flash is the file ``workdir/flash.bin``; erases and programs reach it as the
guest makes them (boot ROM routines trapped), so a power cut (SIGKILL of the runner, at any cycle)
keeps exactly what was written, ``power_on(cut_at=N)`` tears the N-th erase/program of that
boot like the NOR model of the unix board, and `arm_cut` arms a cut on the running board (the N-th
erase/program from now, or after N executed CPU cycles).

Deployment: the firmware goes onto the board by ``host_tools.flash.flash`` (what ``meterctl flash
--board rp2040`` runs) over the CDC REPL; then the rig's own ``config.json`` (and STS tables) are
written instead of the keystore's. The resulting flash image (code + config, no meter state) is
cached under ``build/picorig/`` keyed by the UF2, the built image and the files, so only the first
rig of a configuration pays for the copy.

What it cannot do (not in ``capabilities``): ``hang`` and ``mem`` (no unix control channel; the
REPL is busy running main.py), the unix board's NOR wear counters and flash sizes.
"""

import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import threading

from host_tools.firmware_src import ROOT

from .controlled import ControlledRig
from .ctlchannel import ControlChannel
from .env import lock_workdir, merge_config
from .picoimage import CACHE as _CACHE, RUNNER_DIR, UF2_ENV, find_uf2, save_image as _save, unavailable
from .modules import CONFIG_KEY, config_value, module_name, open_module
from .ptylink import PtyLink
from .rig import (CAPABILITIES, DEFAULT_EPOCH, DEFAULT_METER_CONFIG, RigError, RigTimeout,
                  register_live)

__all__ = ["PicoRig", "find_uf2", "unavailable", "RUNNER_DIR", "UF2_ENV"]

_WDT_EXIT = 3        # runner: watchdog reset (machine.reset() too): the board reboots
_CUT_EXIT = 5        # runner: an armed power cut struck


class _PicoChannel(ControlChannel):
    """The control line of the runner: the firmware's lines plus the runner's own
    (``pin <n> <0|1>`` relay output, ``cut <op>``, ``flashops <n>``)."""

    def __init__(self, epoch, link_dir):
        self.relay_pin = None
        self.flash_ops = None
        self.cut_op = None
        self.cycles = None
        ControlChannel.__init__(self, epoch, link_dir=link_dir, name="pico-ctl")

    def _on_line(self, line):
        parts = line.split()
        if parts and parts[0] in ("pin", "cut", "flashops") and len(parts) >= 2:
            with self.cond:
                if parts[0] == "pin":
                    self.relay_pin = parts[-1] == "1"
                elif parts[0] == "cut":
                    self.cut_op = int(parts[1])
                else:
                    self.flash_ops = int(parts[1])
                    self.cycles = int(parts[2]) if len(parts) > 2 else None
                self.cond.notify_all()
            return
        ControlChannel._on_line(self, line)


class PicoRig(ControlledRig):
    """The firmware's rp2040 board on the MicroPython rp2 port in rp2040js (module docstring).

    Args:
        workdir: directory for flash.bin, firmware.log (runner + console output), the keystore;
            ``state_dir`` (workdir/files): files put there before the first boot are deployed
            into the board's / beside config.json.
        config: dict merged over DEFAULT_METER_CONFIG into the board's /config.json.
        clock_epoch: the RTC at first boot (epoch s; battery-backed, frozen between sets).
        poll_ms: the board's metering period (config ``poll_ms``).
        uf2: the MicroPython UF2 (default `find_uf2`).
        sts: install the STS test identity (hil.identity): decoder key and sample EA07 tables.
        module: metering module emulator on UART1 ("pzem", "sdm120", "sdm630").
        boot_timeout: seconds to wait for ``ready`` and the first ``meter`` line.
        relay_gates_load: the PZEM reads 0 W while the relay is open (default True).
        start: boot at once (default True).

    Raises RigError (with the log tail) if the firmware does not come up; the caller should
    check `unavailable` first (pytest: skip with its reason).
    """

    capabilities = frozenset(CAPABILITIES)

    def __init__(self, workdir, config=None, clock_epoch=DEFAULT_EPOCH, poll_ms=500, uf2=None,
                 sts=False, module=None, boot_timeout=90.0, relay_gates_load=True, start=True):
        why = unavailable(uf2)
        if why:
            raise RigError(why)
        self.uf2 = find_uf2(uf2)
        self.workdir = pathlib.Path(workdir).resolve()
        self.config = merge_config(DEFAULT_METER_CONFIG, config)
        self.config.setdefault("poll_ms", int(poll_ms))
        self.module = module_name(module or self.config.get(CONFIG_KEY))
        self.config[CONFIG_KEY] = config_value(self.module)
        self.files = {"config.json": (json.dumps(self.config, indent=1, sort_keys=True) + "\n").encode()}
        if sts:
            from . import identity
            self.config.setdefault("sts", identity.sts_config())
            self.files["config.json"] = (json.dumps(self.config, indent=1, sort_keys=True) + "\n").encode()
            self.files[identity.TABLES_NAME] = identity.TABLES.read_bytes()
        self.boot_timeout = float(boot_timeout)
        self.relay_gates_load = bool(relay_gates_load)
        self.state_dir = self.workdir / "files"   # files put here before the first boot go to /
        self.flash_path = self.workdir / "flash.bin"
        self.log_path = self.workdir / "firmware.log"
        self.wh_offset = 0
        self.wdt_resets = 0
        self.deploy_seconds = None
        self._epoch0 = int(clock_epoch)
        self._load = (0, 100)
        self._proc = self._exit_code = None
        self._boots = 0
        self._readies_at_spawn = self._meters_at_spawn = 0
        self._stopped = False
        self.dlms_link = self.modbus_link = self.cdc_link = self.ctl = self.pzem = None
        self._lock = None
        self._open_wiring(config.get("modbus_unit", 1) if config else 1)
        register_live(self)
        if start:
            try:
                self.start()
            except Exception:
                self.stop()
                raise

    def _open_wiring(self, unit):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_workdir(self.workdir)
        try:
            self.dlms_link = PtyLink(link_dir=self.workdir, names=("meter-dlms", "host-dlms"))
            self.modbus_link = PtyLink(link_dir=self.workdir, names=("meter-modbus", "pzem-modbus"))
            self.cdc_link = PtyLink(link_dir=self.workdir, names=("meter-cdc", "host-repl"))
            self.ctl = _PicoChannel(self._epoch0, self.workdir)
            self.ctl._on_kind = self._on_kind
            self.ctl._check = self._check_alive
            self.ctl._context = self._context
            self._cond = self.ctl.cond
            self.pzem = open_module(self.module, self.modbus_link.b_path, unit=int(unit))
        except Exception:
            self.stop()
            raise

    @property
    def meter_module(self):
        """The metering-module emulator on UART1 (``rig.pzem`` is the same object)."""
        return self.pzem

    @property
    def repl_port(self):
        """Host end of the board's USB CDC REPL (pty path): mpremote, ``meterctl flash``."""
        return self.cdc_link.b_path

    @property
    def relay_output(self):
        """The relay GPIO as the runner last saw it (True = driven closed), None before."""
        with self._cond:
            return self.ctl.relay_pin

    # -- deployment -------------------------------------------------------------------

    def _keys(self):
        """(base key, image key): the base is the UF2 + the built firmware as flashed; the image
        adds this rig's files."""
        from host_tools import build
        self._build = build.cached_build("rp2040", ROOT / "build" / "flash-rp2040")
        h = hashlib.sha256(self.uf2.read_bytes())
        h.update((self._build / "manifest.json").read_bytes())
        h.update((RUNNER_DIR / "picorun.mjs").read_bytes())
        base = h.hexdigest()[:24]
        for rel in sorted(self.files):
            h.update(rel.encode() + b"\0" + self.files[rel])
        return base, h.hexdigest()[:24]

    def deploy(self):
        """Put the firmware and this rig's files on the board, then power off; cached.

        The base image is made once per firmware build: an erased board flashed by
        ``host_tools.flash.flash`` over the CDC REPL (what ``meterctl flash --board rp2040`` runs:
        build, copy, sha256 verify), main.py and the keystore's config.json held back. A rig's
        image is the base plus its files (config.json, tables) and main.py, written over the REPL.
        Returns the seconds spent (0.0 when the image came from the cache)."""
        import time
        base_key, key = self._keys()
        cached, base = _CACHE / (key + ".bin"), _CACHE / ("base-" + base_key + ".bin")
        if cached.is_file():
            shutil.copyfile(str(cached), str(self.flash_path))
            return 0.0
        t0 = time.monotonic()
        if base.is_file():
            shutil.copyfile(str(base), str(self.flash_path))
        else:
            if self.flash_path.exists():
                self.flash_path.unlink()
            self._flash_base()
            _save(self.flash_path, base)
        files = dict({"main.py": (self._build / "main.py").read_bytes()}, **self.files)
        self._spawn_repl()
        try:
            from host_tools.repl import Device
            dev = Device(self.repl_port, timeout=30)
            try:
                for rel, data in sorted(files.items()):
                    dev.write(rel, data)
            finally:
                dev.close()
        finally:
            self._halt(signal.SIGTERM)
        _save(self.flash_path, cached)
        self.deploy_seconds = time.monotonic() - t0
        return self.deploy_seconds

    def _flash_base(self):
        from host_tools import flash as F
        from host_tools.repl import Device

        class Target:           # host_tools.flash's target; its reset step holds main.py back
            def __init__(self, port):
                self.dev = Device(port, timeout=30)

            def reset(self, serial, confirm, log, warnings):
                self.dev.remove("main.py")
                self.dev.remove("config.json")
                return None

            def close(self):
                self.dev.close()

        self._spawn_repl()
        try:
            F.flash(self.repl_port, "rp2040", self.config["serial"],
                    keystore=str(self.workdir / "deploy.keystore"), sgc=123456, confirm=False,
                    connect=lambda: Target(self.repl_port))
        finally:
            self._halt(signal.SIGTERM)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self):
        """Deploy if there is no flash image yet, then boot and wait for the first two meter lines."""
        if not self.flash_path.exists():
            for p in sorted(self.state_dir.iterdir()):
                if p.is_file():
                    self.files[p.name] = p.read_bytes()
            self.deploy()
        self._spawn()
        self._wait_ready(self.boot_timeout)
        return self

    def boot_erased(self):
        """Power on a Pico with only the MicroPython UF2 in its flash (littlefs is formatted at
        boot), without waiting: for ``meterctl flash --board rp2040 --port rig.repl_port``."""
        if self.flash_path.exists():
            self.flash_path.unlink()
        self._spawn()

    def _spawn_repl(self):
        """Boot for work over the CDC REPL (deploy) with nothing left on that cable from the
        last boot either way (what the host sent the halted board, what it printed unread).
        The board prints no banner before a host opens the port, so the host's raw-REPL entry
        can meet a board still booting: `host_tools.repl.Device` enters again if so."""
        self.cdc_link.flush("a")
        self.cdc_link.flush("b")
        self._spawn()

    def _spawn(self, cut_at=0):
        if self._proc is not None:
            raise RigError("runner already running (pid %d)" % self._proc.pid)
        argv = ["node", str(RUNNER_DIR / "picorun.mjs"), "--image", str(self.uf2),
                "--flash", str(self.flash_path), "--uart0", self.dlms_link.a_path,
                "--uart1", self.modbus_link.a_path, "--cdc", self.cdc_link.a_path,
                "--ctl", self.ctl.path, "--rtc", str(self.clock), "--rtc-frozen", "--stats"]
        if cut_at:
            argv += ["--cut-at", str(int(cut_at)), "--seed", str(int(cut_at) * 7919 + self._boots)]
        with self._cond:
            self._boots += 1
            self._exit_code = None
            self._readies_at_spawn = self.control.readies
            self._meters_at_spawn = self.control.meters
            self.ctl.cut_op = self.ctl.relay_pin = None
        with open(str(self.log_path), "ab") as log:
            log.write(("--- boot %d: %s\n" % (self._boots, " ".join(argv[:3]))).encode())
            log.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=str(self.workdir), env=dict(os.environ, TZ="UTC"),
                                    start_new_session=True)
        self._proc = proc
        threading.Thread(target=self._watch, args=(proc,), name="picorig-monitor", daemon=True).start()

    def _watch(self, proc):
        rc = proc.wait()
        with self._cond:
            if self._proc is proc:
                self._exit_code = rc
            self._cond.notify_all()
            if rc == _WDT_EXIT and self._proc is proc and not self._stopped:
                self.wdt_resets += 1          # watchdog / machine.reset(): the board reboots
                self._proc = None
                self._spawn()

    def _wait_ready(self, timeout):
        with self._cond:
            readies, meters = self._readies_at_spawn, self._meters_at_spawn
        state = self.control
        self._wait(lambda: state.readies > readies, timeout, "'ready' from the firmware")
        # two: a step beyond the slack counted while down is charged at the second reading
        self._wait(lambda: state.meters > meters + 1, timeout, "the first two 'meter' lines after boot")
        with self._cond:
            self.wh_offset = state.telemetry.wh - self.pzem.energy_wh

    def _halt(self, sig):
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def _kill(self):
        """Power cut: SIGKILL of the runner at whatever cycle it is in (the flash file keeps what
        the guest had erased/programmed)."""
        self._halt(signal.SIGKILL)

    def power_on(self, timeout=None, cut_at=None):
        """Boot again from the same flash image with the rig's RTC. ``cut_at=N`` arms a power
        cut at the N-th flash erase/program of this boot (`cut_happened` says if it struck;
        striking before ``ready`` raises RigError)."""
        if self._proc is not None:
            raise RigError("power_on: meter is already on")
        self.dlms_link.flush("a")
        self.modbus_link.flush("a")
        self.cdc_link.flush("a")
        self.ctl.flush_input()
        self._spawn(cut_at=cut_at or 0)
        self._wait_ready(self.boot_timeout if timeout is None else timeout)

    def arm_cut(self, op=None, cycles=None):
        """Arm a power cut on the running board: at the ``op``-th flash erase/program from now
        (torn like ``cut_at``), or after ``cycles`` more executed CPU cycles (whatever instruction
        that is); neither: disarm. Returns once the runner has it (a ping round trip)."""
        self.send("cut op %d" % op if op else "cut cycles %d" % cycles if cycles else "cut off")
        self.sync()

    def flash_ops(self, timeout=10.0):
        """Flash erases + programs the board made since this boot (``rig.ctl.cycles``: the
        CPU cycles it executed)."""
        with self._cond:
            self.ctl.flash_ops = None
        self.send("flashops")
        self._wait(lambda: self.ctl.flash_ops is not None, timeout, "'flashops' answer")
        with self._cond:
            return self.ctl.flash_ops

    @property
    def cut_happened(self):
        """True if the armed power cut struck (the runner stopped itself)."""
        with self._cond:
            return self._exit_code == _CUT_EXIT

    def wait_off(self, timeout=30.0):
        """Wait until the runner stopped by itself (an armed cut); return its exit status."""
        self._wait(lambda: self._exit_code is not None, timeout, "the armed power cut")
        with self._cond:
            self._proc = None
            return self._exit_code

    def _teardown_first(self):
        return (self._kill, lambda: self.cdc_link and self.cdc_link.close())

    # -- liveness and context --------------------------------------------------------------

    def _powered(self):
        return self._proc is not None

    def _check_alive(self, what):
        if self._proc is None:
            raise RigError("meter is powered off while waiting for %s" % what + self._context())
        if self._exit_code is not None and self._exit_code != _WDT_EXIT:
            raise RigError("runner exited with code %s while waiting for %s"
                           % (self._exit_code, what) + self._context())

    def mem(self, timeout=10.0):
        """Not on this rig: the REPL is busy with main.py (see `hil.picorig` heap probe notes)."""
        raise RigTimeout("PicoRig has no 'mem' control line")
