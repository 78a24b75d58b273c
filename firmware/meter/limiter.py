"""Maximum power limit (MPL), the logic behind COSEM Limiter IC 71.

Configuration (the ``limiter`` section of ``config.json``)::

    mpl_w          threshold, W (IC 71 attr 3 threshold_active); 0 = no limit
    trip_s         the load must stay above the threshold this long before the relay opens
                   (attr 6 min_over_threshold_duration), s
    reclose_s      the relay recloses automatically this long after a trip
                   (attr 7 min_under_threshold_duration), s
    lockout_trips  this many trips within ``window_s`` lock the relay out until a button
                   press or a remote reconnect clears it; 0 = never lock out
    window_s       trips older than this are forgotten, s

The monitored value (attr 2) is the metering module's active power, 0.1 W (1.0.1.7.0.255).
``step(power_dw, now)`` returns 0 nothing, 1 trip, 2 reclose, 3 lock-out; ``blocking()`` is True
while the relay must stay open. The parameters are validated by meter.profile (ConfigError).
"""

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_NONE = const(0)
_TRIP = const(1)
_RECLOSE = const(2)
_LOCKOUT = const(3)

class Limiter:
    def __init__(self, mpl_w, trip_s, reclose_s, lockout_trips, window_s):
        """Validated parameters (``meter.profile.limiter(section)`` validates a limiter section
        and builds the Limiter). IC 71 (meter.cosem_values): mpl_w is threshold_active and
        threshold_normal, trip_s min_over_threshold_duration, reclose_s
        min_under_threshold_duration."""
        self.mpl_w, self.trip_s, self.reclose_s = mpl_w, trip_s, reclose_s
        self.lockout_trips, self.window_s = lockout_trips, window_s
        self.over_since = -1   # epoch the load first seen above the limit, -1 = not above
        self.open_until = -1   # epoch of the automatic reclose, -1 = not tripped
        self.trips = 0
        self.first_trip = 0
        self.locked = False
        self.sts = -1          # the limit an STS token set (W), journaled; -1: the config's

    def set_mpl(self, w):
        """STS SetMaximumPowerLimit (class 2): threshold ``w`` W (0 = off) from now on,
        journaled with the state (it outlives a power cut) until a profile with a limiter
        section replaces it."""
        self.mpl_w = self.sts = w

    def blocking(self):
        return self.locked or self.open_until >= 0

    def state(self):
        return [self.open_until, self.trips, self.first_trip, 1 if self.locked else 0, self.sts]

    def restore(self, s):
        self.open_until, self.trips, self.first_trip, locked = s[:4]
        self.locked = bool(locked)
        if len(s) > 4 and s[4] >= 0:    # records before session 14 have no STS limit
            self.mpl_w = self.sts = s[4]

    def reset(self):
        """Clear a trip or lock-out (button after lock-out, remote reconnect)."""
        self.locked = False
        self.open_until = -1
        self.over_since = -1
        self.trips = 0

    def step(self, power_dw, now):
        """Feed one power reading (0.1 W, None = unknown) taken at ``now`` (epoch s)."""
        if not self.mpl_w or self.locked:
            return _NONE
        if self.open_until >= 0:
            if now >= self.open_until:
                self.open_until = -1
                self.over_since = -1
                return _RECLOSE
            return _NONE
        if power_dw is None or power_dw <= self.mpl_w * 10:
            self.over_since = -1
            return _NONE
        if self.over_since < 0 or now < self.over_since:
            self.over_since = now
        if now - self.over_since < self.trip_s:
            return _NONE
        self.over_since = -1
        if self.trips == 0 or now - self.first_trip > self.window_s:
            self.trips = 0
            self.first_trip = now
        self.trips += 1
        if self.lockout_trips and self.trips >= self.lockout_trips:
            self.locked = True
            return _LOCKOUT
        self.open_until = now + self.reclose_s
        return _TRIP
