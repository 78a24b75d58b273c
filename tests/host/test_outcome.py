"""Outcomes that are never ambiguous (host_tools.outcome, host_tools.changes,
host_tools.recharges) and the meterctl commands that report them, against a scripted meter."""

import json
import os
import signal

import pytest
from click.testing import CliRunner

from host_tools import outcome as oc
from host_tools.changes import OBIS_TOTAL_RECHARGED, Profile, Relay, SetAttribute, Token, TopUp, action_change
from host_tools.client import DataAccessError, LinkTimeout, ObjectUndefined
from host_tools.meterctl import common
from host_tools.meterctl.cli import meterctl
from host_tools.recharges import Recharges, RetryRefused
from protocol import axdr_client as axdr

CREDIT = "0.0.19.10.0.255"


class Meter:
    """A meter's account as the fake clients see it. ``mode`` of the next update_amount:
    "ok", "refuse" (other-reason), "lose" (applied, answer lost), "drop" (never arrives),
    "interrupt" (Ctrl-C while waiting, applied). ``down_after`` connections then unreachable."""

    def __init__(self, total=0, credit=0, mode="ok", down_after=None, name=b"PPM0000001"):
        self.total, self.credit, self.mode = total, credit, mode
        self.down_after = down_after
        self.name = name
        self.connections = 0
        self.actions = 0
        self.interrupt_in = None      # a (ic, attr) GET that raises KeyboardInterrupt once

    def client(self):
        return FakeClient(self)


class FakeClient:
    def __init__(self, meter):
        self.m = meter

    def __enter__(self):
        m = self.m
        m.connections += 1
        if m.down_after is not None and m.connections > m.down_after:
            raise LinkTimeout("no answer from meter (fake)")
        return self

    def __exit__(self, *exc):
        return False

    def close(self):
        pass

    def get(self, ic, obis, attr):
        m = self.m
        if m.interrupt_in == (ic, attr):
            m.interrupt_in = None
            raise KeyboardInterrupt
        if (ic, obis) == (1, OBIS_TOTAL_RECHARGED):
            return (6, m.total)
        if (ic, obis) == (112, CREDIT):
            return (5, m.credit)
        if (ic, obis) == (1, "0.0.42.0.0.255"):
            return (9, m.name)
        raise ObjectUndefined(4)

    def action(self, ic, obis, method, param):
        m = self.m
        assert (ic, obis, method) == (112, CREDIT, 1)
        paise = int.from_bytes(param[1:5], "big", signed=True)
        mode, m.mode = m.mode, "ok"
        m.actions += 1
        if mode == "refuse":
            raise DataAccessError(250)
        if mode != "drop":
            m.total += paise
            m.credit += paise
        if mode in ("lose", "drop"):
            raise LinkTimeout("no answer from meter (fake)")
        if mode == "interrupt":
            raise KeyboardInterrupt
        return 0, None


def perform(meter, change, **kw):
    return oc.perform(meter.client, change, pause=0, **kw)


# -- the engine --------------------------------------------------------------------------------

def test_answered_top_up_is_applied_with_details():
    m = Meter(total=100, credit=40)
    out = perform(m, TopUp(500))
    assert out.state == oc.APPLIED and not out.checked and m.connections == 1
    assert out.before["total_recharged"] == 100 and out.before["meter"] == "PPM0000001"
    assert out.details["credit_after"] == 540      # in the credit unit (before["credit_unit"])


def test_refused_top_up_is_not_applied_without_a_check():
    m = Meter(mode="refuse")
    out = perform(m, TopUp(500))
    assert out.state == oc.NOT_APPLIED and out.refused is not None and m.connections == 1


@pytest.mark.parametrize("mode,state", [("lose", oc.APPLIED), ("drop", oc.NOT_APPLIED),
                                        ("interrupt", oc.APPLIED)])
