import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "firmware", ROOT / "tests" / "device", ROOT / "tests" / "support"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

# The rig plugin. Installed with the package it is also the pytest11 entry point of the same name
# ("hil.pytest_plugin"), and pytest registers a plugin name once: listing it here is a no-op then,
# and loads it where entry points are off (PYTEST_DISABLE_PLUGIN_AUTOLOAD) or the package is not
# installed.
pytest_plugins = ["hil.pytest_plugin"]


import pytest  # noqa: E402


def pytest_sessionstart(session):
    """Under pytest-xdist the controller (or a serial run) prepares the shared build caches the
    tests use besides the rig's (meterctl flash --board unix builds into build/flash-unix), so
    workers find them fresh and never rebuild them under each other."""
    if hasattr(session.config, "workerinput") or session.config.getoption("collectonly", False):
        return
    from hil.launch import build_lock
    from host_tools.build import cached_build
    with build_lock("flash-unix"):
        cached_build("unix", ROOT / "build" / "flash-unix")


@pytest.fixture(autouse=True)
def _isolated_cli_state(tmp_path, monkeypatch):
    """meterctl remembers per-meter TIDs under METERCTL_STATE_DIR: keep tests out of $HOME."""
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path / "meterctl-state"))
