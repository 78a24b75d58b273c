"""NOR flash image inspection: host-side tools for the emulated board's NOR flash image (firmware/boards/nor_flash.py).

- ``read_wear(image)``: erase counters per block (list of int) from ``<image>.wear``.
- ``wear_summary(counts)``: dict(blocks, total, max, mean, max_block).
- ``inspect(image, blocks)``: mount a *copy* of the image with littlefs on the MicroPython unix
  port (the same VfsLfs2 the firmware uses; the image itself is never written) and return what
  the meter would find at boot::

      {"mounted": True, "files": [...], "journal": {"seq": n, "obj": {...}, "hot": [5 ints]} | None,
       "events": [[epoch, code, detail], ...], "event_count": n,
       "categories": {category: [[epoch, code, detail, count], ...]}}   (meter.audit)

  or ``{"mounted": False, "error": "..."}`` when littlefs refuses the image.

Command line: ``python -m hil.norimage IMAGE [--blocks N]`` prints the wear summary and the state.
"""
import argparse
import json
import os
import pathlib
import shutil
import struct
import subprocess
import tempfile

from host_tools.firmware_src import FIRMWARE_DIR

from .env import find_micropython
from .rig import RigError

__all__ = ["read_wear", "wear_summary", "inspect", "FlashToolError"]


class FlashToolError(RigError):
    """The inspection helper failed to run (not: the image failed to mount)."""


def read_wear(image):
    """Erase count of every block, from ``<image>.wear`` (u32 BE per block)."""
    data = pathlib.Path(str(image) + ".wear").read_bytes()
    n = len(data) // 4
    return list(struct.unpack(">%dI" % n, data[:4 * n]))


def wear_summary(counts):
    """Summary of erase counts: blocks, total, max, mean (float), max_block (index)."""
    total = sum(counts)
    mx = max(counts) if counts else 0
    return {"blocks": len(counts), "total": total, "max": mx,
            "mean": total / len(counts) if counts else 0.0,
            "max_block": counts.index(mx) if counts else None}


# Runs on the MicroPython unix port: mount the copy read-mostly and dump journal + events.
_HELPER = r"""
import sys, json, vfs, os
from boards.nor_flash import NorFlash
from meter.store import Journal
from meter.audit import Audit
img, blocks, segs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = {}
nor = NorFlash(img, blocks)
try:
    vfs.mount(vfs.VfsLfs2(nor, mtime=False), "/flash")
except OSError as e:
    print(json.dumps({"mounted": False, "error": repr(e)}))
    sys.exit(0)
out["mounted"] = True
def walk(d):
    r = []
    for ent in os.ilistdir(d):
        p = d + "/" + ent[0]
        if ent[1] == 0x4000:
            r.extend(walk(p))
        else:
            r.append(p[len("/flash/"):])
    return r
out["files"] = sorted(walk("/flash"))
j = Journal("/flash/j/state")
obj = j.load()
out["journal"] = None if obj is None else {"seq": j.seq, "obj": obj, "hot": list(j.hot)}
log = Audit("/flash/ev", segs)
out["event_count"] = log.count()
out["events"] = [list(e[:3]) for e in log.entries()]
out["categories"] = {c: [list(e) for e in log.view(c).entries()] for c in (2, 3, 4, 5, 6)}
print(json.dumps(out))
"""


def inspect(image, blocks, segments=10, micropython=None, firmware_dir=None, timeout=60):
    """Mount a copy of ``image`` (``blocks`` x 4 KiB) and return the meter's persisted state
    (see the module docstring). Raises FlashToolError if the helper itself fails."""
    firmware_dir = pathlib.Path(firmware_dir or FIRMWARE_DIR)
    with tempfile.TemporaryDirectory(prefix="flash-inspect-") as tmp:
        copy = os.path.join(tmp, "flash.img")
        shutil.copyfile(str(image), copy)
        env = dict(os.environ)
        env["MICROPYPATH"] = os.pathsep.join([str(firmware_dir), str(firmware_dir.parent), ".frozen"])
        proc = subprocess.run([micropython or find_micropython(), "-X", "heapsize=2M", "-c", _HELPER,
                               copy, str(blocks), str(segments)],
                              capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise FlashToolError("flash inspection failed (rc %s): %s%s"
                             % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return json.loads(lines[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m hil.norimage", description=__doc__.split("\n")[0])
    ap.add_argument("image")
    ap.add_argument("--blocks", type=int, default=None, help="blocks (default: image size / 4096)")
    a = ap.parse_args(argv)
    blocks = a.blocks or os.path.getsize(a.image) // 4096
    try:
        print(json.dumps(wear_summary(read_wear(a.image))))
    except OSError:
        pass
    print(json.dumps(inspect(a.image, blocks), indent=1))


if __name__ == "__main__":
    main()
