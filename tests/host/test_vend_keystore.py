"""``meterctl vend --meter SERIAL [--keystore FILE]``: a flashed meter's STS identity (a random
decoder key, DRN, TI, KRN, KT, base date) comes from the keystore entry ``meterctl flash`` wrote;
an unknown serial is one ``meterctl: error:`` line. ``--key-change --ken N`` below the current
TID >> 16 is refused unless ``--force`` (new-user pass, session 13: the key made every later
token "key_expired")."""
import json

import click
import pytest
from click.testing import CliRunner

from host_tools import keystore as ks
from host_tools import vend as V
from host_tools.meterctl.vend import vend
from meter.tokens import TokenAcceptor
from protocol import sts

SERIAL = "PPM0000042"
ISSUED = "2026-06-01T00:00"


@click.group()
def cli():
    pass


cli.add_command(vend)


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path / "state"))   # vend's TID memory
    monkeypatch.delenv("METERCTL_KEYSTORE", raising=False)


def run(*args):
    return CliRunner().invoke(cli, ["vend"] + [str(a) for a in args])


def lab_keystore(tmp_path, vending_key=None, **rec):
    """A keystore as ``meterctl flash --serial SERIAL`` leaves it (a random decoder key unless the
    defaults hold a vending key); ``rec`` overrides fields of the meter's record."""
    store = {"format": 1, "defaults": {"sgc": 123456, "iin": "600727"}, "meters": {}}
    if vending_key:
        store["defaults"]["vending_key"] = vending_key
    r, _ = ks.meter_record(store, SERIAL, ti=3, krn=2)
    r.update(rec)
    path = tmp_path / "lab.keystore"
    ks.save(path, store)
    return path, r


def test_vend_for_a_flashed_meter_takes_its_keystore_entry(tmp_path):
    path, rec = lab_keystore(tmp_path, base_date=2014)
    assert rec["key_source"] == "generated"        # no vending key: nothing to derive it from
    r = run("--meter", SERIAL, "--keystore", path, "--amount", "10.0", "--issued", ISSUED, "--json")
    assert r.exit_code == 0, r.output
    tok = json.loads(r.output)
    tid = sts.tid_from_unix(V.parse_issued(ISSUED), 2014)
    assert tok["tid"] == tid and tok["decoder_key"].lower() == rec["decoder_key"]
    assert tok["pan"] == V.build_pan("600727", rec["drn"])
    meter = TokenAcceptor(bytes.fromhex(rec["decoder_key"]), "ea07", V.get_tables())
    res = meter.enter(tok["token"], 0)
    assert res.ok and res.action == "credit" and res.amount == 100, res.reason
    # the same token as the record's fields given by hand (its TID again: --force, session 15)
    by_hand = run("--decoder-key", rec["decoder_key"], "--tid", tid, "--rnd", tok["rnd"],
                  "--amount", "10.0", "--json", "--force")
    assert json.loads(by_hand.output)["token"] == tok["token"]


def test_vend_key_change_from_the_keystore(tmp_path):
    vk = "0123456789abcdef"
    path, rec = lab_keystore(tmp_path, vending_key=vk)
    r = run("--meter", SERIAL, "--keystore", path, "--key-change", "--new-krn", "3", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["decoder_key"].lower() == rec["decoder_key"]
    pan = V.build_pan("600727", rec["drn"])
    expect = V.derive_decoder_key(vk, pan, 123456, 3, 3, 2, 2014, "ea07")      # TI 3, KRN 3, KT 2
    assert out["new_decoder_key"].lower() == expect.hex()


def test_unknown_serial_is_one_error_line(tmp_path):
    path, _ = lab_keystore(tmp_path)
    r = run("--meter", "PPM0000099", "--keystore", path, "--amount", "1")
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("meterctl: error: ") and "PPM0000099" in lines[0]
    assert r.stdout == ""


def test_ken_below_the_current_tid_is_refused_unless_forced():
    vk, drn = "0123456789abcdef", "00000000042"
    high = sts.tid_from_unix(V.parse_issued(ISSUED), 2014) >> 16
    change = ("--vending-key", vk, "--drn", drn, "--key-change", "--new-krn", "3", "--issued", ISSUED,
              "--json")
    r = run(*change, "--ken", high - 1)
    assert r.exit_code == 2 and r.stdout == ""
    assert "current TID >> 16 (%d" % high in r.stderr and "--force" in r.stderr, r.stderr
    # what it prevents: after that key change the meter refuses the next token as key_expired
    for ken, reason in ((high - 1, "key_expired"), (high, None)):
        r = run(*change, "--ken", ken, "--force")
        assert r.exit_code == 0, r.output
        out = json.loads(r.output)
        meter = TokenAcceptor(bytes.fromhex(out["decoder_key"]), "ea07", V.get_tables())
        for i, t in enumerate(out["tokens"]):
            meter.enter(t["token"], i)
        tok = V.vend_token(bytes.fromhex(out["new_decoder_key"]), amount=5, base_date=2014,
                           issued=ISSUED, rnd=0)["token"]
        res = meter.enter(tok, 10)
        assert (res.reason if reason else res.ok) == (reason or True), res.reason
    assert run(*change, "--ken", high).exit_code == 0
