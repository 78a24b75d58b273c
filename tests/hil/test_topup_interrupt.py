"""Ctrl-C in a `meterctl topup` of several tokens stops it and says, token by token, what the
meter took (attack pass, session 14: a Ctrl-C during token 1 of 3 was checked and reported, then
tokens 2 and 3 were entered anyway and it exited 0; one during the credit read after token 1 was
not reported at all; one between tokens said "nothing was sent" after token 1 was applied).

A real SIGINT reaches a real `meterctl topup` process at a moment chosen on the wire
(``hil.linecut``: the meter's answer to the chosen request is held back, so the process is still
waiting for it when the signal comes). Ground truth: the token gateway's last token and the
credit register, read afterwards."""
import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from hil import identity
from hil.linecut import LineCut, is_action_request, is_snrm
from host_tools import vend
from host_tools.client import DlmsClient
from host_tools.firmware_src import ROOT
from protocol import hdlc_client as hdlc

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]

PASSWORD = "12345678"
EPOCH = 1767225600                 # rig RTC at boot: 2026-01-01 00:00 UTC
RATE = 650                         # paise/kWh: the rig's tariff
GATEWAY, CREDIT = "0.0.19.40.0.255", "0.0.19.10.0.255"
AMOUNTS = (10, 20, 40)             # 0.1 kWh each: 1.0, 2.0 and 4.0 kWh


@pytest.fixture
def sts_rig(rig_factory):
    r = rig_factory(config={"sts": identity.sts_config(), "tariff_paise_per_kwh": RATE}, start=False)
    identity.install_tables(r.state_dir)
    r.start()
    return r


def tokens():
    return [vend.vend_token(identity.decoder_key(), algorithm="ea07", tables=str(identity.TABLES),
                            base_date=identity.BASE_DATE, amount=a, issued=EPOCH + 60 * (n + 1), rnd=3)["token"]
            for n, a in enumerate(AMOUNTS)]


def meter_state(rig):
    """(the gateway's last token, credit paise)."""
    with DlmsClient(rig.port, client_sap=1, password=PASSWORD) as c:
        last = c.get(115, GATEWAY, 2)[1]
        return (bytes(last).decode() if last else None), c.get(112, CREDIT, 2)[1]


def signalling(pred):
    """``pred`` for ``LineCut.arm`` that also sets the returned Event when it fires."""
    fired = threading.Event()

    def trigger(frame):
        if pred(frame):
            fired.set()
            return True
        return False
    return trigger, fired


def get_of_class(cls):
    """A client frame carrying a GET-Request-Normal of an attribute of class ``cls`` (LLS: plain)."""
    head = hdlc.LLC_REQUEST + b"\xc0\x01"
    return lambda f: hdlc.kind(f.ctrl) == hdlc.K_I and f.info[:5] == head and f.info[6:8] == cls.to_bytes(2, "big")


def after_action(pred):
    """The first frame for which ``pred`` is true after an ACTION-Request went by."""
    seen = []

    def match(frame):
        if is_action_request(frame):
            seen.append(1)
            return False
        return bool(seen) and pred(frame)
    return match


def nth(pred, n):
    """The ``n``-th frame for which ``pred`` is true."""
    count = []

    def match(frame):
        if not pred(frame):
            return False
        count.append(1)
        return len(count) == n
    return match


def topup_interrupted(rig, tmp_path, trigger, heal, *extra):
    """Run `meterctl topup` of the three tokens through a LineCut that holds back the meter's
    answer after ``trigger``; SIGINT once it fired -> (exit code, stdout, stderr lines, tokens)."""
    toks = tokens()
    env = dict(os.environ, METERCTL_STATE_DIR=str(tmp_path / "state"), PYTHONPATH=str(ROOT))
    env.pop("METERCTL_PORT", None)
    with LineCut(rig.port) as cut:
        pred, fired = signalling(trigger)
        cut.arm(pred, heal=heal)
        p = subprocess.Popen([sys.executable, "-m", "host_tools.meterctl", "topup", "--port", cut.path, "--password",
                              PASSWORD, "--timeout", "5", *extra, *toks], cwd=str(ROOT), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert fired.wait(60), "the chosen request never went by"
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=90)
        except BaseException:                    # no process left behind, whatever failed
            p.kill()
            p.communicate()
            raise
    assert "Traceback" not in err, err
    return p.returncode, out, [ln for ln in err.splitlines() if ln.strip()], toks


def check_stopped_after_token_1(rig, credit0, code, err, toks, first):
    """Exit 130, one error line, the last one: token 1 ``first``, 2 and 3 not sent; the meter has
    token 1 only."""
    errors = [ln for ln in err if ln.startswith("meterctl: error: ")]
    assert code == 130 and len(errors) == 1 and err[-1] == errors[0], (code, err)
    line = errors[0]
    assert "token 1 of 3 (%s) %s" % (toks[0], first) in line, line
    assert "token 2 of 3 (%s) not sent" % toks[1] in line and "token 3 of 3 (%s) not sent" % toks[2] in line, line
    assert "nothing was sent" not in line, line
    assert meter_state(rig) == (toks[0], credit0 + AMOUNTS[0] * RATE // 10)


def test_ctrl_c_while_token_1_of_3_is_sent_stops_after_checking_it(sts_rig, tmp_path):
    credit0 = meter_state(sts_rig)[1]
    code, out, err, toks = topup_interrupted(sts_rig, tmp_path, is_action_request, is_snrm)
    assert any("interrupted after sending: token 1 of 3 (%s); checked on the meter: applied" % toks[0] in ln
               for ln in err), err
    assert "Token 1 of 3 (%s): accepted" % toks[0] in out and "Token 2" not in out, out
    check_stopped_after_token_1(sts_rig, credit0, code, err, toks, "applied (checked on the meter)")


def test_ctrl_c_during_the_credit_read_after_token_1_stops_there(sts_rig, tmp_path):
    credit0 = meter_state(sts_rig)[1]
    code, out, err, toks = topup_interrupted(sts_rig, tmp_path, after_action(get_of_class(112)), is_snrm)
    assert out == "Token 1 of 3 (%s): accepted: credit ₹%d.%02d -> - (not read after it: Ctrl-C).\n" % (
        toks[0], *divmod(credit0, 100)), out
    check_stopped_after_token_1(sts_rig, credit0, code, err, toks, "applied")


def test_ctrl_c_between_tokens_names_the_tokens_not_sent_and_json_lists_each(sts_rig, tmp_path):
    credit0 = meter_state(sts_rig)[1]
    code, out, err, toks = topup_interrupted(sts_rig, tmp_path, nth(is_snrm, 2), None, "--json")
    check_stopped_after_token_1(sts_rig, credit0, code, err, toks, "applied")
    listed = json.loads(out)
    assert [(o["token"], o["outcome"]) for o in listed] == [
        (toks[0], "applied"), (toks[1], "not sent"), (toks[2], "not sent")], out
    assert listed[0]["credit_after_paise"] == credit0 + AMOUNTS[0] * RATE // 10