def test_lost_answer_is_checked_on_the_meter(mode, state):
    m = Meter(total=100, mode=mode)
    seen = []
    out = perform(m, TopUp(500), on_doubt=seen.append)
    assert out.state == state and out.checked and m.connections == 2 and m.actions == 1
    assert out.after["total_recharged"] == (600 if state == oc.APPLIED else 100)
    assert len(seen) == 1 and (("Ctrl-C" in seen[0]) == (mode == "interrupt"))


def test_unreachable_meter_after_a_lost_answer_is_unknown_after_bounded_attempts():
    m = Meter(mode="lose", down_after=1)
    out = perform(m, TopUp(500), attempts=3)
    assert out.state == oc.UNKNOWN and out.attempts == 3 and m.connections == 4
    assert "could not be reached" in out.reason


def test_check_reaches_the_meter_on_a_later_attempt():
    m = Meter(mode="lose", down_after=1)
    sleeps = []

    def sleep(s):                               # sleep-ok: the engine's pause, faked
        sleeps.append(s)
        m.down_after = None                     # the line comes back
    out = oc.perform(m.client, TopUp(500), pause=0.25, sleep=sleep)
    assert out.state == oc.APPLIED and out.attempts == 2 and sleeps == [0.25]


def test_a_total_that_moved_by_another_amount_is_not_conclusive():
    class Other(TopUp):
        def send(self, c, before):
            c.m.total += 1234                  # a keypad token meanwhile, and our answer lost
            raise LinkTimeout("lost")
    out = perform(Meter(total=10), Other(500))
    assert out.state == oc.UNKNOWN and out.checked and "does not tell" in out.reason


def test_ctrl_c_before_sending_propagates_and_nothing_is_sent():
    m = Meter()
    m.interrupt_in = (112, 2)                  # while reading the evidence
    with pytest.raises(KeyboardInterrupt):
        perform(m, TopUp(500))
    assert m.actions == 0


def test_ctrl_c_after_the_answer_keeps_applied():
    m = Meter()
    m.interrupt_in = (112, 2)

    class Late(TopUp):
        def evidence(self, c):
            c.m.interrupt_in, saved = None, c.m.interrupt_in
            ev = TopUp.evidence(self, c)
            c.m.interrupt_in = saved            # fires in details(), after the answer
            return ev
    out = perform(m, Late(500))
    assert out.state == oc.APPLIED and m.actions == 1


def test_guard_stops_before_sending():
    def guard(before):
        raise RetryRefused("no")
    m = Meter()
    with pytest.raises(RetryRefused):
        perform(m, TopUp(500, guard_fn=guard))
    assert m.actions == 0


# -- evidence of each change --------------------------------------------------------------------

