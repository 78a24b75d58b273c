"""``meterctl keys rotate``: replace a meter's GUEK and GAK (and optionally its master key) with
new random keys by IC 64 method 2 global_key_transfer (RFC 3394 wrapped under the current master
key), over its HLS association.

The new keys are written to the key file or keystore as ``pending`` before anything is sent, so a
lost answer never loses them; once the meter answered (or, after a lost answer, an association
with the new keys succeeded) they replace the old ones. The meter writes its key set in one
rename: after a power cut it holds the old or the new set, never a mix (tests/hil/
test_key_transfer.py); when the answer was lost the command finds out which by associating.
"""
import json
import os
import secrets

import click

from host_tools import keystore as ks
from host_tools.client import DataAccessError, DlmsError
from host_tools.meterctl.common import (CONTEXT, EXIT_METER, EXIT_UNKNOWN, auth_mode, emit_json, fail,
                                        link_options, load_keys, make_client, run)

SETUP_LN = {1: "0.0.43.0.1.255", 48: "0.0.43.0.3.255"}   # IC 64 security setup, by client SAP


class KeyRecord:
    """The ``security`` record the keys came from: a key file (JSON) or a keystore entry."""

    def __init__(self, kw):
        self.kw = kw
        if kw.get("key_file"):
            with open(kw["key_file"]) as f:
                self.data = json.load(f)
            self.store = None
        else:
            self.path = kw.get("keystore") or ks.default_path()
            self.store = ks.load(self.path)
            self.data = self.store["meters"][kw["meter_serial"]]["security"]

    def save(self):
        """Write the record back (key file: atomically, mode 0600)."""
        if self.store is not None:
            ks.save(self.path, self.store)
            return
        path = self.kw["key_file"]
        tmp = "%s.tmp%d" % (path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def pending(self, new):
        self.data["pending"] = {k: v.hex() for k, v in new.items()}
        self.save()

    def commit(self):
        self.data.update(self.data.pop("pending", {}))
        self.save()

    def discard(self):
        self.data.pop("pending", None)
        self.save()


def _opens(kw, keys):
    """True when an HLS association with ``keys`` succeeds (released at once)."""
    try:
        with make_client(kw, True, keys=keys):
            return True
    except DlmsError:
        return False


def _shared_key_file(kw):
    """The --key-file when it is the emulator's shared test key file (a warning first), else None."""
    from host_tools.meterctl.emulate import key_file_path

    path = kw.get("key_file")
    if not path or os.path.realpath(path) != os.path.realpath(key_file_path()):
        return None
    click.echo("meterctl: warning: %s is the emulator's shared test key file: the new keys are written "
               "into it, and every other emulated meter uses the test keys (copy it first and rotate with "
               "--key-file COPY to keep them apart)" % path, err=True)
    return path


@click.group("keys", context_settings=CONTEXT)
def keys():
    """A meter's DLMS security keys (HLS-GMAC, security suite 0)."""


@keys.command("rotate", context_settings=CONTEXT)
@link_options(write=True)
@click.option("--new-kek", is_flag=True, help="Replace the master key (KEK) too.")
def rotate(new_kek, **kw):
    """Replace the meter's GUEK and GAK (--new-kek: and KEK) with new random keys.

    Needs --auth hls with the keys, KEK included: --key-file FILE (updated in place) or
    --meter SERIAL (the keystore entry is updated).

    \b
    Examples:
      meterctl keys rotate --port /dev/ttyUSB0 --meter PPM0000042
      meterctl keys rotate --port /dev/pts/5 --key-file keys.json --new-kek
    """
    if auth_mode(kw) != "hls" or not (kw.get("key_file") or kw.get("meter_serial")):
        raise click.UsageError("keys rotate runs over HLS: give --key-file FILE or --meter SERIAL")
    shared = _shared_key_file(kw)
    old = load_keys(kw)
    if old.kek is None:
        raise click.UsageError("the keys have no master key (kek): it wraps the new keys")
    new = {"ek": secrets.token_bytes(16), "ak": secrets.token_bytes(16)}
    if new_kek:
        new["kek"] = secrets.token_bytes(16)
    rec = KeyRecord(kw)
    rec.pending(new)
    new_keys = ks.replaced_keys(old, new)
    ln = SETUP_LN.get(kw.get("client_sap") or 1, SETUP_LN[1])

    def body():
        try:
            with make_client(kw, True, keys=old) as c:
                c.action(64, ln, 2, ks.key_transfer_params(old.kek, new))
            checked = False
        except DataAccessError as e:
            rec.discard()
            fail("key transfer refused by the meter: %s (the old keys stay)" % e, EXIT_METER)
        except DlmsError as e:
            checked = str(e)
        if checked and not _opens(kw, new_keys):
            if _opens(kw, old):
                rec.discard()
                fail("key transfer not applied: %s; the meter still uses the old keys" % checked, EXIT_METER)
            fail("key transfer outcome unknown: %s; neither key set opens an association now; the "
                 "new keys are kept as 'pending' in the key record" % checked, EXIT_UNKNOWN)
        rec.commit()
        if shared:
            click.echo("meterctl: warning: %s now holds this meter's new keys, not the emulator's test keys: "
                       "other emulated meters will not open with it; the next meterctl emulate keeps it as "
                       "%s.kept-<time> and writes the test keys" % (shared, shared), err=True)
        out = {"rotated": sorted(new), "checked": bool(checked)}
        if kw["as_json"]:
            emit_json(out)
        else:
            click.echo("keys rotated: %s%s" % (", ".join(sorted(new)), " (answer lost; checked)" if checked else ""))

    run(body, interrupted="interrupted: the key transfer may have been sent; an association with the "
                          "old keys, then with the new ones, tells which set the meter uses")
