"""STS tokens end to end: vended on the host (DKGA02 + EA07 with the IEC sample tables), entered
over the meter's serial port (IC 115 token gateway), judged by the firmware on MicroPython."""
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from host_tools import vend
from host_tools.client import DlmsClient

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]

ROOT = pathlib.Path(__file__).resolve().parents[2]
TABLES = ROOT / "firmware" / "sts_sample_tables.json"
VK = "abababababababab"            # DKGA02 vending key of the STS 531 examples (test key)
SGC, TI, KRN, KT = "123456", 1, 1, 2
DRN = "01234567890"
OTHER_DRN = "01234567891"
EPOCH = 1767225600                 # rig RTC at boot: 2026-01-01 00:00 UTC
MGMT = dict(client_sap=1, password="12345678")
RATE = 650


def dk(drn=DRN, krn=KRN):
    pan = vend.build_pan("600727", drn)
    return vend.derive_decoder_key(VK, pan, SGC, TI, krn, KT, 2014, "ea07").hex()


def token(amount_01kwh, minutes=0, key=None, rnd=3, **kw):
    r = vend.vend_token(key or dk(), algorithm="ea07", tables=str(TABLES), base_date=2014,
                        amount=amount_01kwh, issued=EPOCH + 60 * minutes, rnd=rnd, **kw)
    return r["token"]


def sts_config(key_hex, **extra):
    c = {"decoder_key": key_hex, "algorithm": "ea07", "tables": "sts_tables.json", "base_date": 2014,
         "krn": KRN, "kt": KT, "ti": TI, "store_size": 50}
    c.update(extra)
    return {"sts": c, "tariff_paise_per_kwh": RATE}


@pytest.fixture
def token_rig(rig_factory):
    def make(meter=None, **extra):
        """A meter with the STS test key; ``extra`` in its sts section, ``meter`` in its config."""
        r = rig_factory(config=dict(sts_config(dk(), **extra), **(meter or {})), start=False)
        shutil.copyfile(TABLES, r.state_dir / "sts_tables.json")
        r.start()
        return r
    return make


def meterctl(*args):
    """Run this checkout's meterctl (``python -m host_tools.meterctl`` from the tree's root, not
    whichever checkout the venv's console script was installed from)."""
    return subprocess.run([sys.executable, "-m", "host_tools.meterctl", *args], capture_output=True,
                          text=True, timeout=60, cwd=str(ROOT))


def enter(rig, digits):
    """Enter a token through IC 115; return (status code, reason, credit paise after)."""
    from protocol import axdr_client as axdr
    with DlmsClient(rig.port, **MGMT) as c:
        res, _ = c.action(115, "0.0.19.40.0.255", 1, axdr.Writer().octet_string(digits.encode()).getvalue())
        assert res == 0
        status = c.get(115, "0.0.19.40.0.255", 6)[1][0][1]
        reason = bytes(c.get(115, "0.0.19.40.0.255", 4)[1][0][1]).decode()
        credit = c.get(112, "0.0.19.10.0.255", 2)[1]
    return status, reason, credit


