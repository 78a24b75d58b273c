"""Flash wear of the meter's persistence at the firmware's cadence, extrapolated to 20 years.

Runs the real device code (meter.store Journal, meter.events EventLog) on the MicroPython unix
port, on littlefs (vfs.VfsLfs2) over the NOR flash model (boards.nor_flash, 4 KiB blocks, erase
counters per block), for a number of simulated days of a profile:

- consumption records: the firmware journals when ``persist_wh`` Wh have accumulated, or after
  60 s with any consumption (meter.app meter_tick): 10 Wh by default, 50 Wh on the RP2040, whose
  littlefs programs 256-byte pages (a record costs a 256-byte commit there). A household averaging
  1 kW (24 kWh/day) makes 2,400 records a day at 10 Wh; the bench also prints the continuous worst
  case (23 kW, 100 A at 230 V).
- commands: 4 full records a day (top-ups, settings; each with its event) and 2 more events
  (power down / power up).
- IS 15959 profiles (meter.profiles, on unless ``--no-profiles``): at the default periods a
  block-load record (30 min: a 124-byte ring file rewritten in a directory of 16 such files,
  meter.ring) after the journal record of that moment (Meter.persist when the state lags: the
  cadence restarts from it, so at a steady load it replaces a record rather than adds one), the
  demand/counter state file (100 bytes) for each new maximum demand (4 a day assumed), a daily
  record at midnight.

The loop runs the firmware's 10 Wh metering ticks (``--watts``: at 1000 W a block is a whole
number of RP2040 records; at 1130 W it is not).

Erase counts are per simulated day, scaled to a year and to 20 years, and divided over the
littlefs blocks (littlefs levels wear dynamically; the bench prints the measured max/mean ratio
too) and compared with 10,000 program/erase cycles per block (the design figure for NOR flash;
the Pico's W25Q16JV is rated 100,000). Device sizes: RP2040 Pico 1408 KiB filesystem = 352
blocks, ESP32 4 MiB with the app at 0x1F0000 -> ~2 MiB = 512 blocks.

``python bench/bench_wear.py [--days N] [--blocks B]``; ``make bench`` runs it.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENDURANCE = 10000
YEARS = 20

_DEVICE = r"""
import sys, json, vfs, os, time
from boards.nor_flash import NorFlash
from meter.store import Journal
from meter.events import EventLog
img = sys.argv[1]
blocks, days, hot_per_day, full_per_day, ev_per_day, prog, prof, cadence = [int(x) for x in sys.argv[2:10]]
nor = NorFlash(img, blocks)
vfs.VfsLfs2.mkfs(nor, progsize=prog)
vfs.mount(vfs.VfsLfs2(nor, mtime=False, progsize=prog), "/flash")
j = Journal("/flash/j/state")
log = EventLog("/flash/ev")
# a state record the size the app writes (account, relay, tariff, policy, a 50-TID STS store)
obj = {"acc": [0, 0, 0, 2, 2, 50000, 1767225600, 900000, 0, 0], "mode": 5, "cs": 1, "cause": "credit",
       "tz": 330, "tar": [0] * 9, "pol": [0] * 7, "pev": [1, 1767225600, 10, 50000],
       "tok": "544b01" + "00" * 200}
j.save(obj, (0, 0, 0, 0, 1767225600))
log.append(1767225600, 1, None)
if prof:
    from meter.ring import Ring
    import os as _os
    _os.mkdir("/flash/pr")
    rb = Ring("/flash/pr/b", 16, 5, 337, 36)
    rd = Ring("/flash/pr/d", 28, 3, 14, 20)
    st = bytes(100)
# the firmware's cadence in 10 Wh metering ticks (meter.app meter_tick): a record when ``cadence`` Wh
# have accumulated since the last one; a block end (meter.profiles tick) first journals the state if
# it lags (Meter.persist: the cadence restarts from there), then appends the block record
ticks = hot_per_day * cadence // 10
every_block = ticks // 48 if prof else 0
every_demand = ticks // 4 if prof else 0      # a new maximum demand: ~4 a day
e0, p0 = nor.erases, nor.ops - nor.erases
t = 1767225600
credit, wh, saved = 10 ** 6, 0, 0
hot = full = evs = 0
t0 = time.ticks_ms()
every_full = ticks // full_per_day if full_per_day else 0
every_ev = ticks // ev_per_day if ev_per_day else 0
for d in range(days):
    for i in range(ticks):
        t += 86400 // ticks
        if every_block and i % every_block == 0:
            if wh != saved:
                j.save(obj, (credit, 0, wh, wh, t))       # the journal first (Meter.persist)
                saved = wh
                hot += 1
            rb.append(bytes(16), bytes(36))
            evs += 1
        wh += 10
        credit -= 6
        if every_full and i % every_full == 0:
            obj["acc"][5] = obj["acc"][7] = hot + i     # a top-up changes the cold part
            obj["pev"] = [log.last_seq + 1, t, 10, 5000]
            j.save(obj, (credit, 0, wh, wh, t))
            full += 1
            hot += 1
            saved = wh
        elif wh - saved >= cadence:
            j.save(obj, (credit, 0, wh, wh, t))
            hot += 1
            saved = wh
        if every_ev and i % every_ev == 0:
            log.append(t, 10, 5000)
            evs += 1
        if every_demand and i % every_demand == 0:
            with open("/flash/pr/st", "wb") as f:
                f.write(st)
            evs += 1
    if prof:
        rd.append(bytes(28), bytes(20))
        evs += 1
