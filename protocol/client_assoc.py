"""The client side of a DLMS/COSEM association, sans I/O (IEC 62056-5-3 §8-9; host only).

``ClientAssociation`` builds the AARQ and checks the AARE (result, ACSE diagnostic, xDLMS
initiate error), builds the RLRQ and checks the RLRE, numbers the invoke-ids and checks every
xDLMS response (tag, invoke-id, Data-Access-Result). A service is a small transaction: its
``request`` is the APDU to send, ``on_response(reply)`` returns the next request (GET-next of
a block transfer) or None when done, and ``result`` holds the outcome::

    t = assoc.get(3, "1.0.1.8.0.255", 2)
    req = t.request
    while req is not None:
        req = t.on_response(exchange(req))    # exchange: the caller's link round trip
    raw = t.result                            # A-XDR bytes of the value

With HLS (``hls=protocol.hls_client.HlsSession(...)``) the AARE leaves the association
pending (``pending``): run ``assoc.pass3()`` like any service (reply_to_HLS_authentication,
checks the meter's f(CtoS)); from then on every request goes out ciphered and every reply is
deciphered (``HlsSession.wrap``/``unwrap``) before the checks below.

Errors: ``AssociationRejected``, ``DataAccessError`` (``AccessDenied``, ``ObjectUndefined``),
``ProtocolError`` (a reply we cannot accept; ``SecurityRefused`` for a reply that does not
decipher or verify), ``LocalProtocolError`` (no association).
"""
from protocol import apdu_client as apdu
from protocol import axdr_client as axdr
from protocol import obis
from protocol import security_client as sec
from protocol.client_link import DlmsError, LocalProtocolError, ProtocolError

INVOKE_BASE = 0xC0       # priority high, confirmed service (Invoke-Id-And-Priority)
MAX_APDU = 0xFFFF


class AssociationRejected(DlmsError):
    """AARE with result != accepted. ``.result``, ``.diagnostic`` (ACSE diagnostic code)."""

    def __init__(self, diagnostic, result=1, text=None):
        self.diagnostic = diagnostic
        self.result = result
        name = apdu.AARE_DIAG_NAMES.get(diagnostic, "diagnostic %s" % (diagnostic,))
        DlmsError.__init__(self, text or "association rejected by the meter: %s" % name)


class DataAccessError(DlmsError):
    """GET/SET/ACTION answered with a data-access-result (or action-result) != success.
    ``.dar`` is the code."""

    def __init__(self, dar, what=""):
        self.dar = dar
        name = apdu.DAR_NAMES.get(dar, "result %d" % dar)
        DlmsError.__init__(self, "%s%s (data-access-result %d)" % (what + ": " if what else "", name, dar))


class AccessDenied(DataAccessError):
    """read-write-denied (3) or scope-of-access-violated (13)."""


class ObjectUndefined(DataAccessError):
    """object-undefined (4), object-class-inconsistent (9) or object-unavailable (11)."""


class SecurityRefused(ProtocolError):
    """A ciphered reply that does not verify (wrong keys, tampered, a replayed counter), or a
    meter that failed HLS pass 4 (its f(CtoS) is wrong: not the meter the keys belong to)."""


def dar_error(dar, what=""):
    """The DataAccessError subclass instance for a data-access-result code."""
    if dar in (3, 13):
        return AccessDenied(dar, what)
    if dar in (4, 9, 11):
        return ObjectUndefined(dar, what)
    return DataAccessError(dar, what)


def obis6(code):
    """"1.0.1.8.0.255" (or 6 bytes) -> 6 bytes. Raises ValueError."""
    if isinstance(code, (bytes, bytearray)) and len(code) == 6:
        return bytes(code)
    try:
        return obis.parse(code)
    except ValueError as e:
        raise ValueError("bad OBIS code %r: %s" % (code, e))


def what(class_id, code, index, sep="."):
    """"IC 3 1.0.1.8.0.255.2": how an attribute (or method, ``sep`` " method ") is named."""
    try:
        text = obis.to_str(obis6(code))
    except ValueError:
        text = str(code)
    return "IC %d %s%s%d" % (class_id, text, sep, index)


