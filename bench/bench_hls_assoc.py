"""HLS association and ciphered GET on the meter's own server code (issue 11, part 2).

Runs firmware/meter/server.Association with meter.acse/meter.secure (compiled with mpy-cross,
as on a board without ROMFS) on the ``micropython`` unix port and the 32-bit VM, with a stub
meter: the time of one HLS-GMAC association (AARQ with a glo-initiate-request -> AARE, then
reply_to_HLS_authentication) and of one ciphered GET (clock time, general-glo-ciphering), meter
side only (the client's crypto is outside the timers); heap growth over 200 ciphered GETs after
warm-up; and the heap the security code costs (importing meter.acse, meter.lockout,
meter.secure, protocol.aes/security from .mpy, plus one key set and counters).
The RP2040 figure is unix time x bench_security.RP2040_FACTOR.

Run: ``.venv/bin/python bench/bench_hls_assoc.py``.
"""
import os
import subprocess
import sys
import tempfile

import bench_security as B
import benchargs

SCRIPT = r"""
import gc, time, sys
from protocol import apdu, axdr            # loaded by every meter: not the security code's
gc.collect()
m0 = gc.mem_alloc()
from meter import acse, lockout, secure
from protocol import security as S
gc.collect()
code = gc.mem_alloc() - m0
from meter.server import Association
EK = b"TEST-GUEK-000001"; AK = b"TEST-GAK--000001"; CT = b"HES\x00\x00\x00\x00\x01"
class Board:
    def __init__(s, d): s.d = d
    def path(s, n): return s.d + "/" + n
    def time(s): return 1767225600
    def ticks_ms(s): return 0
    def report(s, l): pass
class Acc:
    credit = 0
class M:
    tz_minutes = 330
    def __init__(s, d): s.board = Board(d); s.account = Acc()
    def event(s, *a): pass
    def check_password(s, c, v): return False
m = M(sys.argv[1])
gc.collect()
m1 = gc.mem_alloc()
acse.setup(m, {"security": {"ek": EK.hex(), "ak": AK.hex(), "title": "50504d0000000001"}})
gc.collect()
keyset = gc.mem_alloc() - m1
a = Association(m)
cl = S.Suite0(EK, AK)
ic = [1]
def seal(p, form):
    b = bytearray(S.HEADROOM + len(p) + S.TAILROOM)
    b[S.HEADROOM:S.HEADROOM + len(p)] = p
    q = cl.seal(b, S.HEADROOM, S.HEADROOM + len(p), 0x30, ic[0], CT, form)
    ic[0] += 1
    return bytes(b[q:S.HEADROOM + len(p) + S.TAG_LEN])
INIT = bytes.fromhex("01000000065f1f0400401e5dffff")
CTOS = b"K56iVagYK56iVagY"
def aarq():
    ui = seal(INIT, S.FORM_GLO)
    body = (b"\xa1\x09\x06\x07\x60\x85\x74\x05\x08\x01\x03" + b"\xa6\x0a\x04\x08" + CT
            + b"\x8a\x02\x07\x80\x8b\x07\x60\x85\x74\x05\x08\x02\x05"
            + b"\xac\x12\x80\x10" + CTOS + b"\xbe" + bytes((len(ui) + 2, 4, len(ui))) + ui)
    return b"\x60" + bytes((len(body),)) + body
def assoc():
    q = aarq()
    t0 = time.ticks_us(); r = a.handle(1, q); t = time.ticks_diff(time.ticks_us(), t0)
    i = bytes(r).index(b"\xaa\x12\x80\x10") + 4
    stoc = bytes(r)[i:i + 16]
    f = bytearray(17); cl.hls_gmac(CT, ic[0], stoc, f); ic[0] += 1
    act = b"\xc3\x01\xc1\x00\x0f\x00\x00\x28\x00\x00\xff\x01\x01\x09\x11" + bytes(f)
    q = seal(act, 0xDB)
    t0 = time.ticks_us(); r = a.handle(1, q); t += time.ticks_diff(time.ticks_us(), t0)
    return t
GET = b"\xc0\x01\xc1\x00\x01\x00\x00\x2a\x00\x00\xff\x02\x00"
def get():
    q = seal(GET, 0xDB)   # general-glo-ciphering
    t0 = time.ticks_us(); r = a.handle(1, q); t = time.ticks_diff(time.ticks_us(), t0)
    return t
m.logical_device_name = b"PPM0000001"
for _ in range(3):
    assoc(); get()
ta = sum(assoc() for _ in range(10)) / 10
tg = sum(get() for _ in range(50)) / 50
gc.collect(); g0 = gc.mem_alloc()
for _ in range(200):
    get()
gc.collect()
print("RESULT assoc_us %.1f" % ta)
print("RESULT get_us %.1f" % tg)
print("RESULT growth %d" % (gc.mem_alloc() - g0))
print("RESULT code %d" % code)
print("RESULT keyset %d" % keyset)
"""

MODS = ("meter/__init__.py", "meter/acse.py", "meter/keyset.py", "meter/keyxfer.py", "meter/lockout.py",
        "meter/secure.py",
        "meter/server.py",
        "meter/cosem.py", "meter/cosem_log.py", "meter/cosem_values.py", "meter/timeutil.py")
PROTO = ("protocol/__init__.py", "protocol/aes.py", "protocol/security.py",
         "protocol/keywrap.py", "protocol/apdu.py", "protocol/axdr.py", "protocol/hdlc.py",
         "protocol/crc.py", "protocol/civil.py", "protocol/hlsecb.py")


def build(d):
    for rel in MODS + PROTO:
        src = B.ROOT / ("firmware/" + rel if rel.startswith("meter") else rel)
        if not src.exists():
            continue
        out = os.path.join(d, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run([B.mpy_cross(), "-o", out, "-s", rel, str(src)], check=True)


def run(vm, d):
    st = tempfile.mkdtemp()
    script = os.path.join(d, "hls_bench.py")
    with open(script, "w") as f:
        f.write(SCRIPT)
    p = subprocess.run([vm, "-X", "heapsize=190k", script, st], capture_output=True, text=True,
                       env=dict(os.environ, MICROPYPATH=d), timeout=300)
    if p.returncode:
        sys.exit("bench failed on %s:\n%s%s" % (vm, p.stdout, p.stderr))
    return {ln.split()[1]: float(ln.split()[2]) for ln in p.stdout.splitlines() if ln.startswith("RESULT")}


def main(which="both"):
    with tempfile.TemporaryDirectory() as d:
        build(d)
        for label, vm in (("unix port (64-bit)", B.micropython_cmd()), ("32-bit VM", B.vm32_cmd())):
            if not vm or which not in ("both", "vm32" if label == "32-bit VM" else "unix"):
                continue
            r = run(vm, d)
            print("%s: HLS-GMAC association %.2f ms (RP2040 ~%.0f ms), ciphered GET %.2f ms "
                  "(RP2040 ~%.0f ms); heap growth over 200 ciphered GETs %d B; security code "
                  "(acse+lockout+secure+aes+security from .mpy) %d B, key set + counters %d B"
                  % (label, r["assoc_us"] / 1000, r["assoc_us"] * B.RP2040_FACTOR / 1000,
                     r["get_us"] / 1000, r["get_us"] * B.RP2040_FACTOR / 1000, r["growth"],
                     r["code"], r["keyset"]))


if __name__ == "__main__":
    ap = benchargs.parser(__doc__)
    benchargs.vm_option(ap)
    main(ap.parse_args().vm)
