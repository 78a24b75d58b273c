"""Noise on the Modbus RTU line of the emulated rig, on command or at random (host side).

`LineNoise` sits on a `hil.ptylink.PtyLink` whose side A is the bus master (the meter's Modbus
UART) and side B the module (the pymodbus server of `hil.modbus_sim`): it installs a filter on
each direction, cuts the byte stream into RTU frames by their length (function code, byte
count) and a silence (`FRAME_GAP_S`), and applies at most one fault per transaction (a request
and its reply) to the real bytes on the wire. Kinds and their parameters:

==========  =======================================================  ========================
kind        what the master gets                                     parameters (default)
==========  =======================================================  ========================
stray       extra bytes glued to a frame (a driver-enable glitch     ``data`` (b"\\x00"),
            gives 0x00, an idle-line break 0xFF)                     ``where`` (before_reply)
drop        bytes of the reply (or of the request: the module        ``where`` (reply),
            discards the broken frame and stays silent) are lost     ``n`` (1), ``at`` (0.5)
delay       the reply comes ``delay_s`` late (beyond the master's    ``delay_s`` (1.0)
            timeout: it meets the master's retry or next poll)
split       the reply in two parts, ``gap_s`` of silence between     ``at`` (0.5), ``gap_s``
            (below t3.5: one frame; above: a truncated frame + junk)  (0.005)
crc         the reply's CRC field XOR ``xor`` (sent low byte first)  ``xor`` (0x0001)
exception   an exception reply (function | 0x80, ``code``, CRC ok)   ``code`` 1-4, 6 (4)
wrong_unit  the reply from another address (CRC recomputed)          ``unit`` (own + 1)
silent      no reply at all (the request did reach the module)       -
==========  =======================================================  ========================

``where`` for stray: "before_reply", "inside_reply" (at ``at``), "after_reply",
"before_request" (glued to the request: the module sees a broken frame and stays silent).
``at``: a byte index or a float fraction of the frame (0.5 = the middle), clamped to the frame.

On command: ``noise.inject("stray", data=b"\\x00", where="before_reply")`` queues one fault (or
``count`` of them) for the next transactions, one each, in order; a reply fault whose request
gets no reply (another address, a stalled module) stays queued. At random:
``noise.random({"stray": 0.02, "crc": 0.01}, seed=7)`` (or ``noise.random(0.01, seed=7)``: every
kind at that rate) draws for each transaction, from a ``random.Random(seed)``, whether and which
fault applies and its parameters: the same seed and the same sequence of transactions give the
same faults. Every fault that reached the wire is counted (``counts[kind]``, ``total``) and
logged (``events``: `NoiseEvent`). Late bytes keep their order: nothing overtakes a delayed
reply. Delays are wall-clock time (the master's timeouts are).
"""

import collections
import random as _random
import threading
import time

from .modbus_sim import FRAME_GAP_S
from .ptylink import A2B, B2A
from .rtuframes import Framer, corrupt, crc16, index, reply_len, request_len

__all__ = ["LineNoise", "NoiseEvent", "KINDS", "STRAY_WHERE", "EXCEPTION_CODES", "crc16"]

KINDS = ("stray", "drop", "delay", "split", "crc", "exception", "wrong_unit", "silent")
STRAY_WHERE = ("before_reply", "inside_reply", "after_reply", "before_request")
DROP_WHERE = ("request", "reply")
EXCEPTION_CODES = (1, 2, 3, 4, 6)
_REQUEST_SIDE = (("stray", "before_request"), ("drop", "request"))
_DEFAULTS = {
    "stray": {"data": b"\x00", "where": "before_reply", "at": 0.5},
    "drop": {"where": "reply", "n": 1, "at": 0.5},
    "delay": {"delay_s": 1.0},
    "split": {"at": 0.5, "gap_s": 0.005},
    "crc": {"xor": 0x0001},
    "exception": {"code": 4},
    "wrong_unit": {"unit": None},
    "silent": {},
}
_MAX_EVENTS = 200000

