"""Parallel vends for the TID allocation tests (issue 14: "ten parallel vends produced TID 6800499
twice"): many ``meterctl vend`` processes and CSV batches for two meters at once, all the tokens
collected. Used by tests/host/test_tid_alloc.py and, entered into a meter, tests/hil/test_e2e_tokens.py."""
import csv
import os
import subprocess
import sys

VK = "abababababababab"
DRNS = ("01234567890", "01234567891")          # two meters
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORKER = r"""
import contextlib, io, json, sys
from host_tools.meterctl.cli import meterctl
drn, n = sys.argv[1], int(sys.argv[2])
for _ in range(n):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        meterctl.main(["vend", "--vending-key", "%s", "--drn", drn, "--amount", "1.0", "--json"],
                      prog_name="meterctl", standalone_mode=False)
    r = json.loads(buf.getvalue())
    print(drn, r["tid"], r["token"], flush=True)
""" % VK


def parallel_vend(tmp_path, procs=8, per_proc=200, batch_rows=100):
    """``procs`` processes of ``per_proc`` single vends (alternating meters) and 2 CSV batches
    of ``batch_rows`` rows (both meters), all at once -> {drn: [(tid, token), ...]}."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    running = []
    for i in range(procs):
        running.append(subprocess.Popen([sys.executable, "-c", WORKER, DRNS[i % 2], str(per_proc)],
                                        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True))
    outs = []
    for b in range(2):
        src, out = tmp_path / ("batch%d.csv" % b), tmp_path / ("batch%d.out.csv" % b)
        src.write_text("drn,amount\n" + "".join("%s,2.0\n" % DRNS[k % 2] for k in range(batch_rows)))
        running.append(subprocess.Popen(
            [sys.executable, "-m", "host_tools.meterctl", "vend", "--vending-key", VK,
             "--csv", str(src), "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True))
        outs.append(out)
    found = {d: [] for d in DRNS}
    for p in running:
        text, _ = p.communicate(timeout=600)
        assert p.returncode == 0, text
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] in found:
                found[parts[0]].append((int(parts[1]), parts[2]))
    for out in outs:
        with open(out, newline="") as f:
            for row in csv.DictReader(f):
                found[row["drn"]].append((int(row["tid"]), row["token"].replace(" ", "")))
    return found
