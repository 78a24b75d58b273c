"""The control channel of an emulated board, with I/O: a `ControlState` behind the ``ctl`` pty.

`ControlChannel` owns the pty (`hil.rawpty.Pty`), feeds every received line to its
`hil.control.ControlState` under one condition variable, and offers bounded waits on that state.
The rig shares the condition (``channel.cond``, re-entrant) for its own process state, so a wait
wakes when the firmware exits as well as when a line arrives.
"""
import threading
import time

from .control import ControlState
from .rawpty import Pty
from .rig import RigError, RigTimeout

__all__ = ["ControlChannel"]


class ControlChannel:
    """Control lines to and from the board.

    Args:
        epoch: initial RTC (epoch s) for the state.
        link_dir, name: stable symlink to the pty's slave end.
        on_kind: optional callable(kind) run under ``cond`` after each parsed line (the rig
            re-applies the load when the relay changes).
        check: optional callable(what) run under ``cond`` at every wake-up of `wait`; raises
            RigError when the board cannot answer any more (off, exited).
        context: optional callable() -> str appended to timeout messages.
    """

    def __init__(self, epoch, link_dir=None, name="meter-ctl", on_kind=None, check=None,
                 context=None):
        self.cond = threading.Condition()
        self.state = ControlState(epoch)
        self._on_kind = on_kind
        self._check = check
        self._context = context
        self._ping_seq = 0
        self.pty = Pty(on_line=self._on_line, link_dir=link_dir, name=name)

    @property
    def path(self):
        """Slave device path to hand to the board (board.json "ctl")."""
        return self.pty.path

    def _on_line(self, line):
        with self.cond:
            kind = self.state.feed_line(line)
            if kind and self._on_kind is not None:
                self._on_kind(kind)
            self.cond.notify_all()

    def send(self, line):
        """Trace and write one control line (PtyError if the tty does not take it)."""
        with self.cond:
            self.state.note(">", line)
        self.pty.write_line(line)

    def wait(self, predicate, timeout, what):
        """Wait until ``predicate()`` (called under ``cond``) is true.

        Raises RigError if the reader failed or ``check`` says the board cannot answer,
        RigTimeout after ``timeout`` s; both messages name ``what`` and carry the context.
        """
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if predicate():
                    return
                if self.pty.error is not None:
                    raise RigError("control channel reader failed: %r" % (self.pty.error,))
                if self._check is not None:
                    self._check(what)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RigTimeout("timed out after %.1f s waiting for %s" % (timeout, what)
                                     + self.context())
                self.cond.wait(left)

    def context(self):
        """Text for error messages (the owner's context), "" without one."""
        return self._context() if self._context is not None else ""

    def next_ping(self):
        """A fresh ``ping`` sequence number."""
        with self.cond:
            self._ping_seq += 1
            return self._ping_seq

    def trace_lines(self, n=20):
        """The last ``n`` control lines as text (see ControlState.trace_lines)."""
        with self.cond:
            return self.state.trace_lines(n)

    def flush_input(self):
        """Discard what was sent but not yet read by the board (it lost power)."""
        self.pty.flush_input()

    @property
    def error(self):
        """The exception that stopped the pty reader, or None."""
        return self.pty.error

    def close(self):
        """Close the pty (idempotent)."""
        self.pty.close()
