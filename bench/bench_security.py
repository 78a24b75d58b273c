"""Security suite 0 benchmarks (issue 11, part 1: the protocol primitives).

On the ``micropython`` unix port (64-bit) and the 32-bit unix VM (shared/micropython32), both
with the RP2040 heap (``-X heapsize=190k``):

1. time per protected APDU (``Suite0.seal`` then ``Suite0.open``, SC 0x30: AES-GCM-128 with a
   12-byte tag) for a 64-byte and a 512-byte APDU, and for the GCM core alone (start, aad, crypt, hash, tag);
2. time per HLS mechanism 5 value (``hls_gmac`` f(StoC) of a 16-byte challenge, and
   ``hls_check``), and per mechanism 2 value (``hls_ecb``, once per association);
3. bytes allocated per operation after warm-up (gc disabled, ``gc.mem_alloc`` delta), the ops
   re-run under ``micropython.heap_lock()`` (any allocation would raise), and heap growth
   after 200 ciphered round trips (live heap after a collect);
4. the heap cost of the security code: importing protocol.aes and
   protocol.security from mpy-cross ``.mpy`` files (bytecode in RAM, as without ROMFS), and one
   ``Suite0`` key set (GHASH table + buffers).

The RP2040 (133 MHz Cortex-M0+) figure is an estimate, unix-port time x RP2040_FACTOR, the
same convention as bench_sts.py.

Run: ``.venv/bin/python bench/bench_security.py``.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import benchargs

ROOT = pathlib.Path(__file__).resolve().parents[1]
# see bench_sts.py: the pessimistic end of 40-80x for integer/bytecode loops
RP2040_FACTOR = 80
MODULES = ("protocol/aes.py", "protocol/security.py", "protocol/hlsecb.py")

DEVICE_SCRIPT = r"""
import gc, sys, time, micropython
total = 0
for name in ("protocol.aes", "protocol.security"):
    gc.collect()
    m0 = gc.mem_alloc()
    __import__(name)
    gc.collect()
    d = gc.mem_alloc() - m0
    total += d
    print("RESULT import_%s %d" % (name.split(".")[1], d))
print("RESULT import_bytes %d" % total)
from protocol import security, hlsecb
from protocol.security import Suite0, HEADROOM, TAILROOM
EK = bytes(range(16))
AK = bytes(range(0xD0, 0xE0))
ST = b"MMM\x00\x00\xbc\x61\x4e"
gc.collect()
m0 = gc.mem_alloc()
s = Suite0(EK, AK)
gc.collect()
print("RESULT suite0_bytes %d" % (gc.mem_alloc() - m0))
r = Suite0(EK, AK)
bufs = {}
for n in (64, 512):
    b = bytearray(HEADROOM + n + TAILROOM)
    b[HEADROOM] = 0xC4
    bufs[n] = b
chal = b"P6wRJ21F" + b"abcdefgh"
f = bytearray(17)
tag = bytearray(12)
iv = bytearray(12)

def rt(n, ic):
    b = bufs[n]
    h = s.seal(b, HEADROOM, HEADROOM + n, 0x30, ic, ST, 0xDB)
    r.open(b, h, HEADROOM + n + 12, ST, ic)
    return h

def gcm(n):
    b = bufs[n]
    g = s                                    # the meter's streaming calls (no one-shot helper)
    g.begin(iv)
    g.aad(AK)
    g.crypt(b)
    g.hash(b)
    g.mac(tag, 0, 12)

def hls(ic):
    s.hls_gmac(ST, ic, chal, f, 0)
    return r.hls_check(ST, chal, f, 0, 17)

def timed(fn, arg, reps):
    best = 1e9
    for _ in range(3):                       # best of 3: the host may be busy
        t0 = time.ticks_us()
        for i in range(reps):
            fn(arg)
        best = min(best, time.ticks_diff(time.ticks_us(), t0) / reps)
    return best

for n in (64, 512):
    rt(n, 1)
    print("RESULT rt%d_us %.1f" % (n, timed(lambda ic: rt(n, ic), 1, 20)))
    print("RESULT gcm%d_us %.1f" % (n, timed(gcm, n, 20)))
assert hls(5)
print("RESULT hls_pair_us %.1f" % timed(hls, 7, 50))
print("RESULT hls_gmac_us %.1f" % timed(lambda ic: s.hls_gmac(ST, ic, chal, f, 0), 7, 50))
print("RESULT hls_ecb_us %.1f" % timed(lambda c: hlsecb.hls_ecb(AK, c), chal, 50))