counts = [nor.erase_count(b) for b in range(blocks)]
print(json.dumps({"erases": nor.erases - e0, "progs": nor.ops - nor.erases - p0, "records": hot, "full": full,
                  "events": evs, "max": max(counts), "mean": sum(counts) / blocks,
                  "ms": time.ticks_diff(time.ticks_ms(), t0)}))
"""


def micropython():
    exe = pathlib.Path(sys.executable).with_name("micropython")
    return str(exe) if exe.exists() else "micropython"


def simulate(blocks, days, hot_per_day, full_per_day=4, ev_per_day=6, progsize=32, profiles=1, cadence=10):
    with tempfile.TemporaryDirectory(prefix="bench-wear-") as tmp:
        env = dict(os.environ)
        env["MICROPYPATH"] = os.pathsep.join([str(ROOT / "firmware"), str(ROOT), ".frozen"])
        p = subprocess.run([micropython(), "-X", "heapsize=2M", "-c", _DEVICE, os.path.join(tmp, "f.img"),
                            str(blocks), str(days), str(hot_per_day), str(full_per_day), str(ev_per_day),
                            str(progsize), str(profiles), str(cadence)],
                           capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode:
        raise SystemExit("device simulation failed:\n" + p.stdout + p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


# (board, littlefs blocks, littlefs progsize as the port mounts it, cadence Wh)
BOARDS = (("ESP32 4 MiB", 512, 32, 10), ("RP2040 Pico", 352, 256, 50),
          ("unix, 64-block test image", 64, 32, 10))
AVG_W = 1000           # household average load (24 kWh/day)
WORST_W = 23000        # 100 A at 230 V, non-stop


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=3, help="simulated days per board (default 3)")
    ap.add_argument("--sim-blocks", type=int, default=96,
                    help="blocks of the simulated filesystem (default 96); erases per day are "
                         "then spread over the board's blocks")
    ap.add_argument("--no-profiles", action="store_true", help="leave out the IS 15959 profiles")
    ap.add_argument("--watts", type=int, default=AVG_W,
                    help="average load (default %d W; at 1000 W a 30-min block is a whole number of "
                         "RP2040 records, at e.g. 1130 W it is not)" % AVG_W)
    a = ap.parse_args(argv)
    print("flash wear at the firmware's cadence: %d W average (%d kWh/day), 4 full records and 6 events "
          "a day%s; %d simulated days per board; endurance %d cycles/block, %d years"
          % (a.watts, a.watts * 24 // 1000, "" if a.no_profiles else ", IS 15959 profiles at 30/15 min",
             a.days, ENDURANCE, YEARS))
    worst_pct = {}
    for name, blocks, prog, wh in BOARDS:
        per_day = a.watts * 24 // wh
        r = simulate(a.sim_blocks, a.days, per_day, progsize=prog, profiles=0 if a.no_profiles else 1)
        erases_day = r["erases"] / a.days
        year = erases_day * 365 / blocks
        # littlefs moves a metadata pair after block_cycles (100) erases: a block can be up to
        # one such period ahead of the mean
        life = year * YEARS + 100
        pct = 100.0 * life / ENDURANCE
        worst = (erases_day * (WORST_W * 24 // wh) / per_day * 365 / blocks) * YEARS + 100
        worst_pct[name] = pct
        per_day = r["records"] // a.days
        print("  %-26s progsize %3d, 1 record/%2d Wh = %5d/day: %4.1f records/erase, %6.1f erases/block/year"
              " -> %5.0f in %d years = %5.2f%% of endurance  (simulation max/mean %d/%.1f; "
              "%d W non-stop: %.0f%%)" % (name, prog, wh, per_day, (r["records"] + r["events"]) / max(1, r["erases"]),
                                          year, life, YEARS, pct, r["max"], r["mean"], WORST_W,
                                          100.0 * worst / ENDURANCE))
    ok = all(p < 10.0 for n, p in worst_pct.items() if not n.startswith("unix"))  # the test image is tiny
    print("target < 10%% of rated endurance on the boards: %s" % ("met" if ok else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
