"""IS 15959 profiles of the real firmware under a time-warp run (tests/support/timewarp.py: the
BDEW H0 load under the UPPCL-like profile, irregular top-ups, a power cut every few days): every
block load, daily and billing entry the meter serves over DLMS equals what the exact reference
model (refmodel) gives for its interval; no entry is missing or duplicated across the cuts; the
daily debits sum to the credit change.

``make test`` runs 40 simulated days with a cut every 3 days; ``make soak`` (``-m slow``) 75 days
with a cut every 2 days (two billing dates). Each run prints a summary line.
"""
import datetime
import os

import pytest

from host_tools.client import DlmsClient
from protocol import axdr
from timewarp import run, START, UPPCL, h0_hourly_quarters, profile_config

READER = dict(client_sap=32, password="00000000")
P = 1800                                   # capture period, s
D = 900                                    # demand integration period, s
TZ = 19800


def _epoch(b):
    y, mo, d, _wd, hh, mi, ss, _hs, dev, _st = axdr.parse_datetime(bytes(b))
    if y == 0xFFFF:
        return 0                          # not specified (e.g. no maximum demand yet)
    return int(datetime.datetime(y, mo, d, hh, mi, ss, tzinfo=datetime.timezone.utc).timestamp()) + dev * 60


def _date_time(t):
    """COSEM date-time of UTC epoch ``t`` (deviation 0)."""
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return axdr.datetime_bytes(d.year, d.month, d.day, d.hour, d.minute, d.second, deviation=0)


def _rows(c, obis, selector=None, params=b""):
    tag, rows = c.get(7, obis, 2, selector, params)
    out = []
    for _t, row in rows:
        out.append(tuple(_epoch(v) if t == 9 and len(v) == 12 else v for t, v in row))
    return out


def expected_blocks(ledger):
    """(end, Wh, average V, average I, status, charge) minus the averages, per block."""
    out = []
    prev_k, last_t, late = 0, None, True
    for e in ledger:
        if e["up"]:
            out.append((last_t + 3600 + P, 0, 1, 0))      # open at the cut: closed at power-up
            late = True
            continue
        t = e["t"]
        out.append((t + P, e["wh"], 4 if late else 0, e["k"] - prev_k))
        out.append((t + 2 * P, 0, 0, 0))
        prev_k, last_t, late = e["k"], t, False
    return out


def expected_days(ledger, until):
    """(midnight, import Wh, credit, energy, fixed, duty, top-ups) for each local midnight."""
    out = []
    base = dict(energy=0, fixed=0, duty=0, topups=0)
    hours = [e for e in ledger if not e["up"]]
    m = START + 86400
    while m <= until:
        snap = [e for e in hours if e["t"] < m][-1]
        out.append((m, snap["import"], snap["credit"], snap["energy"] - base["energy"],
                    snap["fixed"] - base["fixed"], snap["duty"] - base["duty"],
                    snap["topups"] - base["topups"]))
        base = snap
        m += 86400
    return out


def expected_bills(ledger, month_log):
    """The harness gives each hour's Wh in a zero-length cycle at the hour's start (the clock
    stands while the load runs): no cycle with energy crosses an edge, so the reference has no
    edge to split: the hour's Wh are in the block and the demand period starting at the hour (MD
    = 4 x the hour's Wh), before and after meter.profiles split cycles at their edges (that split:
    tests/hil/test_profiles_warp.py)."""
    out = []
    hours = [e for e in ledger if not e["up"]]
    lo = START
    for b in month_log:
        y, mo = (b["start"].year, b["start"].month + 1) if b["start"].month < 12 else (b["start"].year + 1, 1)
        date = int(datetime.datetime(y, mo, 1, tzinfo=datetime.timezone(datetime.timedelta(seconds=TZ))).timestamp())
        cyc = [e for e in hours if lo <= e["t"] < date]
        upto = [e for e in hours if e["t"] < date]
        zones = [sum(e["wh"] for e in upto if e["zone"] == z) for z in range(4)]
        md = [(0, 0)] * 5
        for e in cyc:
            w = e["wh"] * 3600 // D
            for i in (0, 1 + e["zone"]):
                if w > md[i][0]:
                    md[i] = (w, e["t"] + D)
        flat = [x for pair in md for x in pair]
        out.append(tuple([date, upto[-1]["import"]] + zones + flat + [b["energy"], b["fixed"], b["duty"]]))
        lo = date
    return out


