"""Meter firmware entry point: build the board and the meter, run the asyncio tasks.

On a board this file is /main.py; on the unix port: ``micropython firmware/main.py board.json``
with MICROPYPATH=firmware:. (see docs/CONTRACTS.md).
"""
import asyncio
import gc
import sys

from boards import make_board
from meter.app import Meter


def main(argv=None):
    board = make_board(argv if argv is not None else sys.argv)
    meter = Meter(board)
    gc.collect()
    asyncio.run(meter.run())


if __name__ == "__main__":
    main()
