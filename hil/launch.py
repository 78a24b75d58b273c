"""How an emulated board is started: its code image, board.json, and the micropython command line.

Pure helpers for `hil.emulated.EmulatedRig` (no process handling here):

- `prepare_build(board)`: the cached mpy-cross build and ROMFS image (``host_tools.build`` holds
  a file lock, `build_lock`, so parallel processes — pytest-xdist workers, several ``meterctl
  emulate`` — never rebuild the shared cache under each other).
- `prepare_image(workdir, firmware_dir, image)`: which code the board runs (an mpy-cross build, as
  .mpy files or as a ROMFS image) -> `Image`.
- `write_board_json(path, board)`: the unix board's configuration (docs/CONTRACTS.md), atomically.
- `command(micropython, heap, image, board_json)`: argv and environment of the firmware process.
"""
import collections
import json
import os
import pathlib

from host_tools.build import cache_lock as build_lock  # noqa: F401  (re-exported)

from .env import heap_bytes

__all__ = ["Image", "prepare_image", "prepare_build", "build_lock", "write_board_json", "command",
           "ROMBOOT"]

ROMBOOT = pathlib.Path(__file__).with_name("romboot.py")

Image = collections.namedtuple("Image", "kind firmware_dir romfs romfs_bytes")
Image.__doc__ = """The board's code: kind "romfs" or "mpy", the directory holding main.py (a build),
the ROMFS image path (None for "mpy") and its size in bytes (0 for "mpy")."""


def prepare_build(board="unix", romfs=True):
    """(build dir, ROMFS image path or None) of ``board``'s cached build, rebuilt when stale,
    (``host_tools.build`` locks the shared cache). Raises what ``host_tools.build`` raises
    (SystemExit on mpy-cross errors)."""
    from host_tools.build import cached_build, cached_romfs
    out = cached_build(board)
    return out, (cached_romfs(board) if romfs else None)


def prepare_image(workdir, firmware_dir=None, image=None):
    """The code an emulated board runs -> Image.

    ``firmware_dir`` None: the mpy-cross build of the unix board (``host_tools.build``, rebuilt
    when stale) and, for "romfs" (the default then), its cached ROMFS image. A given
    ``firmware_dir`` runs as .mpy/.py files ("mpy", the default then) or, for "romfs", as a
    ROMFS image of it written to ``workdir/firmware.romfs`` (private to the rig).
    """
    if image is None:
        image = "romfs" if firmware_dir is None else "mpy"
    romfs = None
    if firmware_dir is None:
        firmware_dir, romfs = prepare_build("unix", romfs=image == "romfs")
    elif image == "romfs":
        from host_tools.build import romfs_bytes
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        romfs = workdir / "firmware.romfs"
        romfs.write_bytes(romfs_bytes(firmware_dir))
    size = romfs.stat().st_size if romfs is not None else 0
    return Image(image, pathlib.Path(firmware_dir).resolve(), romfs, size)


def write_board_json(path, board):
    """Write ``board`` (dict) to ``path`` as JSON, atomically (a tmp file renamed over it)."""
    path = pathlib.Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(board, indent=1) + "\n")
    os.replace(str(tmp), str(path))


def command(micropython, heap, image, board_json):
    """(argv list, env dict) of the firmware process for ``image`` (an Image).

    MICROPYPATH gets the build and its parent (for ``protocol/``) plus ".frozen" (the port's
    frozen modules; the firmware imports none since its tasks run without asyncio). A ROMFS
    image boots through hil/romboot.py with ``heap + image size + 64`` bytes of heap (the unix
    port keeps the image in its heap), so the firmware keeps ``heap``; plus
    the GC's allocation and finaliser tables for the image's blocks (3/128 of its size: 1 table byte
    per 64 heap bytes, 1 bit per 16-byte block), which a board keeping ROMFS in flash does not pay.
    """
    env = dict(os.environ)
    main = image.firmware_dir / "main.py"
    env["MICROPYPATH"] = os.pathsep.join(
        [str(image.firmware_dir), str(image.firmware_dir.parent), ".frozen"])
    heap = str(heap)
    if image.romfs is not None:
        heap = "%d" % (heap_bytes(heap) + image.romfs_bytes + image.romfs_bytes * 3 // 128 + 64)
        env["MICROPYPATH"] = ".frozen"
        main = ROMBOOT
    argv = [micropython, "-X", "heapsize=%s" % heap, str(main), str(board_json)]
    return argv, env
