"""An emulated board farm host for labgrid: N emulated meters exported like real boards.

`EmulatedFarm(n, workdir)` starts N emulated meters (`hil.multi.start_meters`) and a small HTTP
power switch on 127.0.0.1 speaking labgrid's ``simplerest`` power protocol
(``GET /power/<index>/<0|1>`` switches meter <index>, ``GET /power/<index>`` reads it: "1"/"0").
`exporter_config()` is a labgrid exporter configuration with one group per meter, ``meter<i>``:

- ``dlms``: a ``RawSerialPort`` on the meter's DLMS pty (the exporter serves it with ser2net as
  a ``NetworkSerialPort``, RFC 2217), as it would a USB-serial adapter on a farm host;
- ``power``: a ``NetworkPowerPort`` (model ``simplerest``) on the switch above.

So ``labgrid-exporter`` + ``labgrid-coordinator`` + a place matching ``<exporter>/meter<i>/*``
give a test exactly what a real farm gives: ``pytest --rig labgrid --lg-env env.yaml``
(examples/labgrid/env.yaml) with the driver of `hil.labgrid_driver`.

Command line: ``python -m hil.farm --meters N --exporter-yaml FILE`` writes the exporter
configuration, prints the meters' ports and serves until interrupted.
"""
import argparse
import http.server
import sys
import tempfile
import threading

from .multi import start_meters, stop_meters
from .rig import RigError

__all__ = ["EmulatedFarm"]


def _handler(farm):
    class PowerHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            parts = [p for p in self.path.split("/") if p]
            try:
                if len(parts) < 2 or parts[0] != "power":
                    raise KeyError(self.path)
                index = int(parts[1])
                if len(parts) > 2:
                    farm.set_power(index, parts[2] == "1")
                body = ("1" if farm.powered(index) else "0").encode()
                code = 200
            except (KeyError, ValueError, IndexError) as e:
                body, code = ("bad request %s" % e).encode(), 400
            except RigError as e:
                body, code = str(e).encode(), 500
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return PowerHandler


class EmulatedFarm:
    """N emulated meters plus their power switch (see the module docstring).

    Args:
        n: number of meters; workdir: their state directories; ``kw`` goes to
            `hil.multi.start_meters` (heap, poll_ms, config...).
    """

    def __init__(self, n, workdir, **kw):
        self.rigs = start_meters(n, workdir, **kw)
        self._lock = threading.Lock()
        try:
            self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        except OSError:
            stop_meters(self.rigs)
            raise
        self._thread = threading.Thread(target=self.http.serve_forever, name="farm-power",
                                        daemon=True)
        self._thread.start()

    @property
    def power_url(self):
        """simplerest URL template of the switch (``{index}``, ``{value}`` filled by labgrid)."""
        return "http://127.0.0.1:%d/power/{index}/{value}" % self.http.server_address[1]

    def powered(self, index):
        """True while meter ``index`` runs (IndexError for an unknown meter)."""
        return self.rigs[index].running

    def set_power(self, index, on):
        """Switch meter ``index`` on (boots, waits until ready) or off (power cut)."""
        rig = self.rigs[index]
        with self._lock:
            if on and not rig.running:
                rig.power_on()
            elif not on and rig.running:
                rig.power_cut()

    def exporter_config(self, speed=9600):
        """labgrid exporter configuration (YAML text): group ``meter<i>`` per meter."""
        out = []
        for i, rig in enumerate(self.rigs):
            out += ["meter%d:" % i,
                    "  dlms:", "    cls: RawSerialPort", "    port: %s" % rig.port,
                    "    speed: %d" % speed,
                    "  power:", "    cls: NetworkPowerPort", "    model: simplerest",
                    "    host: '%s'" % self.power_url, "    index: %d" % i]
        return "\n".join(out) + "\n"

    def stop(self):
        """Stop the switch and every meter (idempotent)."""
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
            self.http = None
        stop_meters(self.rigs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    """``python -m hil.farm``: serve N emulated meters for a local labgrid exporter."""
    ap = argparse.ArgumentParser(prog="python -m hil.farm", description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=1)
    ap.add_argument("--exporter-yaml", required=True, help="where to write the exporter config")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="farm-") as tmp:
        with EmulatedFarm(a.meters, a.workdir or tmp) as farm:
            with open(a.exporter_yaml, "w") as f:
                f.write(farm.exporter_config())
            for i, r in enumerate(farm.rigs):
                print("meter%d %s %s" % (i, r.config["serial"], r.port), flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
