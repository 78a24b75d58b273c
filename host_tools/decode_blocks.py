"""Block reassembly with continuity checks for ``meterctl decode`` (host only): GET
datablocks (IEC 62056-5-3 §9.3.2, block numbers from 1) and general-block-transfer blocks
(§9.3.5). A gap, a repeat or a block out of order is reported by number, never glued over.
"""


class Blocks:
    """Block reassembly with continuity by number: block 1 starts a value; a repeated number
    replaces that block (a retransmission); a gap is reported on the block where it shows
    (``gap``) and the last block then carries an ``error`` naming the missing numbers
    instead of a value decoded from incomplete data."""

    def __init__(self, what):
        self.what = what
        self.parts = []
        self.next = 1
        self.missing = []

    def add(self, d, number, data, last):
        """Record block ``number`` (its record ``d``); the whole value when ``last`` and
        complete, else None."""
        if number == 1:
            self.parts, self.missing = [], []
        elif self.parts and number == self.next - 1:
            self.parts.pop()
            d["note"] = "%s %d repeated (retransmission): replaces the earlier copy" % (self.what, number)
            self.next -= 1
        elif number != self.next:
            lost = list(range(self.next, number)) if number > self.next else []
            self.missing += lost or [self.next]
            d["gap"] = ("%s %d expected, %d received" % (self.what, self.next, number) +
                        (" (missing %s)" % ranges(lost) if lost else " (out of order)"))
        self.parts.append(bytes(data))
        self.next = number + 1
        if not last:
            return None
        whole, self.parts, self.next = b"".join(self.parts), [], 1
        if self.missing:
            d["error"] = "%ss missing: %s; value not decoded" % (self.what, ranges(self.missing))
            self.missing = []
            return None
        return whole


def ranges(nums):
    """[3, 4, 5, 9] -> "3-5, 9"."""
    out = []
    for n in sorted(set(nums)):
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return ", ".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in out)
