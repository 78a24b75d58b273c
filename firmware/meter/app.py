"""The meter application: state, policy for the relay, persistence, and the asyncio tasks.

Board-independent (never imports ``machine``): everything physical comes from the board object
(``boards/*.py``). Config (``config.json`` in the meter's filesystem) holds identity, passwords,
tariff and policy; state (credit, energy, relay) lives in a two-slot journal (``meter.store``).

Persistence rule (DESIGN.md §5): a change the meter acknowledges over DLMS (top-up, relay command,
setting) is journaled before the response leaves the UART; consumption is journaled every
``persist_wh`` Wh or ``persist_s`` seconds, whichever comes first. Energy measured by the
metering module while the meter was down is picked up from the module's own counter at boot.
"""
import asyncio
import gc
import json

from protocol import hdlc
from meter import cosem
from meter.account import Account, PAYMENT_PREPAYMENT
from meter.metrology import Pzem004t
from meter.policy import Policy
from meter.relay import DisconnectControl, READY
from meter.server import HdlcLink
from meter.store import Journal
from meter.token_gateway import TokenGateway

FIRMWARE_VERSION = "0.1.0"

DEFAULTS = {
    "serial": "PPM0000001",
    "server_address": 1,
    "physical_address": None,
    "passwords": {"1": "12345678", "32": "00000000", "48": "ABCDEFGH"},
    "tariff_paise_per_kwh": 650,
    "credit_paise": 0,
    "payment_mode": PAYMENT_PREPAYMENT,
    "control_mode": 5,
    "modbus_unit": 1,
    "tz_minutes": 330,
    "persist_wh": 10,
    "persist_s": 60,
    "max_info": 512,
    # STS (IEC 62055-41): decoder key in IEC order (hex), provisioned per meter, never committed.
    # "tables" names the EA07 substitution/permutation tables file in the meter's filesystem.
    "sts": None,
}

TOKEN_GATEWAY_LN = bytes((0, 0, 19, 40, 0, 255))
# IC 115 token_status_code per STS outcome
_TOKEN_STATUS = {"accepted": 3, "key_change_pending": 2, "format": 4, "wrong_class": 4,
                 "crc": 5, "key_expired": 6, "used": 6, "old": 6, "locked_out": 6,
                 "wrong_subclass": 7}
EV_TOKEN_ACCEPTED = 50
EV_TOKEN_REJECTED = 51


