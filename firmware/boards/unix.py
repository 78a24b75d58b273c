"""Emulated board for the MicroPython unix port: UARTs are ptys, GPIO is a control channel.

The HIL rig (hil/rig.py) starts ``micropython firmware/main.py board.json`` with::

    {"dlms": "/dev/pts/N", "modbus": "/dev/pts/M", "ctl": "/dev/pts/K", "state": "/abs/dir",
     "clock": "frozen"|"running", "epoch": 1767225600, "poll_ms": 200}

- UART shim (reference micropython.md §2): the tty is opened ``r+b``, put in raw mode with
  VMIN=VTIME=0 and the file object itself is the stream the meter's tasks read without blocking
  (``readinto`` gives 0 when nothing came).
- Control channel (a raw pty, ASCII lines): rig -> board ``time <epoch>``, ``button``, ``ping <n>``, ``mem``;
  board -> rig ``ready``, ``pong <n>``, ``mem <alloc> <free>`` (after gc.collect), ``relay <0|1>``, ``meter ...``, ``event <code> <text>``.
- Clock: ``frozen`` holds the RTC at the last ``time`` set (deterministic time warp), ``running``
  advances it with the monotonic tick like a real RTC.
- Flash: without a ``"flash"`` section the state directory is the meter's filesystem. With
  ``"flash": {"blocks": 64, "image": "<state>/flash.img", "cut_at": 0, "seed": 1}`` the board
  mounts littlefs (``vfs.VfsLfs2``) at ``/flash`` on a file-backed NOR model
  (``boards.nor_flash``; erase counters in ``<image>.wear``), formatting it on first boot (a
  fresh image). ``path(name)`` then points into ``/flash`` (the working directory; without a flash
  model the state directory is), except the provisioning files
  ``*.json`` (config.json, STS tables), which stay in the host state dir (read-only for the meter).
  ``cut_at=N`` cuts the power at the N-th program/erase since boot: a torn program or partial
  erase, then the process is killed at once with SIGKILL (no cleanup, as a real power cut).
- Watchdog: ``"wdt_ms"`` (default 5000, 0 = off), started by the first ``wdt_feed``. A thread checks that ``wdt_feed`` was called
  within that many ms (monotonic time); if not, it writes ``<state>/reset_cause`` = ``wdt`` and kills
  the process with SIGALRM (exit status -14: hil.emulated.WDT_SIGNAL), which the rig answers by a restart
  (a hardware watchdog reset). ``reset_cause`` is "wdt" on the boot after that, else "power".
- Control commands for tests: ``cover open|closed`` (the meter-cover tamper switch, handed to
  ``on_cover(opened)``), ``hang <ms>`` (blocks the meter's loop, as a hung task would).
- ``idle(ms)``: the meter's loop sleeps in ``poll()`` on no descriptor (``time.sleep_ms`` on the
  unix port wakes every millisecond).
"""
import json
import os
import select
import sys
import time

try:
    import termios
except ImportError:  # pragma: no cover
    termios = None
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_WDT_SIGNAL = const(14)   # SIGALRM: the emulated watchdog's kill; the rig restarts the board
_CUT_SIGNAL = const(9)    # SIGKILL: an injected power cut


def _open_raw(path):
    f = open(path, "r+b", buffering=0) if sys.implementation.name != "micropython" else open(path, "r+b")
    if termios is not None:
        fd = f.fileno()
        try:
            termios.setraw(fd)
        except Exception:
            pass
        attrs = termios.tcgetattr(fd)
        cc = attrs[6]
        # VMIN = 6, VTIME = 5 on Linux
        cc[6] = 0
        cc[5] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return f


def hard_exit(sig):
    """End the process at once, without cleanup (no finalisers, no file flushes): SIGKILL or
    another signal delivered by a child shell (the unix port has no os._exit / os.kill)."""
    if hasattr(os, "_exit"):  # CPython
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    while True:
        os.system("kill -%d $PPID" % sig)


