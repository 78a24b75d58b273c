"""Ciphered xDLMS APDUs and HLS for security suite 0 (DLMS UA 1000-2 "Green Book" §9.2.7,
AES-GCM-128 with a 12-byte tag; shared/reference dlms-security.md §1-2).

- general-glo-ciphering ``DB`` / general-ded-ciphering ``DC``:
  ``tag | system-title (length + bytes) | ciphered-content (length + bytes)``
- service-specific glo/ded APDUs (e.g. ``C8`` glo-get-request, ``CC`` glo-get-response):
  ``tag | ciphered-content (length + bytes)`` (system title from the AARQ/AARE).
- ciphered-content = ``security-control (1) | invocation-counter (4) | payload``; payload =
  ciphertext || tag(12) when authenticated and encrypted. security-control: bits 0-3 suite id,
  0x10 authentication, 0x20 encryption, 0x40 broadcast key, 0x80 compression.
- GCM: IV = sender system-title (8) || invocation-counter (4); AAD = security-control || AK
  (|| the plaintext when only authenticated); key = EK (global unicast or dedicated).

This is the device half, allocation-free after construction: ``Suite0`` (``open`` verifies
and deciphers a ciphered APDU in place, ``seal`` protects a plaintext APDU in place,
``hls_gmac``/``hls_check`` compute and check HLS mechanism 5 f(challenge)); HLS mechanism 2
(AES-128-ECB, IS 15959-2) is ``protocol.hlsecb``, loaded only for it. The host half (``parse`` -> ``Ciphered``, ``nonce``, tag names) is
``protocol.security_client``, which re-exports this module's names and defines the public
tag/SC constants and ``is_dedicated``. Error texts are one word ("truncated", "format", "title",
"tag" (GCM tag mismatch), "ic" (replay), "room"): names the board has anyway, no str object in the heap.
"""
from protocol.gcm import Gcm

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# private, folded by mpy-cross (public in protocol.security_client, with is_dedicated)
_GENERAL_GLO = const(0xDB)
_GENERAL_DED = const(0xDC)
FORM_GLO = 1         # service-specific glo- APDU (global key): seal(..., form=FORM_GLO)
_FORM_DED = const(2)  # service-specific ded- APDU (dedicated key)
_SC_AUTH = const(0x10)
_SC_ENC = const(0x20)
TAG_LEN = 12
HLS_LEN = 17         # f(challenge) of mechanism 5: SC(1) || IC(4) || T(12)
# room a caller leaves around a plaintext APDU so that seal() can protect it in place:
# before: tag, ST length + ST (general form), content length (up to 3 bytes), SC, IC
HEADROOM = 18
TAILROOM = 12        # the GCM tag

_SC_RESERVED = const(0xCF)   # suite id != 0, broadcast key, compression: not supported
_SC_PROTECTED = const(0x30)


class SecurityError(ValueError):
    """Malformed or truncated ciphered APDU, or one this meter cannot protect or unprotect."""


class DecipherError(SecurityError):
    """The authentication tag does not verify (wrong key, wrong system title or tampered
    data): Green Book "deciphering-error" (ExceptionResponse ``D8 01 05``)."""


class CounterError(SecurityError):
    """The invocation counter is below the lowest acceptable value (a replay):
    "invocation-counter-error" (ExceptionResponse ``D8 01 06`` + the expected IC)."""


def service_tag(plain, ded=False):
    """The glo- (``ded``: ded-) APDU tag for the plaintext APDU tag ``plain``
    (initiate-request/-response, confirmed-service-error, get/set/event-notification/action
    request and response: ``C0`` -> ``C8``/``D0``, ``01`` -> ``21``/``41``), or 0 if none."""
    if 0xC0 <= plain <= 0xC7 and plain != 0xC6:
        return plain + (0x10 if ded else 0x08)
    if plain == 0x01 or plain == 0x08 or plain == 0x0E:
        return plain + (0x40 if ded else 0x20)
    return 0


