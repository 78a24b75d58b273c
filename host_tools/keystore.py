"""Per-meter secrets for provisioning: DLMS passwords and the STS decoder key, kept in a keystore file.

Secrets never come from the repository. The keystore is a JSON file outside the work tree (or
inside it only where git ignores it: ``keys/`` and ``*.keystore`` are in .gitignore), written
atomically with mode 0600::

    {"format": 1,
     "defaults": {"sgc": 123456, "ti": 1, "krn": 1, "kt": 2, "algorithm": "ea07",
                  "iin": "600727", "vending_key": "<16 hex digits>"},
     "meters": {"PPM0000042": {"drn": "00000000042", "sgc": 123456, "ti": 1, "krn": 1,
                               "kt": 2, "algorithm": "ea07", "decoder_key": "<hex>",
                               "passwords": {"1": "...", "32": "...", "48": "..."},
                               "security": {"ek": GUEK, "ak": GAK, "kek": master key, "hls":
                                            mechanism 2 secret (16 bytes hex each), "title":
                                            meter system title, "client_title": ours (8 B hex)}}}}

``meter_record(store, serial, **identity)`` returns a meter's record, creating what is missing:
LLS passwords (8 random characters each, IEC 62056-5-3 §9.2.2.2 LLS secret), the DLMS security
keys (``security_record``: GUEK, GAK, KEK, HLS secret, 16 random bytes each), and the decoder key
(derived with DKGA02 from the keystore's ``vending_key`` when it has one, IEC 62055-41 §6.1.2;
otherwise 8 random bytes). Identity given explicitly (DRN, SGC, TI, KRN) replaces the stored
value; a stored decoder key is kept unless the key-derivation inputs changed.

Default location: ``$METERCTL_KEYSTORE`` or ``~/.config/meterctl/meters.keystore``.
"""

import hashlib
import json
import os
import pathlib
import secrets
import string
import subprocess

from host_tools import dkga
from host_tools.firmware_src import ROOT
from host_tools.portlock import state_dir

__all__ = ["KeystoreError", "default_path", "load", "save", "meter_record", "check_location",
           "PASSWORD_CLIENTS", "security_record", "meter_security_config", "Counter",
           "key_transfer_params", "KEY_IDS", "replaced_keys", "hls_keys", "load_hls_keys"]

REPO_ROOT = ROOT
# client SAPs with LLS passwords (docs/CONTRACTS.md: management 1, meter reader 32, settings 48)
PASSWORD_CLIENTS = ("1", "32", "48")
_PW_ALPHABET = string.ascii_letters + string.digits
_DERIVE_FIELDS = ("drn", "sgc", "ti", "krn", "kt", "algorithm")


class KeystoreError(Exception):
    """The keystore cannot be read, written or trusted (message says which and why)."""


def default_path():
    """``$METERCTL_KEYSTORE`` or ``~/.config/meterctl/meters.keystore``."""
    env = os.environ.get("METERCTL_KEYSTORE")
    if env:
        return pathlib.Path(env)
    return pathlib.Path.home() / ".config" / "meterctl" / "meters.keystore"


def check_location(path):
    """Refuse a keystore that git could commit: inside this repository and not ignored.

    Raises KeystoreError.
    """
    p = pathlib.Path(path).resolve()
    try:
        p.relative_to(REPO_ROOT)
    except ValueError:
        return
    try:
        r = subprocess.run(["git", "-C", str(REPO_ROOT), "check-ignore", "-q", str(p)],
                           capture_output=True, timeout=10)
        ignored = r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        ignored = False
    if not ignored:
        raise KeystoreError("keystore %s is inside the repository and not git-ignored: keep keys "
                            "outside the work tree, under keys/, or in a *.keystore file" % p)


def load(path):
    """The keystore dict at ``path`` (an empty one if the file does not exist)."""
    path = pathlib.Path(path)
    check_location(path)
    if not path.exists():
        return {"format": 1, "defaults": {}, "meters": {}}
    try:
        store = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise KeystoreError("cannot read keystore %s: %s" % (path, e))
    if not isinstance(store, dict) or not isinstance(store.get("meters", {}), dict):
        raise KeystoreError("keystore %s: not a keystore (no 'meters' object)" % path)
    store.setdefault("defaults", {})
    store.setdefault("meters", {})
    return store


