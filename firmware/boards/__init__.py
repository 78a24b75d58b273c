"""Board selection. Board modules are the only code that touches `machine` (or the host OS).

``make_board(argv)`` returns the board object for the running port:
- ``linux`` (MicroPython unix port, or CPython in tests): ``boards.unix.UnixBoard``, configured by the
  board JSON file named in argv[1] (see docs/CONTRACTS.md);
- ``esp32``: ``boards.esp32.Esp32Board``; ``rp2``: ``boards.rp2040.Rp2040Board``.
"""
import sys


def make_board(argv=None):
    plat = sys.platform
    if plat == "esp32":
        from boards.esp32 import Esp32Board
        return Esp32Board()
    if plat == "rp2":
        from boards.rp2040 import Rp2040Board
        return Rp2040Board()
    from boards.unix import UnixBoard
    argv = argv if argv is not None else sys.argv
    if len(argv) < 2:
        raise SystemExit("usage: micropython firmware/main.py BOARD_JSON")
    return UnixBoard(argv[1])
