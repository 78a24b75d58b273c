"""Every benchmark answers ``--help`` with its docstring and exit 0, without starting its run
(new-user pass, session 12: four ran the full benchmark, bench_timewarp printed a traceback)."""
import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("bench_*.py")))
def test_bench_help_is_its_usage_not_a_run(script):
    r = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and len(r.stdout.strip().splitlines()) >= 2
    assert "RESULT" not in r.stdout                  # the device scripts' figures: nothing ran
