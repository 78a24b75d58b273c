"""Meter firmware entry point: build the board and the meter, run its tasks
(``Meter.run``: generators in a superloop, ``meter.metrology.loop``; no asyncio).

On a board this file is /main.py; on the unix port: ``micropython firmware/main.py board.json``
with MICROPYPATH=firmware:. (see docs/CONTRACTS.md).

Heap (docs/MEMORY.md): collect after the imports and after each boot step so the long-lived
objects are packed low and the boot's garbage (config JSON, profile validation) is gone before
the tasks start, then set ``gc.threshold`` as MicroPython's constrained.rst advises so the
collector runs before the heap fills up and fragments.
"""
import gc
import sys

gc.collect()
from boards import make_board  # noqa: E402
from meter.app import Meter  # noqa: E402

gc.collect()


def main(argv=None):
    board = make_board(argv if argv is not None else sys.argv)
    gc.collect()
    meter = Meter(board)
    gc.collect()
    gc.threshold(gc.mem_free() // 4 + gc.mem_alloc())
    meter.run()


if __name__ == "__main__":
    main()
