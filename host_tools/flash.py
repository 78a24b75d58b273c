"""Flash and provision a meter board over its MicroPython REPL (mpremote's raw REPL transport).

``flash(port, board, serial, ...)`` does, in order, and stops with a FlashError saying why:

1. connect to the board's REPL with mpremote's SerialTransport *without* a soft reset (mpremote's
   ``resume``: the unix port would exit on one, and a running meter must not lose its state);
2. check the board: MicroPython >= 1.22, .mpy major version equal to our mpy-cross's (v6; the
   sub-version only matters for native code, which we do not emit), and the platform the board
   module expects (esp32 / rp2 / linux) — a clear refusal otherwise;
3. build the image with ``host_tools.build`` (``build/<board>/`` + manifest with sha256);
4. hash every file already on the board (one exec of ``hashlib.sha256`` on the device) and copy
   only the files whose hash differs or that are missing (written as ``<file>.new`` and renamed,
   so a cut leaves the old file); stale code files the manifest does not list are removed (a
   stale ``.py`` would shadow its ``.mpy``);
   where the board has ROMFS (``vfs.rom_ioctl``, MicroPython >= 1.25 built with MICROPY_VFS_ROM)
   the code goes into a ROMFS image written to partition 0 instead, and only main.py,
   config.json and data stay on littlefs;
5. write the per-meter provisioning ``config.json`` (serial, logical device name, LLS passwords,
   STS DRN/SGC/TI/KRN/KT/decoder key from the keystore, see ``host_tools.keystore``);
6. verify every file's sha256 on the board against the manifest (and the ROMFS image's);
7. reset (hard reset on a board; on the ``unix`` board: stop the REPL process and boot the
   firmware from the flashed directory with ``hil.rig.EmulatedRig``) and confirm over DLMS:
   logical device name 0.0.42.0.0.255 (IC 1) == serial, and the active firmware identifier
   1.0.0.2.0.255 (IC 1) when the meter serves it.

A running meter arms ``machine.WDT``: while flashing, every exec also calls the board module's
``feed_wdt()`` so the watchdog does not reset the board half way.

The ``unix`` board: ``port`` is a host directory, the emulated board's flash. ``flash`` starts
``micropython`` in that directory behind a raw pty pair (``hil.ptylink.PtyLink``, no socat) and
talks to it with mpremote exactly as to a USB board; the firmware later boots from the same
directory (board.json ``state`` = firmware dir = the flash directory).
"""

import binascii
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

from host_tools import build as _build
from host_tools import keystore as _ks

__all__ = ["FlashError", "BOARDS", "MIN_VERSION", "Device", "UnixReplBoard", "board_info",
           "check_board", "mpy_cross_mpy_version", "provisioning_config", "plan_copy",
           "code_files_to_remove", "flash", "provision", "unix_rig", "confirm_dlms", "OBIS_LDN",
           "OBIS_FIRMWARE"]

BOARDS = ("esp32", "rp2040", "unix")
PLATFORM = {"esp32": "esp32", "rp2040": "rp2", "unix": "linux"}
MIN_VERSION = (1, 22)
CODE_DIRS = ("meter", "boards", "protocol")
CONFIG = "config.json"
TABLES = "sts_tables.json"                  # EA07 tables from the keystore (secret)
SAMPLE_TABLES = "sts_sample_tables.json"    # IEC sample tables shipped in the build (test meters)
OBIS_LDN = "0.0.42.0.0.255"         # COSEM logical device name (IC 1 Data), = meter serial
OBIS_FIRMWARE = "1.0.0.2.0.255"     # active firmware identifier (IC 1 Data)
_CHUNK = 1024
_ROMFS_HEADER = b"\xd2\xcd\x31"