def plain_tag(tag):
    """The plaintext APDU tag a glo-/ded- APDU tag stands for, or 0 when ``tag`` is not a
    service-specific ciphered tag (general-ciphering ``DB``/``DC`` included)."""
    if 0xC8 <= tag <= 0xD7:
        p = tag - (0x08 if tag < 0xD0 else 0x10)
    elif tag == 0x21 or tag == 0x28 or tag == 0x2E or tag == 0x41 or tag == 0x48 or tag == 0x4E:
        p = tag & 0x0F
    else:
        return 0
    return 0 if p == 0xC6 else p


def reply_form(tag):
    """The form to answer a ciphered request in: GENERAL_GLO/GENERAL_DED (0xDB/0xDC) for a general-
    ciphering request, FORM_DED (2) for a ded- APDU, FORM_GLO otherwise (gurux sends glo- APDUs and
    wants them back, dlms-cosem sends and only parses general-glo-ciphering)."""
    if tag == _GENERAL_GLO or tag == _GENERAL_DED:
        return tag
    return _FORM_DED if 0x40 <= tag < 0x50 or 0xD0 <= tag < 0xD8 else FORM_GLO


def _put_ic(dst, off, ic):
    dst[off] = (ic >> 24) & 0xFF
    dst[off + 1] = (ic >> 16) & 0xFF
    dst[off + 2] = (ic >> 8) & 0xFF
    dst[off + 3] = ic & 0xFF


