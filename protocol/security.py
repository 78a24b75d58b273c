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

AES-GCM-128 (NIST SP 800-38D, 96-bit IV) is ``Suite0``'s own (one module, one class and one
object per association on the meter; ``protocol.security_client.Gcm`` is GCM alone on the host): only the AES block function comes from outside
(``protocol.aes``: ``cryptolib`` on the device); CTR (§6.5 GCTR, 32-bit counter ``inc32``) and
GHASH (§6.4, GF(2^128) with R = 0xE1 || 0^120, bit-reflected) with Shoup's 4-bit table: 16
multiples of H as one ``array('H')`` of 8 columns x 16 words (word k of n*H at [16*k + n]: 256
bytes per key), so every value stays a small int on 32-bit ports. Streaming use (every call takes
``buf, off, n`` instead of a slice, because slicing allocates on MicroPython)::

    g = Suite0(key, None)          # 16-byte key, or aes.keyed(key, None); AK None: GCM only
    g.begin(iv, 0)                 # 12-byte IV at iv[0:12]; J0 = IV || 00000001
    g.aad(buf, off, n)             # any number of AAD pieces, all before data
    g.crypt(buf, off, n)           # CTR in place (same call encrypts and decrypts)
    g.hash(buf, off, n)            # GHASH the ciphertext (after crypt when encrypting,
                                   #  before crypt when decrypting)
    g.mac(out, off, tlen)          # write the tag (first tlen bytes)
    g.check(tag, off, tlen)        # -> bool, constant-time over tlen bytes

One-shot GCM helpers on whole buffers (``encrypt``/``decrypt``) and the arguments' defaults
(``off=0``, ``n`` to the end of ``buf``, ``tlen=16``; ``Suite0``'s ``title``, ``min_ic``, ``form``,
``off``, ``n``) are the host's: ``protocol.security_client.Gcm``/``Suite0``. On the meter every
call passes all of them (a default is a tuple and a larger function object per load).

