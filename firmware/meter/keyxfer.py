"""The IC 64 v0 methods of the meter's security setup (security_activate, global_key_transfer) on
the key record of ``meter.keyset``; docs/CONTRACTS.md "Security". Loaded for an IC 64 ACTION (which
runs inside an HLS association, ``meter.cosem.act``) and unloaded when that association ends
(``meter.acse.drop``).
"""
import os
from binascii import hexlify

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_OTHER = const(250)
_TYPE_UNMATCHED = const(12)
_EV_CONFIG = const(21)         # meter.events


def _store(path, keys):
    """The new ``keys`` (EK, AK, KEK; None: unchanged) into config.json, written in one rename (a
    power cut leaves the old or the new set). The file is copied 32 bytes at a time and only the
    three values of its ``security`` object are replaced: ``json.load`` of the whole config built
    ~2 KiB of objects in a heap that an HLS association leaves with ~2-3 KiB at 56 KiB. OSError
    (nothing renamed) when a key to write is not a string value of ``security``."""
    b = bytearray(32)
    o = bytearray()          # the chunk written
    s = bytearray()          # the member name being read
    top = name = b""         # the top-level member's name, the security member's name
    d = q = e = skip = st = found = 0    # depth, in a string, after a backslash, replacing, {=1 per level
    kx = 0                   # a member name comes next (in an object, before its colon)
    tmp = path + ".tmp"      # beside it: a rename never crosses file systems
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        while True:
            n = src.readinto(b)
            if not n:
                break
            o[:] = b""
            for i in range(n):
                c = b[i]
                if q:
                    x = e                # this byte is escaped
                    e = not x and c == 92
                    if c == 34 and not x:
                        q = skip = 0
                        if kx and d == 1:
                            top = bytes(s)
                        elif kx and d == 2:
                            name = bytes(s)
                    elif skip:
                        continue
                    elif kx:
                        s.append(c)
                elif c == 34:
                    q = 1
                    s[:] = b""
                    j = 3 if kx or d != 2 or top != b"security" else (b"ek", b"ak", b"kek", name).index(name)
                    if j < 3 and keys[j] is not None:
                        o.append(34)
                        o.extend(hexlify(keys[j]))
                        skip = 1
                        found |= 1 << j
                        continue
                elif c == 123 or c == 91:
                    d += 1
                    st = st << 1 | (c == 123)
                    kx = c == 123
                elif c == 125 or c == 93:
                    d -= 1
                    st >>= 1
                    kx = 0
                elif c == 58:
                    kx = 0
                elif c == 44:
                    kx = st & 1
                o.append(c)
            dst.write(o)
    if found != (keys[0] is not None) | (keys[1] is not None) << 1 | (keys[2] is not None) << 2:
        raise OSError(22)
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
    keywrap = None
    from meter.acse import unload
    unload("protocol.keywrap")           # its ~0.3 KiB back before the config write and the event
    if any(x is not None and len(x) != 16 for x in keys):
        return _OTHER
    _store(k.meter.board.path("config.json"), keys)
    k.new = (keys[0], keys[1], keys[2], rekey)   # meter.secure.unwrap (or meter.acse.aarq) calls rekey
    return 0                                     # the event: rekey's, once the request is gone


def rekey(k, s):
    """The keys of a transfer (``k.new``) into the record and the suite ``s`` (``meter.secure.unwrap``,
    after the transfer's reply was sealed with the old ones, before it leaves). The "keys changed"
    event is written here, not by ``method`` (where it found no room in most transfers at 56 KiB):
    the request's objects are gone and the old AES context and GHASH table (~0.8 KiB) are freed
    first, the room of the event's call frames (~560 B: a bytecode frame over 44 B is a heap block)
    and its littlefs file object (252 B); then the new context and table are made in that room,
    each before any call frame (a fragmented heap seldom has another ~0.5 KiB block). Out of
    memory, EK stays bytes: each association builds its suite from them."""
    ek, ak, kek, _ = k.new
    k.new = None
    k.ak = ak or k.ak              # resident: the suite is built from them at the next load
    k.kek = kek
    import gc
    if ek is None:
        s.set_keys(None, ak)
        gc.collect()
        k.meter.event(_EV_CONFIG, "keys changed", "keys")
        return
    from protocol.aes import keyed, new     # loaded here (not with this module), before the old context goes
    s.set_keys((None, None), None)
    k.ek = None
    gc.collect()
    k.meter.event(_EV_CONFIG, "keys changed", "keys")   # in the room the old context left
    gc.collect()                       # its file object goes: the room is the new context's
    try:
        e = new(ek)                    # first: keyed's call frame (a heap block) would split the room
        from array import array
        m = array("H", range(128))     # the table too, before keyed's frame (filled there)
        k.ek = keyed(e, m)
        s.set_keys(k.ek, ak)
    except MemoryError:
        k.ek, k.suite = ek, None
