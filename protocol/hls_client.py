"""The client side of HLS and of security suite 0 ciphering, sans I/O (host only; Green Book
§9.2.7 / §9.4.2; shared/reference dlms-security.md §1-3).

``HlsSession`` holds one association's security state: the client's keys, system title and
invocation counter, the server's system title and challenge from the AARE, and the last
server invocation counter seen. ``protocol.client_assoc.ClientAssociation(hls=session)`` uses
it for the four passes and for every APDU after them::

    s = HlsSession(ek, ak, title=b"HES\\0\\0\\0\\0\\1", ic=frame_counter + 1)
    aarq = s.aarq(max_pdu)              # A1 (01 03), A6, 8A, 8B, AC CtoS, BE glo-initiate-request
    aare = s.on_aare(reply)             # -> the AARE with its InitiateResponse deciphered
    req = s.wrap(s.pass3_request(0xC1)) # reply_to_HLS_authentication, ciphered (glo-action-request)
    s.check_pass3(return_value)         # the meter's f(CtoS); False: the meter is not who it says
    s.wrap(plain) / s.unwrap(reply)     # every later APDU

Mechanisms: 5 (HLS-GMAC: f(c) = SC 0x10 || IC || GMAC tag) and 2 (IS 15959-2: AES-128-ECB of the
challenge under the HLS secret). Counters: every APDU we protect, and the f(StoC) of pass 3, use
a fresh ``ic`` (``next_ic``); ``reserve(limit)`` (optional) is called before a counter at or
past the last reserved limit is used, so a caller can persist ``limit`` first and never repeat
a counter across crashes. Each ciphered reply must carry a server counter above the previous
one (replayed replies are refused). Errors: ``protocol.security.SecurityError`` and its
``DecipherError`` / ``CounterError``; ``HlsError`` (a value the meter sent that we refuse).
"""
import os

from protocol import apdu_client as apdu
from protocol import axdr_client as axdr
from protocol import security_client as sec
from protocol.apdu_client import _conf_bytes, _context_name, _DLMS_OID, _outer, _read_tl, _tlv

CURRENT_ASSOCIATION = b"\x00\x00\x28\x00\x00\xff"   # 0.0.40.0.0.255, IC 15
SC = 0x30                                          # authenticated and encrypted
RESERVE_BLOCK = 100                                # counters reserved per reserve() call


class HlsError(sec.SecurityError):
    """The meter's AARE or f(CtoS) cannot be accepted (missing challenge or system title,
    a ciphered answer that does not verify, a failed pass 4)."""


def _u32(ic):
    return bytes(((ic >> 24) & 0xFF, (ic >> 16) & 0xFF, (ic >> 8) & 0xFF, ic & 0xFF))


