"""Host half of the ciphered-APDU code (security suite 0): parse a ciphered APDU into a
``Ciphered`` (bytes, allocates), the GCM IV, one-shot GCM (``Gcm.encrypt``/``decrypt``) and
the names of the service-specific tags, for ``host_tools.decode``. Re-exports the device half's names (``protocol.security``) so host code
imports one module. Host-only (``HOST_ONLY`` in host_tools/build.py): no board image has it.
"""
from protocol import axdr, keywrap, security
from protocol.security import (  # noqa: F401  (re-exported)
    FORM_GLO, TAG_LEN, HLS_LEN, HEADROOM, TAILROOM, service_tag, plain_tag,
    reply_form)
from protocol.aes import keyed  # noqa: F401  (re-exported)
from protocol.hlsecb import ecb, hls_ecb, hls_ecb_check  # noqa: F401  (re-exported)

# the device module keeps these as private consts (no name, no globals slot on the board)
GENERAL_GLO = 0xDB   # general-glo-ciphering
GENERAL_DED = 0xDC   # general-ded-ciphering
FORM_DED = 2         # service-specific ded- APDU (dedicated key): seal(..., form=FORM_DED)
SC_AUTH = 0x10       # security control: authenticated
SC_ENC = 0x20        # security control: encrypted


class SecurityError(ValueError):
    """Malformed or truncated ciphered APDU, or one that cannot be protected or unprotected (the
    meter's ``protocol.security`` raises ValueError with the same one-word texts)."""


class DecipherError(SecurityError):
    """The authentication tag does not verify (wrong key, wrong system title or tampered
    data): Green Book "deciphering-error" (ExceptionResponse ``D8 01 05``)."""


class CounterError(SecurityError):
    """The invocation counter is below the lowest acceptable value (a replay):
    "invocation-counter-error" (ExceptionResponse ``D8 01 06`` + the expected IC)."""


class _Defaults:
    """The streaming GCM calls with the defaults the host uses (the meter's pass every
    argument): ``off`` 0, ``n`` to the end of ``buf``, ``tlen`` 16."""

    def begin(self, iv, off=0):
        security.Suite0.begin(self, iv, off)

    def aad(self, buf, off=0, n=-1):
        security.Suite0.aad(self, buf, off, len(buf) - off if n < 0 else n)

    def hash(self, buf, off=0, n=-1):
        security.Suite0.hash(self, buf, off, len(buf) - off if n < 0 else n)

    def crypt(self, buf, off=0, n=-1):
        security.Suite0.crypt(self, buf, off, len(buf) - off if n < 0 else n)

    def mac(self, out, off=0, tlen=16):
        security.Suite0.mac(self, out, off, tlen)

    def check(self, tag, off=0, tlen=16):
        return security.Suite0.check(self, tag, off, tlen)


class Suite0(_Defaults, security.Suite0):
    """``protocol.security.Suite0`` (the meter's: ValueError, no argument defaults) raising ``SecurityError``,
    ``DecipherError`` for a tag that does not verify and ``CounterError`` for a replayed invocation
    counter, keeping ``sc`` (the security control of the last APDU opened), with the defaults ``title=None, min_ic=0`` (open), ``form=FORM_GLO`` (seal), ``off=0``
    (hls_gmac), ``off=0, n=HLS_LEN`` (hls_check), ``ek=None, ak=None`` (set_keys)."""

    sc = 0                                  # security control of the last APDU opened

    def open(self, buf, start, end, title=None, min_ic=0):
        try:
            n = security.Suite0.open(self, buf, start, end, title, min_ic)
            self.sc = buf[self.start - 5]
            return n
        except ValueError as e:
            w = e.args[0] if e.args else None
            if w == "tag":
                raise DecipherError(w) from None
            if w == "ic":
                raise CounterError(w) from None
            raise SecurityError(w) from None

    def seal(self, buf, start, end, sc, ic, title, form=FORM_GLO):
        try:
            return security.Suite0.seal(self, buf, start, end, sc, ic, title, form)
        except ValueError as e:
            raise SecurityError(*e.args) from None

    def hls_gmac(self, title, ic, challenge, out, off=0):
        security.Suite0.hls_gmac(self, title, ic, challenge, out, off)

    def hls_check(self, title, challenge, value, off=0, n=HLS_LEN):
        return security.Suite0.hls_check(self, title, challenge, value, off, n)

    def set_keys(self, ek=None, ak=None):
        security.Suite0.set_keys(self, ek, ak)


# service-specific ciphered APDU tags -> name (Green Book Table "glo-/ded- APDUs")
SERVICE_TAGS = {0x21: "glo-initiate-request", 0x28: "glo-initiate-response",
                0x2E: "glo-confirmed-service-error", 0xCA: "glo-event-notification-request",
                0x41: "ded-initiate-request", 0x48: "ded-initiate-response",
                0x4E: "ded-confirmed-service-error", 0xD2: "ded-event-notification-request",
                0xC8: "glo-get-request", 0xC9: "glo-set-request", 0xCB: "glo-action-request",
                0xCC: "glo-get-response", 0xCD: "glo-set-response", 0xCF: "glo-action-response",
                0xD0: "ded-get-request", 0xD1: "ded-set-request", 0xD3: "ded-action-request",
                0xD4: "ded-get-response", 0xD5: "ded-set-response", 0xD7: "ded-action-response"}


