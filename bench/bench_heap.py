"""Heap benchmark of the meter firmware on the MicroPython unix port (issue 7).

Prints, for code deployed as ``.mpy`` files (imported into RAM) and as a ROMFS image (bytecode
runs in place; on the unix port the image buffer itself sits in the heap, so the rig adds its
size to ``-X heapsize`` and it is reported apart):

1. the smallest heap (``-X heapsize``, 2 KiB resolution) at which the HIL core scenario
   passes on the emulated rig: boot, top-up over DLMS (IC 112 update_amount), drain the credit
   with a 2 kW load until the relay opens;
2. the firmware's steady-state heap use after that scenario: the unix board's control line
   ``mem`` answers ``mem <alloc> <free>`` after ``gc.collect()`` (at a roomy heap);
3. per-module heap cost of importing the code (.mpy vs ROMFS), in import order, so a module's
   figure is what it adds on top of the modules before it.

Both runs use the default rig config (no STS) and, separately, a meter provisioned with STS
EA07 (tables loaded), as ``meterctl flash`` provisions one.

Run: ``.venv/bin/python bench/bench_heap.py [--quick]`` (``make bench``). ESP32's starting heap
is 56 KiB (it grows by regions); the RP2040's is ~190 KiB.
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
from host_tools.client import DlmsClient  # noqa: E402
from hil import EmulatedRig, RigError, find_micropython  # noqa: E402

TABLES = ROOT / "firmware" / "sts_sample_tables.json"
MGMT = dict(client_sap=1, password="12345678")
ESP32_HEAP = 56 * 1024
STS_CONFIG = {"sts": {"decoder_key": "0123456789abcdef", "algorithm": "ea07",
                      "tables": "sts_tables.json"}}
# import order for the per-module figures (dependencies first)
MODULES = ["protocol.crc", "protocol.obis", "protocol.axdr", "protocol.hdlc", "protocol.apdu",
           "protocol.modbus_rtu", "protocol.gbt", "protocol.security", "protocol.sts",
           "protocol.ea07", "protocol.misty1", "meter.timeutil", "meter.account", "meter.relay",
           "meter.policy", "meter.tariff", "meter.limiter", "meter.store", "meter.events",
           "meter.profile", "meter.metrology", "meter.cosem_values", "meter.cosem",
           "meter.tokens", "meter.server", "meter.app", "boards.unix"]


def top_up(rig, paise):
    with DlmsClient(rig.port, **MGMT) as c:
        res, _ = c.action(112, "0.0.19.10.0.255", 1, b"\x05" + paise.to_bytes(4, "big", signed=True))
    return res


def core_scenario(rig):
    """Boot (done), top up Rs 20.00, drain at 2 kW until the relay opens. Raises on failure."""
    rig.wait_relay(False)
    if top_up(rig, 2000) != 0:
        raise RigError("top-up refused")
    rig.wait_relay(True)
    rig.set_load(2000)
    for _ in range(20):
        t = rig.advance(900)
        if t.credit <= 0:
            break
    rig.wait_relay(False)


def run(heap, image, config, workroot, steady=False):
    """Core scenario at ``heap`` bytes: (ok, (alloc, free) or None, romfs bytes, reason)."""
    work = tempfile.mkdtemp(dir=workroot)
    rig = None
    try:
        rig = EmulatedRig(work, heap=heap, image=image, config=config, start=False,
                          boot_timeout=20)
        if config and "sts" in config:
            shutil.copyfile(TABLES, rig.state_dir / "sts_tables.json")
        rig.start()
        core_scenario(rig)
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


def smallest_heap(image, config, workroot, lo=24 * 1024, hi=320 * 1024, step=2048):
    """Bisect the smallest heap (bytes, multiple of ``step``) at which the scenario passes."""
    ok, _, _, why = run(hi, image, config, workroot)
    if not ok:
        return None, "fails even at %d KiB: %s" % (hi // 1024, why)
    last_why = ""
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        ok, _, _, why = run(mid, image, config, workroot)
        if ok:
            hi = mid
        else:
            lo, last_why = mid, why
    return hi, last_why


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


def module_costs(image):
    """{module: bytes} and total, importing the code as .mpy files or from a ROMFS image."""
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
    r = subprocess.run([find_micropython(), "-X", "heapsize=512k", "-c", code],
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the STS-provisioned runs")
    a = ap.parse_args(argv)
    workroot = tempfile.mkdtemp(prefix="bench-heap-")
    try:
        configs = [("default", None)] + ([] if a.quick else [("STS EA07", STS_CONFIG)])
        print("Heap of the meter firmware on the MicroPython unix port (%s)" % find_micropython())
        print("ESP32 starting heap: %s; RP2040: ~190 KiB\n" % kib(ESP32_HEAP))
        print("1+2. core scenario (boot, top-up, drain at 2 kW, relay opens)")
        print("%-9s %-9s %14s %14s %14s %12s" % ("code", "config", "smallest heap", "steady alloc",
                                                "free @256k", "image"))
        print("(steady alloc: after the scenario, gc.collect(), at a 256 KiB heap; ROMFS: image "
              "buffer subtracted)")
        for image in ("mpy", "romfs"):
            for cname, cfg in configs:
                t0 = time.monotonic()
                heap, why = smallest_heap(image, cfg, workroot)
                ok, m, rom, why2 = run(256 * 1024, image, cfg, workroot, steady=True)
                # ROMFS: the rig gave the process heap + image; the image buffer is not firmware
                steady = (m[0] - (rom if image == "romfs" else 0)) if m else None
                print("%-9s %-9s %14s %14s %14s %12s   (%s%.0f s)" % (
                    image, cname, kib(heap), kib(steady), kib(m[1]) if m else "-",
                    kib(rom) if image == "romfs" else "-",
                    ("below that: %s; " % why) if why else "", time.monotonic() - t0))
                if heap is not None and heap > ESP32_HEAP:
                    print("%20s above ESP32's 56 KiB by %s" % ("", kib(heap - ESP32_HEAP)))
        print("\n3. heap added by importing each module (gc.mem_alloc delta, import order)")
        mpy, mpy_total = module_costs("mpy")
        rom, rom_total = module_costs("romfs")
        print("%-22s %10s %10s" % ("module", ".mpy", "ROMFS"))
        for name in MODULES:
            if name in mpy or name in rom:
                print("%-22s %10s %10s" % (name, kib(mpy.get(name)), kib(rom.get(name))))
        print("%-22s %10s %10s   (ROMFS image buffer apart: %s)" % (
            "total", kib(mpy_total), kib(rom_total), kib(cached_romfs("unix").stat().st_size)))
        print("(a module's figure includes the qstr pool growth its import triggers: pools double,\n"
              " so single modules can show lumps; modules a previous one imported show 0)")
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
