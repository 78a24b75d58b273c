"""0.128.96.5.0.255 attribute 2 read: the tariff/policy profile in force as compact JSON, for
``meter.app`` (loaded for the read, then unloaded). config.json is read here, not with
``meter.settings.config``: that module (~460 B, its constant table one 164 B block) is the
profile SET's, and a ciphered read of every attribute at 56k failed loading it."""
import io
import json

from protocol.axdr import encode_length

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_T_OCTET_STRING = const(9)    # protocol.axdr


class _Into(io.IOBase):
    """json.dump's stream: appends what it is given to the bytearray ``buf``."""

    def __init__(self, buf):
        self.buf = buf

    def write(self, b):
        self.buf.extend(b.encode() if isinstance(b, str) else b)   # CPython writes str
        return len(b)


def profile_into(meter, w):
    """The profile in force as compact JSON (0.128.96.5.0.255 attr 2), an octet-string into
    the ``axdr.Writer`` ``w``: the profile fields of config.json, defaults for payment_mode,
    control_mode, credit_unit and tz_minutes. Dumped where it goes (the response buffer,
    capacity kept): no ~500 B str and bytes copy of it in a fragmented heap."""
    try:
        with open(meter.board.path("config.json")) as f:
            c = json.load(f)
    except (OSError, ValueError):
        c = {}
    if not isinstance(c, dict):
        c = {}
    out = {}
    for k, v in (("name", None), ("tariff", None), ("policy", None), ("limiter", None),
                 ("metering", None), ("payment_mode", 2), ("control_mode", 5), ("credit_unit", 0),
                 ("tz_minutes", 330), ("market", None), ("physical_address", None)):
        v = c.get(k, v)
        if v is not None:
            out[k] = v
    c = None
    buf = w.buf
    at = len(buf)
    json.dump(out, _Into(buf))
    buf[at:at] = bytes((_T_OCTET_STRING,)) + encode_length(len(buf) - at)