class FlashError(Exception):
    """Flashing or provisioning stopped; the message says what and why (one line first)."""


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
            self.t.enter_raw_repl(soft_reset=False, timeout_overall=timeout)
            self.exec(_PRELUDE)
        except FlashError:
            self.close()
            raise
        except Exception as e:
            self.close()
            raise FlashError("no MicroPython raw REPL on %s: %s" % (port, e))

    def path(self, rel):
        return self.root + rel

    def exec(self, code):
        try:
            return self.t.exec(code)
        except Exception as e:  # TransportExecError (the board raised), TransportError, OSError
            text = getattr(e, "error_output", None) or str(e) or type(e).__name__
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            raise FlashError("board error on %s: %s" % (self.port, (text.strip().splitlines()
                                                                    or ["?"])[-1]))

    def eval(self, expr):
        out = self.exec("print(repr(%s))" % expr).decode().strip()
        import ast
        try:
            return ast.literal_eval(out)
        except (ValueError, SyntaxError):
            raise FlashError("unexpected answer from the board to %s: %r" % (expr, out))

    def info(self):
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
        for d in sorted(set(rel_dirs), key=lambda s: s.count("/")):
            self.exec("_md(%r)" % self.path(d))

    def write(self, rel, data, progress=None):
        """Write ``data`` to ``rel`` via ``rel.new`` + rename (a cut keeps the old file)."""
        dest = self.path(rel)
        tmp = dest + ".new"
        self.exec("f=open(%r,'wb');w=f.write" % tmp)
        done = 0
        for i in range(0, len(data), _CHUNK):
            chunk = data[i:i + _CHUNK]
            self.exec("w(%r);_mf()" % chunk)
            done += len(chunk)
            if progress:
                progress(len(chunk))
        self.exec("f.close()\ntry:\n os.remove(%r)\nexcept OSError:\n pass\nos.rename(%r,%r)"
                  % (dest, tmp, dest))

    def remove(self, rel):
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


# --------------------------------------------------------------------------- the unix board

class UnixReplBoard:
    """The ``micropython`` command as a board: a REPL started in ``flash_dir`` behind a raw pty
    pair (hil.ptylink.PtyLink; mpremote opens ``port``). ``stop()`` kills it (idempotent)."""

    def __init__(self, flash_dir, heap="190k", micropython=None):
        from hil.ptylink import PtyLink
        from hil.env import find_micropython

        self.flash_dir = pathlib.Path(flash_dir).resolve()
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.link = PtyLink()
        self.port = self.link.b_path
        fd = os.open(self.link.a_path, os.O_RDWR | os.O_NOCTTY)
        try:
            env = dict(os.environ)
            env.pop("MICROPYPATH", None)
            self.proc = subprocess.Popen(
                [micropython or find_micropython(), "-X", "heapsize=%s" % heap],
                stdin=fd, stdout=fd, stderr=fd, cwd=str(self.flash_dir), env=env,
                start_new_session=True)
        except Exception:
            self.link.close()
            raise
        finally:
            os.close(fd)

    def stop(self):
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


# --------------------------------------------------------------------------- planning (pure)

def provisioning_config(serial, record, settings=None, tables=None):
    """The meter's ``config.json`` (dict): ``settings`` (tariff, pins, policy ...) overlaid with
    identity and secrets from the keystore ``record`` (see keystore.meter_record); ``tables`` the
    EA07 tables file name on the board (ignored for EA11)."""
    cfg = dict(settings or {})
    cfg["serial"] = serial
    cfg["logical_device_name"] = serial
    cfg["passwords"] = dict(record["passwords"])
    sts = dict(cfg.get("sts") or {})
    sts.update({"drn": record["drn"], "sgc": record["sgc"], "ti": record["ti"],
                "krn": record["krn"], "kt": record["kt"], "algorithm": record["algorithm"],
                "decoder_key": record["decoder_key"]})
    if record["algorithm"] == "ea07" and tables:
        sts["tables"] = tables
    cfg["sts"] = sts
    return cfg


def config_bytes(cfg):
    return (json.dumps(cfg, indent=1, sort_keys=True) + "\n").encode()


def plan_copy(wanted, on_board):
    """``wanted`` {rel: sha256}, ``on_board`` {rel: sha256|None} -> (copy list, unchanged list)."""
    copy, same = [], []
    for rel in sorted(wanted):
        (same if on_board.get(rel) == wanted[rel] else copy).append(rel)
    return copy, same


def code_files_to_remove(listing, keep):
    """Stale code files: ``listing`` {dir: [(name, type)]} of the board's code dirs, ``keep`` the
    set of rel paths that must stay. Returns rel paths of files (not dirs) to delete."""
    out = []
    for d, entries in sorted(listing.items()):
        for name, typ in entries:
            rel = d + "/" + name
            if typ == 0x8000 and rel not in keep and (name.endswith(".py") or name.endswith(".mpy")
                                                      or name.endswith(".new")):
                out.append(rel)
    return out


def _listing(dev):
    out = {}
    todo = list(CODE_DIRS)
    while todo:
        d = todo.pop()
        entries = dev.listdir(d)
        out[d] = entries
        todo += [d + "/" + n for n, t in entries if t == 0x4000 and n != "__pycache__"]
    return out


