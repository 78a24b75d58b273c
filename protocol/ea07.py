"""EA07: the STS Standard Transfer Algorithm (STA), IEC 62055-41 §7.2 (table-driven).

Not DES: 16 rounds of (substitute 16 nibbles -> permute 64 bits -> rotate the round key
left by 1). Nibble i (bits 4i+3..4i) goes through substitution table 1 or 2 as bit 4i+3
of the current round key is 0 or 1; the permutation scatters bit j to bit P[j]. The first
round key is ror64(~DK, 12). Decryption runs the inverse steps with the round keys in
reverse order. Bit 0 = LSB of the block/key written in natural (IEC) hex order.

The tables are data, not code: ``load_tables(path_or_dict)`` reads them from a JSON file
(``firmware/sts_sample_tables.json`` holds the IEC SAMPLE tables for tests; the real STA
tables are STSA-licensed, user-supplied and never committed).

Device use (allocation-free per block given scratch, small ints only, no 64-bit big ints)::

    t = load_tables("/sts_tables.json")
    decrypt(dk_bytes8, t, buf8, None, None)   # bytearray(8), big-endian block, in place

Decryption needs no derived tables (bit by bit, ~1,000 small-int steps per block). The
cipher object (``protocol.sts.Ea07``: ``decrypt_into``, ``encrypt_into``, ``encrypt_block(int)``,
``decrypt_block(int)``, ``decrypt_into_fast`` over 4 KB / 6 KB of derived tables) is the host's, not in a
board image: a class and its two methods were ~200 B more per token entry on 32 bits.
Errors: ``protocol.sts.StsError`` with reason "tables" (``protocol.sts.Ea07``: "key").
"""
# No module-level names beyond the functions and classes: a token entry loads this module (the
# meter's credit path, meter.tokjudge), and each global past 10 (with __name__, __file__) grows its
# dict table (12 slots: 96 B, the block a token inside an HLS association failed on at 56k; 17: 136
# B); so no ``const`` import (16 rounds: written out), ``array`` imported where it is used and
# StsError where it is raised (protocol.sts_core: not on the credit path). Reading and checking the forward tables (JSON, permutations)
# is ``protocol.ea07tab``'s: its names stay out of this module's constant table (one block per load).


class Tables:
    """EA07's tables, given as the two 4-bit substitution tables ``sub1``/``sub2`` (16 entries)
    and the 64-entry scatter permutation ``perm`` (bit j -> bit perm[j]), kept as what
    decryption reads: ``iperm`` (bytes(64), the inverse permutation) and ``isub`` (bytes(32),
    the inverse substitutions at sel*16 + v). The forward tables (``protocol.sts.ea07_tables``)
    and the derived encryption / fast-decryption tables are the host's.
    """

    def __init__(self, sub1, sub2=None, perm=None):
        if sub2 is None:   # the 96 bytes a meter keeps (isub + iperm, checked when first read): views
            if len(sub1) != 96:
                from protocol.sts_core import StsError
                raise StsError("tables")
            m = memoryview(sub1)
            self.isub, self.iperm = m[:32], m[32:]
            return
        from protocol.ea07tab import inverse      # the forward tables: checked and inverted there
        self.iperm, self.isub = inverse(sub1, sub2, perm)


def load_tables(src):
    """Path to a JSON file, an already-loaded dict, or the 96 bytes ``isub + iperm`` -> Tables.

    Accepted keys: ``sub1``, ``sub2``, ``perm`` (hex strings or lists) as in
    firmware/sts_sample_tables.json, or the reference spelling ``substitution_table_1``,
    ``substitution_table_2``, ``permutation_table``. StsError("tables") on anything else
    (unreadable file, not a JSON object, a missing key, a table that is not a permutation:
    one short text, no str object per case in the board's heap; the host says which file).
    """
    if isinstance(src, Tables):
        return src
    if isinstance(src, (bytes, bytearray)):   # isub + iperm (Tables.__init__)
        return Tables(src)
    from protocol.ea07tab import read      # a JSON file or a dict: host and boot only
    return Tables(*read(src))


def _sel(key, r, i):
    # round-key selector (0/1) of nibble i in round r: bit 4i+3 of round key r =
    # rol64(ror64(~DK, 12), r), i.e. NOT DK bit (4i + 15 - r) mod 64 (DK: bytes(8), IEC order).
    # Computed per use, no 512-byte table kept per key (issue 17).
    n = (4 * i + 15 - r) & 63
    return 1 - ((key[7 - (n >> 3)] >> (n & 7)) & 1)


def _inv_pass(w, o, iperm, isub, key, r):
    # one inverse step without derived tables, in place on the 4 x 16-bit words in w: nibble i
    # through S^-1 of its round-key selector (round r; skipped when isub is None), then
    # every set bit b of it scattered to bit iperm[4i + b] (iperm None: left in place, S^-1 of
    # encryption round 1; one function, not two: ~60 B less per token entry)
    o[0] = o[1] = o[2] = o[3] = 0
    for i in range(16):
        v = (w[i >> 2] >> ((i & 3) << 2)) & 15
        if isub is not None:
            v = isub[(_sel(key, r, i) << 4) | v]
        if iperm is None:
            o[i >> 2] |= v << ((i & 3) << 2)
            continue
        n = 4 * i
        while v:
            if v & 1:
                p = iperm[n]
                o[p >> 4] |= 1 << (p & 15)
            v >>= 1
            n += 1
    w[0] = o[0]
    w[1] = o[1]
    w[2] = o[2]
    w[3] = o[3]


def _io(w, buf, put):
    # the block's 4 x 16-bit words: the 8 big-endian bytes of buf -> w, or w -> buf (put)
    for k in range(4):
        if put:
            x = w[3 - k]
            buf[2 * k] = x >> 8
            buf[2 * k + 1] = x & 0xFF
        else:
            w[3 - k] = (buf[2 * k] << 8) | buf[2 * k + 1]


def decrypt(key, tables, buf, w, o):
    """The 8-byte block in ``buf`` decrypted in place with ``key`` (bytes(8), IEC order) and
    ``tables`` (Tables, or the 96 bytes ``isub + iperm`` a meter keeps, checked at boot); ``w``,
    ``o``: two array("H") of 4 as scratch, or None (then made here). The meter's credit path
    (``meter.tokjudge``) calls it with the kept bytes: no Ea07, Tables or key copy per token."""
    if isinstance(tables, Tables):
        isub, iperm = tables.isub, tables.iperm
    else:
        m = memoryview(tables)
        isub, iperm = m[:32], m[32:]
    if w is None:
        from array import array
        w, o = array("H", bytes(8)), array("H", bytes(8))
    _io(w, buf, False)
    _inv_pass(w, o, iperm, None, key, 0)             # P^-1 of encryption round 16
    for j in range(15):                               # S^-1 of round 16-j, P^-1 of 15-j
        _inv_pass(w, o, iperm, isub, key, 15 - j)
    _inv_pass(w, o, None, isub, key, 0)               # S^-1 of round 1 (key K1)
    _io(w, buf, True)

