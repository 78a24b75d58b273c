"""Modbus RTU metering-module poll benchmark (issue 13).

For each module type (PZEM-004T v3, SDM120, SDM630), on the ``micropython`` unix port with
the RP2040 heap (``-X heapsize=190k``) and on CPython:

- time per poll of ``meter.metrology.Module`` over a line that answers at once (no sleeps:
  a fake ms clock), clean and with 3 noise bytes before each reply: drain, request, frame
  hunt, CRC, decode (integers / float32 in integer arithmetic), fault logic;
- heap growth per poll after warm-up over 1,000 polls (``gc.mem_alloc`` before/after, no
  collection in between) and whether 1,000 polls run under ``micropython.heap_lock()``;
- the meter's loop on MicroPython (``meter.metrology.loop``, generator tasks): bytes allocated per
  poll by ``yield from module.poll()`` (one generator object per call) and by ``module.run()``
  (none), real ``ticks_ms``/``sleep_ms``.

The RP2040 figure is an estimate (unix-port time x RP2040_FACTOR, as bench_sts.py).
Run: ``.venv/bin/python bench/bench_modbus.py`` (``make bench``).
"""
import os
import pathlib
import subprocess
import sys

from host_tools.firmware_src import FIRMWARE_DIR, ROOT
import benchargs

POLLS = 1000
ASYNC_POLLS = 30
RP2040_FACTOR = 80

DEVICE_SCRIPT = r"""
import gc, sys, time, struct
from protocol.crc import crc16_modbus
from meter import metrology as mt

MPY = sys.implementation.name == "micropython"
POLLS = int(sys.argv[1])
ASYNC_POLLS = int(sys.argv[2])

def us():
    return time.ticks_us() if MPY else int(time.perf_counter() * 1000000)

def us_diff(a, b):
    return time.ticks_diff(a, b) if MPY else a - b

def crc(b):
    c = crc16_modbus(b)
    return bytes(b) + bytes((c & 0xFF, c >> 8))

def f32_regs(vals, addr, count):
    out = bytearray()
    a = addr
    while a < addr + count:
        raw = struct.pack(">f", vals.get(a, 0.0))
        out += raw
        a += 2
    return out

SDM = {0x00: 230.1, 0x02: 231.0, 0x04: 229.0, 0x06: 4.567, 0x08: 2.0, 0x0A: 1.0,
       0x0C: 1050.4, 0x0E: 460.0, 0x10: 229.0, 0x1E: 0.95, 0x34: 1739.4, 0x3E: 0.97,
       0x46: 50.0, 0x48: 12345.678, 0x4A: 0.5}

def replies(kind):
    if kind == "pzem004t":
        regs = [2300, 1234, 0, 2838, 0, 0xE240, 1, 500, 98, 0]
        body = bytearray((1, 4, 20))
        for r in regs:
            body += bytes((r >> 8, r & 0xFF))
        return [crc(body)]
    blocks = ((0, 0x20), (0x46, 6)) if kind == "sdm120" else ((0, 0x12), (0x34, 0x18))
    return [crc(bytes((1, 4, 2 * c)) + f32_regs(SDM, a, c)) for a, c in blocks]

class Line:
    # answers each request at once with the next reply (preallocated): allocates nothing
    def __init__(self, reps, noise):
        self.reps = [bytearray(r) for r in reps]
        self.i = 0
        self.cur = self.reps[0]
        self.pos = len(self.cur)
        self.noise = noise
        self.left = 0
    def write(self, req):
        self.cur = self.reps[self.i]
        self.i = (self.i + 1) % len(self.reps)
        self.pos = 0
        self.left = self.noise
    def readinto(self, buf):
        if self.left:
            self.left -= 1
            buf[0] = 0xFF
            return 1
        n = len(self.cur) - self.pos
        if n <= 0:
            return 0
        if n > len(buf):
            n = len(buf)
        for j in range(n):
            buf[j] = self.cur[self.pos + j]
        self.pos += n
        return n

class Clock:
    def __init__(self):
        self.ms = 0
    def ticks(self):
        return self.ms

def poll(m, clk):
    m.start()
    while True:
        ms = m.step()
        if ms < 0:
            return m.fresh
        clk.ms += ms

def bench(kind, noise):
    clk = Clock()
    m = mt.Module(Line(replies(kind), noise), kind, 1, ticks=clk.ticks, clock=lambda: 0)
    for _ in range(20):
        assert poll(m, clk)
    gc.collect()
    a0 = gc.mem_alloc() if MPY else 0
    t0 = us()
    for _ in range(POLLS):
        poll(m, clk)
    dt = us_diff(us(), t0)
    grow = (gc.mem_alloc() - a0) if MPY else -1
    locked = "n/a"
    if MPY:
        import micropython
        micropython.heap_lock()
        try:
            for _ in range(POLLS):
                poll(m, clk)
            locked = "yes"
        except MemoryError:
            locked = "NO"
        micropython.heap_unlock()
    assert m.fresh and m.errors == 0, m.last_error
    print("RESULT %s %d %d %d %s" % (kind, noise, dt // POLLS, grow, locked))

class Done(Exception):
    pass

def bench_async(kind):
    from meter.metrology import loop
    line = Line(replies(kind), 0)
    m = mt.Module(line, kind, 1, clock=lambda: 0)
    state = [0, 0]
    def after():
        state[0] += 1
        if state[0] == 5:
            gc.collect()
            state[1] = gc.mem_alloc()
        elif state[0] == 5 + ASYNC_POLLS:
            state[1] = gc.mem_alloc() - state[1]
            raise Done
    def polls():
        for _ in range(5):
            yield from m.poll()
        gc.collect()
        a0 = gc.mem_alloc()
        for _ in range(ASYNC_POLLS):
            yield from m.poll()
        state[0] = gc.mem_alloc() - a0
    try:
        loop([m.run(0, after)], time.ticks_ms, time.sleep_ms)
    except Done:
        pass
    run_grow = state[1]
    loop([polls()], time.ticks_ms, time.sleep_ms)
    print("ASYNC %s %d %d" % (kind, run_grow, state[0]))

for kind in ("pzem004t", "sdm120", "sdm630"):
    bench(kind, 0)
    bench(kind, 3)
    if MPY:
        bench_async(kind)
"""