def test_judges():
    assert Relay(1).judge({}, {"control_state": 0}) == oc.APPLIED
    assert Relay(1).judge({}, {"control_state": 1}) == oc.NOT_APPLIED
    assert Relay(2).judge({}, {"control_state": 2}) == oc.APPLIED
    assert Relay(2).judge({}, {"control_state": None}) is None
    v = axdr.Writer().long_unsigned(7).getvalue()
    s = SetAttribute(1, "0.0.96.3.10.255", 4, v)
    assert s.judge({"value": "1203"}, {"value": v.hex()}) == oc.APPLIED
    assert s.judge({"value": "1203"}, {"value": "1203"}) == oc.NOT_APPLIED
    assert s.judge({"value": "1203"}, {"value": "1209"}) is None
    clock = bytes.fromhex("090C07EA0101040A0000FF800000")       # 2026-01-01 10:00:00
    later = "090C07EA0101040A0003FF800000"                      # 3 s later
    c = SetAttribute(8, "0.0.1.0.0.255", 2, clock)
    assert c.judge({"value": "090C07E90101040A0000FF800000", "host_time": 0},
                   {"value": later, "host_time": 1}) == oc.APPLIED
    assert c.judge({"value": "090C07E90101040A0000FF800000", "host_time": 0},
                   {"value": "090C07E90101040A0001FF800000", "host_time": 1}) == oc.NOT_APPLIED
    p = Profile(b'{"name":"x","rate":5}')
    ours = json.dumps({"name": "x", "rate": 5, "extra": 1}).encode().hex()
    assert p.judge({"profile": "00"}, {"profile": ours}) == oc.APPLIED
    assert p.judge({"profile": "00"}, {"profile": "00"}) == oc.NOT_APPLIED
    t = Token("12345678901234567890")
    mine = "12345678901234567890"               # the gateway's token as digits (evidence in --json)
    assert t.judge({}, {"token": mine, "status": 3}) == oc.APPLIED
    assert t.judge({}, {"token": mine, "status": 6}) == oc.NOT_APPLIED
    n = 12345678901234567890 & ~(3 << 27)            # the token number, class bits 0
    credit, setting = "%020d" % n, "%020d" % (n | 2 << 27)   # class 0, class 2 (IEC 62055-41 §6.4)
    t = Token(credit)
    was = {"token": "00", "status": 3, "credit": 7500}
    assert t.judge(was, {"token": "00", "status": 3, "credit": 7400}) == oc.NOT_APPLIED
    # attack passes (session 16): another token entered after ours (a second master, the keypad)
    # before the check, the credit risen: ours may have been taken first
    assert t.judge(was, {"token": "11", "status": 3, "credit": 20500}) is None
    assert t.judge(was, {"token": "00", "status": 3, "credit": 20500}) is None     # "00" entered again
    # ours refused USED on the check: entered again by another client after it was taken (credit
    # risen) -> unknown; a token of a TID taken before (credit the same) -> not applied
    used = {"token": credit, "status": 6, "reasons": ["used"]}
    assert t.judge(was, dict(used, credit=20500)) is None
    assert t.judge(was, dict(used, credit=7500)) == oc.NOT_APPLIED
    # a class 2 token (a rate, a power limit, ClearCredit) moves no credit up: nothing tells
    s2 = Token(setting)
    assert s2.judge(was, {"token": "11", "status": 3, "credit": 7500}) is None
    assert s2.judge(was, dict(used, token=setting, credit=0)) is None
    assert s2.judge(was, {"token": setting, "status": 3, "credit": 0}) == oc.APPLIED


def test_action_change_maps_the_known_methods():
    assert isinstance(action_change(112, CREDIT, 1, b"\x05\x00\x00\x01\xf4"), TopUp)
    assert action_change(112, CREDIT, 1, b"\x05\x00\x00\x01\xf4").paise == 500
    assert isinstance(action_change(70, "0.0.96.3.10.255", 2, b"\x0f\x00"), Relay)
    tok = b"\x09\x14" + b"1" * 20
    assert action_change(115, "0.0.19.40.0.255", 1, tok).digits == "1" * 20
    assert type(action_change(7, "0.0.99.98.0.255", 1, None)).__name__ == "Action"


# -- the record of recent top-ups ----------------------------------------------------------------

def test_retry_rule(tmp_path):
    now = [1000.0]
    r = Recharges(str(tmp_path / "rec.json"), window=600, clock=lambda: now[0])
    a = r.claim("M1", 500, {"total_recharged": 0})
    r.finish("M1", a, "applied")
    with pytest.raises(RetryRefused, match="was applied .* --force"):
        r.claim("M1", 500, {"total_recharged": 500})
    assert r.claim("M1", 500, {"total_recharged": 500}, force=True)      # forced
    assert r.claim("M2", 500, {"total_recharged": 0})                    # another meter
    b = r.claim("M1", 700, {"total_recharged": 1000})                  # another amount
    r.finish("M1", b, "not applied")
    assert r.claim("M1", 700, {"total_recharged": 1000})               # retry after not applied
    now[0] += 601
    r2 = Recharges(str(tmp_path / "rec.json"), window=600, clock=lambda: now[0])
    assert r2.claim("M1", 500, {"total_recharged": 2200})              # outside the window


