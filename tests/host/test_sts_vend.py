"""Host-side STS vending (host_tools/vend.py, host_tools/dkga.py, host_tools/meterctl/vend.py and token.py), CPython only.

Vectors: shared/reference/sts/VECTORS.md (DKGA02 CTSA01 inputs, DKGA04+MISTY1
CTSA01 step 1, IEC sample-table EA07 example, class-1 test token). Round trips use
hypothesis over every class/subclass and both algorithms, and the meter's own acceptor.
"""
import csv
import pathlib
import json

import click
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from host_tools import vend as V
from host_tools.meterctl.token import token
from host_tools.meterctl.vend import vend
from meter.tokens import TokenAcceptor
from acceptor_state import key_info, tids
from protocol import sts

VK02 = "abababababababab"
VK04 = "abababababababab949494949494949401234567"
PAN = "600727000000000009"


def test_pan_and_luhn():
    assert V.build_pan("600727", "00000000000") == PAN
    assert V.luhn_digit("7992739871") == "3"          # the ISO/IEC 7812 textbook example
    assert V.check_pan(PAN) == PAN
    with pytest.raises(V.VendError):
        V.check_pan("600727000000000008")
    with pytest.raises(V.VendError):
        V.build_pan("600727", "123")


def test_dkga02_vector():
    dk = V.dkga02(VK02, PAN, "123456", 1, 1, 2)
    assert dk.hex() == "e653341f9d5bf36f"
    # Nectar's byte-reversed spelling of the same key
    assert dk[::-1].hex() == "6ff35b9d1f3453e6"


def test_dkga04_message_and_vector():
    msg = V.dkga04_message(PAN, "123457", 1, 1, 2, 1993, "ea11")
    assert msg.hex() == ("0402303402393302313102303100040631323334353701320131"
                         "1236303037323730303030303030303030303900000080")
    assert V.dkga04(VK04, PAN, "123457", 1, 1, 2, 1993, "ea11").hex() == \
        "f94b6ed353c3bfdb113e2d3a7ea3c41d"
    # STA flavour: L = 0x40 and 8 bytes
    assert V.dkga04_message(PAN, "123457", 1, 1, 2, 1993, "ea07")[-4:] == b"\x00\x00\x00\x40"
    assert len(V.dkga04(VK04, PAN, "123457", 1, 1, 2, 1993, "ea07")) == 8


def test_vend_reproduces_published_tokens():
    r = V.vend_token("0ABC12DEF3456789", amount=256, tid=0x19EB23, rnd=0xB)
    assert (r["data_block"], r["encrypted_block"], r["token"]) == \
        ("0B19EB230100C207", "C45ED1619406DF95", "51043465443420856213")
    assert r["token66"] == "0x2C45ED1618406DF95"
    r = V.vend_token(vending_key=VK04, pan=PAN, sgc="123457", ti=1, krn=1, kt=2,
                     algorithm="ea11", amount=1, issued="2004-03-01T13:00", rnd=5)
    assert r["decoder_key"] == "F94B6ED353C3BFDB113E2D3A7EA3C41D"
    assert (r["data_block"], r["token"], r["tid"]) == \
        ("0559982C00012831", "59386323472137426967", 0x59982C)
    r = V.vend_token(token_class=1, subclass=0)
    assert r["data_block"] == "0FFFFFFFFF005EFF" and r["token"] == "56493153725450313471"


# -- hypothesis round trips ----------------------------------------------------------

KEYS = {"ea07": bytes.fromhex("0ABC12DEF3456789"),
        "ea11": bytes.fromhex("f94b6ed353c3bfdb113e2d3a7ea3c41d")}
DATA_SUBS = [(0, s) for s in range(4)] + [(2, s) for s in (0, 1, 2, 5, 6, 7)]


@settings(max_examples=150, deadline=None)
@given(alg=st.sampled_from(["ea07", "ea11"]), cs=st.sampled_from(DATA_SUBS),
       tid=st.integers(0, 0xFFFFFF), rnd=st.integers(0, 15), raw=st.integers(0, 0xFFFF),
       amount=st.integers(0, sts.AMOUNT_MAX))
