"""``meterctl vend``: an STS token for one meter, a key-change set, or a CSV batch.

The work is ``host_tools.vend`` (keys via ``host_tools.dkga``); this module reads options and
prints (``meterctl.token`` has the shared printing and errors).
"""
import json
import os
import pathlib
import sys
import tempfile

import click
from click.core import ParameterSource

from host_tools import keystore as ks
from host_tools import vend as V
from host_tools.meterctl import vendcheck
from host_tools.meterctl.common import CONTEXT, EXIT_USAGE, console, fail
from host_tools.meterctl.token import guard, print_token
from protocol import sts

BASE_DATES = ["1993", "2014", "2035"]


def _int(text, name):
    if text is None:
        return None
    try:
        return int(str(text), 0)
    except ValueError:
        raise click.BadParameter("%r is not an integer" % text, param_hint=name) from None


def _key_options(f):
    opts = [
        click.option("--vending-key", metavar="HEX", help="Vending key (8 bytes: DKGA02; longer: DKGA04)."),
        click.option("--decoder-key", metavar="HEX", help="Use this decoder key instead of deriving one."),
        click.option("--pan", metavar="DIGITS", help="18-digit meter PAN (IIN + DRN + check digit)."),
        click.option("--iin", metavar="DIGITS", default="600727", show_default=True, help="Issuer id (with --drn)."),
        click.option("--drn", metavar="DIGITS", help="Decoder reference number (11 digits for a 6-digit IIN)."),
        click.option("--sgc", metavar="DIGITS", default="123456", show_default=True, help="Supply group code."),
        click.option("--ti", type=click.IntRange(0, 99), default=1, show_default=True, help="Tariff index."),
        click.option("--krn", type=click.IntRange(1, 15), default=1, show_default=True, help="Key revision number."),
        click.option("--kt", type=click.IntRange(0, 3), default=2, show_default=True, help="Key type (2 = DUTK)."),
        click.option("--dkga", type=click.Choice(["2", "4"]), default=None, help="Key derivation (default by key size)."),
        click.option("--base-date", type=click.Choice(BASE_DATES), default="2014", show_default=True,
                     help="TID base date (IEC 62055-41 defines 1993, 2014, 2035). 1993 TIDs ran out on "
                          "2024-11-24 (the STS TID rollover): meters re-keyed for STS edition 2 use 2014; "
                          "2035 TIDs start on 2035-01-01 (DKGA04 keys carry it)."),
        click.option("--algorithm", type=click.Choice(["ea07", "ea11"]), default="ea07", show_default=True,
                     help="Encryption: EA07 (STA, table-driven) or EA11 (MISTY1, 128-bit key)."),
        click.option("--tables", type=click.Path(dir_okay=False), default=None,
                     help="EA07 tables JSON (default: the IEC sample tables)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _decoder_key(kw, pan=None, vending_key=None, sgc=None, ti=None, krn=None, kt=None, base=None):
    if kw["decoder_key"] and vending_key is None:
        return V.parse_key(kw["decoder_key"], (8, 16), "decoder key")
    vk = vending_key or kw["vending_key"]
    if not vk:
        raise V.VendError("give --vending-key (with --pan or --drn) or --decoder-key")
    if pan is None:
        pan = kw["pan"] or (V.build_pan(kw["iin"], kw["drn"]) if kw["drn"] else None)
    if pan is None:
        raise V.VendError("give --pan, or --drn (and --iin)")
    return V.derive_decoder_key(vk, pan, sgc or kw["sgc"], kw["ti"] if ti is None else ti,
                                krn or kw["krn"], kw["kt"] if kt is None else kt,
                                int(base or kw["base_date"]), kw["algorithm"],
                                int(kw["dkga"]) if kw["dkga"] else None), pan


@click.command("vend", context_settings=CONTEXT)
@_key_options
@click.option("--class", "token_class", type=click.IntRange(0, 2), default=0, show_default=True,
              help="0 credit, 1 meter test/display (not encrypted), 2 management.")
@click.option("--subclass", type=click.IntRange(0, 15), default=0, show_default=True,
              help="Class 0: 0 electricity (0.1 kWh), 1 water, 2 gas (0.1 m3), 3 time (0.1 min); "
                   "4-7 currency: not implemented (refused). Class 2: 0 max power limit, 1 clear "
                   "credit, 2 tariff rate, 5 clear tamper.")
@click.option("--amount", metavar="N", help="Class 0: kWh/units (one decimal); class 2 subclass 0 (max "
              "power limit) and 6 (phase unbalance limit): watts.")
@click.option("--value", metavar="INT", help="Raw 16-bit value. Class 2 subclass 1 clear credit: the "
              "register (65535 = all; this meter clears its one credit register whatever the number); "
              "2 tariff rate: paise per kWh (this meter charges it from then on); 5 clear tamper: "
              "ignored (0); 7 water factor: the raw factor. Subclasses 0 and 6 take --amount (W).")
@click.option("--control", metavar="INT", help="Class 1 control bits (default: all tests).")
@click.option("--mfr-code", metavar="INT", default="0", show_default=True, help="Class 1 manufacturer code.")
@click.option("--tid", metavar="INT", help="Token identifier (minutes since the base date), used as given. "
              "A meter takes each TID once: without --tid, vend steps past the last TID vended for "
              "this meter by any vend or batch (a locked store in $METERCTL_STATE_DIR or "
              "~/.local/state/meterctl).")
@click.option("--issued", metavar="ISO", help="Issue time, e.g. 2004-03-01T13:00 (UTC; default now); the TID "
              "is its minute or, if that was vended already, the next free one.")
@click.option("--rnd", type=click.IntRange(0, 15), default=None, help="Random nibble (default random).")
@click.option("--key-change", is_flag=True, help="Vend the key-change set for --new-* (encrypted with the current key).")
@click.option("--new-vending-key", metavar="HEX", help="Key change: new vending key (default: same).")
@click.option("--new-decoder-key", metavar="HEX", help="Key change: the new decoder key itself.")
@click.option("--new-krn", type=click.IntRange(1, 15), default=None, help="Key change: new KRN (default: --krn).")
@click.option("--new-kt", type=click.IntRange(0, 3), default=None, help="Key change: new KT (default: --kt).")
@click.option("--new-ti", type=click.IntRange(0, 99), default=None, help="Key change: new TI (default: --ti).")
@click.option("--new-sgc", metavar="DIGITS", default=None, help="Key change: new SGC (default: --sgc).")
@click.option("--new-base-date", type=click.Choice(BASE_DATES), default=None,
              help="Key change: base date of the new key (default: --base-date; with --ro the next one).")
@click.option("--ken", type=click.IntRange(0, 255), default=255, show_default=True, help="Key expiry number of the new key.")
@click.option("--ro", is_flag=True, help="Key change: set the rollover bit (meter clears its TID store).")
@click.option("--meter", metavar="SERIAL", help="The meter's keystore entry (meterctl flash wrote it): its "
              "decoder key, algorithm, DRN, SGC, TI, KRN, KT and base date (the keystore defaults' IIN, "
              "vending key, EA07 tables) stand in for the options not given.")
@click.option("--keystore", metavar="FILE", envvar="METERCTL_KEYSTORE",
              help="Keystore for --meter (default ~/.config/meterctl/meters.keystore). Env: METERCTL_KEYSTORE.")
@click.option("--csv", "csv_in", type=click.Path(exists=True, dir_okay=False), help="Batch: input CSV.")
@click.option("--out", "csv_out", type=click.Path(dir_okay=False),
              help="Batch: output CSV. An existing file is refused unless --force or --append.")
@click.option("--force", is_flag=True, help="Batch: overwrite an existing --out file. Key change: vend a "
              "--ken the current TID is already past (every later token would be refused). One token: a "
              "--tid not after the last one vended for this meter or after now, a class 0 subclass this "
              "meter refuses (water, gas, time).")
@click.option("--key-file", hidden=True, help="Not a vend option: refused with what to give instead.")
@click.option("--append", is_flag=True, help="Batch: add the tokens to an existing --out file (same columns).")
@click.option("--json", "as_json", is_flag=True, help="Print decoder key, data block and token as JSON.")
def vend(**kw):
    """Vend an STS token (IEC 62055-41) for one meter, a key-change set, or a CSV batch.

    The decoder key is derived from the vending key and the meter's PAN (IIN + DRN), SGC, TI,
    KRN and KT (DKGA02 for an 8-byte vending key, DKGA04 for a longer one). Amounts are in kWh
    with one decimal and are rounded UP to the nearest value the STS amount field can carry.

    \b
    Examples:
      # 10.0 kWh for the emulated meter (`meterctl emulate` prints these same options)
      meterctl vend --vending-key abababababababab --drn 01234567890 --amount 10.0
      # the IEC 62055-41 worked example (sample tables), reproduced bit for bit
      meterctl vend --decoder-key 0ABC12DEF3456789 --base-date 1993 --tid 0x19EB23 --rnd 11 \\
                    --amount 25.6 --json
      # a batch: CSV columns drn,amount[,issued,...] -> tokens grouped 4-4-4-4-4
      meterctl vend --vending-key abababababababab --csv sales.csv --out tokens.csv
      # a flashed meter: its identity and decoder key from the keystore
      meterctl vend --meter PPM0000042 --amount 10.0

    \b
    Exit codes: 0 vended; 2 a wrong input (one "meterctl: error:" line saying what to give;
    nothing vended, no TID used): the meter number (--drn digits for the IIN, --pan 18 digits and
    its check digit), --amount (kWh with one decimal; watts for class 2 subclass 0/6), a key or
    tables file, --meter unknown or with another meter's --drn/--pan/--decoder-key, --tid out of
    range, before this meter's last or after now (--force), a class/subclass not defined or not
    taken by this meter.
    """
    if kw.pop("key_file") is not None:
        fail("--key-file holds a meter's DLMS keys (topup, read, credit add); vend needs the STS keys: "
             "--meter SERIAL (the keystore meterctl flash wrote), or --vending-key with --drn (meterctl "
             "emulate prints them), or --decoder-key", EXIT_USAGE)
    _from_keystore(kw)
    if not (kw["csv_in"] or kw["csv_out"]):
        vendcheck.check_meter_number(kw)
        vendcheck.check_class(kw)
        vendcheck.check_amount(kw)
        guard(vendcheck.check_issued, kw)
    if kw["csv_in"] or kw["csv_out"]:
        if not (kw["csv_in"] and kw["csv_out"]):
            raise click.UsageError("--csv needs --out (and --out needs --csv)")
        if kw["force"] and kw["append"]:
            raise click.UsageError("give --force (overwrite) or --append, not both")
        if os.path.exists(kw["csv_out"]) and not (kw["force"] or kw["append"]):
            fail("--out %s exists (its tokens would be lost): give another file, --append or --force"
                 % kw["csv_out"], EXIT_USAGE)
        return guard(_vend_csv, kw)
    if kw["key_change"]:
        return guard(_vend_key_change, kw)
    return guard(_vend_one, kw)


def _from_keystore(kw):
    """``--meter``: fill ``kw`` from the meter's keystore record (and the keystore's defaults)
    where the option was not given; one usage line for an unknown serial or a bad keystore."""
    if not kw["meter"]:
        if click.get_current_context().get_parameter_source("keystore") == ParameterSource.COMMANDLINE:
            raise click.UsageError("--keystore needs --meter SERIAL (the meter to vend for)")
        return
    if kw["csv_in"] or kw["csv_out"]:
        raise click.UsageError("--meter vends for one meter: a --csv batch names its meters by DRN")
    vendcheck.check_keystore_meter(kw, _given)
    path = pathlib.Path(kw["keystore"] or ks.default_path())
    if not path.exists():
        fail("keystore %s does not exist: meterctl flash --serial %s writes it (or give --keystore FILE / "
             "METERCTL_KEYSTORE, or --vending-key with --drn)" % (path, kw["meter"]), EXIT_USAGE)
    try:
        store = ks.load(path)
    except ks.KeystoreError as e:
        fail(str(e), EXIT_USAGE)
    rec = store["meters"].get(kw["meter"]) or {}
    if not rec.get("decoder_key"):
        fail("keystore %s has no meter %s (meterctl flash --serial %s creates its entry)"
             % (path, kw["meter"], kw["meter"]), EXIT_USAGE)
    d = store["defaults"]
    tables = d.get("ea07_tables")
    found = {"decoder_key": rec["decoder_key"], "algorithm": rec.get("algorithm"), "drn": rec.get("drn"),
             "sgc": rec.get("sgc"), "ti": rec.get("ti"), "krn": rec.get("krn"), "kt": rec.get("kt"),
             "base_date": rec.get("base_date") or d.get("base_date"), "iin": d.get("iin"),
             "vending_key": d.get("vending_key"), "tables": tables and str(path.parent / tables)}
    for k, v in found.items():
        if v is not None and not _given(k):
            kw[k] = v if k in ("ti", "krn", "kt") else str(v)


def _given(name):
    """True when option ``name`` came from the command line or the environment."""
    src = click.get_current_context().get_parameter_source(name)
    return src not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def _vend_one(kw):
    cls, sub = kw["token_class"], kw["subclass"]
    dk = None
    pan = None
    if cls != 1:
        dk = _decoder_key(kw)
        if isinstance(dk, tuple):
            dk, pan = dk
    amount = None
    if kw["amount"] is not None:
        amount = V.parse_amount(kw["amount"], 1 if cls == 0 else 0)
    tid = _int(kw["tid"], "--tid")
    bd = int(kw["base_date"])
    if dk is not None and V.layout_is_data(cls, sub):
        vendcheck.check_tid(kw, tid, dk)
        if tid is None:
            tid = V.next_tid(dk, bd, issued=V.parse_issued(kw["issued"]) if kw["issued"] else None)
        else:
            V.note_tid(dk, bd, tid)
    res = V.vend_token(dk, algorithm=kw["algorithm"], tables=kw["tables"], token_class=cls,
                       subclass=sub, amount=amount, value=_int(kw["value"], "--value"),
                       tid=tid, issued=kw["issued"],
                       base_date=int(kw["base_date"]), rnd=kw["rnd"],
                       control=_int(kw["control"], "--control"),
                       mfr_code=_int(kw["mfr_code"], "--mfr-code"))
    if kw["meter"] and kw["drn"] and not pan:
        pan = V.build_pan(kw["iin"], kw["drn"])        # the keystore's meter, for the record
    if pan:
        res["pan"] = pan
    print_token(res, kw["as_json"])


def _vend_key_change(kw):
    old = _decoder_key(kw)
    pan = None
    if isinstance(old, tuple):
        old, pan = old
    # what the key change keeps needs no option: KRN, KT, TI, SGC default to the current ones
    krn = kw["krn"] if kw["new_krn"] is None else kw["new_krn"]
    kt = kw["kt"] if kw["new_kt"] is None else kw["new_kt"]
    ti = kw["ti"] if kw["new_ti"] is None else kw["new_ti"]
    sgc = kw["new_sgc"] or kw["sgc"]
    new_bd = kw["new_base_date"] or (sts.next_base_date(int(kw["base_date"])) if kw["ro"]
                                     else kw["base_date"])
    _check_ken(kw, int(new_bd))
    if kw["new_decoder_key"]:
        new = V.parse_key(kw["new_decoder_key"], (8, 16), "new decoder key")
    else:
        new, pan = _decoder_key(kw, pan, kw["new_vending_key"] or kw["vending_key"], sgc, ti,
                                krn, kt, new_bd)
    if new == old:
        raise V.VendError("the new decoder key is the current one: change the vending key, SGC, KRN, KT, "
                          "TI or base date (--new-*) or give --new-decoder-key")
    toks = V.key_change_tokens(old, new, krn, kt, ti, ken=kw["ken"],
                               ro=1 if kw["ro"] else 0, sgc=sgc, algorithm=kw["algorithm"],
                               tables=kw["tables"])
    if kw["as_json"]:
        click.echo(json.dumps({"decoder_key": old.hex().upper(), "new_decoder_key": new.hex().upper(),
                               "tokens": toks}, indent=2))
        return
    for t in toks:
        click.echo("%s  section %d" % (sts.group_digits(t["token"]), t["section"]))


def _check_ken(kw, base_date):
    """Refuse (unless --force) a KEN below TID >> 16 of now (--issued) on the new key's base date:
    the meter would refuse every token after the key change as key_expired."""
    issued = V.parse_issued(kw["issued"])
    try:
        high = sts.tid_from_unix(issued, base_date) >> 16
    except sts.StsError:
        return                     # outside the base date's TIDs: vend says so for a token
    if kw["ken"] < high and not kw["force"]:
        raise V.VendError("--ken %d is below the current TID >> 16 (%d, base date %d): the meter would "
                          "refuse every later token as key_expired; give --ken %d..255 (255: never "
                          "expires), or --force" % (kw["ken"], high, base_date, high))


def _vend_csv(kw):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    defaults = {"algorithm": kw["algorithm"], "base_date": kw["base_date"], "sgc": kw["sgc"],
                "ti": str(kw["ti"]), "krn": str(kw["krn"]), "kt": str(kw["kt"]), "iin": kw["iin"],
                "class": str(kw["token_class"]), "subclass": str(kw["subclass"])}
    for k in ("vending_key", "decoder_key", "tables", "issued", "tid", "dkga"):
        if kw.get(k):
            defaults[k] = str(kw[k])
    if kw["rnd"] is not None:
        defaults["rnd"] = str(kw["rnd"])
    appending = kw["append"] and os.path.exists(kw["csv_out"])
    out = kw["csv_out"]
    if appending:
        fd, out = tempfile.mkstemp(suffix=".csv", dir=os.path.dirname(os.path.abspath(kw["csv_out"])))
        os.close(fd)
    try:
        with Progress(TextColumn("vending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      transient=True, console=console(stderr=True), disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("vend", total=None)

            def progress(done, total):
                bar.update(task, completed=done, total=total)
            n = V.vend_csv(kw["csv_in"], out, defaults, progress)
        if appending:
            _append_csv(out, kw["csv_out"])
    finally:
        if appending:
            os.unlink(out)
    click.echo("%d tokens %s %s" % (n, "appended to" if appending else "written to", kw["csv_out"]))


def _append_csv(new_path, out_path):
    """Add the rows of ``new_path`` to ``out_path`` when both have the same header; else V.VendError."""
    with open(new_path, newline="") as f:
        header, *rows = f.read().splitlines(True)
    with open(out_path, newline="") as f:
        old = f.readline()
    if old.strip() != header.strip():
        raise V.VendError("--append: %s has other columns (%s) than this batch (%s)"
                          % (out_path, old.strip(), header.strip()))
    with open(out_path, "a", newline="") as f:
        f.writelines(rows)