def initiate_error_text(serr):
    """ConfirmedServiceError (type, code) from an AARE -> readable text."""
    try:
        typ, code = serr
    except (TypeError, ValueError):
        return "confirmed-service-error %r" % (serr,)
    if typ == 6:  # ServiceError: initiate
        return "initiate error %s" % apdu.INITIATE_ERROR_NAMES.get(code, code)
    return "confirmed-service-error type %d code %d" % (typ, code)


def unexpected(reply, wanted):
    """The ProtocolError for a reply that is not the ``wanted`` APDU (names an
    ExceptionResponse / ConfirmedServiceError)."""
    if reply and reply[0] == apdu.EXCEPTION_RESPONSE and len(reply) >= 3:
        text = "meter answered with exception-response: %s, %s" % (
            apdu.STATE_ERROR_NAMES.get(reply[1], "state-error %d" % reply[1]),
            apdu.SERVICE_ERROR_NAMES.get(reply[2], "service-error %d" % reply[2]))
        if reply[2] == apdu.SERVICE_INVOCATION_COUNTER_ERROR and len(reply) >= 7:
            text += " (the meter expects an invocation counter of at least %d)" % int.from_bytes(
                reply[3:7], "big")
        return ProtocolError(text)
    if reply and reply[0] == apdu.CONFIRMED_SERVICE_ERROR:
        return ProtocolError("meter answered with confirmed-service-error %s" % reply[1:].hex())
    return ProtocolError("expected %s from meter, got %s" % (
        wanted, reply[:16].hex() + ("..." if len(reply) > 16 else "") if reply else "an empty APDU"))


