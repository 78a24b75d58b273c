"""The meter's key record: built from config.json at boot (``load``) and changed by the IC 64
methods (``method``: security_activate, global_key_transfer); docs/CONTRACTS.md "Security".

Loaded at boot by ``meter.acse.keys`` and for an IC 64 ACTION (which runs inside an HLS
association), unloaded after boot and when that association ends (``meter.acse.drop``): what an
association runs per APDU is ``meter.secure`` (resident), whose functions take the record as ``k``. The
record's fields and the ``ic`` counter file are described there.
"""
import json
import os

from protocol.aes import keyed
from meter.secure import reserve

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_OTHER = const(250)
_TYPE_UNMATCHED = const(12)
_EV_CONFIG = const(21)         # meter.events


def _hex(d, k, n=16):
    v = d.get(k)
    if not v:
        return None
    b = bytes.fromhex(v)
    if len(b) != n:
        raise ValueError("security.%s: %d bytes wanted" % (k, n))
    return b


class Keys:
    """The resident key record (data only: keys as bytes, system title, mechanisms, policy,
    invocation counters and their reserved limits; EK as ``protocol.aes.keyed``'s pair, the
    mechanism 2 secret as its AES object when a client uses mechanism 2)."""


def load(meter, sec):
    """The key record (``Keys``) from the config ``security``
    section ``sec``: keys as bytes, ``tx`` next sender IC, ``rx`` lowest acceptable receive IC,
    their reserved limits (file ``ic`` written once per boot). Raises ValueError when EK, AK or
    the system title is missing or malformed."""
    k = Keys()
    k.meter = meter
    k.ek, k.ak = _hex(sec, "ek"), _hex(sec, "ak")
    k.title = _hex(sec, "title", 8)
    if k.ek is None or k.ak is None or k.title is None:
        raise ValueError("security: ek, ak and title are required")
    k.kek = _hex(sec, "kek")
    h = sec.get("hls")
    k.hls = bytes.fromhex(h) if h else None
    m = sec.get("mech") or {}
    k.mech = {1: int(m.get("1", 5)), 48: int(m.get("48", 5))}
    # the AES objects (~0.5 KiB each on the 32-bit VM) and GHASH table built now, low in a heap
    # not yet fragmented, and kept: an association allocates none of them
    k.ek = keyed(k.ek, None)
    if k.hls is not None and len(k.hls) <= 16 and 2 in k.mech.values():
        from protocol.hlsecb import ecb
        k.hls = ecb(k.hls)
    k.policy = int(sec.get("policy", 3))
    k.suite = None                 # protocol.security.Suite0 while meter.secure is loaded
    k.new = None                   # key set to apply once the reply has left
    k.path = meter.board.path("ic")
    try:
        with open(k.path, "rb") as f:
            b = f.read(8)
        t = (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]
        r = (b[4] << 24) | (b[5] << 16) | (b[6] << 8) | b[7]
    except (OSError, IndexError):
        t, r = 1, 0
    k.tx, k.rx = t, r
    k.tx_lim, k.rx_lim = t, r
    k.saves = 0
    reserve(k)
    return k


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
    path = k.meter.board.path("config.json")
    with open(path) as f:
        cfg = json.load(f)
    sec = cfg.setdefault("security", {})
    for n, v in zip(("ek", "ak", "kek"), keys):
        if v is not None:
            sec[n] = v.hex()
    tmp = path + ".tmp"                     # beside it: a rename never crosses file systems
    with open(tmp, "w") as f:
        json.dump(cfg, f)
    os.rename(tmp, path)
    k.new = (keys[0], keys[1], keys[2], rekey)   # meter.secure.apply calls rekey
    k.meter.event(_EV_CONFIG, "keys changed", "keys")
    return 0


def rekey(k, s):
    """The keys of a transfer (``k.new``) into the record and the suite ``s`` (``meter.secure.apply``,
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
