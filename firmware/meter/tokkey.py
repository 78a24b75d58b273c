"""A key-change section (class 2 subclasses 3, 4, 8, 9: Set1st..4thSectionDecoderKey) judged on the
journaled acceptor record for ``meter.tokjudge``, which loads this module for such a section only
(``meter.tokgate`` unloads both once the token is judged): the same results, record and pending
sections as ``meter.tokens.TokenAcceptor`` (tests/device/test_token_lean.py), without the acceptor's
code (``meter.tokens`` + ``protocol.sts_core``: ~2.3 KiB more per section on 32 bits).

Pending sections (``meter.tokens[2]``, RAM only, shared with the acceptor) are the 6 bytes of bits
63..16 of each decrypted block, key1's reserved bit (50) cleared (never compared); the time of the
first one is ``meter.tokens[3]``.
"""
from meter.tokres import TokenResult

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_WINDOW_S = const(90)   # TokenAcceptor's key_change_window_s (meter.tokens.acceptor sets no other)


def section(meter, r, j, b, now):
    """The section in ``b`` (bytearray: class, then the decrypted block, its CRC checked) for the
    record ``r`` (a bytearray, its key ending at ``j``): a TokenResult, ``r`` updated in place by a
    completed key change (key, KRN, KT, TI, KEN; RO: the TID store cleared and the base date on; no
    wrong entries, no lock-out)."""
    s = meter.tokens
    kc = s[2]
    sub = b[1] >> 4
    i = sub - 3 if sub < 5 else sub - 6     # subclass 3, 4, 8, 9 -> section 0..3
    n = 2 if j == 13 else 4                 # EA07: an 8-byte key in 2 sections, EA11 16 in 4
    if i >= n:
        return TokenResult(False, "wrong_subclass", 2, sub)
    t = s[3]
    if (kc[0] is None and kc[1] is None and kc[2] is None and kc[3] is None) or now - t > _WINDOW_S \
            or now < t:         # the first section, or the window passed: a new key change
        kc[0] = kc[1] = kc[2] = kc[3] = None
        s[3] = now
    if i == 0:
        b[2] &= 0xFB
    x = take(kc, i, n, bytes(b[1:7]), sub)
    if x is not None:
        if x.value and not x.ok:    # another set restarted: its window from now
            s[3] = now
        return x
    x, t = kc[0], kc[1]         # sections 1 and 2: KENHO KRN RO KT / KENLO TI
    k = key_of(kc, n)
    i = x[1] >> 4
    if r[5:j] == k and r[j] == i and r[j + 1] == x[1] & 3 and r[j + 2] == t[1]:
        # the key in use: a replayed set (with RO it cleared the TID store: every used credit
        # token accepted again); a key change installs a new key or a new revision
        return TokenResult(False, "used", 2, sub)
    r[5:j] = k
    r[j], r[j + 1], r[j + 2], r[j + 3] = i, x[1] & 3, t[1], ((x[0] & 15) << 4) | (t[0] & 15)
    if x[1] & 8:                # RO: the TID store cleared, base date 1993 -> 2014 -> 2035
        r[j + 4] = 2 if r[j + 4] else 1
        r[j + 11] = 0
        r[j + 12:] = b""      # (MicroPython: no del of a bytearray slice)
    for x in range(5, 10):      # no wrong entries, no lock-out
        r[j + x] = 0
    return TokenResult(True, "accepted", 2, sub, None, 0, "key_change", i)


def take(kc, i, n, sec, sub):
    """Section ``sec`` (its 6 bytes) pending as section ``i`` of ``n`` in ``kc`` (also
    ``TokenAcceptor``'s): the TokenResult ("used": pending already, nothing changes;
    "key_change_pending"; "key_change_restarted": another section ``i`` was pending, so
    another set: that set's sections dropped, ``sec`` pending alone, the caller's window
    restarts), or None when all ``n`` are in."""
    if kc[i] == sec:
        return TokenResult(False, "used", 2, sub)
    if kc[i] is not None:       # no field names a section's set: a second section i does
        kc[0] = kc[1] = kc[2] = kc[3] = None
        kc[i] = sec
        return TokenResult(False, "key_change_restarted", 2, sub, None, 0, None, i + 1)
    kc[i] = sec
    for x in range(n):
        if kc[x] is None:
            return TokenResult(True, "key_change_pending", 2, sub, None, 0, "key_change_pending", i + 1)
    return None


def key_of(kc, n):
    """The new key of ``n`` complete sections (bytes: the 1st's 32 bits, the 4th's, the 3rd's, the
    2nd's); the pending sections cleared (the sections themselves stay with the caller)."""
    a, b = kc[0], kc[1]
    k = a[2:] + b[2:] if n == 2 else a[2:] + kc[3][2:] + kc[2][2:] + b[2:]
    kc[0] = kc[1] = kc[2] = kc[3] = None
    return k
