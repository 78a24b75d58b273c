"""Relay read-back for rigs on a real board (no emulator control channel): `RelayReadback`.

Two sources, in this order:

1. ``relay_sense`` (optional callable() -> bool, True = contact closed): bench hardware reading
   the relay's contact itself, e.g. an auxiliary contact or a current sense wired to a USB GPIO
   (the bench rig's ``--relay-sense-cmd``). This is the only read-back that proves the contact.
2. Otherwise DLMS: the disconnect control's output_state, IC 70 0.0.96.3.10.255 attribute 2,
   read by the public client (16, no authentication: readable by every client, docs/CONTRACTS.md
   object model; no secret, no invocation counter used). The firmware serves output_state as
   True exactly when control_state is connected (``meter.relay``): it is what the meter commands
   the relay to be, the firmware's decision, not the contact; a board with contact sense wired
   (``relay_fb``, docs/BENCH.md pin table) reports a contact that disagrees as
   ``relay mismatch`` on its console.

``wait_relay`` polls at ``poll_s`` (a board gives no event to wait on) until the state or
``timeout`` (RigTimeout). The public association costs the meter nothing it keeps.
"""
import threading
import time

from .rig import RigTimeout

__all__ = ["RelayReadback", "DISCONNECT_CONTROL", "sense_command"]

DISCONNECT_CONTROL = (70, "0.0.96.3.10.255", 2)


class RelayReadback:
    """Mixin for a `hil.rig.Rig` with ``port``: ``relay_closed`` / ``wait_relay`` (module docstring)."""

    poll_s = 0.25
    relay_sense = None

    def relay_closed(self):
        """True if the relay is closed: the contact sense when wired, else output_state over DLMS."""
        if self.relay_sense is not None:
            return bool(self.relay_sense())
        from host_tools.client import DlmsClient
        with DlmsClient(self.port, baud=getattr(self, "baud", 9600)) as c:
            return bool(c.get(*DISCONNECT_CONTROL)[1])

    def relay_source(self):
        """Where ``relay_closed`` reads from (for a failure message)."""
        return "the relay contact sense" if self.relay_sense is not None else \
            "output_state over DLMS (0.0.96.3.10.255 attribute 2)"

    def wait_relay(self, closed, timeout=10.0):
        """Read the relay back every ``poll_s`` until it is ``closed``; RigTimeout."""
        deadline = time.monotonic() + timeout
        wait = threading.Event()
        while True:
            if self.relay_closed() is bool(closed):
                return
            if time.monotonic() >= deadline:
                raise RigTimeout("relay not %s after %.1f s (%s, %s)" % (
                    "closed" if closed else "open", timeout, self.relay_source(), self.port))
            wait.wait(self.poll_s)


_WORDS = {"1": True, "closed": True, "on": True, "0": False, "open": False, "off": False}


def sense_command(cmd):
    """``--relay-sense-cmd CMD``: a ``relay_sense`` callable running the shell command ``CMD``
    and reading its output, ``1``/``closed``/``on`` or ``0``/``open``/``off`` (None without a
    command). Anything else, or a failing command, is a RigError naming the command."""
    if not cmd:
        return None
    import subprocess

    from .rig import RigError

    def sense():
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30)
        word = r.stdout.strip().lower()
        if r.returncode or word not in _WORDS:
            raise RigError("--relay-sense-cmd %r: exit %d, printed %r (want 1/closed or 0/open)"
                           % (cmd, r.returncode, r.stdout.strip()[:40]))
        return _WORDS[word]
    return sense
