"""The meter application: state, policy for the relay, persistence, and its tasks (``Meter.run``).

Board-independent (never imports ``machine``): everything physical comes from the board object
(``boards/*.py``). Config (``config.json`` in the meter's filesystem) holds identity, secrets,
tariff and policy; state (credit, energy, relay) lives in a two-slot journal (``meter.store``).

Persistence rule (DESIGN.md §5; details in docs/CONTRACTS.md "config.json"): a change the meter
acknowledges over DLMS is journaled before the response leaves the UART; consumption every
``persist_wh`` Wh or ``persist_s`` seconds.
"""
import gc

from meter.account import Account
from meter.metering import Metering
from meter.tariff import ConfigError
from meter.relay import DisconnectControl, CONNECTED, READY
from meter.link import HdlcLink
from meter.store import Journal, TIME_MAX, fresh, undo
from meter.audit import Audit
from meter.metrology import loop
from meter import acse

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

FIRMWARE_VERSION = "0.1.0"

# config.json (every key optional): docs/CONTRACTS.md "config.json". Only what runs after boot
# is kept (as attributes); the parsed JSON is dropped.

# event codes (meter.events, checked by tests/host/test_checked_copies.py)
_EV_FIRST_BOOT = const(1)
_EV_POWER_DOWN = const(2)
_EV_POWER_UP = const(3)
_EV_WATCHDOG = const(4)
_EV_CREDIT = const(10)
_EV_CLOCK_SET = const(20)
_EV_CONFIG = const(21)
_EV_RELAY_OPEN = const(42)
_EV_RELAY_CLOSE = const(43)
_EV_COVER_OPEN = const(60)
_EV_COVER_CLOSED = const(61)
_EV_BILL = const(64)
_EV_STORE_ERROR = const(91)
_T_MIN = const(946684800)    # clock range: 2000-01-01T00:00:00Z .. meter.store.TIME_MAX (2106)
_CREDIT_ENERGY = const(1)     # Account.unit: credit register in 0.1 kWh
_MAX_CREDIT = const(0x3FFFFFFF)   # meter.account's credit ceiling


def _unload(board):
    """Drop the STS code until the next token (``meter.tokjudge``: ``meter.tokgate``'s to drop; ``protocol.misty1``
    stays) unless the board has heap to spare (``board.sts_resident``: the RP2040, flash reads per entry)."""
    if not getattr(board, "sts_resident", False):
        acse.unload("meter.tokgate meter.tokens meter.tokres protocol.sts_core protocol.ea07 protocol.ea07tab")


def _sts(m, raw, delivery):
    """The boot check or a token entry, in a frame of its own (a caller's value stack keeps what it held)."""
    if raw is None:
        from meter.tokens import judge
        return judge(m, None, 0)
    from meter.tokgate import enter
    return enter(m, raw, delivery)


