"""Decode captured DLMS/COSEM traffic from any meter (host only, CPython).

Input: hex text (any separators; ``#`` comments; a leading ``tx:``/``rx:``/``>``/``<`` per line
is ignored). If the first byte is ``7E`` the whole input is one HDLC byte stream (IEC 62056-46:
frames split by their length field, never by flags, so a 0x7E inside a value is fine);
otherwise every line is one bare APDU (e.g. a wrapper/TCP capture without the wrapper header).

Output (``decode_text(text, ...) -> list of records``), each a JSON-able dict:

- ``{"frame": {...}}`` for each HDLC frame: format (segmented, length), addresses (1/2/4 bytes,
  logical/physical), control (type, N(S)/N(R), P/F), ``"ok"``; a frame whose HCS/FCS/length is
  wrong is reported with ``"error"`` and its bytes, never decoded as if it were good.
- ``{"apdu": {...}}`` once the information fields of a segmented sequence (S bit) are
  complete (LLC header removed): AARQ/AARE/RLRQ/RLRE, GET/SET/ACTION requests and responses
  (normal, next, with-list, datablock; datablocks reassembled and the whole value decoded when
  the last one is seen), ExceptionResponse, ConfirmedServiceError, data-notification,
  general-block-transfer (reassembled, then the inner APDU decoded), general-glo/ded-ciphering
  and service-specific glo APDUs (decrypted with ``key`` [+ ``auth_key``], AES-128-GCM
  suite 0, then decoded). Values carry OBIS, date-time and scaler_unit hints.
- A malformed APDU yields ``{"apdu": {"error": ..., "hex": ...}}``.

``render(records) -> str`` prints the structure as indented text. Errors in the input text
itself raise ``DecodeError``.
"""
import re

from protocol import hdlc_client as hdlc
from protocol.hdlc_client import split_frames
from host_tools import format as fmt
from host_tools.decode_acse import frmr as frmr_fields
from host_tools.decode_apdu import APDU_NAMES, UNITS, ApduDecoder, decrypt, encrypt  # noqa: F401


class DecodeError(ValueError):
    """Input that is not hex, or a key that is not 16 bytes."""


# ---------------------------------------------------------------- input

_LINE_PREFIX = re.compile(r"^\s*(tx|rx|>|<|->|<-)\s*:?\s*", re.I)
# meterctl's own --trace lines: "   0.012 TX -> 7E A0 ..." (seconds, direction, arrow, hex)
_TRACE_PREFIX = re.compile(r"^\s*\d+\.\d+\s+(tx|rx)\s+(->|<-)\s*", re.I)


