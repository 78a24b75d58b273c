"""EA07's forward tables read and checked (``protocol.ea07.load_tables`` and ``Tables`` call this for a
JSON file, a dict or the three forward tables): the host's and the meter's boot check; a token entry
never loads it (the meter keeps the 96 bytes of inverse tables, ``protocol.ea07``). Errors:
``protocol.sts.StsError`` with reason "tables".
"""


def _err():
    from protocol.sts_core import StsError   # imported when raised
    return StsError("tables")


def _perm_list(v, n):
    """Hex string or list of ints -> bytes of length n, checked to be a permutation;
    StsError("tables") otherwise (bad hex, not small ints, not a permutation of 0..n-1)."""
    try:
        if isinstance(v, str):
            s = v.replace(" ", "")
            if n == 16 and len(s) == 16:      # 16 nibbles, one hex digit each
                v = [int(c, 16) for c in s]
            else:
                v = list(bytes.fromhex(s))
        b = bytes(v)
    except (TypeError, ValueError):
        raise _err()
    if len(b) != n or sorted(b) != list(range(n)):
        raise _err()
    return b


def invert(p):
    inv = bytearray(len(p))
    for i in range(len(p)):
        inv[p[i]] = i
    return bytes(inv)


def inverse(sub1, sub2, perm):
    """The forward tables (hex strings or lists) -> (iperm, isub): bytes(64), the inverse
    permutation, and bytes(32), the inverse substitutions at sel*16 + v; StsError("tables") if one
    is not a permutation."""
    # never assume table 2 = inverse of table 1
    return invert(_perm_list(perm, 64)), invert(_perm_list(sub1, 16)) + invert(_perm_list(sub2, 16))


def read(src):
    """A JSON file's path or a dict -> (sub1, sub2, perm) as given (checked by ``inverse``):
    keys ``sub1``, ``sub2``, ``perm`` or ``substitution_table_1``, ``substitution_table_2``,
    ``permutation_table``; StsError("tables") otherwise."""
    if isinstance(src, str):
        import json
        try:
            with open(src) as f:
                src = json.load(f)
        except (OSError, ValueError):
            raise _err()
    if not isinstance(src, dict):
        raise _err()
    try:
        if "sub1" in src:
            return src["sub1"], src["sub2"], src["perm"]
        return src["substitution_table_1"], src["substitution_table_2"], src["permutation_table"]
    except KeyError:
        raise _err()
