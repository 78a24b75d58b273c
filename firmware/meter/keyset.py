"""The meter's key record, built from config.json at boot (``load``); the IC 64 methods that change
it (security_activate, global_key_transfer) are ``meter.keyxfer``'s; docs/CONTRACTS.md "Security".

Loaded at boot by ``meter.acse.keys`` and unloaded after it: what an association runs per APDU is
``meter.secure`` (resident), whose functions take the record as ``k``. The record's fields and the
``ic`` counter file are described there. (A key transfer loads ``meter.keyxfer`` alone: one module
of ~0.4 KiB, no block over ~130 B, instead of this one with it: a 208 B block failed at 56k.)
"""
from protocol.aes import keyed
from meter.secure import reserve

try:
    from micropython import const
except ImportError:
    def const(x):
        return x



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