class HlsSession:
    """Security state of one HLS association (client side).

    ``ek``/``ak``: 16-byte GUEK and GAK; ``title``: our 8-byte system title; ``ic``: the first
    invocation counter to use (above the meter's frame counter); ``mechanism`` 5 or 2;
    ``secret``: the mechanism 2 secret (bytes, <= 16); ``ciphered``: the context with ciphering
    (01 03) and glo- APDUs (False: 01 01, plaintext APDUs, only the authentication is HLS);
    ``form``: ``sec.FORM_GLO`` (service-specific glo- APDUs) or ``sec.GENERAL_GLO``;
    ``challenge``: a fixed CtoS (tests), else 16 random bytes; ``reserve``: see the module doc;
    ``trace(direction, plaintext)``: called with "tx"/"rx" and every plaintext APDU.
    Raises ValueError for keys or a title of the wrong size, or an unknown mechanism."""

    def __init__(self, ek, ak, title, ic=1, mechanism=5, secret=None, ciphered=True,
                 form=sec.FORM_GLO, challenge=None, reserve=None, trace=None):
        ek, ak, title = bytes(ek), bytes(ak), bytes(title)
        if len(ek) != 16 or len(ak) != 16:
            raise ValueError("GUEK and GAK must be 16 bytes each")
        if len(title) != 8:
            raise ValueError("the client system title must be 8 bytes")
        if mechanism not in (2, 5):
            raise ValueError("HLS mechanism must be 2 (AES-ECB) or 5 (GMAC), not %r" % (mechanism,))
        if mechanism == 2 and not secret:
            raise ValueError("HLS mechanism 2 needs the meter's HLS secret")
        if not 1 <= int(ic) <= 0xFFFFFFFF:
            raise ValueError("invocation counter out of range: %r" % (ic,))
        self.suite = sec.Suite0(ek, ak)
        self.title = title
        self.ic = int(ic)
        self.mechanism = mechanism
        self.secret = bytes(secret) if secret else None
        self.ciphered = bool(ciphered)
        self.form = form
        self.ctos = bytes(challenge) if challenge is not None else os.urandom(16)
        self.reserve = reserve
        self.limit = self.ic              # counters below limit are reserved
        self.trace = trace
        self.server_title = None
        self.stoc = None
        self.server_ic = None             # last server invocation counter accepted

    # ------------------------------------------------------------------ counters

    def next_ic(self):
        """Our next invocation counter (reserved through ``reserve`` first). Raises
        SecurityError when the 32-bit counter is exhausted (the keys must be changed)."""
        ic = self.ic
        if ic > 0xFFFFFFFF:
            raise sec.SecurityError("invocation counter exhausted: rotate the keys")
        if ic >= self.limit:
            self.limit = min(ic + RESERVE_BLOCK, 0x100000000)
            if self.reserve is not None:
                self.reserve(self.limit)
        self.ic = ic + 1
        return ic

    # ------------------------------------------------------------------ APDUs

    def wrap(self, plain):
        """A plaintext xDLMS APDU -> the ciphered APDU (SC 0x30, our next counter); the
        plaintext as is when the association is not ciphered."""
        if self.trace is not None:
            self.trace("tx", bytes(plain))
        if not self.ciphered:
            return bytes(plain)
        h, n = sec.HEADROOM, len(plain)
        buf = bytearray(h + n + sec.TAILROOM)
        buf[h:h + n] = plain
        p = self.suite.seal(buf, h, h + n, SC, self.next_ic(), self.title, self.form)
        return bytes(buf[p:h + n + sec.TAG_LEN])

    def unwrap(self, reply):
        """A reply APDU -> its plaintext. On a ciphered association only an
        ExceptionResponse may come in clear. Raises DecipherError (bad tag: wrong keys or
        tampered), CounterError (a server counter not above the last one: a replayed
        reply), HlsError (plaintext where ciphering is due), SecurityError (malformed)."""
        reply = bytes(reply)
        if not self.ciphered or not reply or reply[0] == apdu.EXCEPTION_RESPONSE:
            plain = reply
        elif not sec.plain_tag(reply[0]) and reply[0] != sec.GENERAL_GLO:
            raise HlsError("meter answered in plaintext (tag 0x%02X) on a ciphered association"
                           % reply[0])
        else:
            plain = self._open(reply)
        if self.trace is not None:
            self.trace("rx", plain)
        return plain

    def _open(self, data):
        if self.server_title is None:
            raise HlsError("no server system title (the AARE carried no responding-AP-title)")
        b = bytearray(data)
        lowest = 0 if self.server_ic is None else self.server_ic + 1
        s = self.suite
        s.open(b, 0, len(b), self.server_title, lowest)
        if not s.sc & sec.SC_AUTH:
            raise HlsError("meter's reply is not authenticated (security control 0x%02X)" % s.sc)
        self.server_ic = s.ic
        return bytes(b[s.start:s.end])

    # ------------------------------------------------------------------ passes 1-4

    def aarq(self, max_pdu=0xFFFF, conformance=apdu.DEFAULT_CONFORMANCE):
        """Pass 1: the AARQ (bytes), fields in gurux's order A1 A6 8A 8B AC BE."""
        ini = b"\x01\x00\x00\x00\x06" + _conf_bytes(conformance) + bytes((max_pdu >> 8, max_pdu & 0xFF))
        if self.ciphered:
            ini = self.wrap(ini)
        body = bytearray(_context_name(3 if self.ciphered else 1))
        body.extend(_tlv(0xA6, _tlv(0x04, self.title)))
        body.extend(b"\x8A\x02\x07\x80\x8B\x07" + _DLMS_OID + bytes((2, self.mechanism)))
        body.extend(_tlv(0xAC, _tlv(0x80, self.ctos)))
        body.extend(_tlv(0xBE, _tlv(0x04, ini)))
        return _tlv(apdu.AARQ, body)

    def on_aare(self, reply):
        """Pass 2: take the server's system title (A4) and challenge StoC (AA) from the AARE;
        returns the AARE with its user-information deciphered (glo-initiate-response ->
        InitiateResponse) for ``apdu.parse_aare``. A rejecting AARE is returned as it came.
        Raises HlsError (accepted without A4/AA, or a ciphered InitiateResponse that does not
        verify), apdu.ApduError (malformed)."""
        p, end = _outer(reply, apdu.AARE)
        out = bytearray()
        result = None
        while p < end:
            tag, s, e = _read_tl(reply, p, end)
            item = bytes(reply[p:e])
            p = e
            if tag == 0xA2:
                result = reply[e - 1]
            elif tag == 0xA4 or tag == 0xAA:
                t, s2, e2 = _read_tl(reply, s, e)
                if tag == 0xA4:
                    self.server_title = bytes(reply[s2:e2])
                else:
                    self.stoc = bytes(reply[s2:e2])
            elif tag == 0xBE:
                t, s2, e2 = _read_tl(reply, s, e)
                if t == 0x04 and s2 < e2 and reply[s2] == 0x28:
                    item = self._initiate_response(bytes(reply[s2:e2]))
            out.extend(item)
        if result == 0:
            if self.stoc is None or not 8 <= len(self.stoc) <= 64:
                raise HlsError("the meter accepted HLS but sent no usable challenge (StoC)")
            if self.server_title is None or len(self.server_title) != 8:
                raise HlsError("the meter sent no 8-byte system title (responding-AP-title)")
        return _tlv(apdu.AARE, out)

    def _initiate_response(self, ui):
        if self.server_title is None:
            raise HlsError("ciphered InitiateResponse before the meter's system title")
        try:
            plain = self._open(ui)
        except sec.DecipherError:
            raise HlsError("the meter's ciphered InitiateResponse does not verify under our "
                           "GUEK/GAK: not the meter the keys belong to")
        if self.trace is not None:
            self.trace("rx", plain)
        return _tlv(0xBE, _tlv(0x04, plain))

    def f_stoc(self):
        """Pass 3 value: f(StoC) (mechanism 5: SC || IC || T with a fresh counter;
        mechanism 2: AES-ECB of StoC under the secret)."""
        if self.stoc is None:
            raise HlsError("no server challenge: pass 2 has not happened")
        if self.mechanism == 2:
            return sec.hls_ecb(self.secret, self.stoc)
        out = bytearray(sec.HLS_LEN)
        self.suite.hls_gmac(self.title, self.next_ic(), self.stoc, out)
        return bytes(out)

    def pass3_request(self, invoke):
        """Pass 3: ACTION IC 15 0.0.40.0.0.255 method 1 (reply_to_HLS_authentication) with
        f(StoC) as octet-string (plaintext APDU; ``wrap`` it)."""
        arg = axdr.Writer().octet_string(self.f_stoc()).getvalue()
        return apdu.action_request(invoke, 15, CURRENT_ASSOCIATION, 1, arg)

    def check_pass3(self, value):
        """Pass 4: True when the meter's return value ``value`` (bytes) is f(CtoS) computed
        with the keys (mechanism 5: under the server title and the IC inside the value)."""
        value = bytes(value or b"")
        if self.mechanism == 2:
            return sec.hls_ecb_check(self.secret, self.ctos, value)
        return self.suite.hls_check(self.server_title, self.ctos, value, 0, len(value))


class HlsKeys:
    """What an HLS association needs: ``ek``/``ak`` (16-byte GUEK/GAK), ``title`` (our 8-byte
    system title), ``mechanism`` 5 (GMAC) or 2 (AES-ECB, with ``secret``), ``ciphered``
    (authenticated+encrypted APDUs, the meter's policy 3), ``kek`` (master key, for key
    transfer only; may be None). Raises ValueError on a wrong size."""

    def __init__(self, ek, ak, title, mechanism=5, secret=None, ciphered=True, kek=None):
        self.ek, self.ak, self.title = bytes(ek), bytes(ak), bytes(title)
        self.mechanism = int(mechanism)
        self.secret = bytes(secret) if secret else None
        self.ciphered = bool(ciphered)
        self.kek = bytes(kek) if kek else None
        HlsSession(self.ek, self.ak, self.title, 1, self.mechanism, self.secret)  # checks

    def session(self, ic, reserve=None, trace=None):
        """A fresh ``HlsSession`` starting at invocation counter ``ic``."""
        return HlsSession(self.ek, self.ak, self.title, ic, self.mechanism, self.secret,
                          self.ciphered, reserve=reserve, trace=trace)