def test_vended_token_credits_exactly_once_even_after_restart(token_rig):
    rig = token_rig()
    tok = token(100)                                  # 10.0 kWh
    grouped = " ".join(tok[i:i + 4] for i in range(0, 20, 4)).split()
    r = meterctl("topup", "--port", rig.port, "--password", "12345678", *grouped)
    assert r.returncode == 0, r.stderr
    assert "Token accepted" in r.stdout
    paise = 100 * RATE // 10                          # 10 kWh at Rs 6.50 = Rs 65.00
    with DlmsClient(rig.port) as c:
        assert c.get(112, "0.0.19.10.0.255", 2)[1] == paise
    rig.wait_relay(True)
    r = meterctl("topup", "--port", rig.port, "--password", "12345678", tok)
    assert r.returncode == 1 and "USED" in r.stderr, (r.stdout, r.stderr)
    rig.power_cut()
    rig.power_on()
    assert enter(rig, tok) == (6, "used", paise)
    assert enter(rig, token(5, minutes=1)) == (3, "accepted", paise + 5 * RATE // 10)


def test_other_meter_and_mistyped_tokens_are_rejected(token_rig):
    rig = token_rig(lockout_after=10)
    other = token(50, key=dk(OTHER_DRN))
    assert enter(rig, other)[:2] == (5, "crc")        # decrypts to garbage with our key
    good = token(50, minutes=2)
    typo = good[:7] + str((int(good[7]) + 1) % 10) + good[8:]
    assert enter(rig, typo)[:2] in ((5, "crc"), (4, "format"))
    assert enter(rig, "1234")[:2] == (4, "format")
    assert enter(rig, good) == (3, "accepted", 50 * RATE // 10)


def test_key_change_pair_switches_keys(token_rig):
    rig = token_rig()
    new_key = dk(krn=2)
    pair = vend.key_change_tokens(dk(), new_key, 2, KT, TI, ken=255, ro=0, sgc=SGC, algorithm="ea07",
                                  tables=str(TABLES))
    assert len(pair) == 2
    assert enter(rig, pair[0]["token"])[:2] == (2, "key_change_pending")
    assert enter(rig, pair[1]["token"])[:2] == (3, "accepted")
    assert enter(rig, token(10, minutes=5))[:2] == (5, "crc")           # old key: rejected
    assert enter(rig, token(10, minutes=6, key=new_key))[:2] == (3, "accepted")
    rig.power_cut()
    rig.power_on()                                                        # the new key is persisted
    assert enter(rig, token(10, minutes=7, key=new_key))[:2] == (3, "accepted")


def test_a_section_of_another_key_change_set_restarts_the_pending_one(token_rig):
    # attack pass (session 14): sections of two un-entered sets combined into a key nobody holds.
    # A second 1st section is another set's: the pending set restarts from it, its window too
    rig = token_rig()
    a, b = dk(krn=2), dk(krn=3)
    sa, sb = ([t["token"] for t in vend.key_change_tokens(dk(), k, krn, KT, TI, ken=255, ro=0, sgc=SGC,
                                                            algorithm="ea07", tables=str(TABLES))]
              for k, krn in ((a, 2), (b, 3)))
    assert enter(rig, sa[0])[:2] == (2, "key_change_pending")
    rig.set_clock(rig.clock + 80)
    n = len(rig.events)
    assert enter(rig, sb[0])[:2] == (2, "key_change_restarted")     # a's 1st dropped
    assert rig.wait_event("51", start=n)[1] == "token rejected: key_change_restarted"
    rig.set_clock(rig.clock + 70)            # 150 s after a's 1st, 70 after b's: in b's window
    assert enter(rig, sb[1])[:2] == (3, "accepted")
    assert enter(rig, token(10, minutes=5, key=b))[:2] == (3, "accepted")     # b's key, whole


def test_wrong_entry_lockout_engages_and_releases(token_rig):
    rig = token_rig(lockout_after=3, lockout_base_s=10)
    for _ in range(3):
        assert enter(rig, "0" * 20)[0] in (4, 5)
    good = token(20, minutes=3)
    assert enter(rig, good)[:2] == (6, "locked_out: wait 10 s")  # IC 115 description says how long
    rig.set_clock(rig.clock + 11)
    assert enter(rig, good)[:2] == (3, "accepted")


def enter_many(rig, tokens):
    """Enter tokens in one management association -> list of (status, reason)."""
    from protocol import axdr_client as axdr
    out = []
    with DlmsClient(rig.port, **MGMT) as c:
        for digits in tokens:
            c.action(115, "0.0.19.40.0.255", 1, axdr.Writer().octet_string(digits.encode()).getvalue())
            out.append((c.get(115, "0.0.19.40.0.255", 6)[1][0][1],
                        bytes(c.get(115, "0.0.19.40.0.255", 4)[1][0][1]).decode()))
    return out


def test_parallel_vends_are_all_accepted_by_the_meter(token_rig, tmp_path):
    """8 processes x 200 vends + 2 interleaved 100-row batches for this meter (issue 14): every
    TID distinct; this meter's 900 tokens, entered in TID order, are all accepted."""
    from parallel_vend import parallel_vend
    found = parallel_vend(tmp_path)                       # half for this meter, half for another
    ours = sorted(found[DRN])
    assert len(ours) == 4 * 200 + 100 and len({t for t, _ in ours}) == len(ours)
    sample = ours
    rig = token_rig(lockout_after=0)
    results = enter_many(rig, [tok for _, tok in sample])
    assert results == [(3, "accepted")] * len(sample)
    with DlmsClient(rig.port) as c:
        credit = c.get(112, "0.0.19.10.0.255", 2)[1]
    amounts = [vend.decode_token(tok, dk(), base_date=2014)["amount"] for _, tok in sample]
    assert credit == sum(-((-a * RATE) // 10) for a in amounts)


@pytest.mark.parametrize("alg", ["ea07", "ea11"])
def test_base_date_2035_tokens_round_trip(rig_factory, alg):
    """Base date 2035 (IEC 62055-41:2014): vended by meterctl, accepted by a meter on base 2035;
    EA07 with a DKGA02 key, EA11 with a DKGA04 key (the base date is in its label)."""
    vk = VK if alg == "ea07" else "ab" * 16
    pan = vend.build_pan("600727", DRN)
    key = vend.derive_decoder_key(vk, pan, SGC, TI, KRN, KT, 2035, alg).hex()
    cfg = sts_config(key, base_date=2035, algorithm=alg)
    if alg == "ea11":
        cfg["sts"].pop("tables")
    rig = rig_factory(config=cfg, start=False)
    shutil.copyfile(TABLES, rig.state_dir / "sts_tables.json")
    rig.start()
    r = meterctl("vend", "--vending-key", vk, "--drn", DRN, "--sgc", SGC, "--algorithm", alg,
                 "--base-date", "2035", "--issued", "2035-03-01T12:00", "--amount", "4.0", "--json")
    assert r.returncode == 0, r.stderr
    tok = json.loads(r.stdout)
    d = meterctl("token", "decode", "--key", key, "--base-date", "2035", tok["token"])
    assert "2035-03-01 12:00" in d.stdout, d.stdout
    assert enter(rig, tok["token"]) == (3, "accepted", 40 * RATE // 10)


TEST_TOKEN = "56493153725450313471"    # class 1 InitiateMeterTest (IEC 62055-41 sample, VECTORS.md)


def test_test_tokens_do_not_flush_the_transaction_log(token_rig):
    # attack pass (session 12): 52 entries of the published test token, each a journaled code-50
    # record in the transaction ring (50 records), left it with test tokens only: the top-up gone.
    # A test token changes nothing: code 80 in the "other" ring, not journaled, repeats coalesced.
    rig = token_rig()
    assert enter(rig, token(50))[:2] == (3, "accepted")
    with DlmsClient(rig.port, **MGMT) as c:
        used = c.get(7, "0.0.99.98.3.255", 7)[1]
    n0 = len(rig.events)
    for _ in range(3):
        assert enter(rig, TEST_TOKEN)[:2] == (3, "accepted")
    rig.wait_event("80", timeout=5)
    with DlmsClient(rig.port, **MGMT) as c:
        assert c.get(7, "0.0.99.98.3.255", 7)[1] == used     # no transaction record added
    assert "50" not in [e[0] for e in rig.events[n0:]]


def test_topup_json_has_the_token_keys_whether_accepted_or_refused(token_rig):
    # new-user pass (session 12): a refused token's --json had none of the accepted one's keys
    rig = token_rig(lockout_after=10)
    keys = {"token", "accepted", "status", "status_text", "reason", "detail", "credit_before_paise",
            "credit_after_paise", "outcome"}
    ok = meterctl("topup", "--port", rig.port, "--password", "12345678", "--json", token(50))
    assert ok.returncode == 0, ok.stderr
    bad = meterctl("topup", "--port", rig.port, "--password", "12345678", "--json", token(50, key=dk(OTHER_DRN)))
    assert bad.returncode == 1, bad.stderr
    a, b = json.loads(ok.stdout), json.loads(bad.stdout)
    assert keys <= set(a) and keys <= set(b)
    assert (a["accepted"], b["accepted"]) == (True, False) and (a["reason"], b["reason"]) == ("accepted", "crc")
    assert b["outcome"] == "not applied" and b["credit_before_paise"] == a["credit_after_paise"]


LIMITER = {"mpl_w": 3000, "trip_s": 10, "reclose_s": 60, "lockout_trips": 3, "window_s": 3600}


def test_topup_says_what_a_management_token_changed(token_rig):
    # new-user pass (session 13): an MPL token reported "Credit: ₹0.00 -> ₹0.00", nothing else
    rig = token_rig(meter={"limiter": LIMITER, "credit_paise": 5000})
    mpl = token(4500, minutes=1, token_class=2, subclass=0)
    r = meterctl("topup", "--port", rig.port, "--password", "12345678", mpl)
    assert r.returncode == 0 and "Max power limit set to 4500 W (was 3000 W)." in r.stdout, (r.stdout, r.stderr)
    rate = token(None, minutes=2, token_class=2, subclass=2, value=720)
    r = meterctl("topup", "--port", rig.port, "--password", "12345678", "--json", rate)
    out = json.loads(r.stdout)
    assert r.returncode == 0 and "tariff rate set to 720 paise/kWh (was 650)" in out["effect"], r.stdout
    assert (out["token_class"], out["rate_before_paise_per_kwh"], out["rate_after_paise_per_kwh"]) == (2, 650, 720)
    assert (out["mpl_before_w"], out["mpl_after_w"]) == (4500, 4500)
    clear = token(None, minutes=3, token_class=2, subclass=1, value=0xFFFF)
    r = meterctl("topup", "--port", rig.port, "--password", "12345678", clear)
    assert r.returncode == 0 and "Credit cleared (was ₹50.00)." in r.stdout, r.stdout
    test = vend.vend_token(token_class=1, control=2)["token"]            # display test: no key
    r = meterctl("topup", "--port", rig.port, "--password", "12345678", test)
    assert r.returncode == 0 and "Test token (class 1): display; nothing changes" in r.stdout, r.stdout


def test_topup_enters_a_key_change_pair_in_turn_and_stops_at_a_refusal(token_rig):
    # new-user pass (session 13): the two tokens of a pair were joined into one 40-digit "token"
    rig = token_rig()
    new_key = dk(krn=2)
    pair = [t["token"] for t in vend.key_change_tokens(dk(), new_key, 2, KT, TI, ken=255, ro=0, sgc=SGC,
                                                        algorithm="ea07", tables=str(TABLES))]
    r = meterctl("topup", "--port", rig.port, "--password", "12345678", *pair)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 2, (r.stdout, r.stderr)
    assert lines[0] == "Token 1 of 2 (%s): key-change accepted: enter the next section (key change)." % pair[0]
    assert lines[1].startswith("Token 2 of 2 (%s): accepted: key change complete" % pair[1])
    good, used = token(10, minutes=5, key=new_key), token(20, minutes=6, key=new_key)
    assert enter(rig, used)[:2] == (3, "accepted")
    r = meterctl("topup", "--port", rig.port, "--password", "12345678", "--json", good, used, token(30, minutes=7, key=new_key))
    out = json.loads(r.stdout)
    assert r.returncode == 1 and [o["outcome"] for o in out] == ["applied", "not applied"], r.stdout
    assert "token 2 of 3 (%s): token rejected: USED" % used in r.stderr, r.stderr


def test_topup_on_an_energy_unit_meter_shows_kwh(rig_factory):
    # attack pass (session 13): topup showed a 0.1 kWh register (config credit_unit 1) as rupees
    rig = rig_factory(config=dict(sts_config(dk()), credit_unit=1), start=False)
    shutil.copyfile(TABLES, rig.state_dir / "sts_tables.json")
    rig.start()
    r = meterctl("topup", "--port", rig.port, "--password", "12345678", token(50))
    assert r.returncode == 0, r.stderr
    assert "Credit: 0.0 kWh -> 5.0 kWh" in r.stdout and "₹" not in r.stdout, r.stdout
    r = meterctl("topup", "--port", rig.port, "--password", "12345678", "--json", token(30, minutes=1))
    j = json.loads(r.stdout)
    assert (j["credit_unit"], j["credit_before"], j["credit_after"], j["credit_after_paise"]) == (
        "0.1 kWh", 50, 80, None), r.stdout