def parse_hex_lines(text):
    """Text -> list of byte strings, one per non-empty line (comments and prefixes removed).
    Reads plain hex, "TX:"/"<-"-prefixed lines and meterctl's own ``--trace`` output (whose
    other stderr lines, "meterctl: ..." and "interrupted", are skipped).
    Raises DecodeError on characters that are not hex."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0]
        if line.startswith("meterctl:") or line.strip().startswith("interrupted"):
            continue
        line = _TRACE_PREFIX.sub("", line)
        line = _LINE_PREFIX.sub("", line)
        h = re.sub(r"[\s:,\-]|0x", "", line)
        if not h:
            continue
        if not re.fullmatch(r"[0-9A-Fa-f]*", h) or len(h) % 2:
            raise DecodeError("line %d is not hex: %r" % (n, line.strip()[:40]))
        out.append(bytes.fromhex(h))
    return out


# ---------------------------------------------------------------- HDLC

def _address(raw):
    try:
        value, n, _ = hdlc.decode_address(raw, 0)
    except hdlc.HdlcError:
        return {"hex": raw.hex(), "error": "address"}
    out = {"hex": raw.hex(), "bytes": n, "value": value}
    if n > 1:
        lg, ph = hdlc.split_server_address(value, n)
        out["logical"], out["physical"] = lg, ph
    return out


_KIND_NAMES = {hdlc.K_I: "I", hdlc.K_RR: "RR", hdlc.K_RNR: "RNR", hdlc.K_SNRM: "SNRM",
               hdlc.K_UA: "UA", hdlc.K_DISC: "DISC", hdlc.K_DM: "DM", hdlc.K_FRMR: "FRMR",
               hdlc.K_UI: "UI", hdlc.K_UNKNOWN: "unknown"}


def _control(c):
    k = hdlc.kind(c)
    out = {"hex": "%02X" % c, "type": _KIND_NAMES[k], "pf": hdlc.pf(c)}
    if k == hdlc.K_I:
        out["ns"], out["nr"] = hdlc.ns(c), hdlc.nr(c)
    elif k in (hdlc.K_RR, hdlc.K_RNR):
        out["nr"] = hdlc.nr(c)
    return out


_FRAME_ERRORS = {"hcs": "bad HCS (header check sequence)", "fcs": "bad FCS (frame check sequence)",
                 "garbage": "bytes outside any frame",
                 "truncated": "frame runs past the end of the capture",
                 "length": "impossible length field", "address": "bad address field",
                 "flag": "no closing flag where the length field says", "format": "bad format field"}


def _frame_record(raw, f, err):
    rec = {"hex": raw.hex(), "ok": err is None}
    if err is not None:
        rec["error"] = _FRAME_ERRORS.get(err, err)
        rec["reason"] = err
        return rec
    rec.update({"length": f.length, "segmented": f.segmented, "dest": _address(f.dest),
                "src": _address(f.src), "control": _control(f.ctrl)})
    k = hdlc.kind(f.ctrl)
    if f.info:
        rec["info_len"] = len(f.info)
        if k in (hdlc.K_SNRM, hdlc.K_UA):
            try:
                tx, rx, wtx, wrx = hdlc.decode_params(f.info)
                rec["parameters"] = {"max_info_tx": tx, "max_info_rx": rx, "window_tx": wtx,
                                     "window_rx": wrx}
            except hdlc.HdlcError as e:
                rec["parameters"] = {"error": str(e)}
        elif k == hdlc.K_FRMR:
            rec["frmr"] = frmr_fields(f.info)
    elif k == hdlc.K_SNRM:
        rec["parameters"] = {"max_info_tx": 128, "max_info_rx": 128, "window_tx": 1,
                             "window_rx": 1, "default": True}
    return rec


class Decoder(ApduDecoder):
    """Stateful capture decoder: HDLC framing (``hdlc_client.split_frames``) and segment
    reassembly (``hdlc_client.Reassembler``), the same the client link uses, then
    ``ApduDecoder`` on each complete APDU. Raises DecodeError for a key that is not 16 bytes."""

    def __init__(self, key=None, auth_key=None, system_title=None):
        for k, name in ((key, "key"), (auth_key, "auth key")):
            if k is not None and len(k) != 16:
                raise DecodeError("%s must be 16 bytes (32 hex digits)" % name)
        ApduDecoder.__init__(self, key, auth_key, system_title)
        self._reasm = hdlc.Reassembler()
        self._link = None                # (server address, client address) of the last SNRM
        self._tainted = set()
        self._after_error = False

    def hdlc(self, buf):
        """A whole HDLC byte stream -> records (see the module doc)."""
        out = []
        for raw, f, err in split_frames(buf):
            rec = {"frame": _frame_record(raw, f, err)}
            out.append(rec)
            if f is not None:
                self._roles(f, rec["frame"])
            if f is None:
                # a sequence with a lost/corrupt segment must not be decoded as if whole
                self._tainted.update(self._reasm.pending())
                self._after_error = True
                continue
            if hdlc.kind(f.ctrl) not in (hdlc.K_I, hdlc.K_UI) or not f.info:
                continue
            key = (f.dest, f.src)
            if key not in self._reasm.pending():
                if self._after_error and f.info[:2] not in (b"\xe6\xe6", b"\xe6\xe7"):
                    self._tainted.add(key)      # may be a continuation of a lost first segment
                self._after_error = False
            done = self._reasm.add(f)
            if done is None:
                rec["frame"]["segment"] = "more follow"
                continue
            out += [{"apdu": a} for a in self._complete(key, *done)]
        return out

    def _roles(self, f, rec):
        """Mark which side sent the frame (``from``: client/server) when the link is known: a
        SNRM goes from the client (1-byte address) to the server (1, 2 or 4 bytes)."""
        if hdlc.kind(f.ctrl) == hdlc.K_SNRM or len(f.dest) > 1:
            self._link = (f.dest, f.src)
        elif len(f.src) > 1:
            self._link = (f.src, f.dest)
        if f.dest == f.src:              # client 1 and server 1 are both 0x03: the frame tells
            k = hdlc.kind(f.ctrl)
            llc = bytes(f.info[:2]) if f.info else b""
            if k in (hdlc.K_SNRM, hdlc.K_DISC) or llc == b"\xe6\xe6":
                rec["from"] = "client"
            elif k in (hdlc.K_UA, hdlc.K_DM, hdlc.K_FRMR) or llc == b"\xe6\xe7":
                rec["from"] = "server"
        elif self._link is not None and f.dest == self._link[0]:
            rec["from"] = "client"
        elif self._link is not None and f.src == self._link[0]:
            rec["from"] = "server"

    def _complete(self, key, llc, data):
        if key in self._tainted:
            self._tainted.discard(key)
            whole = _LLC.get(llc, b"") + data
            return [{"error": "incomplete: a segment of this APDU was lost or corrupted; not decoded",
                     "hex": whole.hex()}]
        out = self.apdus(data)
        if llc:
            out[0]["llc"] = llc
        return out


_LLC = {"request": hdlc.LLC_REQUEST, "response": hdlc.LLC_RESPONSE}


def decode_text(text, key=None, auth_key=None, system_title=None):
    """Hex text / capture file -> list of records (see module doc). Raises DecodeError."""
    chunks = parse_hex_lines(text)
    dec = Decoder(key, auth_key, system_title)
    if not chunks:
        raise DecodeError("no hex data in the input")
    if chunks[0][:1] == b"\x7e":
        return dec.hdlc(b"".join(chunks))
    return [{"apdu": a} for c in chunks for a in dec.apdus(c)]


# ---------------------------------------------------------------- text rendering

def _render_value(v, pad, lines, label=""):
    t = v.get("type")
    hint = ""
    for k in ("obis", "iso", "text", "scaler_unit"):
        if k in v:
            hint = "  (%s)" % v[k]
    if t in ("structure", "array"):
        lines.append("%s%s%s[%d]%s" % (pad, label, t, len(v["value"]), hint))
        for x in v["value"]:
            _render_value(x, pad + "  ", lines)
    else:
        lines.append("%s%s%s %s%s" % (pad, label, t, v.get("value"), hint))


def _render_dict(d, pad, lines):
    for k, v in d.items():
        if k == "hex":
            continue
        if isinstance(v, dict) and "type" in v and "value" in v:
            _render_value(v, pad, lines, k + ": ")
        elif isinstance(v, dict):
            lines.append("%s%s:" % (pad, k))
            _render_dict(v, pad + "  ", lines)
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            lines.append("%s%s:" % (pad, k))
            for i, x in enumerate(v):
                lines.append("%s  [%d]" % (pad, i))
                _render_dict(x, pad + "    ", lines)
        else:
            lines.append("%s%s: %s" % (pad, k, v))


def address_text(a, role=None):
    """A decoded HDLC address for ``render``: "client 16", "server 1", "server 1/17" (logical /
    physical of a 2- or 4-byte address); without a known role "16" / "1/17"; "?<hex>" if bad."""
    if "value" not in a:
        return "?" + a["hex"]
    text = "%d/%d" % (a["logical"], a["physical"]) if a.get("bytes", 1) > 1 else "%d" % a["value"]
    return "%s %s" % (role, text) if role else text


def render(records):
    """Records -> readable indented text."""
    lines = []
    for r in records:
        if "frame" in r:
            f = r["frame"]
            if not f["ok"]:
                lines.append("FRAME INVALID (%s): %s" % (f["error"], fmt.hexs(bytes.fromhex(f["hex"]))))
                continue
            ctl = f["control"]
            extra = ""
            if "ns" in ctl:
                extra += " N(S)=%d" % ctl["ns"]
            if "nr" in ctl:
                extra += " N(R)=%d" % ctl["nr"]
            roles = {"client": ("client", "server"), "server": ("server", "client")}.get(f.get("from"))
            lines.append("HDLC %s%s%s  %s -> %s  len %d%s" % (
                ctl["type"], extra, " P/F" if ctl["pf"] else "",
                address_text(f["src"], roles and roles[0]), address_text(f["dest"], roles and roles[1]),
                f["length"], "  SEGMENT (more follow)" if f["segmented"] else ""))
            if "parameters" in f:
                lines.append("  parameters: %s" % f["parameters"])
        else:
            a = r["apdu"]
            lines.append("APDU %s" % a.get("type"))
            _render_dict({k: v for k, v in a.items() if k != "type"}, "  ", lines)
    return "\n".join(lines)
