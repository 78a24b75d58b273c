"""DLMS figures: wire bytes and meter processing time per GET of 1.0.1.8.0.255, and event-log
readout efficiency (payload / wire bytes) at HDLC max info 128 and 512 with the readout time
at 9600 baud (10 bits per byte, 8N1) computed from the wire bytes.

    .venv/bin/python bench/bench_dlms.py            # real firmware on micropython + link model

1. The firmware on the MicroPython unix port behind a pty (hil.EmulatedRig): our client opens an
   association and GETs 1.0.1.8.0.255; the pty link counts the bytes both ways. Processing time
   is measured inside the MicroPython VM: ``HdlcLink.on_frame`` for the GET I-frame, timed with
   ``time.ticks_us`` over 500 calls (a stand-in meter object, the same server/cosem code).
2. Event log: the firmware's own log read with LLS client 32, and — because the firmware's log
   may be short — the same server code on CPython with a 300-entry log, frame by frame, counting
   every byte of every frame both ways (GET, GET-next, RR and the segments).
"""
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "firmware", ROOT / "tests" / "support"):
    sys.path.insert(0, str(p))

from protocol import apdu_client as apdu  # noqa: E402
from protocol import hdlc_client as hdlc  # noqa: E402
import benchargs  # noqa: E402

BAUD = 9600

_MPY_TIMER = r"""
import time
from protocol import hdlc
from meter.link import HdlcLink
from meter.account import Account
from meter.relay import DisconnectControl
class B:
    def ticks_ms(self): return time.ticks_ms()
    def time(self): return 1767225600
class M:
    def __init__(self):
        self.board = B(); self.cfg = {}; self.tz_minutes = 330; self.events = []
        self.logical_device_name = b"PPM0000001"; self.account = Account(650, 5000)
        self.account.import_wh = 123456; self.dc = DisconnectControl(5); self.metro = None
        self.token_gateway = None; self.tokens = None; self.policy = None; self.limiter = None
    def check_password(self, c, v): return True
    def event(self, c, t): pass
FRAMES = %(frames)r   # SNRM, AARQ I-frame, then the GET I-frame for N(S) = N(R) = 1..7, 0
m = M()
link = HdlcLink(m, 1, None, 512)
rx = hdlc.Receiver(600)
def frame(raw):
    rx.feed(raw)
    return rx.pop()
link.on_frame(frame(FRAMES[0]))
link.on_frame(frame(FRAMES[1]))
out = link.on_frame(frame(FRAMES[2]))       # a real answer, not an error, is being timed
assert b"\xc4\x01\xc1\x00\x06" in bytes(out[0]), out
N = 504
t0 = time.ticks_us()
for i in range(1, N + 1):
    link.on_frame(frame(FRAMES[2 + i %% 8]))
t1 = time.ticks_us()
# the frame decode is the Receiver's work: time it alone and subtract
t2 = time.ticks_us()
for i in range(1, N + 1):
    frame(FRAMES[2 + i %% 8])
t3 = time.ticks_us()
print("US", (time.ticks_diff(t1, t0) - time.ticks_diff(t3, t2)) // N)
"""


def _timer_frames():
    """The frames a client 16 sends for SNRM, AARQ and repeated GETs of 1.0.1.8.0.255 attr 2
    (built here on the host: the request builders are host-only modules)."""
    def enc(ctrl, info=b""):
        return hdlc.encode_frame(b"\x03", b"\x21", ctrl, info)
    req = hdlc.LLC_REQUEST + apdu.get_request(0xC1, 3, b"\x01\x00\x01\x08\x00\xff", 2)
    frames = [enc(hdlc.SNRM), enc(hdlc.ctrl_i(0, 0), hdlc.LLC_REQUEST + apdu.build_aarq())]
    frames += [enc(hdlc.ctrl_i(ns, ns), req) for ns in (1, 2, 3, 4, 5, 6, 7, 0)]
    return frames


def mpy_processing_us(fw_dir=None):
    """Per-GET processing time inside the VM, running the mpy-cross image (as a board does)."""
    from hil.env import find_micropython
    if fw_dir is None:
        from host_tools.build import cached_build
        fw_dir = cached_build("unix")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(_MPY_TIMER % {"frames": _timer_frames()})
        path = f.name
    try:
        env = dict(os.environ, MICROPYPATH="%s:.frozen" % fw_dir)
        out = subprocess.run([find_micropython(), "-X", "heapsize=190k", path], env=env,
                             capture_output=True, text=True, timeout=120)
        for line in out.stdout.splitlines():
            if line.startswith("US "):
                return int(line.split()[1])
        raise RuntimeError(out.stdout + out.stderr)
    finally:
        os.unlink(path)