def test_a_meter_whose_total_never_saw_the_prior_top_up_is_no_retry(tmp_path):
    # new-user pass (session 12): a new emulator (the same name PPM0000001, total 0) was refused
    # "a top-up ... was applied 192 s ago" for the previous emulator's top-up
    r = Recharges(str(tmp_path / "rec.json"), clock=lambda: 50.0)
    a = r.claim("PPM0000001", 50000, {"total_recharged": 120000})
    r.finish("PPM0000001", a, "applied")
    assert r.claim("PPM0000001", 50000, {"total_recharged": 0})            # another meter
    with pytest.raises(RetryRefused, match="was applied"):
        r.claim("PPM0000001", 50000, {"total_recharged": 50000})          # this one's own


def test_unknown_prior_is_settled_by_the_recharge_total(tmp_path):
    r = Recharges(str(tmp_path / "rec.json"), clock=lambda: 50.0)
    a = r.claim("M", 300, {"total_recharged": 1000})
    r.finish("M", a, "unknown")
    assert r.claim("M", 300, {"total_recharged": 1000})       # total unmoved: it was not applied
    r3 = Recharges(str(tmp_path / "other.json"), clock=lambda: 50.0)
    b = r3.claim("M", 300, {"total_recharged": 1000})          # left pending (killed meterctl)
    with pytest.raises(RetryRefused, match="was applied"):
        r3.claim("M", 300, {"total_recharged": 1300})          # moved by its amount: applied
    assert b


def test_sigint_flag_counts_and_needs_two_while_checking():
    with oc.SigintFlag() as f:
        assert not f.take()
        os.kill(os.getpid(), signal.SIGINT)                    # no KeyboardInterrupt
        assert f.count == 1 and f.take() and not f.take()
        f.patient()
        os.kill(os.getpid(), signal.SIGINT)
        assert not f.take()
        os.kill(os.getpid(), signal.SIGINT)
        assert f.take()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_nested_sigint_flag_counts_in_the_outer_one_and_gives_it_back():
    # attack pass (session 14): `topup` of several tokens ran each token under its own flag,
    # so a Ctrl-C seen by one token's flag was forgotten by the run (it went on to the next)
    try:
        with oc.SigintFlag(ignore_after=True) as outer:
            with oc.SigintFlag(ignore_after=True) as inner:
                os.kill(os.getpid(), signal.SIGINT)
                assert inner.count == 1 and outer.count == 1 and inner.take()
            assert signal.getsignal(signal.SIGINT) == outer._handler      # not SIG_IGN: the run goes on
            os.kill(os.getpid(), signal.SIGINT)                           # between two changes
            assert (outer.count, inner.count) == (2, 1)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# -- the CLI's exit codes -----------------------------------------------------------------------

@pytest.fixture
def fake_cli(monkeypatch):
    meter = Meter(total=1000, credit=100)
    monkeypatch.setattr(common, "make_client", lambda kw, write, cancel=None: meter.client())
    monkeypatch.setattr(oc.time, "sleep", lambda s: None)

    def run(*args):
        return CliRunner().invoke(meterctl, ["credit", "add", "-p", "/dev/null", "--password", "x"]
                                  + list(args))
    return meter, run


