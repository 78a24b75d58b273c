"""STS vending on the host: token generation, key change, CSV batches; TIDs come from the locked
per-meter store in ``host_tools.tidstore``.

IEC 62055-41 / -51 / -52 (STS Edition 2). Decoder keys (DKGA02 / DKGA04, the meter PAN) are
derived in ``host_tools.dkga``; this module re-exports them (``vend.derive_decoder_key`` ...).

All 64/128-bit keys are bytes in IEC/natural order (first byte most significant). Tokens
are built and encrypted with ``protocol.sts`` (its ``Ea07``/``Misty1``: the ciphers with encryption).
Errors: ``VendError`` (a ValueError) with a readable message.
"""
import csv
import os
import pathlib
import time
from datetime import datetime, timezone

from host_tools.dkga import ALGORITHMS, VendError, algorithm_name as _alg, build_pan, check_pan, \
    derive_decoder_key, dkga02, dkga04, dkga04_message, luhn_digit, parse_key
from host_tools.dkga import int_in_range, sgc_text
from host_tools import tidstore
from host_tools.firmware_src import FIRMWARE_DIR
from protocol import sts
from protocol.sts import Ea07, Misty1, load_tables
from protocol.sts import StsError, TokenFields

__all__ = ["VendError", "ALGORITHMS", "SAMPLE_TABLES", "parse_key", "luhn_digit", "build_pan",
           "check_pan", "dkga02", "dkga04_message", "dkga04", "derive_decoder_key", "get_tables",
           "make_cipher", "parse_issued", "parse_amount", "encode_fields", "layout_is_data",
           "vend_token", "key_change_tokens", "decode_token", "vend_csv", "read_csv_rows",
           "tid_memory_path", "allocate_tids", "next_tid", "note_tid"]

SAMPLE_TABLES = FIRMWARE_DIR / "sts_sample_tables.json"


# -- ciphers ------------------------------------------------------------------------------

_TABLE_CACHE = {}


def get_tables(tables=None):
    """None -> the IEC sample tables; a path or dict -> loaded (cached by path)."""
    if tables is None:
        tables = str(SAMPLE_TABLES)
    if isinstance(tables, (str, pathlib.Path)):
        key = str(tables)
        if key not in _TABLE_CACHE:
            try:
                _TABLE_CACHE[key] = load_tables(key)
            except StsError:
                raise VendError("EA07 tables %s: unreadable, or not sub1/sub2 (16-entry) and perm "
                                "(64-entry) permutations" % key) from None
        return _TABLE_CACHE[key]
    return load_tables(tables)


def make_cipher(decoder_key, algorithm="ea07", tables=None):
    """-> object with encrypt_block/decrypt_block (Ea07 or Misty1)."""
    alg = _alg(algorithm)
    if alg == "ea07":
        return Ea07(parse_key(decoder_key, (8,), "EA07 decoder key"), get_tables(tables))
    return Misty1(parse_key(decoder_key, (16,), "EA11 decoder key"))


# -- time -----------------------------------------------------------------------------------

def parse_issued(issued):
    """ISO time text ('2004-03-01T13:00', '2004-03-01 13:00Z'; naive = UTC), datetime, or
    Unix seconds -> Unix seconds (int)."""
    if issued is None:
        return int(time.time())
    if isinstance(issued, (int, float)):
        return int(issued)
    if isinstance(issued, str):
        s = issued.strip().replace("Z", "+00:00")
        try:
            issued = datetime.fromisoformat(s)
        except ValueError:
            raise VendError("issue time must be ISO 8601, e.g. 2004-03-01T13:00") from None
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=timezone.utc)
    return int(issued.timestamp())


def parse_amount(text, decimals=1):
    """'25.6' -> 256 (integer tenths). VendError for more decimals or a negative value."""
    s = str(text).strip()
    neg = s.startswith("-")
    whole, _, frac = s.lstrip("+-").partition(".")
    if neg or not (whole or frac) or not (whole or "0").isdigit() or (frac and not frac.isdigit()):
        raise VendError("amount must be a non-negative number, got %r" % text)
    if len(frac) > decimals:
        raise VendError("amount %r has more than %d decimal(s)" % (text, decimals))
    return int(whole or "0") * 10 ** decimals + int((frac + "0" * decimals)[:decimals] or "0")


# -- tokens ---------------------------------------------------------------------------------

