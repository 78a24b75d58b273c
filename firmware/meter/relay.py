"""Disconnect control, COSEM IC 70 (version 1): control_state machine and control modes 0-6.

States (attribute 3 control_state): 0 disconnected, 1 connected, 2 ready_for_reconnection.
Transitions (IEC 62056-6-2 / Blue Book §5.4.4, IC 70):
  a remote_reconnect      disconnected -> connected              (modes 2, 4)
  b remote_disconnect     connected    -> disconnected           (modes 1-6)
  c remote_disconnect     ready        -> disconnected           (modes 1-6)
  d remote_reconnect      disconnected -> ready_for_reconnection (modes 1, 3, 5, 6)
  e manual_reconnect      ready        -> connected              (modes 1-6)
  f manual_disconnect     connected    -> ready_for_reconnection (modes 1, 2, 5)
  g local_disconnect      connected    -> ready_for_reconnection (modes 1-6)
  h local_reconnect       ready        -> connected              (modes 5, 6)
Mode 0: the object is always connected; every method is refused.

``output_state`` (attribute 2) is True exactly when control_state is connected.
Each method returns True if it changed state, False if the transition is not allowed/does nothing.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

DISCONNECTED = const(0)
CONNECTED = const(1)
READY = const(2)

# mode sets below are bytes literals inside the methods (in flash on a board, no module globals)


class DisconnectControl:
    def __init__(self, control_mode=5, control_state=CONNECTED):
        if not 0 <= control_mode <= 6:
            raise ValueError("control_mode 0..6")
        self.control_mode = control_mode
        self.control_state = CONNECTED if control_mode == 0 else control_state
        self.cause = ""

    @property
    def output_state(self):
        return self.control_state == CONNECTED

    def _go(self, state, cause):
        if state == self.control_state:
            return False
        self.control_state = state
        self.cause = cause
        return True

    def remote_disconnect(self):
        """Method 1 (transitions b, c). Allowed in modes 1-6."""
        if self.control_mode == 0:
            return False
        if self.control_state == DISCONNECTED:
            return True  # already there: the command succeeds
        return self._go(DISCONNECTED, "remote")

    def remote_reconnect(self):
        """Method 2 (transitions a, d). Only from disconnected."""
        if self.control_mode == 0:
            return False
        if self.control_state != DISCONNECTED:
            return True
        if self.control_mode == 2 or self.control_mode == 4:   # (bytes literals: an object per load)
            return self._go(CONNECTED, "remote")
        return self._go(READY, "remote")

    def manual_reconnect(self):
        """Button press (transition e): ready -> connected."""
        if self.control_mode == 0 or self.control_state != READY:
            return False
        return self._go(CONNECTED, "manual")

    def manual_disconnect(self):
        """Button press (transition f): connected -> ready, modes 1, 2, 5."""
        m = self.control_mode
        if m != 1 and m != 2 and m != 5 or self.control_state != CONNECTED:
            return False
        return self._go(READY, "manual")

    def local_disconnect(self, cause="credit"):
        """Meter's own decision (transition g): connected -> ready."""
        if self.control_mode == 0 or self.control_state != CONNECTED:
            return False
        return self._go(READY, cause)

    def local_reconnect(self, cause="credit"):
        """Meter's own decision (transition h): ready -> connected, modes 5, 6."""
        if not 5 <= self.control_mode <= 6 or self.control_state != READY:
            return False
        return self._go(CONNECTED, cause)

    def set_mode(self, mode):
        if not 0 <= mode <= 6:
            return False
        self.control_mode = mode
        if mode == 0:
            self.control_state = CONNECTED
        return True