This is the device half, allocation-free after construction: ``Suite0`` (``open`` verifies
and deciphers a ciphered APDU in place, ``seal`` protects a plaintext APDU in place,
``hls_gmac``/``hls_check`` compute and check HLS mechanism 5 f(challenge)); HLS mechanism 2
(AES-128-ECB, IS 15959-2) is ``protocol.hlsecb``, loaded only for it. The host half (``parse`` -> ``Ciphered``, ``nonce``, tag names) is
``protocol.security_client``, which re-exports this module's names and defines the public
tag/SC constants and ``is_dedicated``. Error texts are one word ("truncated", "format", "title",
"tag" (GCM tag mismatch), "ic" (replay), "room"): names the board has anyway, no str object in the heap.
"""
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


# Errors are ValueError with a one-word text: malformed or truncated ciphered APDU ("truncated",
# "format", "title"), one this meter cannot protect ("room"), a tag that does not verify ("tag":
# Green Book deciphering-error, ``buf`` still holds the ciphertext) and a replayed invocation
# counter ("ic": invocation-counter-error). No class of its own on the meter (~100 B resident on
# 32 bits): the host's ``protocol.security_client`` defines ``SecurityError`` and its ``Suite0``
# raises it and its subclasses ``DecipherError`` and ``CounterError``.


def service_tag(plain, ded):
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


class Suite0:
    """AES-GCM-128 and security suite 0 under one key set, one object (on the meter one class:
    a second, ``Gcm``, was another ~130 B resident): ``ek`` (16 bytes, global unicast or dedicated
    encryption key, or the pair ``protocol.aes.keyed`` made of it) and ``ak`` (16 bytes, global authentication
    key, or None: GCM alone, ``protocol.security_client.Gcm``). Allocation-free after
    construction on the success paths (errors raise); not re-entrant: one message at a time.

    After ``open`` or ``hls_check``: ``ic`` (invocation counter
    received, an int up to 2**32-1; on 32-bit ports a counter >= 2**30 is a big int and
    allocates a few bytes), ``tag`` (ciphered APDU tag), ``start``/``end`` (the plaintext APDU
    in the caller's buffer)."""

    def __init__(self, ek, ak):
        from array import array
        self._z = array("H", bytes(16))        # GHASH accumulator, 8 big-endian 16-bit words
        self._ctr = bytearray(16)              # IV || counter
        self._ks = bytearray(16)               # keystream block / scratch
        self._ej0 = bytearray(16)              # E_K(J0), masks the tag
        self._kpos = 16                        # bytes of _ks used
        self._fill = 0                         # bytes in the current GHASH block
        self._alen = 0
        self._clen = 0
        self._sak = bytearray(17)              # AAD prefix SC || AK
        self._iv = bytearray(12)               # system title || IC
        self.ic = self.tag = self.start = self.end = 0     # 16 attributes: a 136 B table
        self.set_keys(ek, ak)

    def set_keys(self, ek, ak):
        """Replace EK and/or AK (None: kept). EK: 16 bytes (ValueError otherwise; a new AES object
        and H table) or the pair ``protocol.aes.keyed`` returned (kept, not copied; ``(None, None)`` lets the
        old ones go before a new pair is made). AK: 16 bytes (ValueError otherwise)."""
        if ek is not None:
            if not isinstance(ek, tuple):
                from protocol.aes import keyed
                ek = keyed(ek, None)
            self._aes, self._m = ek
        if ak is not None:
            if len(ak) != 16:
                raise ValueError("ak")
            for i in range(16):
                self._sak[1 + i] = ak[i]

    # -- GHASH ---------------------------------------------------------------------------------
    def _mul(self):
        """_z = _z * H in GF(2^128) (Shoup, 4 bits at a time, lowest nibble first)."""
        m = self._m
        # Shoup's reduction table: R * n for the 4 bits shifted out on the right, top 16 bits; its
        # high bytes as a bytes literal (in the image), the low byte of entry n is (n & 7) << 5
        r = b"\x00\x1c\x38\x24\x70\x6c\x48\x54\xe1\xfd\xd9\xc5\x91\x8d\xa9\xb5"
        v = self._z
        z0 = z1 = z2 = z3 = z4 = z5 = z6 = z7 = 0
        for i in range(7, -1, -1):
            w = v[i]
            for _ in range(4):
                n = w & 15
                w >>= 4
                t = z7 & 15
                z7 = (z7 >> 4) ^ ((z6 & 15) << 12) ^ m[112 + n]
                z6 = (z6 >> 4) ^ ((z5 & 15) << 12) ^ m[96 + n]
                z5 = (z5 >> 4) ^ ((z4 & 15) << 12) ^ m[80 + n]
                z4 = (z4 >> 4) ^ ((z3 & 15) << 12) ^ m[64 + n]
                z3 = (z3 >> 4) ^ ((z2 & 15) << 12) ^ m[48 + n]
                z2 = (z2 >> 4) ^ ((z1 & 15) << 12) ^ m[32 + n]
                z1 = (z1 >> 4) ^ ((z0 & 15) << 12) ^ m[16 + n]
                z0 = (z0 >> 4) ^ (r[t] << 8) ^ ((t & 7) << 5) ^ m[n]
        v[0] = z0
        v[1] = z1
        v[2] = z2
        v[3] = z3
        v[4] = z4
        v[5] = z5
        v[6] = z6
        v[7] = z7

    def _feed(self, buf, off, n):
        """Absorb n bytes of buf[off:] into GHASH (blocks continue across calls)."""
        v = self._z
        f = self._fill
        end = off + n
        while off < end:
            if f == 0 and end - off >= 16:     # whole aligned block
                b = off
                v[0] ^= (buf[b] << 8) | buf[b + 1]
                v[1] ^= (buf[b + 2] << 8) | buf[b + 3]
                v[2] ^= (buf[b + 4] << 8) | buf[b + 5]
                v[3] ^= (buf[b + 6] << 8) | buf[b + 7]
                v[4] ^= (buf[b + 8] << 8) | buf[b + 9]
                v[5] ^= (buf[b + 10] << 8) | buf[b + 11]
                v[6] ^= (buf[b + 12] << 8) | buf[b + 13]
                v[7] ^= (buf[b + 14] << 8) | buf[b + 15]
                self._mul()
                off += 16
                continue
            v[f >> 1] ^= buf[off] << (0 if f & 1 else 8)
            off += 1
            f += 1
            if f == 16:
                self._mul()
                f = 0
        self._fill = f

    def _pad(self):
        if self._fill:
            self._mul()
            self._fill = 0

    # -- streaming API -------------------------------------------------------------------------
    def begin(self, iv, off):
        """Begin a message: IV = iv[off:off+12] (96 bits; J0 = IV || 00000001)."""
        c = self._ctr
        for i in range(12):
            c[i] = iv[off + i]
        c[12] = c[13] = c[14] = 0
        c[15] = 1
        self._aes.encrypt(c, self._ej0)
        v = self._z
        for i in range(8):
            v[i] = 0
        self._kpos = 16
        self._fill = 0
        self._alen = 0
        self._clen = 0

    def aad(self, buf, off, n):
        """Authenticate n bytes of buf[off:] as additional data. All AAD comes before any
        ``hash``."""
        self._feed(buf, off, n)
        self._alen += n

    def hash(self, buf, off, n):
        """Authenticate n bytes of ciphertext at buf[off:]."""
        if self._clen == 0:
            self._pad()                        # AAD is zero-padded to a block boundary
        self._feed(buf, off, n)
        self._clen += n

    def crypt(self, buf, off, n):
        """XOR n bytes of buf[off:] in place with the keystream (GCTR from inc32(J0))."""
        c = self._ctr
        ks = self._ks
        k = self._kpos
        for p in range(off, off + n):
            if k == 16:
                i = 15
                while i >= 12:                 # inc32: the low 32 bits, modulo 2^32
                    c[i] = (c[i] + 1) & 0xFF
                    if c[i]:
                        break
                    i -= 1
                self._aes.encrypt(c, ks)
                k = 0
            buf[p] ^= ks[k]
            k += 1
        self._kpos = k

    def _final(self):
        """Finish GHASH with len(A)||len(C) (bits); S xor E_K(J0) into _ks."""
        self._pad()
        v = self._z
        a = self._alen << 3
        c = self._clen << 3
        # lengths < 2^29 bytes: the top two words of each 64-bit field stay zero
        v[2] ^= (a >> 16) & 0xFFFF
        v[3] ^= a & 0xFFFF
        v[6] ^= (c >> 16) & 0xFFFF
        v[7] ^= c & 0xFFFF
        self._mul()
        ks = self._ks
        e = self._ej0
        for i in range(8):
            w = v[i]
            ks[2 * i] = (w >> 8) ^ e[2 * i]
            ks[2 * i + 1] = (w & 0xFF) ^ e[2 * i + 1]
        self._kpos = 16                        # _ks no longer holds keystream

    def mac(self, out, off, tlen):
        """Write the first tlen (<= 16) bytes of the tag to out[off:]. Ends the message."""
        self._final()
        ks = self._ks
        for i in range(tlen):
            out[off + i] = ks[i]

    def check(self, tag, off, tlen):
        """True when tag[off:off+tlen] equals the computed tag (constant time over tlen bytes).
        Ends the message."""
        self._final()
        ks = self._ks
        d = 0
        for i in range(tlen):
            d |= ks[i] ^ tag[off + i]
        return d == 0


    def _put_ic(self, dst, off, ic):
        dst[off] = (ic >> 24) & 0xFF
        dst[off + 1] = (ic >> 16) & 0xFF
        dst[off + 2] = (ic >> 8) & 0xFF
        dst[off + 3] = ic & 0xFF

    def _length(self, buf, p, end):
        """A-XDR length at buf[p] (1, 2 or 3 bytes: 1, or 1 + buf[p] & 0x7F when buf[p] >= 0x80)."""
        if p >= end:
            raise ValueError("truncated")
        n = buf[p]
        if n < 0x80:
            return n
        k = n & 0x7F
        if k == 0 or k > 2 or p + k >= end:
            raise ValueError("format")
        return buf[p + 1] if k == 1 else (buf[p + 1] << 8) | buf[p + 2]

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
                    raise ValueError("title")
            for i in range(8):
                iv[i] = buf[p + i]
        elif n == 0 and title is not None and len(title) == 8:
            for i in range(8):
                iv[i] = title[i]
        else:
            raise ValueError("title")

    def _header(self, buf, start, end, title):
        """Parse tag, system title, length, SC and IC; IV ready. Returns the payload offset."""
        if end - start < 2:
            raise ValueError("truncated")
        tag = buf[start]
        p = start + 1
        if tag == _GENERAL_GLO or tag == _GENERAL_DED:
            n = self._length(buf, p, end)
            p += 1 if buf[p] < 0x80 else 1 + (buf[p] & 0x7F)
            if p + n > end:
                raise ValueError("truncated")
            self._title(buf, p, n, title)
            p += n
        elif plain_tag(tag):
            self._title(buf, p, 0, title)
        else:
            raise ValueError("format")
        n = self._length(buf, p, end)
        p += 1 if buf[p] < 0x80 else 1 + (buf[p] & 0x7F)
        if p + n != end:
            raise ValueError("format")
        if n < 5:
            raise ValueError("truncated")
        sc = buf[p]
        if sc & _SC_RESERVED or not sc & _SC_PROTECTED:
            raise ValueError("format")
        iv = self._iv
        for i in range(4):
            iv[8 + i] = buf[p + 1 + i]
        self.tag = tag
        self.ic = (buf[p + 1] << 24) | (buf[p + 2] << 16) | (buf[p + 3] << 8) | buf[p + 4]
        return p + 5

    def open(self, buf, start, end, title, min_ic):
        """Verify and decipher, in place, the ciphered APDU ``buf[start:end]`` (``buf`` a
        bytearray): general-glo/ded-ciphering or a service-specific glo-/ded- APDU.

        ``title``: the peer's system title (8 bytes, from the AARQ calling-AP-title); required
        for service-specific APDUs, and a general-ciphering APDU carrying another one is
        refused. ``min_ic``: lowest acceptable invocation counter (checked before any crypto).
        Returns the plaintext length; the plaintext APDU is ``buf[self.start:self.end]``.
        A service-specific tag must name the APDU inside (glo-get-request around a
        get-request). Pick the key set first (``reply_form``; host: ``security_client.is_dedicated``).
        Raises ValueError: malformed, unsupported SC, tag/APDU mismatch; "ic" (ic < min_ic:
        ``security_client``'s CounterError), "tag" (bad tag; ``buf`` then still holds the
        ciphertext: its DecipherError)."""
        p = self._header(buf, start, end, title)
        sc = buf[p - 5]
        if self.ic < min_ic:
            raise ValueError("ic")
        q = end - TAG_LEN if sc & _SC_AUTH else end
        if q < p:
            raise ValueError("truncated")
        g = self
        g.begin(self._iv, 0)
        if sc & _SC_AUTH:
            self._sak[0] = sc
            g.aad(self._sak, 0, 17)
            if sc & _SC_ENC:
                g.hash(buf, p, q - p)
            else:
                g.aad(buf, p, q - p)
            if not g.check(buf, q, TAG_LEN):
                raise ValueError("tag")
        if sc & _SC_ENC:
            g.crypt(buf, p, q - p)
        tag = self.tag
        if tag != _GENERAL_GLO and tag != _GENERAL_DED and q > p:
            # the service tag is outside the tag's cover: it must name the APDU inside
            if plain_tag(tag) != buf[p]:
                raise ValueError("format")
        self.start = p
        self.end = q
        return q - p

    def seal(self, buf, start, end, sc, ic, title, form):
        """Protect, in place, the plaintext APDU ``buf[start:end]`` (``buf`` a bytearray with
        HEADROOM bytes free before ``start`` and TAILROOM after ``end`` when authenticated).

        ``sc``: 0x10, 0x20 or 0x30; ``ic``: this sender's invocation counter (u32; the caller
        advances it); ``title``: this sender's system title (8 bytes); ``form``: FORM_GLO /
        FORM_DED (service-specific tag derived from the plaintext tag) or GENERAL_GLO /
        GENERAL_DED (``protocol.security_client`` names them). Returns the offset where the ciphered APDU starts; it ends at
        ``end + TAG_LEN`` (authenticated) or ``end``. Raises ValueError (no room, a plaintext
        tag without a ciphered form, bad SC or title)."""
        if sc & _SC_RESERVED or not sc & _SC_PROTECTED:
            raise ValueError("format")
        if len(title) != 8:
            raise ValueError("title")
        auth = sc & _SC_AUTH
        q = end + TAG_LEN if auth else end
        clen = q - start + 5
        general = form == _GENERAL_GLO or form == _GENERAL_DED
        if general:
            ctag = form
        else:
            ctag = service_tag(buf[start], form == _FORM_DED)
            if not ctag:
                raise ValueError("format")
        h = start - 5 - (1 if clen < 0x80 else 2 if clen < 0x100 else 3) - (10 if general else 1)
        if h < 0 or q > len(buf) or clen > 0xFFFF:
            raise ValueError("room")
        iv = self._iv
        for i in range(8):
            iv[i] = title[i]
        self._put_ic(iv, 8, ic)
        n = end - start
        g = self
        g.begin(iv, 0)
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
            g.mac(buf, end, TAG_LEN)
        p = start - 5
        buf[p] = sc
        self._put_ic(buf, p + 1, ic)
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

    def hls_gmac(self, title, ic, challenge, out, off):
        """HLS mechanism 5 (GMAC): f(challenge) = SC(0x10) || IC || T into out[off:off+17],
        T = first 12 bytes of GCM(EK, IV = title || IC, AAD = 0x10 || AK || challenge, no
        plaintext). ``title``/``ic``: the *sender's* system title and invocation counter (the
        meter answering f(CtoS) uses its own)."""
        out[off] = _SC_AUTH
        self._put_ic(out, off + 1, ic)
        iv = self._iv
        for i in range(8):
            iv[i] = title[i]
        self._put_ic(iv, 8, ic)
        self._gmac(challenge)
        self.mac(out, off + 5, TAG_LEN)

    def _gmac(self, challenge):
        g = self
        g.begin(self._iv, 0)
        self._sak[0] = _SC_AUTH
        g.aad(self._sak, 0, 17)
        g.aad(challenge, 0, len(challenge))

    def hls_check(self, title, challenge, value, off, n):
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
        self.ic = (value[off + 1] << 24) | (value[off + 2] << 16) | (value[off + 3] << 8) | value[off + 4]
        self._gmac(challenge)
        return self.check(value, off + 5, TAG_LEN)
