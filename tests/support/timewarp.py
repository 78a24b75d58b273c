"""Time-warp driver: a BDEW H0 household load under a tariff profile on the emulated meter,
checked against the exact reference model (refmodel) at every hour, top-up and month end.
Used by tests/hil/test_year_timewarp.py and bench/bench_timewarp.py."""
import datetime
import json
import pathlib
import random
import re
import time


from host_tools.client import DlmsClient
from refmodel import RefMeter

ROOT = pathlib.Path(__file__).resolve().parents[2]
UPPCL = json.loads((ROOT / "profiles" / "uppcl_like.json").read_text())
IST = datetime.timezone(datetime.timedelta(minutes=330))
START = int(datetime.datetime(2026, 1, 1, tzinfo=IST).timestamp())
ANNUAL_KWH = 1800          # an urban Indian household (~150 kWh a month)
MGMT = dict(client_sap=1, password="12345678")
AMOUNTS = (20000, 30000, 50000, 100000, 150000)   # recharge denominations, paise


def h0_hourly_quarters(year=2026, annual_kwh=ANNUAL_KWH, holidays=()):
    """BDEW H0 (dynamic) household profile from demandlib: a list of hours, each the four
    quarter-hour mean powers in whole watts."""
    import demandlib.bdew as demandlib   # a dev dependency: its absence is a failure, not a skip
    hol = {datetime.date.fromisoformat(h): "holiday" for h in holidays}
    slp = demandlib.ElecSlp(year, holidays=hol).get_scaled_power_profiles({"h0": annual_kwh})
    kw = slp["h0"].tolist()     # kW, 15-minute means; sum / 4 = annual kWh
    watts = [int(round(v * 1000)) for v in kw]
    return [watts[i:i + 4] for i in range(0, len(watts) - len(watts) % 4, 4)]


def profile_config(credit):
    cfg = {k: v for k, v in UPPCL.items() if k not in ("name", "about")}
    cfg["credit_paise"] = credit
    # run() puts an hour's energy at the hour's start, before the clock moves: a supply no
    # meter would believe (meter.metrology.Health's max_w); the harness lifts the limit
    cfg["metering"] = dict(cfg.get("metering", {}), max_w=100000000)
    return cfg


def _event_t(text):
    m = re.search(r"t=(\d+)", text)
    return int(m.group(1)) if m else None


def _bills(rig):
    out = []
    for code, text in rig.events:
        if code == "64":
            nums = [int(x) for x in re.findall(r"-?\d+", text)]
            out.append(tuple(nums[-4:]))   # wh, energy, fixed, duty
    return out


def _entry(ref, t, wh, import_wh):
    tar = ref.tariff
    e, f, d = tar.energy_paise(), tar.fixed, tar.duty_paise()
    dt = datetime.datetime.fromtimestamp(t, IST)
    minute = dt.hour * 60 + dt.minute
    zone = next((i + 1 for i, (s, e_, _) in enumerate(UPPCL["tariff"]["tod"]) if s <= minute < e_), 0)
    return {"t": t, "wh": wh, "import": import_wh, "k": e + f + d, "energy": e, "fixed": f, "duty": d,
            "credit": ref.credit, "topups": sum(a for _, a, _ in ref.topups), "zone": zone, "up": False}