def firmware_get(fw_dir=None):
    """(request bytes, response bytes, round trip ms) for one GET of 1.0.1.8.0.255 and the
    firmware's event log (payload, wire) over the pty."""
    import time
    from hil.emulated import EmulatedRig
    from host_tools.client import DlmsClient
    with tempfile.TemporaryDirectory() as d:
        kw = {"firmware_dir": fw_dir} if fw_dir else {}
        rig = EmulatedRig(d, **kw)
        try:
            with DlmsClient(rig.port) as c:
                c.get(3, "1.0.1.8.0.255", 2)                # warm up
                link = rig.dlms_link
                link.drain()
                link.reset_counters()
                t = time.perf_counter()
                c.get(3, "1.0.1.8.0.255", 2)
                rtt = (time.perf_counter() - t) * 1000
                link.drain()
                get = (link.counts["b2a"], link.counts["a2b"], rtt)
            logs = {}
            for mi in (128, 512):
                with DlmsClient(rig.port, client_sap=32, password="00000000", max_info=mi) as c:
                    rig.dlms_link.drain()
                    rig.dlms_link.reset_counters()
                    raw = c.get_raw(7, "0.0.99.98.0.255", 2)
                    rig.dlms_link.drain()
                    logs[mi] = (len(raw), rig.dlms_link.counts["b2a"] + rig.dlms_link.counts["a2b"])
            for mi in (128, 512):         # a long value the firmware has: the object list
                for win in (1, 7):
                    with DlmsClient(rig.port, client_sap=32, password="00000000", max_info=mi,
                                    window=win) as c:
                        rig.dlms_link.drain()
                        rig.dlms_link.reset_counters()
                        raw = c.get_raw(15, "0.0.40.0.0.255", 2)
                        rig.dlms_link.drain()
                        logs[(mi, win)] = (len(raw), rig.dlms_link.counts["b2a"] + rig.dlms_link.counts["a2b"])
            return get, logs
        finally:
            rig.stop()


def model_event_log(max_info, max_pdu, n_events=300, window=1):
    """Frame-level model: the server code (meter.link.HdlcLink) on CPython with an n-entry log
    and our sans-I/O client link proposing ``window``; returns (payload bytes, wire bytes both
    ways) for the readout (GET, GET-next, RR and every segment, frame by frame)."""
    from fake_meter import Meter
    from meter.link import HdlcLink
    from protocol import client_link as cl
    link = HdlcLink(Meter(n_events=n_events), 1, None, max_info)
    c = cl.ClientLink(32, 1, None, max_info, window=window)
    wire = [0]

    def run(first, wanted):
        data = first
        while True:
            wire[0] += len(data)
            for raw in link.on_frame(hdlc.decode_frame(data)):
                wire[0] += len(raw)
                c.receive(raw)
            while True:
                ev = c.next_event()
                if isinstance(ev, wanted):
                    return ev
                if isinstance(ev, cl.Transmit):
                    data = ev.data
                    break
                if isinstance(ev, cl.NeedData):
                    raise RuntimeError("the model meter went silent")

    run(c.snrm(), cl.Connected)
    aarq = apdu.build_aarq(mechanism=apdu.MECH_LLS, auth_value=b"00000000", max_pdu=max_pdu)
    run(c.send_apdu(aarq), cl.Apdu)
    wire[0] = 0
    payload = bytearray()
    r = apdu.parse_response(run(c.send_apdu(apdu.get_request(0xC1, 7, b"\x00\x00\x63\x62\x00\xff", 2)),
                                cl.Apdu).data)
    if r.kind == 1:
        payload += r.data
    else:
        payload += r.raw
        while not r.last:
            r = apdu.parse_response(run(c.send_apdu(apdu.get_next_request(0xC1, r.block_no)), cl.Apdu).data)
            payload += r.raw
    return len(payload), wire[0]


def secs(nbytes):
    return nbytes * 10 / BAUD


def main(fw=None):
    us = mpy_processing_us(fw)
    (req, resp, rtt), logs = firmware_get(fw)
    print("GET 1.0.1.8.0.255 (public client, firmware on micropython -X heapsize=190k):")
    print("  wire bytes: request %d + response %d = %d (%.0f ms at %d baud)"
          % (req, resp, req + resp, secs(req + resp) * 1000, BAUD))
    print("  meter processing per GET (HdlcLink.on_frame, MicroPython VM): %d us" % us)
    print("  round trip over the pty (host client, both VMs): %.1f ms" % rtt)
    print("Event log readout, firmware's own log (LLS client 32, client max PDU 65535):")
    for mi, (payload, wire) in sorted((k, v) for k, v in logs.items() if isinstance(k, int)):
        print("  max info %3d: payload %5d B, wire %5d B, efficiency %.2f, %.2f s at %d baud"
              % (mi, payload, wire, payload / wire if wire else 0, secs(wire), BAUD))
    print("Object list readout over the pty (firmware, LLS client 32; the GET and its answer frames):")
    for (mi, win), (payload, wire) in sorted((k, v) for k, v in logs.items() if not isinstance(k, int)):
        print("  max info %3d, window %d: payload %5d B, wire %5d B, efficiency %.3f, %.2f s at %d baud"
              % (mi, win, payload, wire, payload / wire if wire else 0, secs(wire), BAUD))
    print("Event log readout, 300 entries (same server code on CPython, frame by frame):")
    for mi in (128, 512):
        for pdu in (256, 65535):
            for win in (1, 7):
                payload, wire = model_event_log(mi, pdu, window=win)
                print("  max info %3d, client max PDU %5d, window %d: payload %5d B, wire %5d B, "
                      "efficiency %.3f, %.2f s at %d baud"
                      % (mi, pdu, win, payload, wire, payload / wire, secs(wire), BAUD))


def parse_args(argv=None):
    ap = benchargs.parser(__doc__)
    ap.add_argument("--firmware", metavar="DIR", default=os.environ.get("METER_FIRMWARE_DIR"),
                    help="firmware directory to run (default: $METER_FIRMWARE_DIR, else the cached "
                         "unix build)")
    ap.add_argument("--baud", type=benchargs.count, default=BAUD, metavar="BIT/S",
                    help="line speed the readout times are computed at, 10 bits per byte "
                         "(default: %(default)s bit/s)")
    return ap.parse_args(argv)


if __name__ == "__main__":
    a = parse_args()
    BAUD = a.baud
    main(a.firmware)
