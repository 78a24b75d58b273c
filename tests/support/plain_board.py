"""What meter.app.Meter uses of a board, on a plain directory (the device code on CPython)."""
import json

T0 = 1767225600                       # 2026-01-01T00:00:00Z


class Board:
    """What meter.app.Meter uses of a board, on a plain directory."""
    persist_wh = 10
    reset_cause = "power"
    poll_ms = 200

    def __init__(self, d, config=None):
        self.d = d
        self.t = T0
        self.lines = []
        if config is not None:
            with open(d + "/config.json", "w") as f:
                json.dump(config, f)

    def path(self, name):
        return self.d + "/" + name

    def time(self):
        return self.t

    def set_time(self, t):
        self.t = t

    def report(self, line):
        self.lines.append(line)

    def relay(self, on):
        pass

    def wdt_feed(self):
        pass

    def ticks_ms(self):
        return 0

    modbus_tx_enable = None

    def modbus_stream(self):      # the metering module is built at boot (never polled here)
        return None


class Ctx:
    """An association context (meter.cosem) of the management client, every service allowed."""
    role = 2
    client = 1
    server = 1
    conformance = 0xFFFFFF
    max_pdu = 0xFFFF
    mechanism = 1
