import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "firmware", ROOT / "tests" / "device", ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

pytest_plugins = ["hil.pytest_plugin"]
