"""MicroPython (unix port) boot shim for a ROMFS-deployed emulated board.

Run as ``micropython hil/romboot.py board.json``. Mounts the board's ROMFS image (the .mpy code,
``board.json["romfs"]``) at /rom with ``vfs.VfsRom`` and puts /rom first on sys.path, as a board
with a ROMFS partition does at boot, then runs the firmware's main.py from ``main_dir``. The
image buffer lives in the unix port's heap (on a board it is memory-mapped flash); the rig adds
its size to ``-X heapsize`` so the firmware keeps the heap it was given.
"""
import json
import sys
import vfs

with open(sys.argv[1]) as f:
    _b = json.load(f)
with open(_b["romfs"], "rb") as f:
    _img = f.read()
vfs.mount(vfs.VfsRom(_img), "/rom")
sys.path.insert(0, "/rom")
sys.path.append(_b["main_dir"])
del _b, f
import gc  # noqa: E402  (the ROMFS image must be mounted before anything is imported from it)
gc.collect()
import main  # noqa: E402  (firmware/main.py: its main() reads board.json from argv)

main.main(sys.argv)
