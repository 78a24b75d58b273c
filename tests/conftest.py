import pathlib
import signal
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "firmware", ROOT / "tests" / "device", ROOT / "tests" / "support"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

# A run started with SIGINT ignored (a background job of a shell without job control, nohup, some
# CI runners) hands SIG_IGN down to every process it starts, and a Python started so keeps it: no
# KeyboardInterrupt. The tests that stop `meterctl emulate` / `topup` with SIGINT (Ctrl-C) then
# waited 60 s for an exit that never came (sessions 14-15: 7-9 of them "timed out under load" in
# background runs of the whole tier; alone, in a terminal, they passed). A Python handler is reset
# to the default at exec, so the processes the tests start get Ctrl-C as a user's terminal gives it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The rig plugin. Installed with the package it is also the pytest11 entry point of the same name
# ("hil.pytest_plugin"), and pytest registers a plugin name once: listing it here is a no-op then,
# and loads it where entry points are off (PYTEST_DISABLE_PLUGIN_AUTOLOAD) or the package is not
# installed.
pytest_plugins = ["hil.pytest_plugin"]


def pytest_sessionstart(session):
    """Under pytest-xdist the controller (or a serial run) prepares the shared build caches the
    tests use besides the rig's (meterctl flash --board unix builds into build/flash-unix), so
    workers find them fresh and never rebuild them under each other."""
    if hasattr(session.config, "workerinput") or session.config.getoption("collectonly", False):
        return
    from host_tools.build import cached_build     # locks the cache itself
    cached_build("unix", ROOT / "build" / "flash-unix")


# The longest tests (seconds, one process each), started first so that under pytest-xdist they
# overlap the many short ones instead of starting late and running alone at the end (the
# campaign alone is a third of the serial run). Order only: every test still runs.
_LONG_FIRST = (
    "tests/hil/test_powercut_campaign.py::test_powercut_campaign",
    "tests/hil/test_labgrid_farm.py::",
    "tests/hil/test_hil_rig.py::test_pytest_plugin_options_fixtures_and_failure_log",
    "tests/hil/test_examples_venv.py::",
    "tests/hil/test_year_timewarp.py::",
    "tests/hil/test_interop_dlmscosem.py::test_every_association_reads_every_attribute",
    "tests/hil/test_policy_hil.py::test_up_negative_saturday_evening",
)


def _rank(item):
    for i, prefix in enumerate(_LONG_FIRST):
        if item.nodeid.startswith(prefix):
            return i
    return len(_LONG_FIRST)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (-n), start the known long tests first (stable sort: the rest keeps
    its order)."""
    if config.getoption("numprocesses", None):
        items.sort(key=_rank)


@pytest.fixture(autouse=True)
def _isolated_cli_state(tmp_path, monkeypatch):
    """meterctl remembers per-meter TIDs under METERCTL_STATE_DIR: keep tests out of $HOME."""
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path / "meterctl-state"))