def test_cli_exit_codes_by_outcome(fake_cli):
    meter, run = fake_cli
    r = run("--amount", "5", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["outcome"] == "applied", r.output
    meter.mode = "lose"
    r = run("--amount", "6")
    assert r.exit_code == 0 and "checked on the meter: applied" in r.stderr, r.output
    meter.mode = "drop"
    r = run("--amount", "7")
    assert r.exit_code == 1 and "not applied" in r.stderr and "safe to retry" in r.stderr, r.output
    meter.mode = "refuse"
    r = run("--amount", "8")
    assert r.exit_code == 1 and "other-reason" in r.stderr, r.output
    meter.mode, meter.down_after = "lose", meter.connections + 1
    r = run("--amount", "9", "--json")
    assert r.exit_code == 4, r.output
    last = r.stderr.strip().splitlines()[-1]
    total = meter.total - 900
    assert "outcome unknown" in last and "applied if it reads %d, not applied if %d" % (total + 900, total) in last
    assert json.loads(r.stdout)["outcome"] == "unknown"


def test_cli_refuses_a_retry_of_an_applied_top_up(fake_cli):
    meter, run = fake_cli
    assert run("--amount", "5").exit_code == 0
    r = run("--amount", "5")
    assert r.exit_code == 2 and "--force" in r.stderr and meter.actions == 1, r.output
    assert run("--amount", "5", "--force").exit_code == 0 and meter.actions == 2


def test_cli_ctrl_c_before_sending_exits_130(fake_cli):
    meter, run = fake_cli
    meter.interrupt_in = (1, 2)
    r = run("--amount", "5")
    assert r.exit_code == 130 and "nothing was sent" in r.stderr and meter.actions == 0


# -- topup of several tokens: Ctrl-C while a token not applied is in flight --------------------

TOKENS = ["11111111111111111111", "22222222222222222222", "33333333333333333333"]


def _topup_with_ctrl_c_at_token_2(monkeypatch, state, reason=None):
    """`meterctl topup` of TOKENS with run_change faked: token 1 applied; a Ctrl-C during token 2,
    whose check finds ``state``."""
    from host_tools.meterctl import topup
    before = {"token": "", "status": 8, "reasons": [], "credit": 0}

    def fake_run_change(kw, change, show, refused=None, finish=None, fields=None, hint=None):
        if change.digits == TOKENS[0]:
            out = oc.Outcome(oc.APPLIED, before, result={"status": 3, "reasons": ["accepted"]})
        else:
            os.kill(os.getpid(), signal.SIGINT)                 # the run's flag counts it
            out = oc.Outcome(state, before, doubt="interrupted (Ctrl-C) after the request was sent",
                             checked=state != oc.UNKNOWN, after=dict(before), reason=reason)
        finish(out)
        assert out.state == oc.APPLIED, "a token not applied after a Ctrl-C must end the run in finish"
        kw["json_sink"](oc.report(out, fields))            # run_change's report (show prints text only)
    monkeypatch.setattr(topup, "run_change", fake_run_change)
    return CliRunner().invoke(meterctl, ["topup", "-p", "/dev/null", "--password", "x", "--json"] + TOKENS)


def test_topup_ctrl_c_with_token_2_not_applied_names_each_token(monkeypatch):
    r = _topup_with_ctrl_c_at_token_2(monkeypatch, oc.NOT_APPLIED)
    assert r.exit_code == 130, r.output
    assert r.stderr.splitlines() == [
        "meterctl: error: interrupted (Ctrl-C): token 1 of 3 (%s) applied; token 2 of 3 (%s) not applied (checked "
        "on the meter: no trace of it); token 3 of 3 (%s) not sent" % tuple(TOKENS)], r.stderr
    assert [(o["token"], o["outcome"]) for o in json.loads(r.stdout)] == [
        (TOKENS[0], "applied"), (TOKENS[1], "not applied"), (TOKENS[2], "not sent")]


def test_topup_ctrl_c_with_token_2_unknown_exits_4_with_the_check_command(monkeypatch):
    r = _topup_with_ctrl_c_at_token_2(monkeypatch, oc.UNKNOWN, reason="the meter could not be reached to check")
    last = r.stderr.splitlines()[-1]
    assert r.exit_code == 4 and len(r.stderr.splitlines()) == 1, r.output
    assert "token 2 of 3 (%s): outcome unknown: the meter could not be reached" % TOKENS[1] in last, last
    assert "check with: meterctl get 0.0.19.40.0.255 2 --class 115" in last and "token 3 of 3" in last, last
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # the run's flag is gone
