"""The IC 64 v0 methods of the meter's security setup (security_activate, global_key_transfer) on
the key record of ``meter.keyset``; docs/CONTRACTS.md "Security". Loaded for an IC 64 ACTION (which
runs inside an HLS association, ``meter.cosem.act``) and unloaded when that association ends
(``meter.acse.drop``).
"""
import json
import os

from protocol.aes import keyed

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_OTHER = const(250)
_TYPE_UNMATCHED = const(12)
_EV_CONFIG = const(21)         # meter.events


def _load(path):
    """config.json as a dict, read in a frame of its own: a file object stays alive while the frame
    that opened it runs (its value stack), and on littlefs each is a ~256 B block (with its cache):
    the write must not need a second one beside it."""
    with open(path) as f:
        return json.load(f)


def _store(path, keys):
    """The new ``keys`` (EK, AK, KEK; None: unchanged) into config.json, written in one rename (a
    power cut leaves the old or the new set). In a frame of its own: the config dict and the file
    objects are garbage once it returns, before the "keys changed" event is written."""
    cfg = _load(path)
    sec = cfg.setdefault("security", {})
    for n, v in zip(("ek", "ak", "kek"), keys):
        if v is not None:
            sec[n] = v.hex()
    tmp = path + ".tmp"                     # beside it: a rename never crosses file systems
    with open(tmp, "w") as f:
        json.dump(cfg, f)
    os.rename(tmp, path)


def method(k, m, tagged, buf):
    """IC 64 v0: 1 security_activate(enum policy), 2 global_key_transfer(array of
    {key_id enum, wrapped key octet-string}) -> action-result. Keys are unwrapped with the
    KEK (RFC 3394), written to config.json in one rename (a power cut leaves the old or
    the new set) and used from the next APDU on. ``buf``: the association's response buffer
    (``meter.server``: free while an ACTION runs), the unwrap's scratch."""
    if m == 1:
        return 0 if tagged is not None and tagged[1] == k.policy else _OTHER
    if tagged is None or tagged[0] != 1 or k.kek is None:
        return _TYPE_UNMATCHED if tagged is None or tagged[0] != 1 else _OTHER
    if not tagged[1]:
        return _OTHER       # nothing to transfer: no config write, no "keys changed" event
    from protocol import keywrap
    while len(buf) < 208:                # within its capacity (1280 B, allocated at boot)
        buf.append(0)
    keys = [None, None, k.kek]           # ek, ak, kek
    try:
        for item in tagged[1]:
            kid, w = item[1][0][1], item[1][1][1]
            if kid not in (0, 2, 3):
                return _OTHER
            keys[(0, 0, 1, 2)[kid]] = keywrap.unwrap(k.kek, bytes(w), buf)
    except (ValueError, TypeError, IndexError):   # keywrap raises ValueError
        return _OTHER
    if any(x is not None and len(x) != 16 for x in keys):
        return _OTHER
    _store(k.meter.board.path("config.json"), keys)
    k.new = (keys[0], keys[1], keys[2], rekey)   # meter.secure.unwrap (or meter.acse.aarq) calls rekey
    k.meter.event(_EV_CONFIG, "keys changed", "keys")
    return 0


def rekey(k, s):
    """The keys of a transfer (``k.new``) into the record and the suite ``s`` (``meter.secure.unwrap``,
    after the transfer's reply was sealed with the old ones). The old AES context and GHASH table
    are freed first: the new ones take their blocks (a fragmented heap seldom has another ~0.5
    KiB one). Out of memory, EK stays bytes: each association builds its suite from them."""
    ek, ak, kek, _ = k.new
    k.new = None
    k.ak = ak or k.ak              # resident: the suite is built from them at the next load
    k.kek = kek
    if ek is None:
        s.set_keys(None, ak)
        return
    import gc
    m = k.ek[1] if isinstance(k.ek, tuple) else None   # the H table: rebuilt in place
    s.set_keys((None, None), None)
    k.ek = None
    gc.collect()
    try:
        k.ek = keyed(ek, m)
        s.set_keys(k.ek, ak)
    except MemoryError:
        k.ek, k.suite = ek, None