def test_roundtrip_data_tokens(alg, cs, tid, rnd, raw, amount):
    cls, sub = cs
    coded = cls == 0 or sub in (0, 6)
    kw = {"amount": amount} if coded else {"value": raw}
    r = V.vend_token(KEYS[alg], algorithm=alg, token_class=cls, subclass=sub, tid=tid, rnd=rnd, **kw)
    d = V.decode_token(r["token"], KEYS[alg].hex())
    assert d["crc_ok"] and (d["class"], d["subclass"], d["tid"], d["rnd"]) == (cls, sub, tid, rnd)
    if coded:
        assert d["amount"] >= amount and d["amount"] == r["amount"]
    else:
        assert d["value"] == raw
    # and the meter accepts it exactly once
    meter = TokenAcceptor(KEYS[alg], alg, V.get_tables() if alg == "ea07" else None,
                          credit_subclasses=tuple(range(8)))
    res = meter.enter(r["token"], 0)
    assert res.ok and res.tid == tid and res.subclass == sub
    if cls == 0:
        assert res.action == "credit" and res.amount == d["amount"]
    assert meter.enter(r["token"], 0).reason == "used"


@settings(max_examples=40, deadline=None)
@given(sub=st.integers(0, 1), control=st.integers(0, (1 << 28) - 1), mfr=st.integers(0, 255))
def test_roundtrip_class1(sub, control, mfr):
    r = V.vend_token(token_class=1, subclass=sub, control=control, mfr_code=mfr)
    d = V.decode_token(r["token"])
    assert d["crc_ok"] and (d["control"], d["mfr_code"]) == (control, mfr)
    res = TokenAcceptor(KEYS["ea07"], "ea07", V.get_tables()).enter(r["token"], 0)
    assert res.ok and res.action == "test" and res.value == control and res.amount == 0


@settings(max_examples=30, deadline=None)
@given(alg=st.sampled_from(["ea07", "ea11"]), new=st.binary(min_size=16, max_size=16),
       krn=st.integers(1, 15), kt=st.integers(0, 3), ti=st.integers(0, 99),
       ken=st.integers(0, 255), ro=st.integers(0, 1))
def test_roundtrip_key_change(alg, new, krn, kt, ti, ken, ro):
    new = new[:8] if alg == "ea07" else new
    toks = V.key_change_tokens(KEYS[alg], new, krn, kt, ti, ken=ken, ro=ro, sgc="123457",
                               algorithm=alg)
    assert [t["subclass"] for t in toks] == ([3, 4] if alg == "ea07" else [3, 4, 8, 9])
    for t in toks:
        d = V.decode_token(t["token"], KEYS[alg].hex())
        assert d["crc_ok"] and d["layout"].startswith("key")
    meter = TokenAcceptor(KEYS[alg], alg, V.get_tables() if alg == "ea07" else None)
    meter.enter(V.vend_token(KEYS[alg], algorithm=alg, amount=5, tid=9, rnd=0)["token"], 0)
    for t in toks[:-1]:
        assert meter.enter(t["token"], 1).reason == "key_change_pending"
    res = meter.enter(toks[-1]["token"], 2)
    assert res.ok and res.action == "key_change"
    info = key_info(meter)
    assert (info["krn"], info["kt"], info["ti"], info["ken"]) == (krn, kt, ti, ken)
    assert tids(meter) == ([] if ro else [9])
    after = V.vend_token(new, algorithm=alg, amount=5, tid=10, rnd=0)["token"]
    assert meter.enter(after, 3).ok


def test_vend_errors():
    with pytest.raises(V.VendError):
        V.vend_token("0ABC12DEF3456789", amount=sts.AMOUNT_MAX + 1, tid=1)
    with pytest.raises(V.VendError):
        V.vend_token("0ABC12DEF3456789", amount=1, issued="1990-01-01T00:00")
    with pytest.raises(V.VendError):
        V.vend_token("0ABC12DEF3456789", token_class=2, subclass=2, amount=5, tid=1)
    with pytest.raises(V.VendError):
        V.vend_token("0ABC12DEF3456789", token_class=2, subclass=3, tid=1)
    with pytest.raises(V.VendError):
        V.derive_decoder_key(VK02, PAN, "123456", 1, 1, 2, algorithm="ea11", dkga=2)
    with pytest.raises(V.VendError):
        V.decode_token("51043465443420856213")       # class 0 needs a key
    assert V.parse_amount("25.6") == 256 and V.parse_amount("10") == 100
    for bad in ("-1", "1.25", "abc", ""):
        with pytest.raises(V.VendError):
            V.parse_amount(bad)


# -- CLI -------------------------------------------------------------------------------

@click.group()
def cli():
    pass


cli.add_command(vend)
cli.add_command(token)


def _run(*args):
    return CliRunner().invoke(cli, list(args))


