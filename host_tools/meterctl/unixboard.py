"""The ``unix`` board for ``meterctl flash --board unix``: the ``micropython`` command as a board.

``--port`` is a host directory, the emulated board's flash. `UnixReplBoard` starts
``micropython`` in that directory behind a raw pty pair (``hil.ptylink.PtyLink``, no socat) and
``host_tools.flash`` talks to it with mpremote exactly as to a USB board; the "reset" stops that
REPL and boots the firmware from the same directory with the emulator (``hil.emulated.EmulatedRig``:
board.json ``state`` = firmware dir = the flash directory), then confirms over DLMS. This is the
command layer's hook (`UnixTarget`, passed as ``connect``): the flash library never imports hil.
"""

import os
import pathlib
import shutil
import subprocess
import tempfile

from hil.ptylink import PtyLink
from hil.emulated import EmulatedRig
from hil.env import find_micropython
from hil.rig import RigError
from host_tools.flash import FlashError, confirm_dlms
from host_tools.repl import Device

__all__ = ["UnixReplBoard", "UnixTarget", "unix_rig", "boot_and_confirm"]


class UnixReplBoard:
    """The ``micropython`` command as a board: a REPL started in ``flash_dir`` behind a raw pty
    pair (mpremote opens ``port``). ``stop()`` kills it (idempotent). The board's files hold
    per-meter passwords and keys: the directory is 0700 and the REPL writes with umask 077
    (config.json 0600)."""

    def __init__(self, flash_dir, heap="320k", micropython=None):
        self.flash_dir = pathlib.Path(flash_dir).resolve()
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(str(self.flash_dir), 0o700)
        self.link = PtyLink()
        self.port = self.link.b_path
        fd = os.open(self.link.a_path, os.O_RDWR | os.O_NOCTTY)
        try:
            env = dict(os.environ)
            env.pop("MICROPYPATH", None)
            self.proc = subprocess.Popen(
                [micropython or find_micropython(), "-X", "heapsize=%s" % heap],
                stdin=fd, stdout=fd, stderr=fd, cwd=str(self.flash_dir), env=env,
                start_new_session=True, umask=0o077)
        except Exception:
            self.link.close()
            raise
        finally:
            os.close(fd)

    def stop(self):
        """Kill the REPL process and close the pty pair (idempotent)."""
        p, self.proc = getattr(self, "proc", None), None
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)
        if getattr(self, "link", None) is not None:
            self.link.close()
            self.link = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def unix_rig(workdir, flash_dir, heap="320k"):
    """An EmulatedRig (not started) that boots the unix board from a flashed directory: the
    .mpy files there, and that directory as the meter's filesystem root (board.json state)."""
    rig = EmulatedRig(workdir, heap=heap, firmware_dir=flash_dir, start=False, image="mpy")
    rig.state_dir = pathlib.Path(flash_dir).resolve()       # the flash is the filesystem root
    return rig


def boot_and_confirm(flash_dir, serial, heap, log=None, physical=None):
    """'Reset' of the unix board: boot the firmware from the flashed directory, read DLMS.
    Returns the ``confirm_dlms`` dict; raises FlashError when the board does not boot."""
    work = tempfile.mkdtemp(prefix="meterctl-unix-")
    rig = None
    try:
        rig = unix_rig(work, flash_dir, heap)
        rig.start()
        if log is not None:
            log("booted the unix board from %s (pid %s)" % (flash_dir, rig.pid))
        return confirm_dlms(rig.port, serial, physical=physical)
    except RigError as e:
        tail = [ln for ln in (rig.log_tail(8) if rig is not None else "").splitlines() if ln.strip()]
        raise FlashError("the flashed unix board did not boot: %s%s" % (
            str(e).splitlines()[0], ("; firmware: " + tail[-1]) if tail else ""))
    finally:
        if rig is not None:
            rig.stop()
        shutil.rmtree(work, ignore_errors=True)


class UnixTarget:
    """``host_tools.flash`` target for the unix board in directory ``flash_dir``."""

    physical = None          # the provisioned HDLC physical address (set by `flash`)

    def __init__(self, flash_dir, heap="320k", timeout=10):
        p = pathlib.Path(flash_dir)
        if p.exists() and not p.is_dir():
            raise FlashError("--board unix: --port must be a directory (the emulated board's "
                             "flash), got %s" % flash_dir)
        self.flash_dir, self.heap = flash_dir, heap
        self.repl = UnixReplBoard(p, heap=heap)
        try:
            self.dev = Device(self.repl.port, root="", timeout=max(timeout, 15))
        except BaseException:
            self.repl.stop()
            raise

    def reset(self, serial, confirm, log, warnings):
        """Stop the REPL; with ``confirm`` boot the firmware and read DLMS (else None)."""
        self.close()
        if confirm:
            return boot_and_confirm(self.flash_dir, serial, self.heap, log, self.physical)
        return None

    def close(self):
        """Close the REPL connection and stop the REPL process (idempotent); config.json (the
        meter's secrets) ends 0600 even when an older flash left it readable."""
        self.dev.close()
        self.repl.stop()
        cfg = pathlib.Path(self.flash_dir) / "config.json"
        if cfg.exists():
            os.chmod(str(cfg), 0o600)
