"""The emulated meter's test identity: STS (vending key, PAN (IIN + DRN), SGC, TI, KRN, KT) and
DLMS security (GUEK, GAK, KEK, HLS mechanism 2 secret, system titles, LLS passwords).

Uses the STS 531 example vending key and the IEC 62055-41 SAMPLE EA07 tables, so tokens vended
for it are real STS tokens in every respect except the tables: no field meter accepts them, and
no field key is involved. ``meterctl emulate``, ``make demo`` and the HIL tests provision the
emulated meter with it; real meters get their keys from the keystore at flash time.

The DLMS keys below are printable ASCII so a trace shows whose they are ("TEST-GUEK-000001");
they are this repository's test identity and nothing else: the firmware has no default key or
password, a meter without provisioned secrets answers the public client only.
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


# DLMS security test identity (security suite 0): keys 16 bytes, system titles 8 bytes
GUEK = b"TEST-GUEK-000001"             # global unicast encryption key
GAK = b"TEST-GAK--000001"              # global authentication key
KEK = b"TEST-KEK--000001"              # master key (key transfer, RFC 3394 wrap)
HLS_SECRET = b"TEST-HLS2-000001"       # HLS mechanism 2 (IS 15959-2) secret
SERVER_TITLE = b"PPM\x00\x00\x00\x00\x01"  # meter system title: manufacturer + serial
CLIENT_TITLE = b"HES\x00\x00\x00\x00\x01"  # head-end system title used by the tests
PASSWORDS = {"1": "12345678", "32": "00000000", "48": "ABCDEFGH"}   # LLS (hil.rig default config)


def security_config(**extra):
    """The meter's config.json "security" section for the test identity: associations 1 and 48
    use HLS-GMAC (mechanism 5) with authenticated+encrypted APDUs (policy 3)."""
    c = {"ek": GUEK.hex(), "ak": GAK.hex(), "kek": KEK.hex(), "hls": HLS_SECRET.hex(),
         "title": SERVER_TITLE.hex(), "mech": {"1": 5, "48": 5}, "policy": 3}
    c.update(extra)
    return c


def keys(**extra):
    """The client's view of the test identity (what ``meterctl --key-file`` reads): ek, ak, kek,
    hls (hex), client_title (our system title), mech 5."""
    k = {"ek": GUEK.hex(), "ak": GAK.hex(), "kek": KEK.hex(), "hls": HLS_SECRET.hex(),
         "client_title": CLIENT_TITLE.hex(), "title": SERVER_TITLE.hex(), "mech": 5}
    k.update(extra)
    return k


def write_key_file(path, **extra):
    """Write the test identity's key file (JSON, mode 0600) to ``path``; returns the path."""
    import json
    import os
    path = pathlib.Path(path)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(keys(**extra), f, indent=1)
    return path
