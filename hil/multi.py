"""Many emulated meters in one host process: `start_meters(n, workdir)` -> list of started rigs.

Each meter is one MicroPython process (the real firmware, its own state directory, ptys and PZEM
emulator); the host side costs a few threads per meter that sleep in ``poll()``. The firmware is
built once (``hil.launch.prepare_build``) and the meters boot ``parallel`` at a time (booting is
CPU work: importing the firmware), each with its own serial number and DLMS server address 1.

An idle meter costs about 0.2 % of a core in its MicroPython process (the unix board's watchdog
thread sleeps in ``select()``; it used to wake every 0.5 ms in ``time.sleep_ms``) plus about
0.5 % in the host process at the default 200 ms metering poll (the PZEM's Modbus server
answering 5 requests a second); ``poll_ms=1000`` cuts the latter to a fifth.

Command line: ``python -m hil.multi N [--workdir DIR] [--poll-ms MS]`` starts N meters, prints one
``<serial> <DLMS port>`` line per meter, and runs until interrupted.
"""
import argparse
import concurrent.futures
import pathlib
import sys
import tempfile
import threading
import time

from .emulated import EmulatedRig
from .launch import prepare_build
from .rig import RigError

__all__ = ["start_meters", "stop_meters", "serial_of"]


def serial_of(i):
    """Serial number (str) of the ``i``-th meter (0-based): PPM0000001, PPM0000002, ..."""
    return "PPM%07d" % (i + 1)


def start_meters(n, workdir, parallel=2, config=None, **kw):
    """Start ``n`` emulated meters under ``workdir/meter<i>`` -> list of started EmulatedRig.

    ``config`` (dict) is merged into every meter's config; each gets its own ``serial`` and
    ``logical_device_name`` (`serial_of`). ``kw`` goes to EmulatedRig (heap, poll_ms, ...).
    Boots ``parallel`` meters at a time. If any meter fails to start, the started ones are
    stopped and the first RigError is raised.
    """
    n = int(n)
    if n < 1:
        raise ValueError("start_meters: n must be >= 1")
    workdir = pathlib.Path(workdir)
    prepare_build()  # once, before the boots race for it
    lock = threading.Lock()
    rigs = [None] * n

    def boot(i):
        cfg = dict(config or {})
        cfg.update(serial=serial_of(i), logical_device_name=serial_of(i))
        rig = EmulatedRig(workdir / ("meter%d" % i), config=cfg, **kw)
        with lock:
            rigs[i] = rig

    errors = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(parallel))) as pool:
        for fut in [pool.submit(boot, i) for i in range(n)]:
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001 - collected, the others stopped below
                errors.append(e)
    if errors:
        stop_meters([r for r in rigs if r is not None])
        raise errors[0] if isinstance(errors[0], RigError) else RigError(repr(errors[0]))
    return rigs


def stop_meters(rigs):
    """Stop every rig in ``rigs`` (all of them, even if one fails); raise the first error."""
    first = None
    for r in rigs:
        try:
            r.stop()
        except RigError as e:
            first = first or e
    if first is not None:
        raise first


def main(argv=None):
    """``python -m hil.multi N``: start N meters, print their ports, wait for Ctrl-C."""
    ap = argparse.ArgumentParser(prog="python -m hil.multi", description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="number of meters")
    ap.add_argument("--workdir", default=None, help="state directories (default: a temp dir)")
    ap.add_argument("--poll-ms", type=int, default=200, help="metering poll period (ms)")
    ap.add_argument("--heap", default="190k", help="MicroPython heap per meter")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="meters-") as tmp:
        rigs = start_meters(a.n, a.workdir or tmp, poll_ms=a.poll_ms, heap=a.heap,
                            clock_mode="running", clock_epoch=int(time.time()))
        try:
            for r in rigs:
                print("%s %s" % (r.config["serial"], r.port), flush=True)
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop_meters(rigs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
