"""Where PicoRig's parts are: the runner (hil/pico), the MicroPython UF2, the image cache.

The UF2 is the user's own (``path`` / $METER_PICO_UF2) or, in CI, ``../shared/rp2emu/firmware.uf2``
beside the checkout (for a git worktree: beside the main checkout too); never an absolute path.
"""
import os
import pathlib
import shutil

from host_tools.firmware_src import ROOT

__all__ = ["RUNNER_DIR", "UF2_ENV", "CACHE", "find_uf2", "unavailable", "save_image"]

RUNNER_DIR = pathlib.Path(__file__).resolve().parent / "pico"
UF2_ENV = "METER_PICO_UF2"
CACHE = ROOT / "build" / "picorig"


def _checkouts():
    """The repo root and, for a git worktree, the main checkout it belongs to."""
    roots = [ROOT]
    git = ROOT / ".git"
    if git.is_file():      # a worktree: "gitdir: <main>/.git/worktrees/<name>"
        try:
            gitdir = pathlib.Path(git.read_text().split(":", 1)[1].strip())
            common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
            roots.append(common.parent)
        except (OSError, IndexError):
            pass
    return roots


def find_uf2(path=None):
    """The MicroPython RPI_PICO UF2 to run: ``path``, else $METER_PICO_UF2, else
    ``../shared/rp2emu/firmware.uf2`` beside the checkout. Returns a Path or None if missing."""
    given = path or os.environ.get(UF2_ENV)
    if given:
        p = pathlib.Path(given)
        return p if p.is_file() else None
    for root in _checkouts():
        p = root.parent / "shared" / "rp2emu" / "firmware.uf2"
        if p.is_file():
            return p
    return None


def unavailable(uf2=None):
    """Why a PicoRig cannot run here (one line), or None if it can."""
    if shutil.which("node") is None:
        return "PicoRig needs Node.js (node on PATH)"
    if not (RUNNER_DIR / "node_modules" / "rp2040js").is_dir():
        return "PicoRig needs rp2040js: run `npm ci` in hil/pico"
    if find_uf2(uf2) is None:
        return "PicoRig needs the MicroPython RPI_PICO UF2 (../shared/rp2emu/firmware.uf2 or $%s)" % UF2_ENV
    return None


def save_image(src, dst):
    """Copy a flash image into the cache atomically (concurrent runs may race)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp%d" % os.getpid())
    shutil.copyfile(str(src), str(tmp))
    os.replace(str(tmp), str(dst))
