"""Minimal Modbus RTU master framing (Modbus over Serial Line V1.02 §2.5.1, Modbus
Application Protocol V1.1b3 §6.3, §6.4, §6.6, §7) for the metering module (PZEM-004T v3,
SDM120). Sans-I/O: build request bytes, validate reply bytes.

- ``read_request(unit, function, address, count)``: function 3 (holding) or 4 (input
  registers), 8 bytes, CRC-16/MODBUS sent LSB first.
- ``write_register_request(unit, address, value)``: function 6, 8 bytes.
- ``response_length(function, count)``: expected length of the normal reply.
- ``check_response(buf, n, unit, function)``: 0 for a good normal reply, the exception code
  for an exception reply (function | 0x80, 5 bytes); ``ModbusError`` otherwise.
- ``reg(buf, i)`` / ``u32_lo_first(buf, i)``: register values of a read reply.

Unit addresses 0..255 are accepted (PZEM-004T answers on the "general" address 0xF8).
"""
from protocol.crc import crc16_modbus

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# function codes (folded by mpy-cross: no heap on the device). Exception codes (Modbus
# Application Protocol §7), returned by check_response: 1 illegal function, 2 illegal data
# address, 3 illegal data value, 4 server device failure.
_READ_HOLDING = const(3)
_READ_INPUT = const(4)
_WRITE_SINGLE = const(6)


class ModbusError(ValueError):
    """Bad request argument or reply. ``.reason`` in ('crc', 'unit', 'function', 'length',
    'range')."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _frame(unit, function, a, b):
    out = bytearray(8)
    out[0] = unit
    out[1] = function
    out[2] = a >> 8
    out[3] = a & 0xFF
    out[4] = b >> 8
    out[5] = b & 0xFF
    c = crc16_modbus(out, 0, 6)
    out[6] = c & 0xFF
    out[7] = c >> 8
    return bytes(out)


def read_request(unit, function, address, count):
    """Read Holding (3) / Input (4) Registers request, 8 bytes.

    Raises ModbusError('range') for unit outside 1..255, another function, address outside
    0..0xFFFF or count outside 1..125.
    """
    if function != _READ_HOLDING and function != _READ_INPUT:
        raise ModbusError("function")
    if not (1 <= unit <= 255 and 0 <= address <= 0xFFFF and 1 <= count <= 125):
        raise ModbusError("range")
    return _frame(unit, function, address, count)


def write_register_request(unit, address, value):
    """Write Single Register (6) request, 8 bytes; unit 0 (broadcast)..255."""
    if not (0 <= unit <= 255 and 0 <= address <= 0xFFFF and 0 <= value <= 0xFFFF):
        raise ModbusError("range")
    return _frame(unit, _WRITE_SINGLE, address, value)


def response_length(function, count):
    """Length of a normal reply: 5 + 2*count for functions 3/4, 8 for function 6."""
    if function == _READ_HOLDING or function == _READ_INPUT:
        return 5 + 2 * count
    if function == _WRITE_SINGLE:
        return 8
    raise ModbusError("function")


def check_response(buf, n, unit, function):
    """Validate the first ``n`` bytes of ``buf`` as the reply to (unit, function).

    Returns 0 for a good normal reply, or the exception code (1..255) of an exception
    reply. Raises ModbusError: 'length' (too short, or byte count/length disagree),
    'crc', 'unit', 'function'.
    """
    if n < 5 or n > len(buf):
        raise ModbusError("length")
    c = crc16_modbus(buf, 0, n - 2)
    if buf[n - 2] != (c & 0xFF) or buf[n - 1] != (c >> 8):
        raise ModbusError("crc")
    if buf[0] != unit:
        raise ModbusError("unit")
    fn = buf[1]
    if fn == (function | 0x80):
        if n != 5 or buf[2] == 0:
            raise ModbusError("length")
        return buf[2]
    if fn != function:
        raise ModbusError("function")
    if function == _READ_HOLDING or function == _READ_INPUT:
        if buf[2] != n - 5 or buf[2] & 1:
            raise ModbusError("length")
    elif n != 8:
        raise ModbusError("length")
    return 0


def reg(buf, i):
    """Register ``i`` (0-based, big-endian 16-bit) of a function 3/4 reply.
    ModbusError('length') if the buffer is too short."""
    p = 3 + 2 * i
    if i < 0 or p + 2 > len(buf):
        raise ModbusError("length")
    return (buf[p] << 8) | buf[p + 1]


def u32_lo_first(buf, i):
    """32-bit value from registers i (low word) and i+1 (high word), as PZEM-004T v3 sends
    current, power and energy."""
    return reg(buf, i) | (reg(buf, i + 1) << 16)