def save(path, store):
    """Write ``store`` to ``path`` atomically, mode 0600 (directory created 0700)."""
    path = pathlib.Path(path)
    check_location(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp%d" % os.getpid())
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(store, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(str(tmp), str(path))
    except BaseException:
        try:
            os.unlink(str(tmp))
        except OSError:
            pass
        raise


def _password():
    return "".join(secrets.choice(_PW_ALPHABET) for _ in range(8))


def default_drn(serial):
    """DRN from a serial's digits, zero-padded to 11 (IEC 62055-41 meter number length)."""
    digits = "".join(c for c in serial if c.isdigit())
    if not digits:
        raise KeystoreError("serial %r has no digits: give the DRN explicitly (--drn)" % serial)
    return digits[-11:].rjust(11, "0")


def _derive_key(defaults, rec):
    vk = defaults.get("vending_key")
    if not vk:
        return secrets.token_bytes(8).hex(), "generated"
    try:
        key = dkga.parse_key(vk, sizes=(8, 16, 20, 32), what="vending key")
        pan = dkga.build_pan(str(defaults.get("iin", "600727")), rec["drn"])
        alg = rec.get("algorithm", "ea07")
        if alg == "ea07":
            dk = dkga.dkga02(key, pan, rec["sgc"], rec["ti"], rec["krn"], rec["kt"])
        else:
            dk = dkga.dkga04(key, pan, rec["sgc"], rec["ti"], rec["krn"], rec["kt"],
                             algorithm=alg)
    except (ValueError, TypeError) as e:
        raise KeystoreError("cannot derive the decoder key: %s" % e)
    return bytes(dk).hex(), "derived"


def meter_record(store, serial, drn=None, sgc=None, ti=None, krn=None, kt=None, algorithm=None):
    """Return ``(record, changed)`` for meter ``serial``, creating missing secrets in ``store``.

    ``record``: dict(drn str, sgc int, ti int, krn int, kt int, algorithm str, base_date (the
    STS TID base date the meter and ``meterctl vend --meter`` share: 2014 unless the keystore
    defaults say otherwise), decoder_key hex,
    key_source "derived"|"generated" (absent for a key put in the keystore by hand),
    passwords {"1","32","48": str}, security {ek, ak, kek, hls, title, client_title: hex}).
    ``changed`` is True when the caller must `save` the store. Raises KeystoreError when
    the SGC is known neither from the arguments nor from the keystore defaults.
    """
    if not serial or not isinstance(serial, str):
        raise KeystoreError("a meter serial is required")
    defaults = store.setdefault("defaults", {})
    meters = store.setdefault("meters", {})
    old = meters.get(serial)
    rec = dict(old or {})
    given = {"drn": drn, "sgc": sgc, "ti": ti, "krn": krn, "kt": kt, "algorithm": algorithm}
    for k, v in given.items():
        if v is not None:
            rec[k] = v
    rec.setdefault("drn", defaults.get("drn_for", {}).get(serial) or default_drn(serial))
    for k, dflt in (("ti", 1), ("krn", 1), ("kt", 2), ("algorithm", "ea07"), ("base_date", 2014)):
        rec.setdefault(k, defaults.get(k, dflt))
    if rec["base_date"] not in (1993, 2014, 2035):
        raise KeystoreError("base date for %s must be 1993, 2014 or 2035, got %r" % (serial, rec["base_date"]))
    if "sgc" not in rec:
        if "sgc" not in defaults:
            raise KeystoreError("no SGC for %s: pass --sgc or set defaults.sgc in the keystore"
                                % serial)
        rec["sgc"] = defaults["sgc"]
    rec["drn"] = str(rec["drn"])
    for k in ("sgc", "ti", "krn", "kt"):
        try:
            rec[k] = int(rec[k])
        except (TypeError, ValueError):
            raise KeystoreError("%s for %s must be an integer, got %r" % (k.upper(), serial, rec[k]))
    pw = dict(rec.get("passwords") or {})
    for c in PASSWORD_CLIENTS:
        if not pw.get(c):
            pw[c] = _password()
    rec["passwords"] = pw
    security_record(rec, serial)
    derive_inputs_changed = old is not None and any(
        old.get(k) != rec.get(k) for k in _DERIVE_FIELDS)
    if not rec.get("decoder_key") or (derive_inputs_changed and rec.get("key_source") == "derived"):
        rec["decoder_key"], rec["key_source"] = _derive_key(defaults, rec)
    changed = rec != old
    meters[serial] = rec
    return rec, changed


# ---------------------------------------------------------------- DLMS security (HLS, suite 0)

SECURITY_KEYS = ("ek", "ak", "kek", "hls")    # GUEK, GAK, master key (KEK), HLS mechanism 2 secret


def security_record(rec, serial):
    """Fill ``rec["security"]`` (in place) with what is missing: 16 random bytes each for
    ``ek``/``ak``/``kek``/``hls`` (hex), the meter's system ``title`` ("PPM" + the serial's last
    5 digits, 8 bytes hex) and our ``client_title`` ("HES" + 5 random bytes). Returns True when
    something was created (the caller saves the keystore)."""
    sec = dict(rec.get("security") or {})
    before = dict(sec)
    for k in SECURITY_KEYS:
        sec.setdefault(k, secrets.token_bytes(16).hex())
    digits = "".join(c for c in serial if c.isdigit())[-5:].rjust(5, "0")
    sec.setdefault("title", (b"PPM" + int(digits).to_bytes(5, "big")).hex())
    sec.setdefault("client_title", (b"HES" + secrets.token_bytes(5)).hex())
    rec["security"] = sec
    return sec != before


def meter_security_config(sec, mech=5, policy=3):
    """The meter's config.json ``security`` section from a keystore ``security`` record
    (meter.secure: ek, ak, kek, title, hls, mech per client SAP, policy)."""
    return {"ek": sec["ek"], "ak": sec["ak"], "kek": sec["kek"], "hls": sec["hls"],
            "title": sec["title"], "mech": {"1": mech, "48": mech}, "policy": policy}


def hls_keys(sec):
    """The ``HlsKeys`` of a key file (``meterctl emulate`` writes one) or of a keystore record's
    ``security``: ``ek``, ``ak``, ``client_title`` (hex), ``mech`` (default 5), ``hls``, ``kek``.
    Raises KeyError, ValueError or TypeError for a missing or malformed key."""
    from protocol.hls_client import HlsKeys
    return HlsKeys(*(bytes.fromhex(sec[k]) for k in ("ek", "ak", "client_title")),
                   mechanism=int(sec.get("mech", 5)),
                   secret=bytes.fromhex(sec["hls"]) if sec.get("hls") else None,
                   kek=bytes.fromhex(sec["kek"]) if sec.get("kek") else None)


def load_hls_keys(key_file=None, serial=None, path=None):
    """The ``HlsKeys`` of the JSON ``key_file``, else of meter ``serial``'s record in the keystore
    at ``path`` (default: `default_path`). Raises KeystoreError naming the file and the reason."""
    where = key_file or path or default_path()
    try:
        if key_file:
            with open(key_file) as f:
                sec = json.load(f)
        else:
            sec = (load(where)["meters"].get(serial) or {}).get("security")
            if not sec:
                raise KeystoreError("keystore %s has no DLMS keys for meter %s (meterctl provision "
                                    "creates them)" % (where, serial))
        if not isinstance(sec, dict):
            raise ValueError("not a JSON object with ek, ak and client_title")
        return hls_keys(sec)
    except KeyError as e:
        raise KeystoreError("cannot use the DLMS keys of %s: it has no %r (a key file holds ek, ak "
                            "and client_title as hex, and hls, mech, kek as needed)" % (where, e.args[0]))
    except (OSError, ValueError, TypeError) as e:
        raise KeystoreError("cannot use the DLMS keys of %s: %s" % (where, e))


class Counter:
    """Our invocation counter for one key set (GUEK+GAK; per meter, since keys are per meter),
    in ``<state dir>/ic/<fingerprint>`` (``portlock.state_dir()``: $METERCTL_STATE_DIR ...) (a decimal number: the next counter we may use; the
    fingerprint is a hash, never the keys). ``reserve(limit)`` writes ``limit`` before counters
    up to it are used, ``save(next)`` writes the exact next one at the end of a session: a crash
    skips at most one reserved block, a counter is never used twice."""

    def __init__(self, ek, ak, directory=None):
        fp = hashlib.sha256(b"meterctl-ic\0" + bytes(ek) + bytes(ak)).hexdigest()[:16]
        self.path = pathlib.Path(directory or state_dir()) / "ic" / fp
        self._written = None

    def load(self):
        """The next counter to use (int), or None when we have none for these keys."""
        try:
            return int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _write(self, n):
        if n == self._written:
            return
        self._written = n
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp%d" % os.getpid())
        fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("%d\n" % n)
            f.flush()
            os.fsync(f.fileno())
        os.replace(str(tmp), str(self.path))

    def reserve(self, limit):
        """Counters below ``limit`` are about to be used: persist ``limit`` first."""
        self._write(limit)

    def save(self, next_ic):
        """The session ended with ``next_ic`` unused: the next session starts there."""
        self._write(next_ic)


KEY_IDS = {"ek": 0, "ak": 2, "kek": 3}    # IC 64 key_id: 0 global unicast, 2 authentication, 3 master


def key_transfer_params(kek, new):
    """The argument of IC 64 method 2 global_key_transfer (Green Book §4.4.7, security suite
    0): array of structure {key_id enum, key_wrapped octet-string}, each key of ``new``
    ({"ek"|"ak"|"kek": 16 bytes}) wrapped under the current master key ``kek`` (RFC 3394) ->
    A-XDR bytes. Raises ValueError for a key that is not 16 bytes."""
    from protocol import axdr_client as axdr
    from protocol import security_client as keywrap
    w = axdr.Writer()
    items = [(KEY_IDS[k], bytes(v)) for k, v in sorted(new.items(), key=lambda kv: KEY_IDS[kv[0]])]
    w.array(len(items))
    for kid, key in items:
        if len(key) != 16:
            raise ValueError("key %d must be 16 bytes" % kid)
        w.structure(2)
        w.enum(kid)
        w.octet_string(keywrap.wrap(bytes(kek), key))
    return w.getvalue()


def replaced_keys(old, new):
    """``old`` (an ``HlsKeys``) with the keys of ``new`` ({"ek"|"ak"|"kek": bytes}) put in."""
    from protocol.hls_client import HlsKeys
    return HlsKeys(new.get("ek", old.ek), new.get("ak", old.ak), old.title, old.mechanism, old.secret,
                   old.ciphered, new.get("kek", old.kek))