class Ciphered:
    """A parsed ciphered APDU: ``tag``, ``system_title`` (bytes or None), ``sc``
    (security-control), ``ic`` (invocation counter), ``payload`` (ciphertext[+tag] bytes)."""

    def __init__(self, tag, system_title, sc, ic, payload):
        self.tag = tag
        self.system_title = system_title
        self.sc = sc
        self.ic = ic
        self.payload = payload


def _octets(buf, p):
    try:
        n, p = axdr.decode_length(buf, p)
    except axdr.AxdrError:
        raise SecurityError("truncated length")
    if p + n > len(buf):
        raise SecurityError("truncated octet string")
    return bytes(buf[p:p + n]), p + n


def parse(buf):
    """Parse general-glo/ded-ciphering or a service-specific glo/ded APDU. Raises SecurityError."""
    if len(buf) < 2:
        raise SecurityError("truncated")
    tag = buf[0]
    p = 1
    title = None
    if tag == GENERAL_GLO or tag == GENERAL_DED:
        title, p = _octets(buf, p)
    elif tag not in SERVICE_TAGS:
        raise SecurityError("not a ciphered APDU (tag 0x%02X)" % tag)
    content, p = _octets(buf, p)
    if p != len(buf):
        raise SecurityError("%d bytes after the ciphered content" % (len(buf) - p))
    if len(content) < 5:
        raise SecurityError("ciphered content shorter than its header")
    ic = (content[1] << 24) | (content[2] << 16) | (content[3] << 8) | content[4]
    if content[0] & SC_AUTH and len(content) < 5 + TAG_LEN:
        raise SecurityError("authenticated content shorter than its tag")
    return Ciphered(tag, title, content[0], ic, content[5:])


def is_dedicated(tag):
    """True when the ciphered APDU ``tag`` is protected with a dedicated key (general-ded-
    ciphering or a ded- APDU): the caller picks the Suite0 holding that key. The tag byte is
    not covered by the GCM tag, so a DB/DC swap is caught only by using the right key."""
    return tag == GENERAL_DED or reply_form(tag) == FORM_DED


def nonce(system_title, ic):
    """GCM initialisation vector: system-title (8 bytes) || invocation-counter (u32 BE)."""
    if len(system_title) != 8:
        raise SecurityError("system title must be 8 bytes")
    return bytes(system_title) + bytes(((ic >> 24) & 0xFF, (ic >> 16) & 0xFF, (ic >> 8) & 0xFF, ic & 0xFF))


class Gcm(_Defaults, security.Suite0):
    """AES-GCM-128 under one key (16 bytes, or ``keyed(key, None)``'s pair): the streaming GCM of
    ``protocol.security.Suite0`` (the meter's) with the one-shot helpers on whole
    buffers: ``encrypt`` (``data`` ciphered in place, ``tag`` filled; its length is the tag
    length) and ``decrypt`` (checks the tag first and deciphers only when it matches, so a
    forged message never yields plaintext)."""

    def __init__(self, key):
        security.Suite0.__init__(self, key, None)

    def set_key(self, key):
        """Change the key (16 bytes or ``keyed``'s pair)."""
        security.Suite0.set_keys(self, key, None)

    def encrypt(self, iv, aad, data, tag):
        """Encrypt ``data`` (writable buffer) in place and write the tag into ``tag`` (writable;
        its length, 1..16, is the tag length). ``iv`` 12 bytes, ``aad`` any buffer."""
        self.begin(iv)
        self.aad(aad)
        self.crypt(data)
        self.hash(data)
        self.mac(tag, 0, len(tag))

    def decrypt(self, iv, aad, data, tag):
        """Verify ``tag`` over ``aad`` and the ciphertext ``data``; when it matches, decrypt
        ``data`` in place and return True. On mismatch return False and leave ``data`` as it
        was (no plaintext is released)."""
        self.begin(iv)
        self.aad(aad)
        self.hash(data)
        if not self.check(tag, 0, len(tag)):
            return False
        self.crypt(data)
        return True


class KeyWrapError(ValueError):
    """Wrapped key of a bad length, or the integrity check failed (wrong KEK or damaged data)."""


def wrap(kek, key):
    """RFC 3394 wrap of ``key`` (multiple of 8 bytes, >= 16) under ``kek`` (16 bytes)."""
    from protocol import aes
    n = len(key) // 8
    if len(key) % 8 or n < 2:
        raise KeyWrapError("key to wrap must be a multiple of 8 bytes, at least 16")
    e = aes.new(kek)
    r = bytearray(8) + bytearray(key)            # r[0:8] is A; R[i] at r[8i:8i+8]
    r[0:8] = keywrap._IV
    b = bytearray(16)
    for j in range(6):
        for i in range(1, n + 1):
            b[0:8] = r[0:8]
            b[8:16] = r[8 * i:8 * i + 8]
            e.encrypt(b, b)                       # B = AES(K, A | R[i])
            keywrap._xor_t(b, n * j + i)                  # A = MSB64(B) ^ t
            r[0:8] = b[0:8]
            r[8 * i:8 * i + 8] = b[8:16]
    return bytes(r)


def unwrap(kek, wrapped):
    """``protocol.keywrap.unwrap`` (the meter's) raising ``KeyWrapError`` (bad length, wrong KEK or
    damaged data) instead of its ValueError."""
    try:
        return keywrap.unwrap(kek, wrapped, bytearray(208))
    except ValueError:
        raise KeyWrapError("bad wrapped key or KEK") from None