class Meter:
    FIRMWARE_ID = ("prepaid-meter " + FIRMWARE_VERSION).encode()

    def __init__(self, board):
        self.board = board
        from meter.bootcfg import boot      # needed while booting only (meter.settings: and a profile)
        cfg, v = boot(board)       # v: the values of config.json's long keys (bootcfg's constants)
        boot = None                # a local reference would keep the module (unloaded) alive
        acse.unload("meter.bootcfg meter.settings")
        g = cfg.get
        # the link's long-lived buffers (receiver, frame, response: ~2.4 KiB) first, low in a heap
        # nothing has fragmented yet (measured, docs/MEMORY.md "The boot peak": every config boots
        # 0-2 KiB lower than with them allocated after the tariff; STS+HLS boots at 56k with
        # ``security`` set first, 62k without: the order of attributes moves the dict's growth)
        self.security = None
        self._link = HdlcLink(self, int(v[0]), v[1],
                              int(g("max_info", 512)), int(g("inactivity_s", 120)))
        sts = g("sts")
        # STS: [config, acceptor record, key change, its time, EA07 tables]; code loaded per use. The
        # boot check (tables' JSON) first: the boot's largest transient, nothing else of the meter live
        self.tokens = [sts, None, [None, None, None, None], 0, None] if sts else None
        if sts:
            _sts(self, None, 0)    # the journaled state is checked by the next token entry
            _unload(board)
            gc.collect()
        sec_err = acse.keys(self, g("security"))   # HLS keys and counters (code unloaded after)
        prof = None
        if g("profiles"):          # IS 15959 profiles: loaded (and their names interned) only if on
            from meter.profiles import Profiles as prof   # before the heap fragments
            from meter import cosem_prof    # noqa: F401 (resident after a profile read anyway; 56k)
        self.profiles = None
        self.tz_minutes = int(g("tz_minutes", 330))
        ldn = g("logical_device_name") or g("serial", "PPM0000001")
        self.logical_device_name = ldn.encode() if isinstance(ldn, str) else bytes(ldn)
        self.account = Account(int(v[2]), int(v[3]), int(g("payment_mode", 2)), 1 if v[4] else 0)
        self.dc = DisconnectControl(int(g("control_mode", 5)))
        from meter.profile import build
        try:
            self.tariff, self.policy = build(cfg)
            cfg_err = None
        except ConfigError as e:  # a bad config.json must not brick the meter: defaults, and say so
            self.tariff, self.policy = build({})
            cfg_err = e
        build = None               # meter.profile (~3 KiB) leaves the heap now, not at return
        acse.unload("meter.profile")
        self.persist_s = int(g("persist_s", 60))
        self.metering = Metering(self, v[5], int(v[6]))
        self.metro = self.metering.build()
        self._t_prev = None        # end of the last charged metering interval (epoch s)
        self.config_error = ""     # "field: reason" of the last refused profile (apply_config)
        self.module_wh = None      # last metering-module energy reading taken into account
        self._persisted_wh = self._persisted_t = 0
        self._pev = None           # [seq, epoch, code, detail] of the last journaled command event
        self.stale = False         # a reload ran out of memory: RAM may be ahead of the journal (persist)
        self.persist_wh = int(g("persist_wh") or getattr(board, "persist_wh", 10))
        self.token_gateway = [b"", 0, b"", 0, 8]   # IC 115: token, time, reason, delivery, 8 tokenReceived
        self.journal = Journal(board.path("j/state"))
        self.event_log = Audit(board.path("ev"), int(v[7]))
        self._restore()
        if prof:
            self.profiles = prof(self, board.path("pr"), int(v[8]), int(v[9]), self._persisted_t)
        acse.setup(self, cfg, sec_err)    # passwords, lock-out (meter.acse); no defaults
        if cfg_err is not None:
            self.event(_EV_CONFIG, "config refused: %s" % cfg_err, "bad_cfg")
        self._relay_out = None
        board.on_button = self.button
        board.on_cover = self.cover

    # --- state ------------------------------------------------------------------------
    def _restore(self):
        s = self.journal.load()
        if s is None:
            self.event(_EV_FIRST_BOOT, "first boot")
            return
        hot = self.journal.hot
        pev = self._pev = s.get("pev")
        if pev and pev[0] == self.event_log.next_seq and not self.event_log.coalesced(pev[2], pev[3]):
            self._log(pev[1], pev[2], pev[3])    # journaled, cut before it was logged
        self._apply(s, hot)
        t = hot[4]
        if t > self.board.time():
            self.board.set_time(t)  # never let the clock run backwards across a restart
        self._log(t, _EV_POWER_DOWN, None)   # the supply went away after the last record (t: last alive)
        if getattr(self.board, "reset_cause", "power") == "wdt":
            self.event(_EV_WATCHDOG, "watchdog reset")
        self.event(_EV_POWER_UP, "power up")

    def _apply(self, s, hot):
        """Set the RAM state from a journal record (``s`` its dict, ``hot`` its hot values)."""
        a = self.account
        a.restore(s["acc"])
        a.credit, a.rem, a.import_wh = hot[0], hot[1], hot[2]
        self.module_wh = hot[3] if hot[3] >= 0 else None
        self.dc.control_mode, self.dc.control_state = s["mode"], s["cs"]
        self.dc.cause = s.get("cause", "")
        if "tar" in s and a.unit != _CREDIT_ENERGY:
            self.tariff.restore(s["tar"], a.credit, a.rem, a.import_wh)
        if "pol" in s:
            self.policy.restore(s["pol"])
        if self.module_wh is not None:
            self._t_prev = hot[4]
        self.tz_minutes = s.get("tz", self.tz_minutes)
        tok = s.get("tok")
        if tok and self.tokens is not None:
            try:                   # the record itself is checked by meter.tokgate.acceptor
                self.tokens[1] = bytes.fromhex(tok)
            except ValueError:
                self.tokens[1] = None
                self.event(_EV_STORE_ERROR, "token store record unreadable", "tok")
        self._persisted_wh = a.import_wh
        self._persisted_t = hot[4]

    def persist(self, ev=None, clock=None):
        """Journal the whole state, return once on flash (meter.store: a full record, or a 30-byte hot record if only
        credit/remainder/energy/clock changed). ``ev`` = (code, text, detail): its event, journaled (``pev``: its log
        seq), then logged (off the log after a cut or a MemoryError: logged at boot or by the next persist with an
        event). ``clock``: a new RTC time, journaled, then set. A failed write (or ``stale``) reloads, raises (ENOMEM)."""
        now = self.board.time() if clock is None else clock
        now = 0 if now < 0 else (TIME_MAX if now > TIME_MAX else now)
        a, q = self.account, self.journal.seq
        pev = self._pev
        if ev is not None:
            if pev and pev[0] == self.event_log.next_seq and not self.event_log.coalesced(pev[2], pev[3]):
                self._log(pev[1], pev[2], pev[3])    # journaled, its log write ran out of memory
            self._pev = [self.event_log.next_seq, now, ev[0], ev[2]]
        try:
            if self.stale:       # RAM may be ahead of the journal: nothing written, this change undone
                raise MemoryError
            w = self.module_wh    # (the record: _rec)
            self.journal.save(self._rec, (a.credit, a.rem, a.import_wh, -1 if w is None else w, now))
        except Exception as e:
            self._pev = pev
            undo(self, e, q)      # raised again unless the record is on flash after all
        self.journal.keep()       # in its file's block (save's frame gone: collected now), given to the event's
        if clock is not None:
            self.board.set_time(clock)
        self._persisted_wh = a.import_wh
        self._persisted_t = now
        if ev is not None:
            self.event(ev[0], ev[1], ev[2])

    def _rec(self):
        """The full record's (key, value) pairs (meter.store: no dict); credit, rem, import_wh 0: in the hot record."""
        a, dc = self.account, self.dc
        s = a.state()
        s[0] = s[1] = s[2] = 0
        yield "acc", s
        yield "mode", dc.control_mode
        yield "pev", self._pev
        yield "cs", dc.control_state
        yield "cause", dc.cause
        yield "tz", self.tz_minutes
        yield "tar", self.tariff.cold(a.credit, a.import_wh)
        yield "pol", self.policy.state()
        yield "tok", self.tokens[1] if self.tokens and self.tokens[1] else None   # bytes: hex

    def _log(self, epoch, code, detail):
        try:
            self.journal.free()       # the room's hole for its file (meter.store), held again after it
            self.event_log.append(epoch, code, detail)
            if self.profiles:
                self.profiles.count(code)
            self.journal.keep()
        except (OSError, ValueError, MemoryError):
            pass  # the flash refuses (or no room for a file): the event still goes out on the report line

    def event(self, code, text, detail=None):
        """Log an event (meter.events code; ``detail`` int or short str) on flash, report it."""
        self._log(self.board.time(), code, detail)
        try:
            self.board.report("event %d %s" % (code, text))
        except MemoryError:      # journaled (persist): no error answer now
            pass

    def cover(self, opened):
        """Meter-cover switch (tamper): True = cover removed."""
        if opened:
            self.event(_EV_COVER_OPEN, "tamper: cover opened")
        else:
            self.event(_EV_COVER_CLOSED, "cover closed")

    def check_password(self, client, value):
        pw = self._pw.get(str(client))
        return pw is not None and value is not None and bytes(value) == pw.encode()

    # --- commands (each journals before returning, i.e. before the ack goes out) --------
    def top_up(self, paise, source):
        """A recharge: emergency credit repaid first, then debt recovery (meter.policy)."""
        try:
            self.policy.top_up(self, paise, self.board.time())
        except ValueError:
            return False
        self.evaluate()
        self.persist((_EV_CREDIT, "credit +%d paise via %s" % (paise, source), paise))
        return True

    def enter_token(self, raw, delivery=0):
        """Enter one 20-digit STS token (bytes or str; spaces, dashes ignored) delivered by ``delivery`` (IC
        115 enum): ``meter.tokgate.enter`` judges and applies it, journaled once the STS code is unloaded
        (docs/MEMORY.md); -> the TokenResult (``ok``, ``reason`` ...)."""
        fresh(self)
        try:
            try:
                r, ev, journal = _sts(self, raw, delivery)
            finally:
                _unload(self.board)
            gc.collect()
            self.persist(ev) if journal else self.event(*ev)
        except Exception as e:   # a TID stored, credit applied in RAM, before the journal write: undone
            undo(self, e)
        return r

    def token_room(self):
        """The largest STS credit amount (0.1 kWh) the credit register can still take: a token for more is refused
        before its TID is stored (``meter.tokens``; paise = amount x rate / 10, rounded up, at the tariff's flat or
        first-slab rate; an energy register takes the amount as it is); 0 when that rate is 0 on a currency
        register (a token would credit nothing, its TID used: refused as overflow, pass 14)."""
        a = self.account
        if a.unit == _CREDIT_ENERGY:
            return _MAX_CREDIT - a.credit
        rate = self.tariff.rates[0]
        return (_MAX_CREDIT - a.credit) * 10 // rate if rate > 0 else 0

    def remote_disconnect(self):
        ok = self.dc.remote_disconnect()
        if ok:
            self.evaluate()
            self.persist()
        return ok

    def remote_reconnect(self):
        lim = self.policy.limiter
        if lim.locked and self.dc.control_state != CONNECTED:
            lim.reset()    # an MPL lock-out: cleared by the button or a remote reconnect
        ok = self.dc.remote_reconnect()
        if ok:
            self.evaluate()
            self.persist()
        return ok

    def set_control_mode(self, mode):
        if not self.dc.set_mode(mode):
            return False
        self.evaluate()
        self.persist((_EV_CONFIG, "control_mode %d" % mode, "ctl_mode"))
        return True

    def set_payment_mode(self, mode):
        self.account.payment_mode = mode
        self.evaluate()
        self.persist((_EV_CONFIG, "payment_mode %d" % mode, "pay_mode"))

    def set_clock(self, epoch):
        """Set the RTC (UTC epoch s): False, nothing changed, outside 2000-01-01T00:00:00Z ..
        2106-02-07T06:28:15Z (``meter.store.TIME_MAX``); else journaled, set, logged: True."""
        if not _T_MIN <= epoch <= TIME_MAX:
            return False
        old = self.board.time()
        if self.profiles:
            self.profiles.clock_set(old, epoch)
        self.persist((_EV_CLOCK_SET, "clock set", old), epoch)
        if self.metro:
            self.metro.health.shift(epoch - old)   # the plausibility windows step with the clock
        return True

    def button(self):
        """Push button: selects emergency credit if the policy offers it, clears an MPL
        lock-out, and recloses from ready_for_reconnection (IC 70 transition e) when allowed."""
        now = self.board.time()
        p = self.policy
        changed = p.activate_ec(self, "button", now)
        if p.limiter.locked and self.dc.control_state == READY:
            p.limiter.reset()
            changed = True
        if self.dc.control_state == READY and p.may_manual_reconnect(self, now):
            changed = self.dc.manual_reconnect() or changed
        if changed:
            self.evaluate()
            self.persist()

    def invoke_emergency_credit(self):
        """IC 112 (emergency credit 0.0.19.10.1.255) method 3 invoke_credit: selects emergency
        credit if the policy allows it by "dlms"; journaled."""
        if not self.policy.activate_ec(self, "dlms", self.board.time()):
            return False
        self.evaluate()
        self.persist()
        return True

    def profile_into(self, w):
        """0.128.96.5.0.255 attr 2 into ``axdr.Writer`` ``w``: the profile in force as compact
        JSON (meter.profile_read)."""
        from meter.profile_read import profile_into
        try:
            profile_into(self, w)
        finally:
            profile_into = None    # the function would keep the unloaded modules alive
            acse.unload("meter.profile_read meter.settings")

    def apply_profile_bytes(self, data):
        """SET of 0.128.96.5.0.255 attr 2 -> True if applied (meter.settings). ``meter.profile``
        is loaded first: its ~400 B tables find a hole before meter.settings' blocks take them;
        both leave the heap after."""
        from meter.profile import check_profile
        from meter.settings import apply_profile_bytes
        try:
            return apply_profile_bytes(self, data)
        finally:
            check_profile = apply_profile_bytes = None   # they would keep the modules alive
            acse.unload("meter.settings meter.profile")

    def apply_config(self, new):
        """Apply a profile dict; ConfigError and nothing changed if refused (meter.settings)."""
        from meter.settings import apply_config
        apply_config(self, new)

    # --- policy --------------------------------------------------------------------------
    def evaluate(self):
        """Apply the disconnect policy and drive the relay output from IC 70's output_state."""
        self.policy.evaluate(self, self.board.time())
        out = self.dc.output_state
        if out != self._relay_out:
            prev, self._relay_out = self._relay_out, out
            self.board.relay(out)
            cause = self.dc.cause
            if prev is not None and cause != "credit":   # the policy logs its own (EV 40/41)
                self.event(_EV_RELAY_CLOSE if out else _EV_RELAY_OPEN,
                           "relay %s (%s)" % ("closed" if out else "open", cause), cause or "?")

    # --- tasks -----------------------------------------------------------------------------
    def meter_tick(self):
        """Take the latest module energy reading into account and decide: the Wh since the last
        reading are charged by the tariff over [t_prev, now] (constant power assumed; TOD,
        midnight, billing-date and slab boundaries inside it are split, meter.tariff)."""
        r = fresh(self)          # a reload that ran out of memory (meter.store): again, before charging
        m = self.metro
        now = self.board.time()
        a = self.account
        t0 = self._t_prev
        pr = self.profiles
        if pr:
            pr.tick(now, t0)     # days ended by now, before the cycle [t0, now] is charged
        if m is not None and m.fresh and not r:    # (r: reloaded: the next reading charges from the journal)
            wh = m.delta_wh      # 0 on the first reading and an implausible one (meter.metrology)
            self.module_wh = m.health.baseline_wh
            if a.unit == _CREDIT_ENERGY:
                a.meter(wh, 0)
            else:
                t = self.tariff
                a.meter(wh, t.charge(now if t0 is None else t0, now, wh, self.tz_minutes * 60))
                a.rem = t.hot_rem()
            self._t_prev = now
        if pr:
            pr.close(now)        # blocks and demand periods: the cycle's Wh split at their edges
        while self.tariff.bills:
            b = self.tariff.bills.pop(0)
            if pr:
                pr.bill(b)
            self.event(_EV_BILL, "bill %d wh=%d energy=%d fixed=%d duty=%d" % b, b[2] + b[3] + b[4])
        self.evaluate()
        dwh = a.import_wh - self._persisted_wh
        if (dwh >= self.persist_wh or (dwh > 0 and now - self._persisted_t >= self.persist_s)
                or self.policy.dirty):
            self.policy.dirty = False
            self.persist()   # loss bound: README "Power cuts"
        self.event_log.tick(now)    # counts of coalesced repetitions whose window is over
        self.board.report("meter %d %d %d %d" % (now, a.import_wh, a.credit, 1 if self.dc.output_state else 0))

    def run(self):
        """Set up the tasks (metering, DLMS link, the board's control task), say ``ready``, ``loop`` them for ever."""
        b = self.board
        b.wdt_feed()
        self.evaluate()
        self.persist()
        tasks = [self.metering.run(), self._link.serve(b.dlms_stream())]
        if hasattr(b, "control_task"):
            tasks.append(b.control_task())
        gc.collect()
        b.report("ready")
        loop(tasks, b.ticks_ms, b.idle)

