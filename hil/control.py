"""The unix board's control channel, sans I/O: a parser and the state it builds.

The channel (docs/CONTRACTS.md, "unix board control channel") carries ASCII lines, ``\\n``
terminated. The board sends:

=====================================  ==============================================
``ready``                              booted, control channel open
``relay 0|1``                          relay output (1 closed)
``meter <epoch> <wh> <credit> <0|1>``  one metering cycle: RTC s, import Wh, credit
                                       paise (may be negative), relay closed
``event <code> <text...>``             an event was logged
``pong <n>``                           answer to ``ping <n>``
``mem <alloc> <free>``                 heap after gc.collect() (bytes)
=====================================  ==============================================

`ControlState.feed_line` takes one received line (without the ``\\n``) and updates the state;
a line it cannot parse goes to ``bad_lines``. `ControlState.note` records a sent line for the
trace. Nothing here does I/O, threads or locking: `hil.ctlchannel` wraps it around the pty.
"""
import collections

from .rig import Telemetry

__all__ = ["ControlState", "HISTORY", "TRACE"]

HISTORY = 1000   # telemetry lines kept
TRACE = 50       # control lines kept for error messages (repeats folded)


def _bit(s):
    if s not in ("0", "1"):
        raise ValueError("expected 0 or 1, got %r" % (s,))
    return s == "1"


class ControlState:
    """What the board has said so far.

    Args:
        epoch: the rig's RTC (epoch s) as last sent; `relay_history` stamps relay changes
            with it. The owner updates ``epoch`` when it sends ``time``.

    Attributes:
        readies, meters: counts of ``ready`` / ``meter`` lines.
        relay: last relay state (bool), None before the first ``relay`` line or after
            `relay_unknown` (no supply).
        relay_history: [(epoch, closed)], one per ``relay`` line.
        telemetry: latest `Telemetry` (None before the first ``meter`` line).
        telemetry_history: deque of the last HISTORY Telemetry.
        events: [(code str, text str)].
        pongs: set of ``pong`` numbers not yet claimed (`take_pong`).
        mems: [(alloc, free)] from ``mem`` lines.
        bad_lines: lines that did not parse.
    """

    def __init__(self, epoch):
        self.epoch = int(epoch)
        self.readies = 0
        self.meters = 0
        self.relay = None
        self.relay_history = []
        self.telemetry = None
        self.telemetry_history = collections.deque(maxlen=HISTORY)
        self.events = []
        self.pongs = set()
        self.mems = []
        self.bad_lines = []
        self._trace = collections.deque(maxlen=TRACE)  # [direction, line, repeats]

    def feed_line(self, line):
        """Parse one line received from the board; return its kind ("ready", "relay", "meter",
        "event", "pong", "mem"), "" for an empty line, or None if it went to ``bad_lines``."""
        self.note("<", line)
        parts = line.split()
        if not parts:
            return ""
        try:
            return self._parse(parts, line)
        except (ValueError, IndexError):
            self.bad_lines.append(line)
            return None

    def _parse(self, parts, line):
        kind = parts[0]
        if kind == "ready":
            self.readies += 1
        elif kind == "relay":
            state = _bit(parts[1])
            self.relay = state
            self.relay_history.append((self.epoch, state))
        elif kind == "meter":
            t = Telemetry(int(parts[1]), int(parts[2]), int(parts[3]), _bit(parts[4]))
            self.telemetry = t
            self.telemetry_history.append(t)
            self.meters += 1
        elif kind == "event":
            text = line.split(None, 2)[2] if len(parts) > 2 else ""
            self.events.append((parts[1], text))
        elif kind == "pong":
            self.pongs.add(int(parts[1]))
        elif kind == "mem":
            self.mems.append((int(parts[1]), int(parts[2])))
        else:
            self.bad_lines.append(line)
            return None
        return kind

    def relay_unknown(self):
        """The board lost its supply: the relay output is undefined until it reports again."""
        self.relay = None

    def take_pong(self, n):
        """True (and forget it) if ``pong n`` has arrived."""
        if n in self.pongs:
            self.pongs.discard(n)
            return True
        return False

    def note(self, direction, line):
        """Record a control line for the trace: direction ">" (sent) or "<" (received).
        Identical consecutive lines fold into one with a repeat count."""
        if self._trace and self._trace[-1][0] == direction and self._trace[-1][1] == line:
            self._trace[-1][2] += 1
        else:
            self._trace.append([direction, line, 1])

    def trace_lines(self, n=20):
        """The last ``n`` traced lines as text: "> sent", "< received", repeats as " (xN)"."""
        items = list(self._trace)[-n:]
        return ["%s %s%s" % (d, ln, " (x%d)" % k if k > 1 else "") for d, ln, k in items]
