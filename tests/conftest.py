import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "firmware", ROOT / "tests" / "device", ROOT / "tests" / "support"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

pytest_plugins = ["hil.pytest_plugin"]


@pytest.fixture(autouse=True)
def _isolated_cli_state(tmp_path, monkeypatch):
    """meterctl remembers per-meter TIDs under METERCTL_STATE_DIR: keep tests out of $HOME."""
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path / "meterctl-state"))