class UnixBoard:
    """Board API used by ``meter``: streams, clock, relay output, reports, button, filesystem root."""

    def __init__(self, board_json):
        with open(board_json) as f:
            cfg = json.load(f)
        st = cfg["state"]
        self.reset_cause = "power"
        self.on_cover = None
        try:
            os.remove(st + "/reset_cause.wdt")
            self.reset_cause = "wdt"
        except OSError:
            pass
        # the meter's files are named relative to its filesystem's root, the working directory
        # (as short as a board's "/" + name: a long host path per file would cost heap)
        self._json = ""            # where the provisioning *.json files are, relative to it
        fl = cfg.get("flash")
        if fl:
            import gc
            import vfs
            gc.collect()   # littlefs' buffers live for ever: put them low, out of the way
            from boards.nor_flash import NorFlash
            image = fl.get("image") or st + "/flash.img"
            fresh = True
            try:
                os.stat(image)
                fresh = False
            except OSError:
                pass
            nor = NorFlash(image, int(fl.get("blocks", 64)), int(fl.get("cut_at", 0)),
                           int(fl.get("seed", 1)), die=lambda: hard_exit(_CUT_SIGNAL))
            if fresh:
                vfs.VfsLfs2.mkfs(nor)
            try:
                fs = vfs.VfsLfs2(nor, mtime=False)
            except OSError:
                # unreadable filesystem: a meter must come up; the loss shows as "first boot"
                vfs.VfsLfs2.mkfs(nor)
                fs = vfs.VfsLfs2(nor, mtime=False)
            vfs.mount(fs, "/flash")
            st = "/flash"
            self._json = cfg["state"] + "/"
        os.chdir(st)
        self.poll_ms = int(cfg.get("poll_ms", 1000))
        self._frozen = cfg.get("clock", "frozen") == "frozen"
        self._epoch = int(cfg.get("epoch", 1767225600))
        self._epoch_tick = time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.time() * 1000)
        self._relay = None
        self._ctl = _open_raw(cfg["ctl"])
        self._dlms = cfg["dlms"]   # the tty's path until it is opened
        self._modbus = cfg["modbus"]
        self.on_button = None
        self.on_time_set = None
        self._wdt_ms = int(cfg.get("wdt_ms", 5000))
        self._fed = None
        p = select.poll()
        self.idle = getattr(p, "ipoll", p.poll)    # idle(ms): sleep, allocating nothing

    # --- files -------------------------------------------------------------------------
    def path(self, name):
        """Path of a file in the meter's persistent filesystem (the working directory; the
        provisioning ``*.json`` files are read from the host state dir)."""
        return self._json + name if name.endswith(".json") else name

    # --- UARTs -------------------------------------------------------------------------
    def dlms_stream(self):
        if isinstance(self._dlms, str):
            self._dlms = _open_raw(self._dlms)
        return self._dlms

    def modbus_stream(self):
        if isinstance(self._modbus, str):
            self._modbus = _open_raw(self._modbus)
        return self._modbus

    modbus_tx_enable = None    # RS-485 driver enable: nothing to drive on a pty

    # --- time --------------------------------------------------------------------------
    ticks_ms = staticmethod(time.ticks_ms)

    def time(self):
        """RTC seconds since 1970-01-01 UTC (int)."""
        if self._frozen:
            return self._epoch
        return self._epoch + time.ticks_diff(time.ticks_ms(), self._epoch_tick) // 1000

    def set_time(self, epoch):
        self._epoch = int(epoch)
        self._epoch_tick = time.ticks_ms()

    # --- relay -------------------------------------------------------------------------
    def relay(self, closed):
        """Drive the disconnect relay: True = closed (supply on)."""
        closed = bool(closed)
        if closed != self._relay:
            self._relay = closed
            self.report("relay %d" % (1 if closed else 0))

    # --- side channel --------------------------------------------------------------------
    def report(self, line):
        try:
            self._ctl.write(line.encode() + b"\n")
        except OSError:
            pass

    def wdt_feed(self):
        """Feed the watchdog (call at least every ``wdt_ms``); the first call starts it, as
        creating ``machine.WDT`` does on a board."""
        first = self._fed is None
        self._fed = time.ticks_ms()
        if first and self._wdt_ms > 0:
            import _thread
            _thread.start_new_thread(self._wdt_loop, ())

    def _wdt_loop(self):
        while True:
            # time.sleep, not sleep_ms: the unix port's sleep_ms wakes every 0.5 ms to pass the
            # GIL (2-3 % of a core per idle meter); sleep(float) blocks in select() without it
            time.sleep(0.1)
            if time.ticks_diff(time.ticks_ms(), self._fed) > self._wdt_ms:
                try:
                    with open(self._json + "reset_cause.wdt", "w") as f:
                        f.write("wdt")
                except OSError:
                    pass
                hard_exit(_WDT_SIGNAL)

    def control_task(self):
        """Read rig commands from the control channel (the unix stand-in for GPIO and RTC): a
        generator task of the meter's loop (``meter.metrology.loop``) yielding the ms to wait; read
        into one buffer: nothing allocated while the channel is quiet."""
        line = b""
        buf = bytearray(64)
        while True:
            n = self._ctl.readinto(buf)
            if not n:
                yield 20
                continue
            line += buf[:n]
            while b"\n" in line:
                i = line.index(b"\n")
                cmd = line[:i].decode().strip().split()
                line = line[i + 1:]
                if not cmd:
                    continue
                if cmd[0] == "time" and len(cmd) > 1:
                    self.set_time(int(cmd[1]))
                    if self.on_time_set:
                        self.on_time_set()
                elif cmd[0] == "button":
                    if self.on_button:
                        self.on_button()
                elif cmd[0] == "mem":
                    import gc
                    gc.collect()
                    self.report("mem %d %d" % (gc.mem_alloc(), gc.mem_free()))
                elif cmd[0] == "cover" and len(cmd) > 1:
                    if self.on_cover:
                        self.on_cover(cmd[1] in ("open", "1"))
                elif cmd[0] == "hang":
                    t0 = time.ticks_ms()
                    ms = int(cmd[1]) if len(cmd) > 1 else 60000
                    while time.ticks_diff(time.ticks_ms(), t0) < ms:
                        pass
                elif cmd[0] == "ping":
                    self.report("pong " + (cmd[1] if len(cmd) > 1 else "0"))