class ClientAssociation:
    """One application association (LN referencing: no security, LLS or HLS).

    ``password`` (bytes or str) selects LLS, ``hls`` (an ``HlsSession``) HLS with its keys,
    neither no security; ``max_pdu`` the client max receive PDU size proposed in the
    InitiateRequest. After ``on_aare``: ``associated``, ``pending`` (HLS pass 3 to run),
    ``aare`` (parsed dict), ``server_max_pdu``, ``conformance``.
    """

    def __init__(self, password=None, max_pdu=MAX_APDU, hls=None):
        if isinstance(password, str):
            password = password.encode("utf-8")
        self.password = password
        self.hls = hls
        self.max_pdu = int(max_pdu)
        self.associated = False
        self.pending = False
        self.aare = None
        self.server_max_pdu = None
        self.conformance = None
        self._invoke = 0

    def aarq(self):
        """The AARQ APDU (bytes)."""
        if self.hls is not None:
            return self.hls.aarq(self.max_pdu)
        if self.password is not None:
            return apdu.build_aarq(context=1, mechanism=apdu.MECH_LLS, auth_value=self.password,
                                   max_pdu=self.max_pdu)
        return apdu.build_aarq(context=1, max_pdu=self.max_pdu)

    def on_aare(self, reply):
        """Check the AARE -> parsed dict; the association is then established. Raises
        AssociationRejected (result != accepted, or an initiate error), ProtocolError."""
        if not reply or reply[0] != apdu.AARE:
            raise unexpected(reply, "AARE")
        try:
            if self.hls is not None:
                reply = self.hls.on_aare(reply)
            a = apdu.parse_aare(reply)
        except sec.SecurityError as e:
            raise SecurityRefused(str(e))
        except apdu.ApduError as e:
            raise ProtocolError("unreadable AARE from meter: %s" % e)
        self.aare = a
        serr = a.get("service_error")
        hls_wait = self.hls is not None and a.get("diagnostic") == apdu.DIAG_AUTH_REQUIRED
        if a.get("result") != 0 or serr or (a.get("diagnostic") and not hls_wait):
            text = None
            if serr:
                text = "association rejected by the meter: %s" % initiate_error_text(serr)
                if a.get("result") != 0 and a.get("diagnostic"):
                    text += " (%s)" % apdu.AARE_DIAG_NAMES.get(a["diagnostic"], a["diagnostic"])
            raise AssociationRejected(a.get("diagnostic") or 0, a.get("result") or 1, text)
        self.server_max_pdu = a.get("max_pdu")
        self.conformance = a.get("conformance")
        self.associated = True
        self.pending = hls_wait
        self._invoke = 0
        return a

    def pass3(self):
        """HLS pass 3/4 transaction (reply_to_HLS_authentication); ``result`` True once the
        meter's f(CtoS) verified. Raises SecurityRefused when it does not, AccessDenied when
        the meter refused our f(StoC) (wrong keys)."""
        if not self.pending:
            raise LocalProtocolError("no HLS association waiting for pass 3")
        return Pass3(self)

    def rlrq(self):
        """The RLRQ APDU; the association is forgotten from here on (answered or not)."""
        self.associated = self.pending = False
        return apdu.build_rlrq(0)

    def on_rlre(self, reply):
        """Check the RLRE. Raises ProtocolError."""
        if not reply or reply[0] != apdu.RLRE:
            raise unexpected(reply, "RLRE")

    def next_invoke(self):
        """Invoke-Id-And-Priority byte: 0xC0 | id, id = 1, 2, ... 15, 0, 1 ..."""
        self._invoke = (self._invoke + 1) & 0x0F
        return INVOKE_BASE | self._invoke

    def check(self, reply, invoke, wanted_tag, wanted):
        """A reply to the request with ``invoke`` -> ``apdu.Response``. Raises ProtocolError
        (not the ``wanted_tag`` APDU, unreadable, another invoke-id); SecurityRefused (HLS: a
        reply that does not decipher or verify)."""
        if self.hls is not None:
            try:
                reply = self.hls.unwrap(reply)
            except sec.SecurityError as e:
                raise SecurityRefused("meter's reply refused: %s" % e)
        if not reply or reply[0] != wanted_tag:
            raise unexpected(reply, wanted)
        try:
            r = apdu.parse_response(reply)
        except apdu.ApduError as e:
            raise ProtocolError("unreadable %s from meter: %s" % (wanted, e))
        if r.invoke is not None and (r.invoke & 0x0F) != (invoke & 0x0F):
            raise ProtocolError("meter answered invoke-id %d, expected %d"
                                % (r.invoke & 0x0F, invoke & 0x0F))
        return r

    def _need(self):
        if not self.associated:
            raise LocalProtocolError("no association (call connect() first)")
        if self.pending:
            raise LocalProtocolError("HLS pass 3 has not run (call pass3() first)")

    def protect(self, request):
        """A plaintext request -> what goes on the wire (ciphered with HLS)."""
        return self.hls.wrap(request) if self.hls is not None else request

    def get(self, class_id, code, attr, selector=None, params=b"", on_block=None):
        """GET transaction; ``result`` = A-XDR bytes of the value."""
        self._need()
        return Get(self, class_id, obis6(code), attr, selector, params, on_block)

    def set(self, class_id, code, attr, value_bytes):
        """SET transaction (``value_bytes`` complete A-XDR); ``result`` = 0."""
        self._need()
        return Set(self, class_id, obis6(code), attr, value_bytes)

    def action(self, class_id, code, method, params_bytes=None):
        """ACTION transaction; ``result`` = (0, tagged return value or None)."""
        self._need()
        return Action(self, class_id, obis6(code), method, params_bytes)


