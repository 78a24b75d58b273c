"""Host half of the Modbus RTU code: the helpers a meter never runs (``write_register_request``,
``response_length``, ``check_response``, ``reg``/``u32_lo_first`` on a reply buffer) and the
public names of the codes ``protocol.modbus_rtu`` keeps as private consts (function codes,
``EXCEPTION``, the ``Master.error`` codes ``E_*``). Re-exports the device module, so host code
and tests import this one. Host-only (``HOST_ONLY`` in host_tools/build.py): no board image
has it; it runs on MicroPython too (tests/device).
"""
from protocol.crc import crc16_modbus
from protocol.modbus_rtu import (  # noqa: F401  (re-exported)
    ERROR, ERRORS, E_VALUE, FRAME, NEED, Master, ModbusError, _frame, f32_scaled, read_request,
    silence_us)

READ_HOLDING = 3
READ_INPUT = 4
WRITE_SINGLE = 6

EXCEPTION = 2     # Master.feed(): an exception reply (Master.exc_code)
E_TIMEOUT = 1     # Master.error codes (index into ERRORS): not one byte before the timeout
E_CRC = 2         # a frame with our unit, function and byte count failed its CRC
E_UNIT = 3        # a CRC-valid reply from another unit id
E_FUNCTION = 4    # a CRC-valid reply from our unit for another function
E_LENGTH = 5      # a CRC-valid reply from our unit and function, other byte count
E_TRUNCATED = 6   # our header, then silence/timeout before the frame was complete
E_NOISE = 7       # bytes, but no frame of any kind
E_EXCEPTION = 8   # an exception reply (Master.exc_code: 1..4, 6 busy, ...)


def write_register_request(unit, address, value):
    """Write Single Register (6) request, 8 bytes; unit 0 (broadcast)..255."""
    if not (0 <= unit <= 255 and 0 <= address <= 0xFFFF and 0 <= value <= 0xFFFF):
        raise ModbusError("range")
    return _frame(unit, WRITE_SINGLE, address, value)


def response_length(function, count):
    """Length of a normal reply: 5 + 2*count for functions 3/4, 8 for function 6."""
    if function == READ_HOLDING or function == READ_INPUT:
        return 5 + 2 * count
    if function == WRITE_SINGLE:
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
    if function == READ_HOLDING or function == READ_INPUT:
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
