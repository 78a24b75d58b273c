"""One top-level key of config.json read alone while the meter runs (the name plate, the market
of the object_list's IC 70 version), for ``meter.cosem_values`` and ``meter.cosem_prof``; loaded
per use, it unloads itself after each read. The file is read 32 bytes at a time and only the key's value is decoded:
``json.load`` of the whole config built ~2 KiB of objects (dict tables up to 184 B), which did not
find room in a profiles meter's heap at 56 KiB (docs/MEMORY.md)."""
import json


def get(board, key):
    """The JSON value of top-level ``key`` (a str), else None (no file, no key, not JSON)."""
    try:
        return _scan(board, key.encode() + b'"')
    finally:
        from meter.acse import unload
        unload("meter.cfgkey")


def _scan(board, key):
    b = bytearray(32)
    s = bytearray()          # the top-level string being read, then the value's text
    d = q = e = 0            # depth, in a string, after a backslash
    k = -1                   # -1: scanning, 0: after the key's colon, 1: in the value
    try:
        f = open(board.path("config.json"), "rb")
    except (OSError, AttributeError):      # (a host test's board has no files)
        return None
    with f:
        while True:
            n = f.readinto(b)
            if not n:
                return None
            for i in range(n):
                c = b[i]
                if k == 0 and c > 32 and c != 58:
                    k = 1
                    s[:] = b""
                if k > 0 and not q and d == 1 and (c == 44 or c == 125):
                    try:                                   # the value ends: , or } at the top
                        return json.loads(s)
                    except ValueError:
                        return None
                if k > 0 or (q and d == 1 and len(s) <= len(key)):
                    s.append(c)
                if q:
                    if e:
                        e = 0
                    elif c == 92:
                        e = 1
                    elif c == 34:
                        q = 0
                elif c == 34:
                    q = 1
                    if k < 0:
                        s[:] = b""
                elif c == 123 or c == 91:
                    d += 1
                elif c == 125 or c == 93:
                    d -= 1
                elif k < 0:
                    k = 0 if c == 58 and d == 1 and s == key else -1