class Get:
    """GET-Request-Normal, then GET-Request-Next for every block of a
    GET-Response-With-Datablock until the last (``on_block(bytes_so_far)`` after each)."""

    def __init__(self, assoc, class_id, o6, attr, selector, params, on_block):
        self.assoc = assoc
        self.what = what(class_id, o6, attr)
        self.on_block = on_block
        self.invoke = assoc.next_invoke()
        self.request = assoc.protect(apdu.get_request(self.invoke, class_id, o6, attr, selector, params))
        self.result = None
        self._buf = None             # blocks so far (bytearray) once a block came

    def on_response(self, reply):
        """The reply to ``request`` -> the next request, or None (``result`` is set). Raises
        DataAccessError, ProtocolError."""
        r = self.assoc.check(reply, self.invoke, apdu.GET_RESPONSE, "GET-Response")
        if self._buf is None and r.kind == 1:
            if r.dar:
                raise dar_error(r.dar, self.what)
            self.result = bytes(r.data)
            if self.on_block:
                self.on_block(len(self.result))
            return self._done()
        if r.kind != 2:
            if self._buf is not None:
                raise ProtocolError("expected a data block after GET-next for %s" % self.what)
            raise ProtocolError("unexpected GET-Response type %d for %s" % (r.kind, self.what))
        expect = 1 if self._buf is None else self._expect + 1
        if r.dar:
            raise dar_error(r.dar, self.what + " block %d" % r.block_no)
        if r.block_no != expect:
            raise ProtocolError("meter sent block %d, expected %d (%s)" % (r.block_no, expect, self.what))
        self._buf = (self._buf or bytearray()) + r.raw
        self._expect = expect
        if self.on_block:
            self.on_block(len(self._buf))
        if r.last:
            self.result = bytes(self._buf)
            return self._done()
        self.invoke = self.assoc.next_invoke()
        self.request = self.assoc.protect(apdu.get_next_request(self.invoke, expect))
        return self.request

    def _done(self):
        self.request = None
        return None


class Set:
    """SET-Request-Normal -> SET-Response (``result`` 0)."""

    def __init__(self, assoc, class_id, o6, attr, value_bytes):
        self.assoc = assoc
        self.what = "set " + what(class_id, o6, attr)
        self.invoke = assoc.next_invoke()
        self.request = assoc.protect(apdu.set_request(self.invoke, class_id, o6, attr, bytes(value_bytes)))
        self.result = None

    def on_response(self, reply):
        r = self.assoc.check(reply, self.invoke, apdu.SET_RESPONSE, "SET-Response")
        if r.dar:
            raise dar_error(r.dar, self.what)
        self.request = None
        self.result = 0
        return None


class Action:
    """ACTION-Request-Normal -> ACTION-Response (``result`` (0, tagged data or None))."""

    def __init__(self, assoc, class_id, o6, method, params_bytes):
        self.assoc = assoc
        self.what = what(class_id, o6, method, sep=" method ")
        self.invoke = assoc.next_invoke()
        self.request = assoc.protect(apdu.action_request(self.invoke, class_id, o6, method, params_bytes))
        self.result = None

    def on_response(self, reply):
        r = self.assoc.check(reply, self.invoke, apdu.ACTION_RESPONSE, "ACTION-Response")
        if r.dar:
            raise dar_error(r.dar, self.what)
        data = None
        if r.data:
            try:
                data, _ = axdr.decode(r.data, 0)
            except (axdr.AxdrError, ValueError, IndexError) as e:
                raise ProtocolError("undecodable return data of %s: %s" % (self.what, e))
        self.request = None
        self.result = (0, data)
        return None


class Pass3(Action):
    """reply_to_HLS_authentication (HLS pass 3) -> the meter's f(CtoS) checked (pass 4);
    ``result`` True, the association no longer pending."""

    def __init__(self, assoc):
        self.assoc = assoc
        self.what = "HLS pass 3 (reply_to_HLS_authentication)"
        self.invoke = assoc.next_invoke()
        self.request = assoc.protect(assoc.hls.pass3_request(self.invoke))
        self.result = None

    def on_response(self, reply):
        try:
            Action.on_response(self, reply)
        except AccessDenied:
            self.assoc.associated = self.assoc.pending = False
            raise AssociationRejected(apdu.DIAG_AUTH_FAILURE, 1, "association rejected by the "
                                      "meter: authentication-failure (HLS pass 3 refused: wrong keys)")
        data = self.result[1]
        value = data[1] if data is not None and data[0] == 9 else b""
        if not self.assoc.hls.check_pass3(value):
            self.assoc.associated = self.assoc.pending = False
            raise SecurityRefused("the meter's HLS answer f(CtoS) does not verify: not the meter "
                                  "the keys belong to")
        self.assoc.pending = False
        self.result = True
        return None