NoiseEvent = collections.namedtuple("NoiseEvent", "seq transaction kind params source")
NoiseEvent.__doc__ = """One fault applied to the wire: ``seq`` (1, 2, ...), ``transaction`` (the
request's number, 1-based), ``kind``, ``params`` (dict, every parameter resolved), ``source``
("command" or "random")."""


class LineNoise:
    """Fault injector on the Modbus line ``link`` (master on side A, module on side B).

    Args:
        link: the `hil.ptylink.PtyLink` between the meter's Modbus UART and the module.
        frame_gap_s: silence after which an incomplete frame is passed on as it is.

    Public counters: ``counts`` {kind: faults applied}, ``total``, ``transactions`` (requests
    seen since the injector was armed), ``pending`` (queued command faults), ``events``.
    The filters are installed by the first `inject` / `random` call (until then the line is
    untouched) and removed by `close`.
    """

    def __init__(self, link, frame_gap_s=FRAME_GAP_S):
        self._link = link
        self._cond = threading.Condition()
        self._rq = Framer(request_len, frame_gap_s)
        self._rp = Framer(reply_len, frame_gap_s)
        self._queue = collections.deque()   # command faults: (kind, params)
        self._armed = None                  # (kind, params, source, transaction) for the reply
        self._rates = None                  # random mode: [(kind, rate)]
        self._rng = None
        self._ropts = {}
        self._late = collections.deque()    # (due, bytes) to the master, in order
        self._counts = dict.fromkeys(KINDS, 0)
        self._events = collections.deque(maxlen=_MAX_EVENTS)
        self._seq = 0
        self._transactions = 0
        self._installed = False
        self._closed = False
        self._thread = None

    # -- commands --------------------------------------------------------------

    def inject(self, kind, count=1, **params):
        """Queue ``count`` faults of ``kind`` (see the module docstring for kinds and
        parameters) for the next transactions, one each. ValueError for an unknown kind or
        parameter, or a bad value."""
        fault = (kind, self._params(kind, params))
        if not isinstance(count, int) or count < 1:
            raise ValueError("count must be an int >= 1, got %r" % (count,))
        with self._cond:
            self._queue.extend([fault] * count)
            self._install()

    def random(self, rates, seed=0, delay_s=(0.6, 1.5), gap_s=(0.002, 0.1)):
        """Random mode: for each transaction, fault ``kind`` with probability ``rates[kind]``
        (a dict; a number gives every kind that rate; None stops random mode). The rates add
        up to at most 1 (one fault per transaction). Parameters are drawn too: delays uniform
        in ``delay_s`` (lo, hi) s, split gaps from the choices ``gap_s``, stray bytes 0x00,
        0xFF or 1-3 random bytes at any ``where``, drops of 1-3 bytes anywhere, CRC masks,
        exception codes 1-4/6 and other units. Command faults still come first."""
        if rates is None:
            with self._cond:
                self._rates = None
            return
        if not isinstance(rates, dict):
            rates = dict.fromkeys(KINDS, rates)
        table = []
        for kind, rate in sorted(rates.items(), key=lambda kv: KINDS.index(kv[0])
                                 if kv[0] in KINDS else -1):
            if kind not in KINDS:
                raise ValueError("unknown noise kind %r" % (kind,))
            if not 0 <= float(rate) <= 1:
                raise ValueError("rate of %s must be in [0, 1], got %r" % (kind, rate))
            table.append((kind, float(rate)))
        if sum(r for _, r in table) > 1.0 + 1e-9:
            raise ValueError("rates add up to more than 1")
        with self._cond:
            self._rates = table
            self._rng = _random.Random(seed)
            self._ropts = {"delay_s": tuple(delay_s), "gap_s": tuple(gap_s)}
            self._install()

    def clear(self):
        """Stop random mode and forget queued and armed faults (bytes already late still come)."""
        with self._cond:
            self._rates = None
            self._queue.clear()
            self._armed = None

    def reset_counts(self):
        """Zero ``counts``, ``total``, ``transactions`` and forget ``events``."""
        with self._cond:
            self._counts = dict.fromkeys(KINDS, 0)
            self._events.clear()
            self._seq = 0
            self._transactions = 0

    def close(self):
        """Remove the filters (held bytes go on at once) and stop the delivery thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if self._installed:
                self._link.set_filter(A2B, None)
                self._link.set_filter(B2A, None)
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    # -- counters --------------------------------------------------------------

    @property
    def counts(self):
        """{kind: number of faults of that kind applied to the wire} (every kind present)."""
        with self._cond:
            return dict(self._counts)

    @property
    def total(self):
        """Faults applied, all kinds."""
        with self._cond:
            return self._seq

    @property
    def transactions(self):
        """Requests seen on the line since the injector was armed (or `reset_counts`)."""
        with self._cond:
            return self._transactions

    @property
    def pending(self):
        """Command faults queued and not applied yet (an armed one included)."""
        with self._cond:
            armed = self._armed is not None and self._armed[2] == "command"
            return len(self._queue) + armed

    @property
    def events(self):
        """List of `NoiseEvent` (the last 200,000), oldest first."""
        with self._cond:
            return list(self._events)

    def wait_events(self, n, timeout=10.0):
        """Wait until ``total >= n``; True, or False after ``timeout`` s."""
        with self._cond:
            return self._cond.wait_for(lambda: self._seq >= n, timeout)

    def wait_idle(self, timeout=10.0):
        """Wait until no command fault is pending and no late byte is waiting; True/False."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._queue and self._armed is None and not self._late, timeout)

    # -- internals: decisions --------------------------------------------------

    @staticmethod
    def _params(kind, params):
        if kind not in _DEFAULTS:
            raise ValueError("unknown noise kind %r (kinds: %s)" % (kind, ", ".join(KINDS)))
        bad = set(params) - set(_DEFAULTS[kind])
        if bad:
            raise ValueError("%s takes no parameter %s" % (kind, ", ".join(sorted(bad))))
        p = dict(_DEFAULTS[kind], **params)
        if kind == "stray" and (p["where"] not in STRAY_WHERE or not p["data"]):
            raise ValueError("stray: where in %s, data not empty" % (STRAY_WHERE,))
        if kind == "drop" and (p["where"] not in DROP_WHERE or p["n"] < 1):
            raise ValueError("drop: where in %s, n >= 1" % (DROP_WHERE,))
        if kind == "exception" and p["code"] not in EXCEPTION_CODES:
            raise ValueError("exception code must be one of %s" % (EXCEPTION_CODES,))
        if kind == "crc" and not 1 <= p["xor"] <= 0xFFFF:
            raise ValueError("crc xor must be 1..0xFFFF")
        if kind in ("delay", "split") and p.get("delay_s", p.get("gap_s")) < 0:
            raise ValueError("%s: time must be >= 0" % kind)
        if kind == "stray":
            p["data"] = bytes(p["data"])
        return p

    def _draw(self):
        """Random mode: (kind, params) or None for this transaction (under the lock)."""
        rng, u = self._rng, self._rng.random()
        for kind, rate in self._rates:
            if u < rate:
                break
            u -= rate
        else:
            return None
        at = rng.random()
        if kind == "stray":
            pick = rng.randrange(3)
            data = (b"\x00", b"\xff", bytes(rng.randrange(256)
                                            for _ in range(rng.randint(1, 3))))[pick]
            return kind, {"data": data, "where": rng.choice(STRAY_WHERE), "at": at}
        if kind == "drop":
            return kind, {"where": rng.choice(DROP_WHERE), "n": rng.randint(1, 3), "at": at}
        if kind == "delay":
            return kind, {"delay_s": round(rng.uniform(*self._ropts["delay_s"]), 3)}
        if kind == "split":
            return kind, {"at": at, "gap_s": rng.choice(self._ropts["gap_s"])}
        if kind == "crc":
            return kind, {"xor": rng.randint(1, 0xFFFF)}
        if kind == "exception":
            return kind, {"code": rng.choice(EXCEPTION_CODES)}
        if kind == "wrong_unit":
            return kind, {"unit": rng.randint(1, 247)}
        return kind, {}

    def _decide(self):
        """A request was seen: choose this transaction's fault (under the lock)."""
        self._transactions += 1
        if self._armed is not None and self._armed[2] == "command":
            self._queue.appendleft(self._armed[:2])  # its request got no reply: keep it
        self._armed = None
        if self._queue:
            kind, params = self._queue.popleft()
            source = "command"
        elif self._rates:
            fault = self._draw()
            if fault is None:
                return None
            (kind, params), source = fault, "random"
        else:
            return None
        self._armed = (kind, params, source, self._transactions)
        return self._armed

    def _count(self, kind, params, source, transaction):
        self._seq += 1
        self._counts[kind] += 1
        self._events.append(NoiseEvent(self._seq, transaction, kind, dict(params), source))
        self._cond.notify_all()

    # -- internals: the byte stream --------------------------------------------

    def _install(self):
        if self._installed or self._closed:
            return
        self._installed = True
        self._link.set_filter(A2B, self._on_request)
        self._link.set_filter(B2A, self._on_reply)
        self._thread = threading.Thread(target=self._deliver_loop, name="LineNoise",
                                        daemon=True)
        self._thread.start()

    def _on_request(self, data):
        """Filter master -> module: frames requests, applies request-side faults."""
        out = bytearray()
        with self._cond:
            for is_frame, chunk in self._rq.feed(data, time.monotonic()):
                fault = self._decide() if is_frame else None
                if fault is not None and (fault[0], fault[1].get("where")) in _REQUEST_SIDE:
                    kind, p, source, tr = fault
                    self._armed = None
                    if kind == "stray":
                        chunk = p["data"] + chunk
                    else:
                        i = index(p["at"], len(chunk), p["n"])
                        chunk = chunk[:i] + chunk[i + p["n"]:]
                    self._count(kind, p, source, tr)
                out += chunk
            self._cond.notify_all()  # a held partial request: the delivery thread times it
        return bytes(out)

    def _on_reply(self, data):
        """Filter module -> master: frames replies, applies the armed fault, keeps order."""
        now = time.monotonic()
        with self._cond:
            parts = []
            for is_frame, chunk in self._rp.feed(data, now):
                if is_frame and self._armed is not None:
                    kind, p, source, tr = self._armed
                    self._armed = None
                    parts += corrupt(kind, p, chunk)
                    self._count(kind, p, source, tr)
                else:
                    parts.append((0.0, chunk))
            if not self._late and all(d == 0 for d, _ in parts):
                self._cond.notify_all()
                return b"".join(b for _, b in parts)
            due = max(now, self._late[-1][0]) if self._late else now
            for delay, chunk in parts:
                due += delay
                self._late.append((due, chunk))
            self._cond.notify_all()
        return b""

    def _deliver_loop(self):
        """Deliver late bytes when due, and pass on incomplete frames after a silence."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if self._rq.due() is not None and self._rq.due() <= now:
                    self._send(A2B, self._rq.flush())
                if self._rp.due() is not None and self._rp.due() <= now:
                    # an incomplete reply goes on as it is, behind anything late
                    self._late.append((max([now] + [d for d, _ in self._late[-1:]]),
                                       self._rp.flush()))
                sends = []
                while self._late and self._late[0][0] <= now:
                    sends.append(self._late.popleft()[1])
                if sends:
                    self._send(B2A, b"".join(sends))
                    self._cond.notify_all()
                    continue
                waits = [t for t in (self._late[0][0] if self._late else None,
                                     self._rq.due(), self._rp.due()) if t is not None]
                self._cond.wait(max(min(waits) - now, 0.0005) if waits else None)
            rest = b"".join(b for _, b in self._late) + self._rp.flush()
            self._late.clear()
            if rest:
                self._send(B2A, rest)
            if self._rq.buf:
                self._send(A2B, self._rq.flush())

    def _send(self, direction, data):
        try:
            self._link.inject(direction, data)
        except Exception:  # the link is closed: the bytes are lost with it
            pass
