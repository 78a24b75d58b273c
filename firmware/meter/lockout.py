"""Lock-out of a client address after failed authentications (LLS and HLS).

``Lockout(meter, cfg)`` with ``cfg`` the config.json ``lockout`` section (every key optional):
``after`` (3) consecutive failures start a lock-out of ``base_s`` (10) seconds; each further
lock-out of the same client, before it authenticates once, doubles it, up to ``max_s`` (3600).

- ``left(client) -> int``: seconds of lock-out left (0: may try); while locked the association
  answers AARE rejected-transient (2) + authentication-failure (13) without checking the secret
  (no oracle, and the attempt neither counts nor escalates).
- ``fail(client)``: one failed authentication. ``{client: [level, until, failures]}`` is
  written to the small file ``lock`` (``until`` epoch seconds of the RTC): the count and a
  lock-out hold across a power cut (in RAM only, two guesses and a cut, again and again, never
  locked: attack pass, session 12). A write per counted failure is bounded by the lock-out
  itself (``after`` per lock-out). Event 31 (``_EV_LOCKOUT``, detail = the failures counted) is
  logged for a client's first lock-out (not again within a day, whether it logged in between or
  not) and for its first that reaches ``max_s``, not for each doubling in between (one per
  lock-out pushed a metering counter's tamper record out of the 20-entry security ring in 63
  guesses over 3 clients; a good login between rounds re-armed it: attack passes, session 16);
  ``left`` still answers each lock-out in full.
- ``ok(client)``: a successful authentication clears the count and the doubling level; the file
  is written only if a level was on record. A count alone is cleared in RAM (the next write takes
  it along): no ~256 B littlefs file object inside the association that just opened, and a
  power cut before that write brings back a count, which only makes a lock-out come sooner.
A clock set backwards cannot lengthen a lock-out beyond ``max_s`` from now.
"""
import json

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_EV_LOCKOUT = const(31)       # meter.events
_LEVEL = const(0)
_UNTIL = const(1)
_FAILS = const(2)
_LOGGED = const(3)            # when its event 31 was last logged (epoch s): kept past a good login
_DAY = const(86400)


class Lockout:
    def __init__(self, meter, cfg):
        self.meter = meter
        cfg = cfg if isinstance(cfg, dict) else {}
        self.after = max(1, int(cfg.get("after", 3)))
        self.base_s = max(1, int(cfg.get("base_s", 10)))
        self.max_s = max(self.base_s, int(cfg.get("max_s", 3600)))
        self._path = meter.board.path("lock")
        try:
            with open(self._path) as f:
                d = json.load(f)
            self._locks = {int(k): [int(v[0]), int(v[1]), int(v[2]) if len(v) > 2 else 0,
                                    int(v[3]) if len(v) > 3 else 0] for k, v in d.items()}
        except (OSError, ValueError, AttributeError, TypeError, IndexError):
            self._locks = {}

    def _save(self):
        t = json.dumps(self._locks)     # whole before the file is opened: an error in the middle of a
        with open(self._path, "w") as f:     # streamed dump left a torn file, every lock-out lost at boot
            f.write(t)

    def left(self, client):
        """Seconds of lock-out left for ``client`` (0 when it may authenticate)."""
        lk = self._locks.get(client)
        if lk is None:
            return 0
        d = lk[_UNTIL] - self.meter.board.time()
        if d <= 0:
            return 0
        return d if d <= self.max_s else self.max_s

    def fail(self, client):
        """Count one failed authentication of ``client`` (on flash); may start a lock-out."""
        lk = self._locks.get(client)
        if lk is None:             # its record, updated in place: no new block per failure (a
            lk = self._locks[client] = [0, 0, 0, 0]    # long-lived one between a request's: holes)
        n = lk[_FAILS] + 1
        s = log = 0
        if n < self.after:
            lk[_FAILS] = n
        else:
            lv = lk[_LEVEL]
            now = self.meter.board.time()
            s = self.base_s << lv if lv < 20 else self.max_s
            s = s if s < self.max_s else self.max_s
            # logged: a client's first lock-out (not again within a day, good logins between or not)
            # and its first at max_s
            d = now - lk[_LOGGED]          # (a clock set back less than a day re-arms nothing)
            log = (not (lv or -_DAY < d < _DAY)) or (
                s == self.max_s and 0 < lv < 21 and self.base_s << (lv - 1) < self.max_s)
            if log:
                lk[_LOGGED] = now
            lk[_LEVEL] = lv + 1
            lk[_UNTIL] = now + s
            lk[_FAILS] = 0
        try:
            self._save()
        except (OSError, MemoryError):   # no room for the file: counted in RAM (the AARE goes out)
            pass
        if log:
            self.meter.event(_EV_LOCKOUT, "client %d locked out for %d s after %d failed logins"
                             % (client, s, n), n)

    def ok(self, client):
        """``client`` authenticated: clear its count and doubling level (when its event was logged
        stays: a good login between guesses re-armed event 31, attack pass, session 16)."""
        lk = self._locks.get(client)
        if lk is not None:
            lk[_FAILS] = 0
            if lk[_LEVEL]:
                lk[_LEVEL] = lk[_UNTIL] = 0
                try:
                    self._save()
                except OSError:
                    pass
