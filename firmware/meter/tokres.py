"""The outcome of one STS token entry (``TokenResult``), in a module of its own (~340 B on 32 bits):
``meter.app`` unloads ``meter.tokgate`` (and ``meter.tokens``) before the entry's journal write
(``Meter.enter_token``), while the result, which keeps its class and the class its module alive
(docs/MEMORY.md), lives on until the entry returns; this module is unloaded with them, so
nothing of it is resident between entries."""

# class 2 subclass -> action: word ``sub`` (SUB_MPL 0 ... SUB_WATER_FACTOR 7, protocol.sts; "-": a key
# section). One str, no dict or tuple built per load
CLASS2_ACTIONS = "mpl clear_credit tariff - - clear_tamper phase_unbalance water_factor"


class TokenResult:
    """Outcome of one token entry: ``ok``, ``reason``, ``action``, ``value`` ... (the fields
    and their values: docs/CONTRACTS.md "STS token acceptance")."""

    # set on an instance only by a test token (tests, mfr_code) or a lock-out (lockout_s): a result
    # has 8 attributes, a 64 B table (11 were 96 B, the block a token entered inside an HLS
    # association failed on at 56k, after 16 + 32 + ... + 80 B of its table's growth)
    tests = ()
    mfr_code = None
    lockout_s = 0

    def __init__(self, ok, reason, token_class=None, subclass=None, tid=None, amount=0,
                 action=None, value=None):
        self.ok, self.reason, self.token_class, self.subclass = ok, reason, token_class, subclass
        self.tid, self.amount, self.action, self.value = tid, amount, action, value

    def text(self):
        """The reason as a display line, with how long a keypad lock-out lasts ("locked_out:
        wait 40 s"; "crc: keypad locked for 10 s" for the entry that started it)."""
        if self.reason == "locked_out" and self.value:
            return "locked_out: wait %d s" % self.value
        return "%s: keypad locked for %d s" % (self.reason, self.lockout_s) if self.lockout_s else self.reason