class Meter:
    CREDIT_LN = bytes((0, 0, 19, 10, 0, 255))

    def __init__(self, board):
        self.board = board
        cfg = dict(DEFAULTS)
        try:
            with open(board.path("config.json")) as f:
                cfg.update(json.load(f))
        except (OSError, ValueError):
            pass
        self.cfg = cfg
        self.tz_minutes = int(cfg["tz_minutes"])
        ldn = cfg.get("logical_device_name") or cfg["serial"]
        self.logical_device_name = ldn.encode() if isinstance(ldn, str) else bytes(ldn)
        self.account = Account(int(cfg["tariff_paise_per_kwh"]), int(cfg["credit_paise"]),
                               int(cfg["payment_mode"]))
        self.dc = DisconnectControl(int(cfg["control_mode"]))
        self.policy = Policy(cfg)
        self.journal = Journal(board.path("state"))
        self.module_wh = None      # last metering-module energy reading taken into account
        self._persisted_wh = 0
        self._persisted_t = 0
        self.events = []           # (epoch, code, text) — recent, in RAM (event log: issue 6)
        self.tokens = self._make_acceptor(cfg.get("sts"))
        self.token_gateway = {"token": b"", "time": 0, "descriptions": [], "delivery": 0,
                              "status": 8, "status_bits": 0}
        self._restore()
        self.objects = cosem.build_table()
        if self.tokens is not None and TOKEN_GATEWAY_LN not in self.objects:
            self.objects[TOKEN_GATEWAY_LN] = TokenGateway(TOKEN_GATEWAY_LN)
        self.metro = None
        self._relay_out = None
        board.on_button = self.button
        board.on_time_set = self._wake

    # --- state ------------------------------------------------------------------------
    def _restore(self):
        s = self.journal.load()
        if s is None:
            self.event(1, "first boot")
            return
        self.account.restore(s["acc"])
        self.dc.control_mode = s["mode"]
        self.dc.control_state = s["cs"]
        self.module_wh = s.get("mwh")
        self.tz_minutes = s.get("tz", self.tz_minutes)
        tok = s.get("tok")
        if tok and self.tokens is not None:
            try:
                self.tokens.from_record(bytes.fromhex(tok))
            except Exception:
                self.event(91, "token store record unreadable")
        t = s.get("t", 0)
        if t > self.board.time():
            self.board.set_time(t)  # never let the clock run backwards across a restart
        self._persisted_wh = self.account.import_wh

    def persist(self):
        """Journal the whole state; returns when it is on flash."""
        now = self.board.time()
        self.journal.save({"acc": self.account.state(), "mode": self.dc.control_mode,
                           "cs": self.dc.control_state, "mwh": self.module_wh,
                           "tz": self.tz_minutes, "t": now,
                           "tok": self.tokens.to_record().hex() if self.tokens is not None else None})
        self._persisted_wh = self.account.import_wh
        self._persisted_t = now

    def event(self, code, text):
        self.events.append((self.board.time(), code, text))
        if len(self.events) > 20:
            self.events.pop(0)
        self.board.report("event %d %s" % (code, text))

    def check_password(self, client, value):
        pw = self.cfg["passwords"].get(str(client))
        return pw is not None and value is not None and bytes(value) == pw.encode()

    # --- commands (each journals before returning, i.e. before the ack goes out) --------
    def top_up(self, paise, source):
        try:
            self.account.top_up(paise, self.board.time())
        except ValueError:
            return False
        self.event(10, "credit +%d paise via %s" % (paise, source))
        self.evaluate()
        self.persist()
        return True

    # --- STS tokens -----------------------------------------------------------------------
    def _make_acceptor(self, sts_cfg):
        if not sts_cfg:
            return None
        from meter.tokens import TokenAcceptor
        tables = None
        if sts_cfg.get("algorithm", "ea07") == "ea07":
            tables = self.board.path(sts_cfg.get("tables", "sts_tables.json"))
        return TokenAcceptor(bytes.fromhex(sts_cfg["decoder_key"]), sts_cfg.get("algorithm", "ea07"),
                             tables, ken=sts_cfg.get("ken", 255), store_size=sts_cfg.get("store_size", 50),
                             krn=sts_cfg.get("krn", 1), kt=sts_cfg.get("kt", 2), ti=sts_cfg.get("ti", 1),
                             base_date=sts_cfg.get("base_date", 1993),
                             lockout_after=sts_cfg.get("lockout_after", 3),
                             lockout_base_s=sts_cfg.get("lockout_base_s", 10),
                             lockout_max_s=sts_cfg.get("lockout_max_s", 1280))

    def token_paise(self, amount_01kwh):
        """Credit for an electricity token (0.1 kWh units) on a currency register: amount x tariff,
        rounded up to the paisa in the customer's favour (as STS rounds amounts, IEC 62055-41 §6.3.5)."""
        return -((-amount_01kwh * self.account.rate) // 10)

    def enter_token(self, raw, delivery=0):
        """Enter one 20-digit STS token (bytes or str; spaces and dashes ignored).

        Applies the token's action, journals the result (TID store + credit) and only then
        returns, so an acknowledgement over the UART always follows the flash write.
        Returns the TokenResult (``ok``, ``reason`` ...). Also updates ``token_gateway``.
        """
        if isinstance(raw, (bytes, bytearray)):
            try:
                text = bytes(raw).decode()
            except Exception:
                text = ""
        else:
            text = raw
        digits = "".join(c for c in text if c not in " -")
        now = self.board.time()
        g = self.token_gateway
        g["token"] = digits.encode()
        g["time"] = now
        g["delivery"] = delivery
        if self.tokens is None:
            from meter.tokens import TokenResult
            r = TokenResult(False, "format")
        else:
            r = self.tokens.enter(digits, now)
        if r.ok and r.reason == "accepted":
            self._apply_token(r)
        g["status"] = _TOKEN_STATUS.get(r.reason, 7)
        g["status_bits"] = 0
        g["descriptions"] = [r.reason.encode()]
        if r.ok:
            self.event(EV_TOKEN_ACCEPTED, "token %s %s tid %s" % (r.action, r.value, r.tid))
        else:
            self.event(EV_TOKEN_REJECTED, "token rejected: %s" % r.reason)
        self.evaluate()
        self.persist()
        return r

    def _apply_token(self, r):
        a = self.account
        act = r.action
        if act == "credit":
            paise = self.token_paise(r.amount)
            if paise > 0:
                try:
                    a.top_up(paise, self.board.time())
                except ValueError:
                    pass
        elif act == "clear_credit":
            a.credit = 0
            a.rem = 0
        elif act == "tariff":
            a.rate = r.value
        elif act == "mpl":
            self.cfg["mpl_w"] = r.value

    def remote_disconnect(self):
        ok = self.dc.remote_disconnect()
        if ok:
            self.evaluate()
            self.persist()
        return ok

    def remote_reconnect(self):
        ok = self.dc.remote_reconnect()
        if ok:
            self.evaluate()
            self.persist()
        return ok

    def set_control_mode(self, mode):
        if not self.dc.set_mode(mode):
            return False
        self.evaluate()
        self.persist()
        return True

    def set_payment_mode(self, mode):
        self.account.payment_mode = mode
        self.evaluate()
        self.persist()

    def set_clock(self, epoch):
        self.board.set_time(epoch)
        self.event(20, "clock set")
        self.persist()

    def button(self):
        if self.dc.control_state == READY and self.policy.may_manual_reconnect(self, self.board.time()):
            self.dc.manual_reconnect()
            self.evaluate()
            self.persist()

    def _wake(self):
        pass

    # --- policy --------------------------------------------------------------------------
    def credit_status(self):
        return self.policy.credit_status(self)

    def low_credit_threshold(self):
        return self.policy.low_credit_threshold(self)

    def evaluate(self):
        """Apply the disconnect policy and drive the relay output from IC 70's output_state."""
        self.policy.evaluate(self, self.board.time())
        out = self.dc.output_state
        if out != self._relay_out:
            self._relay_out = out
            self.board.relay(out)

    # --- tasks -----------------------------------------------------------------------------
    def meter_tick(self):
        """Take the latest module energy reading into account and decide."""
        m = self.metro
        if m is not None and m.fresh and m.energy_wh is not None:
            e = m.energy_wh
            if self.module_wh is None:
                self.module_wh = e
            elif e >= self.module_wh:
                self.account.consume(e - self.module_wh)
                self.module_wh = e
            else:  # module counter was reset: count from zero
                self.account.consume(e)
                self.module_wh = e
        self.evaluate()
        now = self.board.time()
        if (self.account.import_wh - self._persisted_wh >= self.cfg["persist_wh"]
                or now - self._persisted_t >= self.cfg["persist_s"]):
            self.persist()
        a = self.account
        self.board.report("meter %d %d %d %d" % (now, a.import_wh, a.credit, 1 if self.dc.output_state else 0))

    async def metering_task(self):
        b = self.board
        self.metro = Pzem004t(b.modbus_stream(), int(self.cfg["modbus_unit"]), tx_enable=b.modbus_tx_enable)
        while True:
            await self.metro.poll()
            self.meter_tick()
            b.wdt_feed()
            await asyncio.sleep_ms(b.poll_ms)

    async def dlms_task(self):
        b = self.board
        stream = b.dlms_stream()
        reader = asyncio.StreamReader(stream)
        writer = asyncio.StreamWriter(stream, {})
        link = HdlcLink(self, int(self.cfg["server_address"]), self.cfg.get("physical_address"),
                        int(self.cfg["max_info"]))
        rx = hdlc.Receiver(2100)
        buf = bytearray(256)
        mv = memoryview(buf)
        while True:
            n = await reader.readinto(buf)
            if not n:
                await asyncio.sleep_ms(10)
                continue
            rx.feed(mv[:n])
            while True:
                f = rx.pop()
                if f is None:
                    break
                try:
                    out = link.on_frame(f)
                except Exception as e:  # a bug must not take the meter off the air
                    self.event(90, "dlms error %r" % (e,))
                    link._ndm()
                    out = ()
                for frame in out:
                    writer.write(frame)
                    await writer.drain()

    async def run(self):
        self.evaluate()
        self.persist()
        tasks = [asyncio.create_task(self.metering_task()), asyncio.create_task(self.dlms_task())]
        if hasattr(self.board, "control_task"):
            tasks.append(asyncio.create_task(self.board.control_task()))
        gc.collect()
        self.board.report("ready")
        await asyncio.gather(*tasks)