def test_cli_vend_json_iec_example():
    r = _run("vend", "--decoder-key", "0ABC12DEF3456789", "--amount", "25.6",
             "--tid", "0x19EB23", "--rnd", "11", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["decoder_key"] == "0ABC12DEF3456789"
    assert out["data_block"] == "0B19EB230100C207"
    assert out["token"] == "51043465443420856213"


def test_cli_vend_json_dkga04_ea11():
    r = _run("vend", "--vending-key", VK04, "--pan", PAN, "--sgc", "123457", "--ti", "1",
             "--krn", "1", "--kt", "2", "--base-date", "1993", "--algorithm", "ea11", "--amount", "0.1",
             "--issued", "2004-03-01T13:00", "--rnd", "5", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["decoder_key"] == "F94B6ED353C3BFDB113E2D3A7EA3C41D"
    assert out["data_block"] == "0559982C00012831"
    assert out["token"] == "59386323472137426967"


def test_cli_vend_dkga02_iin_drn():
    r = _run("vend", "--vending-key", VK02, "--iin", "600727", "--drn", "00000000000",
             "--sgc", "123456", "--ti", "1", "--krn", "1", "--kt", "2", "--amount", "1",
             "--tid", "100", "--rnd", "0", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["decoder_key"] == "E653341F9D5BF36F"


def test_cli_vend_class1_and_key_change():
    r = _run("vend", "--class", "1")
    assert r.exit_code == 0 and r.output.splitlines()[0] == "5649 3153 7254 5031 3471"
    r = _run("vend", "--decoder-key", "0ABC12DEF3456789", "--key-change",
             "--new-decoder-key", "1122334455667788", "--new-krn", "2", "--json")
    assert r.exit_code == 0, r.output
    toks = json.loads(r.output)["tokens"]
    meter = TokenAcceptor(KEYS["ea07"], "ea07", V.get_tables())
    assert meter.enter(toks[0]["token"], 0).reason == "key_change_pending"
    assert meter.enter(toks[1]["token"], 1).action == "key_change"


def test_cli_token_decode():
    r = _run("token", "decode", "--key", "0ABC12DEF3456789", "--base-date", "1993",
             "5104", "3465", "4434", "2085", "6213")
    assert r.exit_code == 0, r.output
    assert "1996-03-25 13:55" in r.output and "25.6 kWh" in r.output and "CRC        ok" in r.output
    r = _run("token", "decode", "--key", "f94b6ed353c3bfdb113e2d3a7ea3c41d", "59386323472137426967", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["tid"] == 0x59982C
    r = _run("token", "decode", "--key", "0ABC12DEF3456788", "51043465443420856213")
    assert r.exit_code == 1 and "CRC" in r.output


@pytest.mark.parametrize("args", [
    ("vend", "--decoder-key", "zz", "--amount", "1"),
    ("vend", "--decoder-key", "0ABC12DEF3456789", "--amount", "1.25"),
    ("vend", "--decoder-key", "0ABC12DEF3456789", "--amount", "99999999"),
    ("vend", "--amount", "1"),
    ("vend", "--vending-key", VK02, "--pan", "600727000000000008", "--amount", "1"),
    ("token", "decode", "--key", "0ABC12DEF3456789", "123"),
    ("token", "decode", "51043465443420856213"),
])
def test_cli_errors_one_line(args):
    r = _run(*args)
    assert r.exit_code == 2, (r.exit_code, r.output)       # bad input: usage error
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("meterctl: error:"), r.output
    assert "Traceback" not in r.output


def test_csv_batch(tmp_path):
    src = tmp_path / "in.csv"
    rows = [{"drn": "%011d" % i, "amount": "%d.5" % i, "tid": str(1000 + i)} for i in range(25)]
    with open(src, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["drn", "amount", "tid"])
        w.writeheader()
        w.writerows(rows)
    seen = []
    n = V.vend_csv(str(src), str(tmp_path / "out.csv"),
                   {"vending_key": VK02, "sgc": "123456", "ti": "1", "krn": "1", "kt": "2",
                    "iin": "600727", "rnd": "3"}, lambda d, t: seen.append((d, t)))
    assert n == 25 and seen[-1] == (25, 25) and len(seen) == 25
    out = list(csv.DictReader(open(tmp_path / "out.csv")))
    for i, row in enumerate(out):
        assert row["drn"] == "%011d" % i
        groups = row["token"].split(" ")
        assert [len(g) for g in groups] == [4, 4, 4, 4, 4]
        dk = V.dkga02(VK02, V.build_pan("600727", row["drn"]), "123456", 1, 1, 2)
        d = V.decode_token(row["token"], dk.hex())
        assert d["crc_ok"] and d["tid"] == 1000 + i and d["amount"] == i * 10 + 5


def test_cli_csv_batch(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("pan,amount\n%s,10\n%s,2.5\n" % (PAN, PAN))
    r = _run("vend", "--vending-key", VK02, "--csv", str(src), "--out", str(tmp_path / "o.csv"),
             "--issued", "2020-01-01T00:00")
    assert r.exit_code == 0, r.output
    assert "2 tokens" in r.output
    out = list(csv.DictReader(open(tmp_path / "o.csv")))
    assert len(out) == 2 and out[0]["token"] != out[1]["token"]
    # same meter, same issue minute: consecutive TIDs, so the meter takes both
    assert int(out[1]["tid"]) == int(out[0]["tid"]) + 1
    meter = TokenAcceptor(V.dkga02(VK02, PAN, "123456", 1, 1, 2), "ea07", V.get_tables())
    got = [meter.enter(row["token"], 0) for row in out]
    assert [g.amount for g in got] == [100, 25] and all(g.ok for g in got)
    bad = tmp_path / "bad.csv"
    bad.write_text("pan,amount\n%s,abc\n" % PAN)
    r = _run("vend", "--vending-key", VK02, "--csv", str(bad), "--out", str(tmp_path / "x.csv"))
    assert r.exit_code == 2 and "row 2" in r.output


# -- EA07: independent bit-level model vs the fused-table implementation ----------------

# The IEC 62055-41 sample tables with the round-by-round example trace, as given in
# shared/reference/sts/ea07_sample_tables.json (copied byte for byte into tests/data/sts).
REF_TABLES = str(pathlib.Path(__file__).resolve().parents[1] / "data" / "sts" / "ea07_reference_tables.json")


def _ref_rounds(dk, block, t):
    """Plain reading of the EA07 conventions (sub -> scatter perm -> rol 1), per round."""
    sub1, sub2, perm = sts.ea07_tables(t)
    m = (1 << 64) - 1
    k = ((~dk & m) >> 12 | (~dk & m) << 52) & m
    out = []
    for _ in range(16):
        s = 0
        for i in range(16):
            v = (block >> 4 * i) & 15
            tab = sub2 if (k >> (4 * i + 3)) & 1 else sub1
            s |= tab[v] << 4 * i
        p = 0
        for j in range(64):
            p |= ((s >> j) & 1) << perm[j]
        out.append((k, s, p))
        block = p
        k = ((k << 1) | (k >> 63)) & m
    return out


def test_ea07_matches_reference_trace_and_bit_model():
    from protocol.sts import Ea07
    t = V.get_tables()
    ref = json.load(open(REF_TABLES))
    rt = V.get_tables(REF_TABLES)
    assert sts.ea07_tables(rt) == sts.ea07_tables(t)
    rounds = _ref_rounds(0x0ABC12DEF3456789, 0x0B19EB230100C207, t)
    assert len(ref["example_trace_encrypt"]) == 16
    for (k, s, p), tr in zip(rounds, ref["example_trace_encrypt"]):
        assert "%016X" % k == tr["round_key"]
        assert "%016X" % s == tr["after_substitution"]
        assert "%016X" % p == tr["after_permutation"]
    x = 0x0123456789ABCDEF
    for _ in range(50):
        x = (x * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)
        dk = x ^ 0x5A5A5A5AA5A5A5A5
        c = Ea07(dk, t)
        assert c.encrypt_block(x) == _ref_rounds(dk, x, t)[-1][2]
        assert c.decrypt_block(c.encrypt_block(x)) == x


def test_meter_class2_tables_match_the_subclass_numbers():
    """meter.tokres keys the class 2 actions by number (one str of words, no dict on the board; the
    acceptor and the credit path read it): word n is protocol.sts's SUB_* n; the key sections are
    the layouts "key1".."key4"."""
    from meter import tokres as T
    from protocol import sts as S
    words = T.CLASS2_ACTIONS.split()
    assert {n: words[n] for n in range(len(words)) if words[n] != "-"} == {
        S.SUB_MPL: "mpl", S.SUB_CLEAR_CREDIT: "clear_credit", S.SUB_TARIFF_RATE: "tariff",
        S.SUB_CLEAR_TAMPER: "clear_tamper", S.SUB_PHASE_UNBALANCE: "phase_unbalance",
        S.SUB_WATER_FACTOR: "water_factor"}
    assert [words[n] for n in (S.SUB_KEY_1, S.SUB_KEY_2)] == ["-", "-"] and len(words) <= S.SUB_KEY_3
    assert [S.layout_of(2, n) for n in (S.SUB_KEY_1, S.SUB_KEY_2, S.SUB_KEY_3, S.SUB_KEY_4)] == [
        "key1", "key2", "key3", "key4"]
