"""Token gateway, COSEM IC 115 v0 (0.0.19.40.0.255): STS tokens entered over DLMS.

Method 1 ``enter(octet-string)`` takes the 20 token digits as ASCII (spaces/dashes allowed) and
hands them to ``meter.enter_token``; the method itself succeeds when the token was processed,
and the outcome is in attribute 6 ``status`` {token_status_code enum, data_value bit-string}
(Blue Book IC 115: 0 formatOk, 1 authenticationOk, 2 validationOk, 3 tokenExecutionOk,
4 tokenFormatFailure, 5 authenticationFailure, 6 validationResultFailure,
7 tokenExecutionResultFailure, 8 tokenReceived) and attribute 4 ``descriptions`` carries the STS
reason as text (e.g. ``b"used"``, ``b"key_expired"``) so a bench tool can show it.
Attributes: 2 token (last token, octet-string), 3 time (date-time of entry), 4 descriptions,
5 token_delivery_method (0 remote, 1 local, 2 manual), 6 status.
"""
from protocol import axdr
from meter import cosem, timeutil


class TokenGateway(cosem.CosemObject):
    class_id = 115
    n_attrs = 6
    public = (1, 3, 5, 6)
    methods = (1,)

    def read(self, meter, attr, w):
        g = meter.token_gateway
        if attr == 2:
            w.octet_string(g["token"])
        elif attr == 3:
            t = g["time"]
            if not t:
                w.octet_string(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x80\x00\xff")
            else:
                tz = meter.tz_minutes
                y, mo, d, wd, hh, mi, ss = timeutil.split(t + tz * 60)
                w.octet_string(axdr.datetime_bytes(y, mo, d, hh, mi, ss, 0, -tz, 0, wd))
        elif attr == 4:
            ds = g["descriptions"]
            w.array(len(ds))
            for d in ds:
                w.octet_string(d)
        elif attr == 5:
            w.enum(g["delivery"])
        elif attr == 6:
            w.structure(2).enum(g["status"]).bit_string(g["status_bits"], 8)
        return cosem.OK

    def call(self, meter, method, tagged):
        if method != 1:
            return cosem.UNDEFINED, None
        if tagged is None or tagged[0] != axdr.OCTET_STRING:
            return cosem.TYPE_UNMATCHED, None
        meter.enter_token(bytes(tagged[1]), 0)
        return cosem.OK, None
