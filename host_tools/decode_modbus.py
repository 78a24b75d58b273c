"""Decode captured Modbus RTU frames of the supported metering modules by register name
(``meterctl decode --modbus pzem004t|sdm120|sdm630``; host only).

Input: the same hex text as ``host_tools.decode`` (one RTU frame per line: a capture tool splits
RTU frames by the t3.5 silence, which a hex dump cannot show). The register maps are the
firmware's own (``meter.modules`` via ``host_tools.firmware_src``), so a name shown here is
the slot the meter fills: ``VOLTAGE_DV`` in 0.1 V, ``CURRENT_MA`` mA, ``POWER_DW`` 0.1 W,
``IMPORT_WH``/``EXPORT_WH`` Wh, ``FREQUENCY_DHZ`` 0.1 Hz, ``PF_CENTI`` 0.01.

Output (``decode_text(text, module) -> [{"modbus": {...}}]``): unit, function, CRC check; a
request's first register and count with the names it covers; a reply's registers (hex) and
the named values, decoded as the meter decodes them (PZEM 32-bit low word first, Eastron
float32 high word first, scaled to the firmware's integer units); an exception reply's code.
A frame with a bad CRC or impossible length carries ``"error"``. Modbus over Serial Line
V1.02 §2.5.1 (RTU framing, CRC-16/MODBUS low byte first), Modbus Application Protocol V1.1b3
§6.3/6.4/6.6 (functions 3, 4, 6), §7 (exceptions).
"""
from protocol import modbus_client as modbus_rtu
from protocol.crc import crc16_modbus
from host_tools.decode import DecodeError, parse_hex_lines
from host_tools.firmware_src import firmware_module

_KINDS = ("U16", "U32_LO_FIRST", "F32")
_EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
               4: "server device failure", 5: "acknowledge", 6: "server device busy",
               8: "memory parity error", 10: "gateway path unavailable",
               11: "gateway target failed to respond"}
_FUNCTIONS = {3: "read holding registers", 4: "read input registers", 6: "write single register"}


def _slot_names(modules):
    skip = set(_KINDS) | {"NSLOT"}
    return {getattr(modules, n): n for n in dir(modules)
            if n.isupper() and not n.startswith("_") and n not in skip
            and isinstance(getattr(modules, n), int) and getattr(modules, n) < modules.NSLOT}


class ModbusDecoder:
    """Stateful: a reply is read against the last request seen (its first register).
    ``module``: "pzem004t", "sdm120" or "sdm630"; ValueError for another name."""

    def __init__(self, module):
        mods = firmware_module("meter.modules")
        self.map = mods.lookup(module)
        self.fields = mods.fields(self.map)
        self.names = _slot_names(mods)
        self.module = module
        self.start = None

    def frame(self, b):
        """One RTU frame (bytes) -> dict (see the module doc)."""
        d = {"hex": b.hex(), "module": self.module}
        if len(b) < 5:
            d["error"] = "shorter than a Modbus RTU frame (5 bytes)"
            return d
        d["unit"], fn = b[0], b[1]
        d["function"] = fn & 0x7F
        d["function_name"] = _FUNCTIONS.get(fn & 0x7F, "?")
        if crc16_modbus(b, 0, len(b) - 2) != b[-2] | (b[-1] << 8):
            d["error"] = "bad CRC (CRC-16/MODBUS, low byte first)"
            return d
        if fn & 0x80:
            d["exception"] = b[2]
            d["exception_name"] = _EXCEPTIONS.get(b[2], "?")
            return d
        if fn in (3, 4) and b[2] == len(b) - 5 and not b[2] & 1:
            self._reply(b, d)
        elif fn in (3, 4, 6) and len(b) == 8:
            self._request(b, fn, d)
        else:
            d["error"] = "length %d fits neither a request nor a reply of function %d" % (len(b), fn)
        return d

    def _request(self, b, fn, d):
        addr, val = (b[2] << 8) | b[3], (b[4] << 8) | b[5]
        d["kind"] = "request"
        d["register"] = "0x%04X" % addr
        if fn == 6:
            d["value"] = val
            return
        d["count"] = val
        self.start = addr
        d["names"] = [self.names.get(f[0], f[0]) for f in self.fields if addr <= f[2] < addr + val]

    def _reply(self, b, d):
        n = b[2] // 2
        d["kind"] = "reply"
        d["registers"] = ["%04X" % modbus_rtu.reg(b, i) for i in range(n)]
        if self.start is None:
            d["note"] = "no request seen before this reply: registers not named"
            return
        d["first_register"] = "0x%04X" % self.start
        values = {}
        for slot, _blk, addr, kind, scale in self.fields:
            i = addr - self.start
            if i < 0 or i + (1 if kind == 0 else 2) > n:
                continue
            values[self.names.get(slot, str(slot))] = _value(b, i, kind, scale)
        d["values"] = values
        self.start = None


def _value(b, i, kind, scale):
    if kind == 0:
        return modbus_rtu.reg(b, i) * scale
    if kind == 1:
        return modbus_rtu.u32_lo_first(b, i) * scale
    v = modbus_rtu.f32_scaled(b, 3 + 2 * i, scale)
    return "not a number (NaN/inf or out of range)" if v is None else v


def decode_text(text, module):
    """Hex text (one RTU frame per line) -> [{"modbus": dict}]. Raises host_tools.decode.
    DecodeError for input that is not hex, ValueError for an unknown module."""
    frames = parse_hex_lines(text)
    if not frames:
        raise DecodeError("no hex data in the input")
    dec = ModbusDecoder(module)
    return [{"modbus": dec.frame(f)} for f in frames]


def render(records):
    """Records -> readable text, one block per frame."""
    lines = []
    for r in records:
        m = r["modbus"]
        head = "MODBUS unit %s function %s (%s)" % (m.get("unit"), m.get("function"), m.get("function_name"))
        if "error" in m:
            lines.append("%s INVALID: %s  %s" % (head, m["error"], m["hex"]))
            continue
        if "exception" in m:
            lines.append("%s EXCEPTION %d (%s)" % (head, m["exception"], m["exception_name"]))
            continue
        if m["kind"] == "request":
            lines.append("%s request: register %s%s" % (head, m["register"], " count %d" % m["count"]
                                                          if "count" in m else " value %d" % m["value"]))
            if m.get("names"):
                lines.append("  covers: %s" % ", ".join(m["names"]))
            continue
        lines.append("%s reply: %d registers %s" % (head, len(m["registers"]), " ".join(m["registers"])))
        for k, v in m.get("values", {}).items():
            lines.append("  %s: %s" % (k, v))
        if "note" in m:
            lines.append("  note: %s" % m["note"])
    return "\n".join(lines)