def micropython_cmd():
    exe = pathlib.Path(sys.executable).with_name("micropython")
    return str(exe) if exe.exists() else "micropython"


def run(cmd, env_key):
    env = dict(os.environ)
    # ".frozen": the unix port's built-in modules when MICROPYPATH is set
    env[env_key] = os.pathsep.join([str(FIRMWARE_DIR), str(ROOT), ".frozen"])
    proc = subprocess.run(cmd + ["-c", DEVICE_SCRIPT, str(POLLS), str(ASYNC_POLLS)],
                          check=False, capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT))
    if proc.returncode:
        raise SystemExit("bench failed:\n" + proc.stdout + proc.stderr)
    return proc.stdout.splitlines()


def main():
    mp = run([micropython_cmd(), "-X", "heapsize=190k"], "MICROPYPATH")
    cp = run([sys.executable], "PYTHONPATH")
    cpy = {}
    for line in cp:
        if line.startswith("RESULT"):
            _, kind, noise, us, _, _ = line.split()
            cpy[(kind, noise)] = int(us)
    print(f"Modbus RTU poll (drain + request + frame hunt + CRC + decode + fault logic), {POLLS} polls")
    print(f"{'module':9} {'noise':6} {'unix us':>10} {'RP2040 ~ms':>12} {'CPython us':>12} "
          f"{'heap B/poll':>14} {'heap_lock':>10}")
    for line in mp:
        p = line.split()
        if p[0] == "RESULT":
            kind, noise, us, grow, locked = p[1], p[2], int(p[3]), int(p[4]), p[5]
            print(f"{kind:9} {noise + 'B':6} {us:10d} {us * RP2040_FACTOR / 1000:12.1f} "
                  f"{cpy[(kind, noise)]:12d} {grow / POLLS:14.2f} {locked:>10}")
    print(f"the meter's loop on the unix port, heap growth per poll after warm-up ({ASYNC_POLLS} polls):")
    for line in mp:
        p = line.split()
        if p[0] == "ASYNC":
            print(f"  {p[1]:9} run(): {int(p[2]) / ASYNC_POLLS:.1f} B/poll   "
                  f"yield from poll(): {int(p[3]) / ASYNC_POLLS:.1f} B/poll")

if __name__ == "__main__":
    ap = benchargs.parser(__doc__)
    ap.add_argument("--polls", type=benchargs.count, default=POLLS, metavar="N",
                    help="polls per module and noise level, timed and heap-measured (default: %(default)s)")
    ap.add_argument("--async-polls", type=benchargs.count, default=ASYNC_POLLS, metavar="N",
                    help="polls of the meter's loop, heap-measured (default: %(default)s)")
    a = ap.parse_args()
    POLLS, ASYNC_POLLS = a.polls, a.async_polls
    main()