# --------------------------------------------------------------------------- ROMFS

def romfs_image(build_dir):
    """ROMFS image (bytes) of a build's .mpy code (``host_tools.build.romfs_bytes``)."""
    return _build.romfs_bytes(build_dir)


def _romfs_hash(dev, n):
    return dev.eval("binascii.hexlify(hashlib.sha256(memoryview(__import__('vfs')"
                    ".rom_ioctl(2,0))[:%d]).digest()).decode()" % n)


def _romfs_deploy(dev, image, info, progress=None):
    """Write ``image`` to ROMFS partition 0 (vfs.rom_ioctl 3/4/5, as ``mpremote romfs deploy``)."""
    if len(image) > info["romfs_size"]:
        raise FlashError("ROMFS image (%d bytes) does not fit partition 0 (%d bytes)"
                         % (len(image), info["romfs_size"]))
    dev.exec("import vfs\ntry:\n vfs.umount('/rom')\nexcept:\n pass")
    minw = dev.eval("vfs.rom_ioctl(3,0,%d)" % len(image))
    chunk = max(1024, int(minw) if isinstance(minw, int) and minw > 0 else 1024)
    for off in range(0, len(image), chunk):
        part = image[off:off + chunk]
        part += bytes(chunk - len(part))
        dev.exec("buf=binascii.a2b_base64(%r);_mf()" % binascii.b2a_base64(part).strip())
        dev.exec("vfs.rom_ioctl(4,0,%d,buf)" % off)
        if progress:
            progress(min(chunk, len(image) - off))
    dev.eval("vfs.rom_ioctl(5,0)")


# --------------------------------------------------------------------------- DLMS confirm

def confirm_dlms(port, serial=None, baud=9600, timeout=3.0, attempts=10):
    """Read the logical device name and the firmware identifier as the public client (SAP 16).

    Returns dict(serial str, firmware str|None, ok bool). ``ok`` is False if the name differs
    from ``serial``. Raises FlashError if the meter never answers.
    """
    from host_tools.client import DlmsClient, DlmsError, DataAccessError

    last = None
    for i in range(attempts):
        try:
            with DlmsClient(port, baud=baud, timeout=timeout) as c:
                ldn = c.get(1, OBIS_LDN, 2)[1]
                try:
                    fw = c.get(1, OBIS_FIRMWARE, 2)[1]
                except DataAccessError:
                    fw = None
            ldn = bytes(ldn).decode("ascii", "replace") if isinstance(ldn, (bytes, bytearray)) else str(ldn)
            if isinstance(fw, (bytes, bytearray)):
                fw = bytes(fw).decode("ascii", "replace")
            return {"serial": ldn, "firmware": fw, "ok": serial is None or ldn == serial}
        except DlmsError as e:
            last = e
            time.sleep(min(2.0, 0.3 * (i + 1)))
    raise FlashError("the meter does not answer DLMS on %s: %s" % (port, last))


def firmware_version():
    """FIRMWARE_VERSION of the firmware in this tree (firmware/meter/app.py)."""
    text = (_build.ROOT / "firmware" / "meter" / "app.py").read_text()
    m = re.search(r'^FIRMWARE_VERSION\s*=\s*"([^"]+)"', text, re.M)
    return m.group(1) if m else None


# --------------------------------------------------------------------------- the commands

class _Progress:
    """Byte progress over a rich Progress bar (or nothing when ``console`` is None)."""

    def __init__(self, console, total, what):
        self.bar = None
        if console is not None and total:
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                       TimeRemainingColumn, TransferSpeedColumn)
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task(what, total=total)

    def describe(self, text):
        if self.bar is not None:
            self.bar.update(self.task, description=text)

    def __call__(self, n):
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def _say(log, text):
    if log is not None:
        log(text)


def _open_device(port, board, baud, heap, timeout=10):
    """(device, unix_repl or None)."""
    if board == "unix":
        p = pathlib.Path(port)
        if p.exists() and not p.is_dir():
            raise FlashError("--board unix: --port must be a directory (the emulated board's "
                             "flash), got %s" % port)
        repl = UnixReplBoard(p, heap=heap)
        try:
            dev = Device(repl.port, root="", timeout=max(timeout, 15))
        except BaseException:
            repl.stop()
            raise
        return dev, repl
    return Device(port, baud=baud, root="/", timeout=timeout), None