def _result(decoder_key, cls, fields, plain, enc):
    n = sts.transpose(cls, enc)
    out = {
        "class": cls,
        "subclass": fields.subclass,
        "decoder_key": decoder_key.hex().upper() if decoder_key is not None else None,
        "data_block": "%016X" % plain,
        "encrypted_block": "%016X" % enc,
        "token66": "0x%017X" % n,
        "token": sts.int_to_digits(n),
    }
    if fields.layout == "data":
        out.update(tid=fields.tid, rnd=fields.rnd, value=fields.value, amount=sts.amount_of(fields))
    return out


def encode_fields(fields, decoder_key=None, algorithm="ea07", tables=None, cipher=None):
    """TokenFields -> result dict (class 1 is never encrypted)."""
    try:
        plain = sts.build_block(fields)
    except StsError as e:
        raise VendError(str(e)) from None
    if fields.cls == sts.CLASS_NON_MERIT:
        enc = plain
    else:
        if cipher is None:
            if decoder_key is None:
                raise VendError("a decoder key is needed for class %d tokens" % fields.cls)
            cipher = make_cipher(decoder_key, algorithm, tables)
        enc = cipher.encrypt_block(plain)
    return _result(decoder_key, fields.cls, fields, plain, enc)


def layout_is_data(token_class, subclass):
    """True for tokens that carry a TID (class 0 and the data-carrying class 2 subclasses)."""
    return sts.layout_of(int(token_class), int(subclass)) == "data"


def vend_token(decoder_key=None, *, vending_key=None, pan=None, iin=None, drn=None, sgc=None,
               ti=None, krn=None, kt=None, base_date=1993, algorithm="ea07", tables=None,
               dkga=None, token_class=0, subclass=0, amount=None, value=None, tid=None,
               issued=None, rnd=None, control=None, mfr_code=0, payload=0, cipher=None):
    """Vend one token -> dict with ``decoder_key`` (hex), ``data_block`` (16 hex),
    ``encrypted_block``, ``token66`` (hex), ``token`` (20 digits), and for data tokens
    ``tid``, ``rnd``, ``value`` (16-bit field), ``amount`` (decoded).

    Key: ``decoder_key`` (hex/bytes), or ``vending_key`` + (``pan`` | ``iin``+``drn``) +
    ``sgc``/``ti``/``krn``/``kt`` (+ ``base_date``, ``dkga``).
    Class 0: ``amount`` in 0.1 units (rounded up to the STS encoding) or a raw ``value``;
    subclasses 4..7 (currency) are refused (VendError: not implemented).
    Class 2: subclass 0/6 take ``amount`` in watts; 1 (``value`` register, 0xFFFF = all),
    2 (rate), 5, 7 take a raw ``value``. Key-change sections: use ``key_change_tokens``.
    Class 1: ``control`` bits (default all tests), ``mfr_code``; subclass 0 or 1.
    TID: ``tid``, or ``issued`` (ISO text / datetime / Unix s; default now) on ``base_date``
    (1993, 2014 or 2035; the library default 1993 as ``decode_token``'s; meterctl's 2014). The caller steps TIDs past earlier ones
    (``allocate_tids``); this function uses what it is given.
    RND: 0..15, random if None.
    """
    alg = _alg(algorithm)
    cls = int_in_range(token_class, 0, 2, "class")
    sub = int_in_range(subclass, 0, 15, "subclass")
    try:
        sts.refuse_currency(cls, sub)
    except StsError as e:
        raise VendError(str(e)) from None
    if decoder_key is None and vending_key is not None and cls != 1:
        if pan is None:
            if iin is None or drn is None:
                raise VendError("give --pan or --iin and --drn")
            pan = build_pan(iin, drn)
        decoder_key = derive_decoder_key(vending_key, pan, sgc, ti, krn, kt, base_date, alg, dkga)
    if decoder_key is not None:
        decoder_key = parse_key(decoder_key, (8, 16), "decoder key")
    f = TokenFields(cls, sub)
    lay = sts.layout_of(cls, sub)
    if lay == "data":
        if rnd is None:
            rnd = os.urandom(1)[0] & 0xF
        f.rnd = int_in_range(rnd, 0, 15, "RND")
        if tid is None:
            try:
                tid = sts.tid_from_unix(parse_issued(issued), int(base_date))
            except StsError as e:
                raise VendError(str(e)) from None
        f.tid = int_in_range(tid, 0, 0xFFFFFF, "TID")
        if amount is not None and value is not None:
            raise VendError("give amount or value, not both")
        amount_coded = cls == 0 or sub in (sts.SUB_MPL, sts.SUB_PHASE_UNBALANCE)
        if amount is not None:
            if not amount_coded:
                raise VendError("class %d subclass %d takes a raw value, not an amount" % (cls, sub))
            try:
                f.value = sts.amount_encode(int(amount))
            except StsError as e:
                raise VendError(str(e)) from None
        elif value is not None:
            f.value = int_in_range(value, 0, 0xFFFF, "value")
        elif cls == 2 and sub == sts.SUB_CLEAR_CREDIT:
            f.value = sts.CLEAR_ALL_REGISTERS
        elif cls == 0 or sub not in (sts.SUB_CLEAR_TAMPER,):
            raise VendError("class %d subclass %d needs an amount or value" % (cls, sub))
    elif lay == "test":
        bits = 36 if sub == 0 else 28
        f.control = int_in_range((1 << bits) - 1 if control is None else control, 0, (1 << bits) - 1,
                           "control")
        f.mfr_code = int_in_range(mfr_code, 0, 0xFF if sub == 0 else 0xFFFF, "manufacturer code")
    elif lay == "raw":
        f.payload = int_in_range(payload, 0, (1 << 44) - 1, "payload")
    else:
        raise VendError("class 2 subclass %d is a key-change section: they are vended as a set "
                        "(key_change_tokens; meterctl vend --key-change)" % sub)
    return encode_fields(f, decoder_key, alg, tables, cipher)


