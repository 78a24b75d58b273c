"""IS 15959 block load profile and maximum demand under a time warp (``meterctl emulate --warp``,
the rig's ``advance``): a metering cycle that crosses a block or demand-period edge gives each
interval the Wh of its own time (the cycle's Wh at constant power, split at the edges as the
tariff splits it), so every block holds its own 30 minutes and MD is the true demand. The
reference is computed here from the load schedule (loads in multiples of 4 W: every part is
whole Wh). Session 13 left it: a whole 30-minute step landed in the next block and MD doubled."""
import datetime

import pytest

from host_tools.client import DlmsClient
from protocol import axdr
from timewarp import START

pytestmark = pytest.mark.hil

READER = dict(client_sap=32, password="00000000")
P = 1800                                   # capture period, s
D = 900                                    # demand integration period, s
# (seconds, W): 30-minute steps (the warp of `meterctl emulate --warp 1800`), then 15 + 30 minutes
SCHEDULE = ([(1800, w) for w in (1000, 2000, 400, 3000, 0, 1200, 2400, 800)]
            + [(s, w) for s, w in zip((900, 1800) * 3, (1600, 2800, 400, 2000, 3200, 1000))] + [(900, 0)])


def _epoch(b):
    y, mo, d, _wd, hh, mi, ss, _hs, dev, _st = axdr.parse_datetime(bytes(b))
    return int(datetime.datetime(y, mo, d, hh, mi, ss, tzinfo=datetime.timezone.utc).timestamp()) + dev * 60


def _wh(a, b):
    """Wh of the schedule's load in [a, b) (s from START)."""
    t = e = 0
    for s, w in SCHEDULE:
        lo, hi = max(a, t), min(b, t + s)
        e += w * (hi - lo) if hi > lo else 0
        t += s
    assert e % 3600 == 0
    return e // 3600


def test_blocks_and_md_hold_their_own_interval_under_a_time_warp(rig_factory):
    rig = rig_factory(config={"profiles": True, "credit_paise": 10 ** 6}, clock_epoch=START, poll_ms=3)
    rig.wait_relay(True)
    for s, w in SCHEDULE:
        rig.set_load(w)
        rig.advance(s)
    end = sum(s for s, _ in SCHEDULE)
    assert end % P == 0
    with DlmsClient(rig.port, **READER) as c:
        blocks = [(_epoch(r[0][1]), r[1][1]) for _t, r in c.get(7, "1.0.99.1.0.255", 2)[1]]
        md = c.get(4, "1.0.1.6.0.255", 2)[1]
        md_t = _epoch(c.get(4, "1.0.1.6.0.255", 5)[1])
    want = [(START + s + P, _wh(s, s + P)) for s in range(0, end, P)]
    assert blocks == want
    assert sum(wh for _, wh in blocks) == rig.meter.wh
    peak = max(range(0, end, D), key=lambda s: (_wh(s, s + D), -s))       # the first largest period
    assert (md, md_t) == (_wh(peak, peak + D) * 3600 // D, START + peak + D) == (3200, START + 20700)
    print("\nblocks (Wh): %s; MD %d W at +%d s" % ([wh for _, wh in blocks], md, md_t - START))
