"""Many emulated meters on one host: wall time and CPU for 1, 8 and 32 meters (hil.multi).

Every meter does the same read loop at the same time (one thread per meter): one management
association, then 20 GETs of the import energy register (IC 3, 1.0.1.8.0.255, attribute 2).
CPU is read from /proc (utime + stime of this process and of every meter's MicroPython process),
so it counts the host side (pty bridges, PZEM emulators, clients) and the firmware; no psutil.

    python bench/bench_meters.py [--counts 1,8,32] [--gets 20] [--idle 5]

Prints, per count: boot wall/CPU, read-loop wall/CPU (CPU as core-seconds and as % of one core),
GETs per second, and the idle CPU per meter over ``--idle`` seconds.
"""
import argparse
import concurrent.futures
import os
import pathlib
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from hil.multi import start_meters, stop_meters  # noqa: E402
from host_tools.client import DlmsClient  # noqa: E402

ENERGY = (3, "1.0.1.8.0.255", 2)
_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """utime + stime of ``pid`` in seconds (0.0 if it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TCK


def total_cpu(rigs):
    """CPU seconds of this process plus every meter's firmware process."""
    return cpu_s(os.getpid()) + sum(cpu_s(r.pid) for r in rigs if r.pid)


def read_loop(rig, gets):
    """One association, ``gets`` GETs of the energy register; returns the last value."""
    with DlmsClient(rig.port, client_sap=1, password=rig.management_password, timeout=30) as c:
        v = None
        for _ in range(gets):
            v = c.get(*ENERGY)
        return v


def run(n, gets, idle_s, poll_ms):
    with tempfile.TemporaryDirectory(prefix="bench-meters-") as tmp:
        t0, c0 = time.monotonic(), cpu_s(os.getpid())
        rigs = start_meters(n, tmp, poll_ms=poll_ms)
        try:
            boot_wall = time.monotonic() - t0
            boot_cpu = cpu_s(os.getpid()) - c0 + sum(cpu_s(r.pid) for r in rigs)
            t1, c1 = time.monotonic(), total_cpu(rigs)
            with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
                values = list(pool.map(lambda r: read_loop(r, gets), rigs))
            wall, cpu = time.monotonic() - t1, total_cpu(rigs) - c1
            assert all(v is not None for v in values), values
            t2, c2 = time.monotonic(), total_cpu(rigs)
            threading.Event().wait(idle_s)
            idle = (total_cpu(rigs) - c2) / (time.monotonic() - t2)
        finally:
            stop_meters(rigs)
    return dict(n=n, boot_wall=boot_wall, boot_cpu=boot_cpu, wall=wall, cpu=cpu,
                gets_s=n * gets / wall, idle_pct_per_meter=100.0 * idle / n)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="1,8,32", metavar="N,N,...",
                    help="meter counts to run, one row each (default: 1,8,32)")
    ap.add_argument("--gets", type=int, default=20, metavar="N",
                    help="GETs of the energy register per meter in the read loop (default: 20)")
    ap.add_argument("--idle", type=float, default=5.0, metavar="SECONDS",
                    help="seconds to measure the idle CPU per meter over (default: 5)")
    ap.add_argument("--poll-ms", type=int, default=200, metavar="MS",
                    help="each meter's metering-module poll period in ms (default: 200)")
    a = ap.parse_args(argv)
    print("cores: %d; load average before: %s; %d GETs per meter, poll %d ms"
          % (os.cpu_count(), os.getloadavg(), a.gets, a.poll_ms))
    print("%6s %10s %10s %10s %10s %8s %8s %12s" % ("meters", "boot wall", "boot CPU", "loop wall",
                                                 "loop CPU", "CPU %", "GET/s", "idle %/meter"))
    for n in [int(x) for x in a.counts.split(",")]:
        r = run(n, a.gets, a.idle, a.poll_ms)
        print("%6d %9.2fs %9.2fs %9.2fs %9.2fs %7.0f%% %8.1f %11.2f%%" % (
            r["n"], r["boot_wall"], r["boot_cpu"], r["wall"], r["cpu"],
            100.0 * r["cpu"] / r["wall"], r["gets_s"], r["idle_pct_per_meter"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
