"""A meter's identity and secrets as files on its flash: ``config.json`` and the EA07 tables.

``secrets(keystore, serial, ident)`` gets the meter's record from the keystore
(``host_tools.keystore``: LLS passwords, DLMS keys (GUEK, GAK, KEK, HLS secret, system title:
config.json ``security``, HLS-GMAC for clients 1 and 48), STS DRN/SGC/TI/KRN/KT and decoder key,
created on first use) and the keystore's EA07 tables, if it names any. ``provisioning_config`` overlays that
identity on the settings (tariff, pins, policy); ``config_bytes`` is the file as written.
Secrets never come from the repository. Errors: ``host_tools.repl.FlashError``.
"""

import json
import os
import pathlib

from host_tools import keystore as _ks
from host_tools.repl import FlashError

__all__ = ["CONFIG", "TABLES", "SAMPLE_TABLES", "provisioning_config", "config_bytes", "secrets",
           "provision_files"]

CONFIG = "config.json"
TABLES = "sts_tables.json"                  # EA07 tables from the keystore (secret)
SAMPLE_TABLES = "sts_sample_tables.json"    # IEC sample tables shipped in the build (test meters)


def provisioning_config(serial, record, settings=None, tables=None):
    """The meter's ``config.json`` (dict): ``settings`` (tariff, pins, policy ...) overlaid with
    identity and secrets from the keystore ``record`` (see keystore.meter_record); ``tables`` the
    EA07 tables file name on the board (ignored for EA11)."""
    cfg = dict(settings or {})
    cfg["serial"] = serial
    cfg["logical_device_name"] = serial
    cfg["passwords"] = dict(record["passwords"])
    if record.get("security"):
        cfg["security"] = _ks.meter_security_config(record["security"])
    sts = dict(cfg.get("sts") or {})
    sts.update({"drn": record["drn"], "sgc": record["sgc"], "ti": record["ti"],
                "krn": record["krn"], "kt": record["kt"], "algorithm": record["algorithm"],
                "decoder_key": record["decoder_key"], "base_date": record.get("base_date", 2014)})
    if record["algorithm"] == "ea07" and tables:
        sts["tables"] = tables
    cfg["sts"] = sts
    return cfg


def config_bytes(cfg):
    """``config.json`` as written to the board (UTF-8 JSON, sorted keys, trailing newline)."""
    return (json.dumps(cfg, indent=1, sort_keys=True) + "\n").encode()


def secrets(keystore, serial, ident):
    """(meter record, keystore path, EA07 tables bytes or None) for ``serial``; ``ident`` the
    identity given on the command line (drn, sgc, ti, krn; None = stored or default). Saves the
    keystore when the record was created or changed. Raises FlashError."""
    path = pathlib.Path(keystore) if keystore else _ks.default_path()
    try:
        store = _ks.load(path)
        rec, changed = _ks.meter_record(store, serial, **ident)
        if changed:
            _ks.save(path, store)
    except _ks.KeystoreError as e:       # the serial, SGC, keystore given: usage
        raise FlashError(str(e), usage=True)
    tables = None
    tp = store.get("defaults", {}).get("ea07_tables")
    if tp and rec["algorithm"] == "ea07":
        tp = (path.parent / tp) if not os.path.isabs(tp) else pathlib.Path(tp)
        try:
            tables = tp.read_bytes()
            json.loads(tables)
        except (OSError, ValueError) as e:
            raise FlashError("keystore ea07_tables %s: %s" % (tp, e))
    return rec, path, tables


def provision_files(serial, rec, settings, tables):
    """{rel path: bytes} the provisioning writes besides the build: ``config.json`` and, when the
    keystore has them, the EA07 tables (else config.json names the build's sample tables)."""
    files = {}
    if tables is not None:
        files[TABLES] = tables
    cfg = provisioning_config(serial, rec, settings, TABLES if tables is not None else SAMPLE_TABLES)
    files[CONFIG] = config_bytes(cfg)
    return files