def run(rig, hours, trace, seed=2026, credit=50000, log=print, cut_every_h=0, ledger=None):
    """Drive ``rig`` for ``hours`` hours from START; returns a summary dict.

    ``cut_every_h``: every that many hours (skipping hours that end at local midnight) the
    supply is cut after the clock moved on, and comes back ``1 + k % 5`` hours later (k the cut's
    number), with no consumption meanwhile; ``ledger``: a list that gets, per hour and per
    power-up, a dict: ``t`` (epoch s), ``wh`` charged at t, then the reference's cumulative
    ``import`` Wh, ``k`` paise taken (energy + fixed + duty), ``energy``/``fixed``/``duty``,
    ``credit``, ``topups`` (paise so far), ``zone`` (TOD window index + 1 at t, 0 outside),
    ``up`` (True for a power-up at t)."""
    rng = random.Random(seed)
    ref = RefMeter(UPPCL, credit, START)
    ref.evaluate(START)
    assert rig.clock == START
    worst = 0
    checks = 0
    topups = 0
    due_topup = None
    last_recharge = credit
    t = START
    wh_prev = wh0 = rig.pzem.energy_wh
    t_wall = time.monotonic()
    month_walls = []
    month_mark = (t_wall, datetime.datetime.fromtimestamp(t, IST).month)
    for h in range(hours):
        # -- the consumer: irregular recharges, sometimes late, sometimes too small
        if due_topup is None and ref.credit < last_recharge * 15 // 100:
            due_topup = t + 3600 * rng.choice((1, 2, 5, 11, 19, 30, 47, 70, 100, 150, 200, 260))
        if due_topup is not None and t >= due_topup:
            amount = rng.choice(AMOUNTS)
            if ref.credit < 0 and rng.random() < 0.25:
                amount = max(100, -ref.credit // 2)      # less than the arrears
            before = rig.meter.credit
            assert before == ref.credit, "credit before top-up at %s" % t
            with DlmsClient(rig.port, **MGMT) as c:
                res, _ = c.action(112, "0.0.19.10.0.255", 1, b"\x05" + amount.to_bytes(4, "big", signed=True))
            assert res == 0
            ref.top_up(amount, t)
            ref.evaluate(t)
            m = rig.wait_meter(lambda m: m.credit != before or ref.credit == before, timeout=10)
            worst = max(worst, abs(m.credit - ref.credit))
            assert m.credit == ref.credit, "credit after top-up at %s" % t
            checks += 1
            topups += 1
            last_recharge = amount
            due_topup = None
        # -- phase 1: an hour of energy at the hour's start
        quarters = trace[h] if rig.relay_closed() else (0, 0, 0, 0)
        for w in quarters:
            rig.pzem.set_load(w)
            rig.pzem.advance(900)
        wh = rig.pzem.energy_wh
        m = rig.wait_meter(lambda m: m.wh == wh, timeout=10)
        ref.consume(t, t, wh - wh_prev)
        if ledger is not None:
            ledger.append(_entry(ref, t, wh - wh_prev, wh - wh0))
        wh_prev = wh
        ref.evaluate(t)
        # -- phase 2: the clock moves on
        t += 3600
        rig.set_clock(t)
        m = rig.wait_meter(lambda m: m.epoch == t, timeout=10)
        ref.clock(t)
        ref.evaluate(t)
        worst = max(worst, abs(m.credit - ref.credit))
        assert m.credit == ref.credit, "credit at %s: meter %d, reference %s" % (
            datetime.datetime.fromtimestamp(t, IST), m.credit, ref.credit)
        if cut_every_h and h % cut_every_h == cut_every_h - 1 and (t + 19800) % 86400:
            rig.power_cut()
            off = 1 + (h // cut_every_h) % 5
            for _ in range(off):           # the meter is off: no consumption, the RTC runs on
                t += 3600
                rig.set_clock(t)
            rig.power_on()
            m = rig.wait_meter(lambda m: m.epoch == t, timeout=30)
            ref.clock(t)
            ref.evaluate(t)
            if ledger is not None:
                ledger.append(dict(_entry(ref, t, 0, rig.pzem.energy_wh - wh0), up=True))
        mon = datetime.datetime.fromtimestamp(t, IST)
        if mon.month != month_mark[1]:                 # billing date (day 1, 00:00)
            now = time.monotonic()
            month_walls.append(now - month_mark[0])
            log("month %s: %.1f s wall, credit %d paise" % (month_mark[1], now - month_mark[0], m.credit))
            month_mark = (now, mon.month)
            checks += 1
    # every billing month the meter closed equals the reference's, charge by charge
    got = _bills(rig)
    want = [(b["wh"], b["energy"], b["fixed"], b["duty"]) for b in ref.tariff.month_log]
    assert got == want
    # the open month so far (meter's month totals are internal: compare via credit identity)
    opens = [_event_t(x) for c, x in rig.events if c == "40"]
    closes = [_event_t(x) for c, x in rig.events if c == "41"]
    assert opens == [e for e, k in ref.relay_log if k == "open"]
    assert closes == [e for e, k in ref.relay_log if k == "close"]
    for e in opens:
        assert ref.cal.allowed(e), "relay opened at a protected moment %s" % e
    return {"hours": hours, "wall_s": time.monotonic() - t_wall, "month_walls": month_walls,
            "worst_paise": worst, "checks": checks, "topups": topups, "bills": got,
            "relay_log": ref.relay_log, "wh": rig.pzem.energy_wh, "ref": ref}