def key_change_tokens(decoder_key, new_decoder_key, new_krn, new_kt, new_ti, ken=255, ro=0,
                      sgc=0, algorithm="ea07", tables=None):
    """Key-change token set (IEC 62055-41 Set1st..4thSectionDecoderKey), encrypted with the
    CURRENT ``decoder_key``: 2 dicts for a 64-bit new key (EA07), 4 for 128-bit (EA11).
    ``ken`` 0..255 (255 = never expires), ``ro`` 1 = TID rollover (meter clears its TID
    store), ``sgc`` only travels in the 3rd/4th sections of 128-bit keys."""
    alg = _alg(algorithm)
    old = parse_key(decoder_key, (8,) if alg == "ea07" else (16,), "current decoder key")
    new = parse_key(new_decoder_key, (8,) if alg == "ea07" else (16,), "new decoder key")
    try:
        secs = sts.key_sections(new, int_in_range(ken, 0, 255, "KEN"), int_in_range(new_krn, 1, 15, "KRN"),
                                int_in_range(new_kt, 0, 3, "KT"), int_in_range(new_ti, 0, 255, "TI"),
                                int_in_range(ro, 0, 1, "RO"), int(sgc_text(sgc)))
    except StsError as e:
        raise VendError(str(e)) from None
    cipher = make_cipher(old, alg, tables)
    out = []
    for f in secs:
        r = encode_fields(f, old, alg, tables, cipher)
        r["section"] = {3: 1, 4: 2, 8: 3, 9: 4}[f.subclass]
        out.append(r)
    return out


def decode_token(digits, decoder_key=None, algorithm=None, tables=None, base_date=1993):
    """20 digits -> dict: class, subclass, crc_ok, data_block and the layout's fields
    (tid + date on ``base_date``: 1993 (default, as ``vend_token``), 2014 or 2035; amount ...).
    Class 1 needs no key. ``algorithm`` defaults from the key length (8 bytes EA07, 16 bytes
    EA11). VendError for a currency token (class 0 subclasses 4..7: not implemented)."""
    try:
        sts.base_epoch(int(base_date))
    except StsError as e:
        raise VendError(str(e)) from None
    try:
        cls, block = sts.split_token(digits)
    except StsError as e:
        raise VendError(str(e)) from None
    if cls == 3:
        raise VendError("token class 3 is reserved: not an STS token")
    if cls == sts.CLASS_NON_MERIT:
        plain = block
    else:
        if decoder_key is None:
            raise VendError("class %d tokens are encrypted: give --key" % cls)
        key = parse_key(decoder_key, (8, 16), "decoder key")
        if algorithm is None:
            algorithm = "ea07" if len(key) == 8 else "ea11"
        plain = make_cipher(key, algorithm, tables).decrypt_block(block)
    f = sts.parse_block(cls, plain)
    if f.crc_ok:
        try:
            sts.refuse_currency(cls, f.subclass)
        except StsError as e:
            raise VendError(str(e)) from None
    out = {"class": cls, "subclass": f.subclass, "layout": f.layout, "crc_ok": f.crc_ok,
           "data_block": "%016X" % plain, "token": sts.normalise_digits(digits)}
    if f.layout == "data":
        out.update(rnd=f.rnd, tid=f.tid, value=f.value, amount=sts.amount_of(f),
                   date=sts.tid_to_text(f.tid, int(base_date)))
    elif f.layout == "test":
        out.update(control=f.control, mfr_code=f.mfr_code, tests=list(sts.test_names(f.control)))
    elif f.layout in ("key1", "key2", "key3", "key4"):
        out.update(ken_half=f.ken_half, krn=f.krn, ro=f.ro, kt=f.kt, ti=f.ti,
                   sgc_half=f.sgc_half, key_part="%08X" % f.key_part)
    else:
        out.update(payload=f.payload)
    return out


