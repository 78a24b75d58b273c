"""The emulated meter's test identity for STS: vending key, PAN (IIN + DRN), SGC, TI, KRN, KT.

Uses the STS 531 example vending key and the IEC 62055-41 SAMPLE EA07 tables, so tokens vended
for it are real STS tokens in every respect except the tables: no field meter accepts them, and
no field key is involved. ``meterctl emulate``, ``make demo`` and the HIL tests provision the
emulated meter with it; real meters get their keys from the keystore at flash time.
"""
import pathlib

VENDING_KEY = "abababababababab"   # DKGA02 (single-DES) vending key of the STS 531 examples
IIN = "600727"
DRN = "01234567890"
SGC = "123456"
TI = 1
KRN = 1
KT = 2
BASE_DATE = 2014                   # STS edition 2 base date (after the 2024 TID rollover)
TABLES = pathlib.Path(__file__).resolve().parents[1] / "firmware" / "sts_sample_tables.json"
TABLES_NAME = "sts_tables.json"    # file name in the meter's filesystem


def decoder_key(drn=DRN, krn=KRN):
    """Decoder key (hex, IEC order) of the test meter, by DKGA02 with EA07."""
    from host_tools import vend
    pan = vend.build_pan(IIN, drn)
    return vend.derive_decoder_key(VENDING_KEY, pan, SGC, TI, krn, KT, BASE_DATE, "ea07").hex()


def sts_config(**extra):
    """The meter's config.json "sts" section for the test identity."""
    c = {"decoder_key": decoder_key(), "algorithm": "ea07", "tables": TABLES_NAME,
         "base_date": BASE_DATE, "krn": KRN, "kt": KT, "ti": TI, "store_size": 50}
    c.update(extra)
    return c


def install_tables(state_dir):
    """Put the sample EA07 tables into an emulated meter's filesystem (its state directory)."""
    dst = pathlib.Path(state_dir) / TABLES_NAME
    dst.write_bytes(TABLES.read_bytes())
    return dst


def vend_args(amount_kwh="10.0"):
    """`meterctl vend` arguments that vend a credit token for the test meter."""
    return ["--vending-key", VENDING_KEY, "--iin", IIN, "--drn", DRN, "--sgc", SGC, "--ti", str(TI),
            "--krn", str(KRN), "--kt", str(KT), "--base-date", str(BASE_DATE), "--amount", str(amount_kwh)]
