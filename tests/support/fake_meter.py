"""A small stand-in meter for driving firmware/meter/server.py in-process on CPython (no pty,
no thread): the board, metering, limiter, policy, event log and Meter surface the link and
cosem call. Shared by tests/host/test_hdlc_link.py, the fuzz test and bench/bench_dlms.py."""
from meter.account import Account
from meter.relay import DisconnectControl
from protocol import apdu_client as apdu
from host_tools import objects

# conformance the meter supports: GET, SET, ACTION, selective access, block transfer with GET,
# multiple references
SUPPORTED = (apdu.CONF_GET | apdu.CONF_SET | apdu.CONF_ACTION | apdu.CONF_SELECTIVE_ACCESS
             | apdu.CONF_BLOCK_TRANSFER_WITH_GET | apdu.CONF_MULTIPLE_REFERENCES)
# logical names (OBIS) of the objects the tests address: the host catalogue (host_tools.objects)
CLOCK_LN = objects.CLOCK.ln
ASSOC_LN = objects.ASSOCIATION.ln
EVENT_LOG_LN = objects.EVENT_LOG.ln
TOKEN_CREDIT_LN = objects.CREDIT.ln
EMERGENCY_CREDIT_LN = objects.EMERGENCY_CREDIT.ln
TOKEN_GATEWAY_LN = objects.TOKEN_GATEWAY.ln

class Board:
    def __init__(self):
        self.t = 1767225600
        self.ms = 1000

    def ticks_ms(self):
        return self.ms

    def time(self):
        return self.t

    def set_time(self, t):
        self.t = t


class Metro:
    voltage_dv, current_ma, power_dw = 2301, 5000, 11505
    faulted = False


class Limiter:
    mpl_w = 5000                 # W
    trip_s, reclose_s = 10, 60


class Policy:
    """What cosem reads of meter.policy (meter.policy.Policy)."""
    limiter = Limiter()
    emergency = None

    def credit_status(self, meter):
        return 0x80

    def low_credit_threshold(self, meter):
        return 0


class Tariff:
    """What cosem reads of meter.tariff (meter.tariff.Tariff): the flat rate, paise/kWh."""
    rates = (650,)


class Log(list):
    """An in-RAM event log with the interface of meter.events.EventLog."""
    capacity = 20

    def count(self):
        return len(self)

    def entries(self, a, b):
        return iter(self[a - 1:b])

    def by_time(self, t0, t1):
        return (e for e in self if t0 <= e[0] <= t1)

    def last(self):
        return self[-1] if self else None


class Meter:
    """What server/cosem use of meter.app.Meter."""
    def __init__(self, n_events=0):
        self.board = Board()
        self.tz_minutes = 330
        self.logical_device_name = b"PPM0000001"
        self.account = Account(650, 5000)
        self.dc = DisconnectControl(5)
        self.metro = Metro()
        self.events = self.event_log = Log((self.board.t + i, 10 + i % 3, "e")
                                           for i in range(n_events))
        self.token_gateway = [b"", 0, b"", 0, 8]   # token, time, description, delivery, status
        self.policy = Policy()
        self.tariff = Tariff()
        self.persisted = 0

    def check_password(self, client, value):
        return value == {1: b"12345678", 32: b"00000000", 48: b"ABCDEFGH"}.get(client)

    def event(self, code, text):
        self.events.append((self.board.t, code, text))

    def persist(self):
        self.persisted += 1

    def set_clock(self, t):
        if not 946684800 <= t <= 0xFFFFFFFF:      # meter.app: 2000-01-01 .. 2106-02-07
            return False
        self.board.t = t
        return True

    def top_up(self, paise, src):
        self.account.top_up(paise)
        return True

    def remote_disconnect(self):
        return self.dc.remote_disconnect()

    def remote_reconnect(self):
        return self.dc.remote_reconnect()

    def set_control_mode(self, m):
        return self.dc.set_mode(m)

    def set_payment_mode(self, m):
        self.account.payment_mode = m

    def enter_token(self, raw, delivery):
        self.token_gateway[4] = 4


SRV = b"\x03"          # server logical 1
C16, C32, C1 = b"\x21", b"\x41", b"\x03"


