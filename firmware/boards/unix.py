"""Emulated board for the MicroPython unix port: UARTs are ptys, GPIO is a control channel.

The HIL rig (hil/rig.py) starts ``micropython firmware/main.py board.json`` with::

    {"dlms": "/dev/pts/N", "modbus": "/dev/pts/M", "ctl": "/dev/pts/K", "state": "/abs/dir",
     "clock": "frozen"|"running", "epoch": 1767225600, "poll_ms": 200}

- UART shim (reference micropython.md §2): the tty is opened ``r+b``, put in raw mode with
  VMIN=VTIME=0 and the file object itself is handed to ``asyncio.StreamReader/Writer``.
- Control channel (a raw pty, ASCII lines): rig -> board ``time <epoch>``, ``button``, ``ping <n>``, ``mem``;
  board -> rig ``ready``, ``pong <n>``, ``mem <alloc> <free>`` (after gc.collect), ``relay <0|1>``, ``meter ...``, ``event <code> <text>``.
- Clock: ``frozen`` holds the RTC at the last ``time`` set (deterministic time warp), ``running``
  advances it with the monotonic tick like a real RTC.
- Flash: the state directory (the meter's filesystem root); files are written via the store module.
- Watchdog: ``wdt_feed`` records the tick; the rig treats a silent process as hung.
"""
import json
import sys
import time

try:
    import termios
except ImportError:  # pragma: no cover
    termios = None


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


class UnixBoard:
    """Board API used by ``meter``: streams, clock, relay output, reports, button, filesystem root."""

    name = "unix"

    def __init__(self, board_json):
        with open(board_json) as f:
            cfg = json.load(f)
        self.cfg = cfg
        self.state_dir = cfg["state"]
        self.poll_ms = int(cfg.get("poll_ms", 1000))
        self._frozen = cfg.get("clock", "frozen") == "frozen"
        self._epoch = int(cfg.get("epoch", 1767225600))
        self._epoch_tick = time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.time() * 1000)
        self._relay = None
        self._ctl = _open_raw(cfg["ctl"])
        self._dlms = None
        self._modbus = None
        self.on_button = None
        self.on_time_set = None

    # --- files -------------------------------------------------------------------------
    def path(self, name):
        """Absolute path of a file in the meter's persistent filesystem."""
        return self.state_dir + "/" + name

    # --- UARTs -------------------------------------------------------------------------
    def dlms_stream(self):
        if self._dlms is None:
            self._dlms = _open_raw(self.cfg["dlms"])
        return self._dlms

    def modbus_stream(self):
        if self._modbus is None:
            self._modbus = _open_raw(self.cfg["modbus"])
        return self._modbus

    def modbus_tx_enable(self, on):
        """RS-485 driver enable: nothing to drive on a pty."""

    # --- time --------------------------------------------------------------------------
    def ticks_ms(self):
        return time.ticks_ms()

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

    def relay_feedback(self):
        return self._relay

    # --- side channel --------------------------------------------------------------------
    def report(self, line):
        try:
            self._ctl.write(line.encode() + b"\n")
        except OSError:
            pass

    def wdt_feed(self):
        pass

    async def control_task(self):
        """Read rig commands from the control channel (the unix stand-in for GPIO and RTC)."""
        import asyncio
        reader = asyncio.StreamReader(self._ctl)
        line = b""
        while True:
            chunk = await reader.read(64)
            if not chunk:
                await asyncio.sleep_ms(20)
                continue
            line += chunk
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
                elif cmd[0] == "ping":
                    self.report("pong " + (cmd[1] if len(cmd) > 1 else "0"))