def _secrets(keystore, serial, ident):
    """(meter record, keystore path, EA07 tables bytes or None)."""
    path = pathlib.Path(keystore) if keystore else _ks.default_path()
    try:
        store = _ks.load(path)
        rec, changed = _ks.meter_record(store, serial, **ident)
        if changed:
            _ks.save(path, store)
    except _ks.KeystoreError as e:
        raise FlashError(str(e))
    tables = None
    tp = store.get("defaults", {}).get("ea07_tables")
    if tp and rec["algorithm"] == "ea07":
        tp = (path.parent / tp) if not os.path.isabs(tp) else pathlib.Path(tp)
        try:
            tables = tp.read_bytes()
            json.loads(tables)
        except (OSError, ValueError) as e:
            raise FlashError("keystore ea07_tables %s: %s" % (tp, e))
    return rec, path, tables


def unix_rig(workdir, flash_dir, heap="190k"):
    """An EmulatedRig (not started) that boots the unix board from a flashed directory: the
    .mpy files there, and that directory as the meter's filesystem root (board.json state)."""
    import inspect

    from hil.emulated import EmulatedRig

    kw = {}
    if "image" in inspect.signature(EmulatedRig).parameters:
        kw["image"] = "mpy"                                 # the flash holds .mpy files
    rig = EmulatedRig(workdir, heap=heap, firmware_dir=flash_dir, start=False, **kw)
    rig.state_dir = pathlib.Path(flash_dir).resolve()       # the flash is the filesystem root
    return rig


def _boot_unix_and_confirm(flash_dir, serial, heap, log):
    """'Reset' of the unix board: boot the firmware from the flashed directory, read DLMS."""
    from hil.rig import RigError

    work = tempfile.mkdtemp(prefix="meterctl-unix-")
    rig = None
    try:
        rig = unix_rig(work, flash_dir, heap)
        rig.start()
        _say(log, "booted the unix board from %s (pid %s)" % (flash_dir, rig.pid))
        return confirm_dlms(rig.port, serial)
    except RigError as e:
        tail = [l for l in (rig.log_tail(8) if rig is not None else "").splitlines() if l.strip()]
        raise FlashError("the flashed unix board did not boot: %s%s" % (
            str(e).splitlines()[0], ("; firmware: " + tail[-1]) if tail else ""))
    finally:
        if rig is not None:
            rig.stop()
        shutil.rmtree(work, ignore_errors=True)


