"""Time-warp figures: wall time per simulated month of the real firmware (MicroPython unix port,
190 KB heap) under the UPPCL-like profile, driven by the BDEW H0 household trace, with the credit
and every charge checked against the exact reference model (tests/support/timewarp.py).

    .venv/bin/python bench/bench_timewarp.py          # one month (default)
    .venv/bin/python bench/bench_timewarp.py 12       # a year

Prints one line per simulated month and a summary: wall time per month, top-ups, relay
operations, largest credit difference vs the reference (must be 0 paise).
"""
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "firmware", ROOT / "tests" / "support"):
    sys.path.insert(0, str(p))

import timewarp as Y  # noqa: E402
from hil.emulated import EmulatedRig  # noqa: E402
import benchargs  # noqa: E402


def main(months=1):
    hours = int(months * 365 * 24 / 12)
    trace = Y.h0_hourly_quarters(holidays=Y.UPPCL["policy"]["holidays"])
    with tempfile.TemporaryDirectory() as d:
        rig = EmulatedRig(d, config=Y.profile_config(50000), clock_epoch=Y.START, poll_ms=3)
        try:
            s = Y.run(rig, hours, trace)
        finally:
            rig.stop()
    per_month = s["wall_s"] / (hours / (365 * 24 / 12))
    print("simulated %d h (%.1f months) in %.1f s wall: %.1f s per simulated month"
          % (hours, hours / (365 * 24 / 12), s["wall_s"], per_month))
    print("top-ups %d, relay operations %d, energy %d Wh, billing months closed %d, "
          "largest difference vs reference %d paise"
          % (s["topups"], len(s["relay_log"]), s["wh"], len(s["bills"]), s["worst_paise"]))
    return 0 if s["worst_paise"] == 0 else 1


if __name__ == "__main__":
    ap = benchargs.parser(__doc__)
    ap.add_argument("months", nargs="?", type=benchargs.count, default=1,
                    help="simulated months to run, 1 month = 730 h (default: %(default)s)")
    sys.exit(main(ap.parse_args().months))
