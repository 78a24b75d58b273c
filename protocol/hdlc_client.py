"""HDLC frame layer, client (host) side (IEC 62056-46, ISO/IEC 13239).

Host code imports this module only (``from protocol import hdlc_client as hdlc``): it
re-exports the meter side (``protocol.hdlc``: ``ctrl_i``, ``ctrl_rr``, ``kind``, ``ns``, ``nr``,
``decode_address``, ``split_server_address``, ``Frame``, ``encode_frame``, ``Receiver``,
``encode_params``/``decode_params``, ``HdlcError``, the K_* kinds) and adds what only a client
or a capture decoder needs, which the device image leaves out (``host_tools.build.HOST_ONLY``):
the command constants, ``encode_client_address``/``encode_server_address``, ``decode_frame``,
``ctrl_rnr``, ``pf`` and ``frame_repr``. Runs on CPython and MicroPython.
"""
from protocol.hdlc import *  # noqa: F401,F403  (the meter side, re-exported)
from protocol.hdlc import HdlcError, _check

FLAG = 0x7E
# Unnumbered responses with the P/F bit set (§6.4.3).
UA = 0x73
DM = 0x1F
FRMR = 0x97
# LLC sub-layer header of a response (IEC 62056-46 §5; first segment of an I-frame only).
LLC_RESPONSE = b"\xE6\xE7\x00"
# kind() results
K_I = 1
K_RR = 2
K_RNR = 3
K_SNRM = 4
K_UA = 5
K_DISC = 6
K_DM = 7
K_FRMR = 8
K_UI = 9
# Unnumbered / supervisory commands and responses with the P/F bit set (§6.4.3).
SNRM = 0x93
DISC = 0x53
UI = 0x13
# LLC sub-layer header of a request (IEC 62056-46 §5; first segment of an I-frame only).
LLC_REQUEST = b"\xE6\xE6\x00"

MAX_FRAME_LEN = 2047
K_UNKNOWN = 0

_PF = 0x10
_MIN_LEN = 7  # format(2) + dest(1) + src(1) + ctrl(1) + FCS(2)


def ctrl_rnr(nr, pf=True):
    """Control byte of an RNR (receive not ready) S-frame: ``N(R)<<5 | P/F<<4 | 0x05``."""
    return ((nr & 7) << 5) | (_PF if pf else 0) | 0x05


def pf(ctrl):
    """Poll/final bit of a control byte (bool)."""
    return bool(ctrl & _PF)


def encode_client_address(sap):
    """Client (SAP) address as 1 byte: ``sap<<1 | 1``; sap 0..0x7F, e.g. 16 -> b'\\x21'."""
    if not 0 <= sap <= 0x7F:
        raise HdlcError("address", "client address out of range")
    return bytes(((sap << 1) | 1,))


def encode_server_address(logical, physical=None, size=None):
    """Server address as 1, 2 or 4 bytes.

    1 byte: logical only (0..0x7F). 2 bytes: upper = logical, lower = physical, 7 bits each.
    4 bytes: 14 bits each. ``size`` None picks the smallest that fits (1 byte when
    ``physical`` is None). Raises HdlcError('address') when out of range.
    """
    if physical is None and size in (None, 1):
        if not 0 <= logical <= 0x7F:
            raise HdlcError("address", "server address out of range")
        return bytes(((logical << 1) | 1,))
    if physical is None:
        physical = 0
    if size is None:
        size = 2 if (logical <= 0x7F and physical <= 0x7F) else 4
    if size == 2:
        lim = 0x7F
    elif size == 4:
        lim = 0x3FFF
    else:
        raise HdlcError("address", "server address size must be 1, 2 or 4")
    if not (0 <= logical <= lim and 0 <= physical <= lim):
        raise HdlcError("address", "server address out of range")
    if size == 2:
        return bytes((logical << 1, (physical << 1) | 1))
    return bytes(((logical >> 7) << 1, (logical & 0x7F) << 1,
                  (physical >> 7) << 1, ((physical & 0x7F) << 1) | 1))



def frame_repr(f):
    """One-line description of a ``Frame`` (for logs and test messages)."""
    return "Frame(seg=%r dest=%s src=%s ctrl=0x%02X info=%d B)" % (
        f.segmented, _hex(f.dest), _hex(f.src), f.ctrl, len(f.info))


def _hex(b):
    return "".join("%02X" % x for x in b)



def decode_frame(buf):
    """Decode exactly one whole frame ``7E ... 7E`` into a ``Frame``.

    Raises HdlcError: 'flag' (missing opening/closing 0x7E), 'format' (type nibble not
    0xA), 'length' (length field disagrees with the buffer or is too short), 'address',
    'hcs', 'fcs'.
    """
    n = len(buf)
    if n < 2 or buf[0] != FLAG or buf[n - 1] != FLAG:
        raise HdlcError("flag")
    if n < 3 or buf[1] & 0xF0 != 0xA0:
        raise HdlcError("format")
    ln = ((buf[1] & 0x07) << 8) | buf[2]
    if ln != n - 2 or ln < _MIN_LEN:
        raise HdlcError("length")
    return _check(buf, 0, n)