# allocation per operation after warm-up (gc disabled)
gc.collect()
gc.disable()
for name, fn, arg in (("rt64", lambda ic: rt(64, ic), 9), ("rt512", lambda ic: rt(512, ic), 9),
                      ("hls", hls, 9)):
    fn(arg)
    a0 = gc.mem_alloc()
    for i in range(10):
        fn(arg)
    print("RESULT alloc_%s %d" % (name, (gc.mem_alloc() - a0) // 10))
gc.enable()
# the same under heap_lock: any allocation raises MemoryError
micropython.heap_lock()
try:
    rt(64, 10); rt(512, 11); ok = hls(12)
    locked = 1
except MemoryError:
    locked = 0
micropython.heap_unlock()
print("RESULT heap_lock_ok %d" % locked)
# heap growth over 200 round trips with rising counters
gc.collect()
m0 = gc.mem_alloc()
for ic in range(100, 300):
    rt(64 if ic & 1 else 512, ic)
    hls(ic)
gc.collect()
print("RESULT heap_growth %d" % (gc.mem_alloc() - m0))
print("RESULT mem_free %d" % gc.mem_free())
"""


def mpy_cross():
    exe = pathlib.Path(sys.executable).with_name("mpy-cross")
    return str(exe) if exe.exists() else "mpy-cross"


def vm32_cmd():
    """The 32-bit unix VM: $MICROPYTHON32, else shared/micropython32 beside the checkout (or
    beside the main checkout of a git worktree), else micropython-32 on PATH; None if absent."""
    if os.environ.get("MICROPYTHON32"):
        return os.environ["MICROPYTHON32"]
    bases = [ROOT.parent]
    try:
        common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
                                cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        bases.append(pathlib.Path(common).parent.parent)
    except (OSError, subprocess.CalledProcessError):
        pass
    for b in bases:
        exe = b / "shared" / "micropython32" / "bin" / "micropython-32"
        if exe.exists():
            return str(exe)
    return shutil.which("micropython-32")


def micropython_cmd():
    exe = pathlib.Path(sys.executable).with_name("micropython")
    return str(exe) if exe.exists() else "micropython"


def run(vm, d):
    """Run DEVICE_SCRIPT on ``vm`` importing the .mpy files under ``d``: {name: float}."""
    script = os.path.join(d, "bench_sec.py")
    with open(script, "w") as f:
        f.write(DEVICE_SCRIPT)
    env = dict(os.environ, MICROPYPATH=d)
    p = subprocess.run([vm, "-X", "heapsize=190k", script], capture_output=True, text=True,
                       timeout=600, env=env, cwd=d)
    if p.returncode != 0:
        raise SystemExit("%s failed:\n%s%s" % (vm, p.stdout, p.stderr))
    res = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "RESULT":
            res[parts[1]] = float(parts[2])
    return res


def build_mpy(d):
    os.makedirs(os.path.join(d, "protocol"))
    open(os.path.join(d, "protocol", "__init__.py"), "w").close()
    for rel in MODULES:
        out = os.path.join(d, rel[:-3] + ".mpy")
        subprocess.run([mpy_cross(), "-o", out, "-s", rel, str(ROOT / rel)], check=True)


def report(label, r):
    print("%s (-X heapsize=190k):" % label)
    for n in (64, 512):
        us = r["rt%d_us" % n]
        print("  %3d-byte APDU, SC 0x30: seal+open %7.0f us (GCM core %6.0f us per pass); "
              "RP2040 @133 MHz estimate ~%.0f ms" % (n, us, r["gcm%d_us" % n], us * RP2040_FACTOR / 1000))
    print("  HLS-GMAC f(StoC) %5.0f us, hls_gmac+hls_check %5.0f us (RP2040 ~%.0f ms); "
          "HLS mechanism 2 (32-byte ECB) %4.0f us"
          % (r["hls_gmac_us"], r["hls_pair_us"], r["hls_pair_us"] * RP2040_FACTOR / 1000, r["hls_ecb_us"]))
    print("  allocated per op after warm-up: 64 B APDU %d B, 512 B APDU %d B, HLS pair %d B; "
          "under heap_lock: %s; heap growth over 200 round trips + 200 HLS: %d B"
          % (r["alloc_rt64"], r["alloc_rt512"], r["alloc_hls"],
             "no allocation" if r["heap_lock_ok"] else "ALLOCATED", r["heap_growth"]))
    print("  heap: importing from .mpy (in this order) aes %d B, security (with GCM) %d B "
          "= %d B; one Suite0 key set %d B; free at the end %d B"
          % (r["import_aes"], r["import_security"],
             r["import_bytes"], r["suite0_bytes"], r["mem_free"]))


def main(which="both"):
    with tempfile.TemporaryDirectory() as d:
        build_mpy(d)
        if which != "vm32":
            report("micropython unix port (64-bit)", run(micropython_cmd(), d))
        vm32 = vm32_cmd() if which != "unix" else None
        if vm32:
            report("micropython 32-bit VM", run(vm32, d))
        elif which != "unix":
            print("32-bit VM not found (set MICROPYTHON32 or put shared/micropython32 beside "
                  "the checkout): skipped")


if __name__ == "__main__":
    ap = benchargs.parser(__doc__)
    benchargs.vm_option(ap)
    main(ap.parse_args().vm)
