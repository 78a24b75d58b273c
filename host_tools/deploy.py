"""What goes onto a board's flash, and how: the copy plan, stale code, the ROMFS image.

Pure planning (``plan_copy``, ``code_files_to_remove``) decides from sha256 digests which
files to copy (missing or different on the board) and which code files to delete (a stale
``.py`` would shadow its ``.mpy``; a ``.new`` is a cut copy). ``listing(dev)`` walks the board's
code directories. Where the board has ROMFS (``vfs.rom_ioctl``, MicroPython >= 1.25 built with
MICROPY_VFS_ROM) the code goes into one ROMFS image written to partition 0 instead
(``romfs_deploy``, as ``mpremote romfs deploy``), and only main.py, config.json and data stay on
littlefs. ``dev`` is a ``host_tools.repl.Device``. Errors: ``host_tools.repl.FlashError``.
"""

import binascii

from host_tools import build as _build
from host_tools.repl import FlashError

__all__ = ["CODE_DIRS", "plan_copy", "code_files_to_remove", "listing", "romfs_image",
           "romfs_hash", "romfs_deploy"]

CODE_DIRS = ("meter", "boards", "protocol")


def plan_copy(wanted, on_board):
    """``wanted`` {rel: sha256}, ``on_board`` {rel: sha256|None} -> (copy list, unchanged list)."""
    copy, same = [], []
    for rel in sorted(wanted):
        (same if on_board.get(rel) == wanted[rel] else copy).append(rel)
    return copy, same


def code_files_to_remove(listing, keep):
    """Stale code files: ``listing`` {dir: [(name, type)]} of the board's code dirs, ``keep`` the
    set of rel paths that must stay. Returns rel paths of files (not dirs) to delete."""
    out = []
    for d, entries in sorted(listing.items()):
        for name, typ in entries:
            rel = d + "/" + name
            if typ == 0x8000 and rel not in keep and (name.endswith(".py") or name.endswith(".mpy")
                                                      or name.endswith(".new")):
                out.append(rel)
    return out


def listing(dev):
    """{dir: [(name, type)]} of every directory under the board's ``CODE_DIRS``."""
    out = {}
    todo = list(CODE_DIRS)
    while todo:
        d = todo.pop()
        entries = dev.listdir(d)
        out[d] = entries
        todo += [d + "/" + n for n, t in entries if t == 0x4000 and n != "__pycache__"]
    return out


def romfs_image(build_dir):
    """ROMFS image (bytes) of a build's .mpy code (``host_tools.build.romfs_bytes``)."""
    return _build.romfs_bytes(build_dir)


def romfs_hash(dev, n):
    """sha256 hex of the first ``n`` bytes of the board's ROMFS partition 0."""
    return dev.eval("binascii.hexlify(hashlib.sha256(memoryview(__import__('vfs')"
                    ".rom_ioctl(2,0))[:%d]).digest()).decode()" % n)


def romfs_deploy(dev, image, info, progress=None):
    """Write ``image`` (bytes) to ROMFS partition 0 (vfs.rom_ioctl 3/4/5, as ``mpremote romfs
    deploy``); ``info`` from ``board_info``; ``progress(nbytes)`` per chunk. Raises FlashError
    when the image does not fit."""
    if len(image) > info["romfs_size"]:
        raise FlashError("ROMFS image (%d bytes) does not fit partition 0 (%d bytes)"
                         % (len(image), info["romfs_size"]))
    dev.exec("import vfs\ntry:\n vfs.umount('/rom')\nexcept:\n pass")
    minw = dev.eval("vfs.rom_ioctl(3,0,%d)" % len(image))
    chunk = max(1024, int(minw) if isinstance(minw, int) and minw > 0 else 1024)
    for off in range(0, len(image), chunk):
        part = image[off:off + chunk]
        part += bytes(chunk - len(part))
        dev.exec("buf=binascii.a2b_base64(%r);_mf()" % binascii.b2a_base64(part).strip())
        dev.exec("vfs.rom_ioctl(4,0,%d,buf)" % off)
        if progress:
            progress(min(chunk, len(image) - off))
    dev.eval("vfs.rom_ioctl(5,0)")