def _run_case(rig_factory, hours, cut_every_h, capsys):
    trace = h0_hourly_quarters(holidays=UPPCL["policy"]["holidays"])
    rig = rig_factory(config=dict(profile_config(50000), profiles=True), clock_epoch=START, poll_ms=3)
    ledger = []
    summary = run(rig, hours, trace, log=lambda *_: None, cut_every_h=cut_every_h, ledger=ledger)
    now = rig.clock
    with DlmsClient(rig.port, **READER) as c:
        blocks = _rows(c, "1.0.99.1.0.255")
        days = _rows(c, "1.0.99.2.0.255")
        bills = _rows(c, "1.0.98.1.0.255")
        # selective access: by entry (the last 5, columns 1-2) and by range (one day of blocks)
        w = axdr.Writer().structure(4).double_long_unsigned(len(blocks) - 4) \
            .double_long_unsigned(0).long_unsigned(1).long_unsigned(2)
        assert _rows(c, "1.0.99.1.0.255", 2, bytes(w.buf)) == [b[:2] for b in blocks[-5:]]
        t0, t1 = blocks[-60][0], blocks[-20][0]
        w = axdr.Writer().structure(4).structure(4).long_unsigned(8) \
            .octet_string(bytes((0, 0, 1, 0, 0, 255))).integer(2).long_unsigned(0)
        w.octet_string(_date_time(t0)).octet_string(_date_time(t1)).array(0)     # date-times, not epochs
        assert _rows(c, "1.0.99.1.0.255", 1, bytes(w.buf)) == [b for b in blocks if t0 <= b[0] <= t1]
    cuts = sum(1 for e in ledger if e["up"])
    want = expected_blocks(ledger)
    got = [(b[0], b[1], b[5], b[6]) for b in blocks]
    assert [g[0] for g in got] == sorted({g[0] for g in got}), "a block entry missing or duplicated"
    assert got == want[-len(got):] and len(got) >= min(len(want), 35 * 48)
    want_days = expected_days(ledger, now)
    got_days = [(d[0], d[1], d[3], d[4], d[5], d[6], d[7]) for d in days]
    assert got_days == want_days[-len(got_days):] and len(got_days) >= min(len(want_days), 35)
    for a, b in zip(got_days, got_days[1:]):
        assert a[2] - b[2] == b[3] + b[4] + b[5] - b[6], "daily debits != credit change on %s" % b[0]
    closed = bills[:-1]                       # the last entry is the running cycle
    want_bills = expected_bills(ledger, summary["ref"].tariff.month_log)
    assert [b[:-1] for b in closed] == want_bills
    line = ("profiles: %d h (%d simulated days), %d power cuts: %d block, %d daily, %d billing entries "
            "equal to the reference; %d top-ups" % (hours, (now - START) // 86400, cuts, len(blocks),
                                                    len(days), len(closed), summary["topups"]))
    with capsys.disabled():
        print("\n" + line)
    return len(closed)


@pytest.mark.hil
def test_profiles_match_reference_across_power_cuts(rig_factory, capsys):
    days = int(os.environ.get("PROFILES_DAYS", "40"))
    assert _run_case(rig_factory, days * 24, 70, capsys) == (1 if days >= 32 else 0)


@pytest.mark.hil
@pytest.mark.slow
def test_profiles_match_reference_two_billing_dates(rig_factory, capsys):
    assert _run_case(rig_factory, 75 * 24, 46, capsys) == 2