# -- CSV batch ------------------------------------------------------------------------------

CSV_OUT_EXTRA = ("tid", "token")


def read_csv_rows(in_path):
    """The rows of a CSV file as a list of dicts (header row = keys). VendError (one line) for
    a file that is not UTF-8 text, not CSV, or has no rows."""
    try:
        with open(in_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError:
        raise VendError("%s: not a CSV text file (binary or not UTF-8)" % in_path) from None
    except csv.Error as e:
        raise VendError("%s: not a CSV file (%s)" % (in_path, e)) from None
    if not rows:
        raise VendError("%s: no rows" % in_path)
    if any(None in row for row in rows):
        raise VendError("%s: a row has more fields than the header" % in_path)
    return rows


class _Batch:
    """Per-batch caches: decoder keys by identity, ciphers by key."""

    def __init__(self, now):
        self.now = now
        self.keys = {}
        self.ciphers = {}

    def key_and_cipher(self, r, cls, bd, alg):
        dk = r.get("decoder_key")
        if dk is None and cls != 1:
            pan = r.get("pan") or build_pan(r.get("iin", ""), r.get("drn", ""))
            ident = (r.get("vending_key"), pan, r.get("sgc"), r.get("ti"), r.get("krn"),
                     r.get("kt"), bd, alg, r.get("dkga"))
            if ident not in self.keys:
                if ident[0] is None:
                    raise VendError("no vending key")
                self.keys[ident] = derive_decoder_key(*ident)
            dk = self.keys[ident]
        if dk is None or cls == 1:
            return dk, None
        dk = parse_key(dk, (8, 16), "decoder key")
        ck = (dk, alg, str(r.get("tables")))
        if ck not in self.ciphers:
            self.ciphers[ck] = make_cipher(dk, alg, r.get("tables"))
        return dk, self.ciphers[ck]

    def prepare(self, r):
        """One row (defaults applied) -> job dict: everything but the final TID."""
        alg = _alg(r.get("algorithm", "ea07"))
        bd = int(r.get("base_date", 1993))
        cls = int(r.get("class", 0))
        sub = int(r.get("subclass", 0))
        sts.refuse_currency(cls, sub)
        dk, cipher = self.key_and_cipher(r, cls, bd, alg)
        amount = parse_amount(r["amount"], 0 if cls == 2 else 1) if "amount" in r else None
        job = {"dk": dk, "cipher": cipher, "alg": alg, "bd": bd, "cls": cls, "sub": sub,
               "amount": amount, "value": int(r["value"], 0) if "value" in r else None,
               "rnd": int(r["rnd"], 0) if "rnd" in r else None, "tid": None, "wanted": None}
        if "tid" in r:
            job["tid"] = int(r["tid"], 0)
        elif dk is not None and layout_is_data(cls, sub):
            job["wanted"] = sts.tid_from_unix(parse_issued(r.get("issued", self.now)), bd)
        elif layout_is_data(cls, sub):
            job["tid"] = sts.tid_from_unix(parse_issued(r.get("issued", self.now)), bd)
        return job


def _reserve(jobs):
    """Give every job without a TID its TID: one locked ``tidstore`` step per meter for the
    whole batch; explicit TIDs are recorded so later vends step past them."""
    meters = {}
    for j in jobs:
        if j["dk"] is not None and (j["wanted"] is not None or j["tid"] is not None):
            meters.setdefault((j["dk"], j["bd"]), []).append(j)
    for (dk, bd), group in meters.items():
        explicit = [j["tid"] for j in group if j["tid"] is not None]
        if explicit:
            tidstore.note(dk, bd, explicit)
        auto = [j for j in group if j["wanted"] is not None]
        for j, t in zip(auto, tidstore.allocate(dk, bd, [j["wanted"] for j in auto])):
            j["tid"] = t


def vend_csv(in_path, out_path, defaults=None, progress=None):
    """Vend one token per CSV row. Columns (header names, case-insensitive): ``pan`` or
    ``iin``+``drn``, ``amount`` (kWh/units, one decimal); optional per row (else from
    ``defaults``): ``vending_key``/``decoder_key``, ``sgc``, ``ti``, ``krn``, ``kt``,
    ``class``, ``subclass``, ``value``, ``tid``, ``issued``, ``rnd``, ``base_date`` (default
    1993 as ``vend_token``; meterctl passes 2014), ``algorithm``, ``tables``. Output = input columns + ``tid`` + ``token`` (4-4-4-4-4).
    Decoder keys are never written. ``progress(done, total)`` is called per row.
    Rows without a ``tid`` get theirs from ``issued`` (default: the batch start time), stepped
    past every TID vended before for that meter: the batch reserves all its TIDs per meter in
    one locked step of ``host_tools.tidstore`` (parallel vends and batches never share one).
    Returns the number of tokens. VendError names the failing row (or the file)."""
    defaults = dict(defaults or {})
    rows = read_csv_rows(in_path)
    batch = _Batch(int(time.time()))
    jobs = []
    for n, row in enumerate(rows, 1):
        r = dict(defaults)
        r.update({k.strip().lower(): v.strip() for k, v in row.items() if k and v and v.strip()})
        try:
            jobs.append(batch.prepare(r))
        except (VendError, StsError, ValueError, KeyError) as e:
            raise VendError("%s row %d: %s" % (in_path, n + 1, e)) from None
    try:
        _reserve(jobs)
    except StsError as e:
        raise VendError("%s: %s" % (in_path, e)) from None
    fieldnames = list(rows[0].keys())
    out_names = fieldnames + [c for c in CSV_OUT_EXTRA if c not in fieldnames]
    with open(out_path, "w", newline="") as fo:
        w = csv.DictWriter(fo, fieldnames=out_names)
        w.writeheader()
        for n, (row, j) in enumerate(zip(rows, jobs), 1):
            try:
                res = vend_token(j["dk"], algorithm=j["alg"], token_class=j["cls"], subclass=j["sub"],
                                 amount=j["amount"], value=j["value"], tid=j["tid"], base_date=j["bd"],
                                 rnd=j["rnd"], cipher=j["cipher"])
            except (VendError, StsError, ValueError) as e:
                raise VendError("%s row %d: %s" % (in_path, n + 1, e)) from None
            out = dict(row)
            out["tid"] = res.get("tid", "")
            out["token"] = sts.group_digits(res["token"])
            w.writerow(out)
            if progress is not None:
                progress(n, len(rows))
    return len(rows)


# -- TID memory -----------------------------------------------------------------------------

def tid_memory_path():
    """Directory of the per-meter TID store (``host_tools.tidstore``): ``$METERCTL_STATE_DIR``,
    else ``$XDG_STATE_HOME/meterctl`` or ``~/.local/state/meterctl``."""
    return tidstore.state_dir()


def allocate_tids(decoder_key, base_date, count=1, now=None):
    """Reserve ``count`` TIDs for one meter in one locked step: list of ints, strictly
    increasing, the first at least the minute of ``now`` (Unix s; default the clock) and all
    past every TID vended before for this meter by any process (``host_tools.tidstore``).
    VendError past the base date's TID range."""
    try:
        tid = sts.tid_from_unix(int(time.time()) if now is None else int(now), int(base_date))
        return tidstore.allocate(bytes(decoder_key), int(base_date), [tid] * int(count))
    except StsError as e:
        raise VendError(str(e)) from None


def next_tid(decoder_key, base_date, now=None, issued=None):
    """One TID for this meter: the minute of ``issued`` (Unix s) or ``now`` (default the
    clock), stepped past the last TID vended here for it (IEC 62055-41 §6.6: a meter accepts
    each TID once; two tokens in one minute would share it). Locked: parallel processes never
    get the same TID."""
    return allocate_tids(decoder_key, base_date, 1, issued if issued is not None else now)[0]


def note_tid(decoder_key, base_date, tid):
    """Record an explicitly given TID (``--tid``) so that later vends step past it."""
    tidstore.note(bytes(decoder_key), int(base_date), [int(tid)])