def flash(port, board, serial, keystore=None, drn=None, sgc=None, ti=None, krn=None,
          settings=None, baud=115200, dlms_port=None, dlms_baud=9600, heap="190k",
          romfs="auto", confirm=True, console=None, log=None, code=True, connect_timeout=10):
    """Flash (``code=True``) or only provision (``code=False``) the board on ``port``.

    ``romfs``: "auto" (use ROMFS when the board has it), "no" (always .mpy files), "yes"
    (refuse a board without ROMFS). ``connect_timeout``: seconds to wait for the raw REPL.
    ``dlms_port``: the meter's DLMS UART on the host for the
    confirmation (the ``unix`` board needs none). ``log(text)`` gets one line per step.

    Returns a report dict: board info, warnings, copied/unchanged/removed/verified rel paths,
    romfs ("deployed"|"unchanged"|None), dlms (confirm_dlms result or None), keystore path.
    Raises FlashError.
    """
    if board not in BOARDS:
        raise FlashError("unknown board %r (one of %s)" % (board, ", ".join(BOARDS)))
    rec, ks_path, tables = _secrets(keystore, serial, {"drn": drn, "sgc": sgc, "ti": ti, "krn": krn})
    extra = {}          # rel -> bytes written besides the build: provisioning
    if tables is not None:
        extra[TABLES] = tables
    cfg = provisioning_config(serial, rec, settings, TABLES if tables is not None else SAMPLE_TABLES)
    extra[CONFIG] = config_bytes(cfg)
    out_dir = None
    if code:
        out_dir = _build.cached_build(board, _build.ROOT / "build" / ("flash-" + board))
        manifest = json.loads((out_dir / "manifest.json").read_text())
        _say(log, "image %s: %d files (%s)" % (out_dir, len(manifest["files"]), manifest["arch"]))
    report = {"board": board, "port": str(port), "keystore": str(ks_path), "copied": [],
              "unchanged": [], "removed": [], "verified": [], "romfs": None, "dlms": None,
              "warnings": []}
    if tables is None and rec["algorithm"] == "ea07":
        report["warnings"].append("no ea07_tables in the keystore: the meter uses the IEC sample "
                                  "EA07 tables (test meters only)")
    dev, repl = _open_device(port, board, baud, heap, connect_timeout)
    try:
        info = board_info(dev)
        report["info"] = info
        report["warnings"] += check_board(info, board, mpy_cross_mpy_version())
        _say(log, "board: MicroPython %s on %s, mpy %d.%d%s" % (
            ".".join(str(x) for x in info["version"][:3]), info["platform"],
            decode_sys_mpy(info["mpy"])[0], decode_sys_mpy(info["mpy"])[1],
            ", ROMFS %d bytes" % info["romfs_size"] if info["romfs"] else ", no ROMFS"))
        use_romfs = code and info["romfs"] and romfs != "no" and board != "unix"
        if code and romfs == "yes" and not info["romfs"]:
            raise FlashError("--romfs yes, but the board has no ROMFS partition "
                             "(MicroPython >= 1.25 built with MICROPY_VFS_ROM)")
        wanted, sources = {}, {}
        if code:
            for rel, meta in manifest["files"].items():
                if use_romfs and rel.split("/", 1)[0] in CODE_DIRS:
                    continue
                wanted[rel] = meta["sha256"]
                sources[rel] = out_dir / rel
        for rel, data in extra.items():
            wanted[rel] = hashlib.sha256(data).hexdigest()
        on_board = dev.hashes(wanted)
        copy, same = plan_copy(wanted, on_board)
        report["unchanged"] = same
        # stale code (and every code file on littlefs when the code moves into ROMFS)
        if code:
            stale = code_files_to_remove(_listing(dev), set(wanted))
            for rel in stale:
                dev.remove(rel)
            report["removed"] = stale
        image = None
        if use_romfs:
            image = romfs_image(out_dir)
            if _romfs_hash(dev, len(image)) == hashlib.sha256(image).hexdigest():
                report["romfs"] = "unchanged"
                image_to_write = None
            else:
                image_to_write = image
        else:
            image_to_write = None
        total = sum(len(extra[r]) if r in extra else sources[r].stat().st_size for r in copy)
        total += len(image_to_write or b"")
        bar = _Progress(console, total, "copying")
        try:
            dev.mkdirs({r.rsplit("/", 1)[0] for r in copy if "/" in r})
            for rel in copy:
                bar.describe(rel)
                data = extra[rel] if rel in extra else sources[rel].read_bytes()
                dev.write(rel, data, bar)
            if image_to_write is not None:
                bar.describe("ROMFS image")
                _romfs_deploy(dev, image_to_write, info, bar)
                report["romfs"] = "deployed"
        finally:
            bar.close()
        report["copied"] = copy
        _say(log, "copied %d files, %d unchanged, %d stale removed%s" % (
            len(copy), len(same), len(report["removed"]),
            ", ROMFS image %s" % report["romfs"] if report["romfs"] else ""))
        # verify everything, not only what was copied
        after = dev.hashes(wanted)
        bad = [r for r in wanted if after.get(r) != wanted[r]]
        if image is not None and _romfs_hash(dev, len(image)) != hashlib.sha256(image).hexdigest():
            bad.append("<ROMFS image>")
        if bad:
            raise FlashError("sha256 mismatch on the board after copying: %s" % ", ".join(bad))
        report["verified"] = sorted(wanted)
        _say(log, "verified sha256 of %d files on the board" % len(wanted))
        if board == "unix":
            dev.close()
            repl.stop()
            repl = None
            if confirm:
                report["dlms"] = _boot_unix_and_confirm(port, serial, heap, log)
        else:
            dev.hard_reset()
            _say(log, "reset the board")
            if confirm and dlms_port:
                time.sleep(2.0)
                report["dlms"] = confirm_dlms(dlms_port, serial, baud=dlms_baud)
            elif confirm:
                report["warnings"].append("no --dlms-port: DLMS confirmation skipped")
        d = report["dlms"]
        if d is not None:
            _say(log, "DLMS: logical device name %s, firmware %s" % (d["serial"], d["firmware"] or
                                                                      "(not served)"))
            if not d["ok"]:
                raise FlashError("the meter answers as %r, not %r after flashing"
                                 % (d["serial"], serial))
        return report
    finally:
        dev.close()
        if repl is not None:
            repl.stop()


def provision(port, board, serial, **kw):
    """Write only the provisioning config.json to an already flashed board (see `flash`)."""
    kw["code"] = False
    return flash(port, board, serial, **kw)