class Suite0:
    """Security suite 0 under one key set: ``ek`` (16 bytes, global unicast or dedicated
    encryption key, or ``protocol.gcm.keyed(ek)``) and ``ak`` (16 bytes, global authentication key). Allocation-free after
    construction on the success paths (errors raise); one message at a time.

    After ``open`` or ``hls_check``: ``sc`` (security control), ``ic`` (invocation counter
    received, an int up to 2**32-1; on 32-bit ports a counter >= 2**30 is a big int and
    allocates a few bytes), ``tag`` (ciphered APDU tag), ``start``/``end`` (the plaintext APDU
    in the caller's buffer)."""

    def __init__(self, ek, ak):
        self.gcm = Gcm(ek)
        self._sak = bytearray(17)          # AAD prefix SC || AK
        self._iv = bytearray(12)           # system title || IC
        self._p = 0
        self.sc = self.ic = self.tag = self.start = self.end = 0
        self.set_keys(None, ak)

    def set_keys(self, ek=None, ak=None):
        """Replace EK (16 bytes or ``protocol.gcm.keyed``'s pair) and/or AK (16 bytes; ValueError
        otherwise)."""
        if ek is not None:
            self.gcm.set_key(ek)
        if ak is not None:
            if len(ak) != 16:
                raise ValueError("ak")
            for i in range(16):
                self._sak[1 + i] = ak[i]

    def _length(self, buf, p, end):
        """A-XDR length at buf[p] (1, 2 or 3 bytes); the position after it goes to _p."""
        if p >= end:
            raise SecurityError("truncated")
        n = buf[p]
        if n < 0x80:
            self._p = p + 1
            return n
        k = n & 0x7F
        if k == 0 or k > 2 or p + k >= end:
            raise SecurityError("format")
        n = buf[p + 1] if k == 1 else (buf[p + 1] << 8) | buf[p + 2]
        self._p = p + 1 + k
        return n

    def _title(self, buf, p, n, title):
        """IV[0:8] = the APDU's system title (n == 8, must equal ``title`` when given) or
        ``title`` (n == 0)."""
        iv = self._iv
        if n == 8:
            if title is not None:
                d = 0
                for i in range(8):
                    d |= buf[p + i] ^ title[i]
                if d:
                    raise SecurityError("title")
            for i in range(8):
                iv[i] = buf[p + i]
        elif n == 0 and title is not None and len(title) == 8:
            for i in range(8):
                iv[i] = title[i]
        else:
            raise SecurityError("title")

    def _header(self, buf, start, end, title):
        """Parse tag, system title, length, SC and IC; IV ready. Returns the payload offset."""
        if end - start < 2:
            raise SecurityError("truncated")
        tag = buf[start]
        p = start + 1
        if tag == _GENERAL_GLO or tag == _GENERAL_DED:
            n = self._length(buf, p, end)
            p = self._p
            if p + n > end:
                raise SecurityError("truncated")
            self._title(buf, p, n, title)
            p += n
        elif plain_tag(tag):
            self._title(buf, p, 0, title)
        else:
            raise SecurityError("format")
        n = self._length(buf, p, end)
        p = self._p
        if p + n != end:
            raise SecurityError("format")
        if n < 5:
            raise SecurityError("truncated")
        sc = buf[p]
        if sc & _SC_RESERVED or not sc & _SC_PROTECTED:
            raise SecurityError("format")
        iv = self._iv
        for i in range(4):
            iv[8 + i] = buf[p + 1 + i]
        self.tag = tag
        self.sc = sc
        self.ic = (buf[p + 1] << 24) | (buf[p + 2] << 16) | (buf[p + 3] << 8) | buf[p + 4]
        return p + 5

    def open(self, buf, start, end, title=None, min_ic=0):
        """Verify and decipher, in place, the ciphered APDU ``buf[start:end]`` (``buf`` a
        bytearray): general-glo/ded-ciphering or a service-specific glo-/ded- APDU.

        ``title``: the peer's system title (8 bytes, from the AARQ calling-AP-title); required
        for service-specific APDUs, and a general-ciphering APDU carrying another one is
        refused. ``min_ic``: lowest acceptable invocation counter (checked before any crypto).
        Returns the plaintext length; the plaintext APDU is ``buf[self.start:self.end]``.
        A service-specific tag must name the APDU inside (glo-get-request around a
        get-request). Pick the key set first (``reply_form``; host: ``security_client.is_dedicated``).
        Raises SecurityError (malformed, unsupported SC, tag/APDU mismatch), CounterError
        (ic < min_ic), DecipherError (bad tag; ``buf`` then still holds the ciphertext)."""
        p = self._header(buf, start, end, title)
        sc = self.sc
        if self.ic < min_ic:
            raise CounterError("ic")
        q = end - TAG_LEN if sc & _SC_AUTH else end
        if q < p:
            raise SecurityError("truncated")
        g = self.gcm
        g.start(self._iv, 0)
        if sc & _SC_AUTH:
            self._sak[0] = sc
            g.aad(self._sak, 0, 17)
            if sc & _SC_ENC:
                g.hash(buf, p, q - p)
            else:
                g.aad(buf, p, q - p)
            if not g.check(buf, q, TAG_LEN):
                raise DecipherError("tag")
        if sc & _SC_ENC:
            g.crypt(buf, p, q - p)
        tag = self.tag
        if tag != _GENERAL_GLO and tag != _GENERAL_DED and q > p:
            # the service tag is outside the tag's cover: it must name the APDU inside
            if plain_tag(tag) != buf[p]:
                raise SecurityError("format")
        self.start = p
        self.end = q
        return q - p

    def seal(self, buf, start, end, sc, ic, title, form=FORM_GLO):
        """Protect, in place, the plaintext APDU ``buf[start:end]`` (``buf`` a bytearray with
        HEADROOM bytes free before ``start`` and TAILROOM after ``end`` when authenticated).

        ``sc``: 0x10, 0x20 or 0x30; ``ic``: this sender's invocation counter (u32; the caller
        advances it); ``title``: this sender's system title (8 bytes); ``form``: FORM_GLO /
        FORM_DED (service-specific tag derived from the plaintext tag) or GENERAL_GLO /
        GENERAL_DED (``protocol.security_client`` names them). Returns the offset where the ciphered APDU starts; it ends at
        ``end + TAG_LEN`` (authenticated) or ``end``. Raises SecurityError (no room, a plaintext
        tag without a ciphered form, bad SC or title)."""
        if sc & _SC_RESERVED or not sc & _SC_PROTECTED:
            raise SecurityError("format")
        if len(title) != 8:
            raise SecurityError("title")
        auth = sc & _SC_AUTH
        q = end + TAG_LEN if auth else end
        clen = q - start + 5
        general = form == _GENERAL_GLO or form == _GENERAL_DED
        if general:
            ctag = form
        else:
            ctag = service_tag(buf[start], form == _FORM_DED)
            if not ctag:
                raise SecurityError("format")
        h = start - 5 - (1 if clen < 0x80 else 2 if clen < 0x100 else 3) - (10 if general else 1)
        if h < 0 or q > len(buf) or clen > 0xFFFF:
            raise SecurityError("room")
        iv = self._iv
        for i in range(8):
            iv[i] = title[i]
        _put_ic(iv, 8, ic)
        n = end - start
        g = self.gcm
        g.start(iv, 0)
        if auth:
            self._sak[0] = sc
            g.aad(self._sak, 0, 17)
        if sc & _SC_ENC:
            g.crypt(buf, start, n)
            if auth:
                g.hash(buf, start, n)
        else:
            g.aad(buf, start, n)
        if auth:
            g.tag(buf, end, TAG_LEN)
        p = start - 5
        buf[p] = sc
        _put_ic(buf, p + 1, ic)
        p -= 1 if clen < 0x80 else 2 if clen < 0x100 else 3
        if clen < 0x80:
            buf[p] = clen
        elif clen < 0x100:
            buf[p] = 0x81
            buf[p + 1] = clen
        else:
            buf[p] = 0x82
            buf[p + 1] = clen >> 8
            buf[p + 2] = clen & 0xFF
        if general:
            p -= 9
            buf[p] = 8
            for i in range(8):
                buf[p + 1 + i] = title[i]
        p -= 1
        buf[p] = ctag
        return p

    def hls_gmac(self, title, ic, challenge, out, off=0):
        """HLS mechanism 5 (GMAC): f(challenge) = SC(0x10) || IC || T into out[off:off+17],
        T = first 12 bytes of GCM(EK, IV = title || IC, AAD = 0x10 || AK || challenge, no
        plaintext). ``title``/``ic``: the *sender's* system title and invocation counter (the
        meter answering f(CtoS) uses its own)."""
        out[off] = _SC_AUTH
        _put_ic(out, off + 1, ic)
        iv = self._iv
        for i in range(8):
            iv[i] = title[i]
        _put_ic(iv, 8, ic)
        self._gmac(challenge)
        self.gcm.tag(out, off + 5, TAG_LEN)

    def _gmac(self, challenge):
        g = self.gcm
        g.start(self._iv, 0)
        self._sak[0] = _SC_AUTH
        g.aad(self._sak, 0, 17)
        g.aad(challenge, 0, len(challenge))

    def hls_check(self, title, challenge, value, off=0, n=HLS_LEN):
        """Check the peer's f(challenge) ``value[off:off+n]`` (pass 3: the client's f(StoC),
        ``title`` = client system title from the AARQ, ``challenge`` = StoC). The IC inside
        the value is used (and left in ``self.ic``); it need not exceed the IC of an
        enclosing ciphered APDU. Returns True only for n == 17, SC 0x10 and a matching tag
        (constant-time compare)."""
        if n != HLS_LEN or value[off] != _SC_AUTH:
            return False
        iv = self._iv
        for i in range(8):
            iv[i] = title[i]
        for i in range(4):
            iv[8 + i] = value[off + 1 + i]
        self.sc = _SC_AUTH
        self.ic = (value[off + 1] << 24) | (value[off + 2] << 16) | (value[off + 3] << 8) | value[off + 4]
        self._gmac(challenge)
        return self.gcm.check(value, off + 5, TAG_LEN)
