"""Modbus RTU master framing (Modbus over Serial Line V1.02 §2.5.1, Modbus Application
Protocol V1.1b3 §6.3, §6.4, §6.6, §7) for the metering module (PZEM-004T v3, Eastron
SDM120/SDM630). Sans-I/O: build request bytes, find and validate reply frames in the bytes
the line delivered, decode register values; the stream side is meter/metrology.py.

Request/reply helpers (stateless): ``read_request(unit, function, address, count)`` (function
3 (holding) or 4 (input registers), 8 bytes, CRC-16/MODBUS sent LSB first), ``silence_us(baud)``
(t3.5, the inter-frame silence, §2.5.1.1) and ``f32_scaled(buf, p, k)`` (an IEEE 754 float32,
big-endian, times ``k`` as a rounded int, in integer arithmetic: no float object, no ``struct``).
The host half (``write_register_request``, ``response_length``, ``check_response``, ``reg``,
``u32_lo_first`` and the public ``EXCEPTION``/``E_*`` codes) is ``protocol.modbus_client``, which
re-exports this module: a board image carries only what the meter runs.

``Master`` (one read request, its reply framer): see the class. It never allocates after
construction: the reply lands in its own preallocated buffer, results are small ints.

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


def silence_us(baud):
    """t3.5, the minimum silence between two RTU frames, in µs (Modbus over Serial Line
    V1.02 §2.5.1.1): 3.5 character times of 11 bits (start, 8 data, parity or second stop,
    stop) up to 19200 baud; fixed 1750 µs above. 9600 baud -> 4011 µs, 2400 -> 16042 µs.
    ModbusError('range') for a baud rate below 300."""
    if baud < 300:
        raise ModbusError("range")
    if baud > 19200:
        return 1750
    return (38500000 + baud - 1) // baud


def f32_scaled(b, p, k):
    """``round(x * k)`` for the float32 ``x`` in big-endian bytes ``b[p:p+4]`` (Eastron SDM:
    register p//2 high word first), rounding half to even, in integer arithmetic only.

    ``k`` is a scale 1..1023 (1000 = kWh -> Wh, 10 = V -> 0.1 V). Every intermediate stays
    below 2**30, so it is a small int on a 32-bit MicroPython port (no heap). Returns an int,
    or None for NaN, ±inf and results of magnitude 2**29 or more (536,870,912 units).
    Subnormals and tiny values give 0 (never -0 trouble: ints).
    """
    b0 = b[p]
    e = ((b0 & 0x7F) << 1) | (b[p + 1] >> 7)
    if e == 255:
        return None
    m = ((b[p + 1] & 0x7F) << 16) | (b[p + 2] << 8) | b[p + 3]
    if e:
        m |= 0x800000
    else:
        e = 1
    sh = 150 - e                      # x = m * 2**-sh, m < 2**24
    if sh >= 35:                      # m*k < 2**34 <= half an output step: rounds to 0
        return 0
    hi = (m >> 12) * k                # m*k = hi * 2**12 + lo, both < 2**22
    lo = (m & 0xFFF) * k
    if sh < 12:
        t = 12 - sh
        if t > 18 or hi >= (1 << (29 - t)):    # hi >= 2**11, so t <= 17 below
            return None
        if sh <= 0:                           # |x| >= 2**23: an integer, exact
            q = (hi << t) + (lo << -sh)
            up = False
        else:
            q = (hi << t) + (lo >> sh)
            r = lo & ((1 << sh) - 1)
            h = 1 << (sh - 1)
            up = r > h or (r == h and q & 1)
    else:
        t = sh - 12
        a = hi + (lo >> 12)           # < 2**23; m*k = a * 2**12 + lr
        lr = lo & 0xFFF
        q = a >> t
        if t == 0:
            up = lr > 2048 or (lr == 2048 and q & 1)
        else:
            ra = a & ((1 << t) - 1)   # remainder = ra * 2**12 + lr, half = 2**(t-1) * 2**12
            h = 1 << (t - 1)
            up = ra > h or (ra == h and (lr or q & 1))
    if up:
        q += 1
    if q >= 0x20000000:
        return None
    return -q if b0 & 0x80 else q


# Master.feed()/Master.idle() results
NEED = const(0)        # keep reading
FRAME = const(1)       # a good normal reply starts at Master.start
_EXCEPTION = const(2)  # an exception reply: Master.exc_code
ERROR = const(3)       # the exchange failed: Master.error

# Master.error codes (index into ERRORS; private but E_VALUE, which meter.metrology sets: the
# public names are in protocol.modbus_client)
_E_TIMEOUT = const(1)    # not one byte before the timeout
_E_CRC = const(2)        # a frame with our unit, function and byte count failed its CRC
_E_UNIT = const(3)       # a CRC-valid reply from another unit id
_E_FUNCTION = const(4)   # a CRC-valid reply from our unit for another function
_E_LENGTH = const(5)     # a CRC-valid reply from our unit and function, other byte count
_E_TRUNCATED = const(6)  # our header, then silence/timeout before the frame was complete
_E_NOISE = const(7)      # bytes, but no frame of any kind
_E_EXCEPTION = const(8)  # an exception reply (Master.exc_code: 1..4, 6 busy, ...)
E_VALUE = const(9)       # a register value out of range (NaN, inf): set by the decoder
ERRORS = ("", "timeout", "crc", "unit", "function", "length", "truncated", "noise",
          "exception", "value")

_NPEND = const(4)       # candidate frames tracked at once (noise can fake a header)


class Master:
    """The reply framer of one read request (function 3 or 4), fed the bytes of the line.

    Sans-I/O, pymodbus FramerRTU style: the bytes after the request are kept in a
    preallocated buffer and searched for a frame starting with our unit id, our function
    and (for a normal reply) the byte count 2*count, or with our unit id and function|0x80
    (an exception reply, 5 bytes); a candidate counts only once its CRC holds. So stray
    bytes before or after the reply (0x00, 0xFF, a partial frame), a reply split across
    reads and a frame whose CRC fails are all hunted through; the exchange ends on:

    - ``feed(src, k)`` -> FRAME (registers at ``reg(i)``, ``u32_lo_first(i)``, ``f32(i, k)``)
      or EXCEPTION (``exc_code``) or NEED;
    - ``idle(elapsed_ms, quiet_ms)`` -> ERROR once ``elapsed_ms`` (since the request)
      reaches ``timeout_ms``, or once a started candidate frame has seen ``gap_ms`` of
      silence (``quiet_ms``: the t3.5 frame boundary, §2.5.1.1); ``error`` then tells why
      (E_TIMEOUT, E_CRC, E_UNIT, E_FUNCTION, E_LENGTH, E_TRUNCATED, E_NOISE: named in
      ``protocol.modbus_client``).

    The caller drains the line (discards input for ``gap_ms`` of silence) before each
    request, which also disposes of trailing bytes after a reply or an error, then sends
    ``request`` and calls ``begin()``. No method allocates after construction.
    Requests to the PZEM-004T general address 0xF8 accept a reply from any unit 1..247 (a
    single module on its own line may answer with its configured address).
    Raises ModbusError('range'/'function') for bad construction arguments.
    """

    def __init__(self, unit, function, address, count, timeout_ms=500, gap_ms=20, size=0):
        self.request = read_request(unit, function, address, count)
        self.unit = unit
        self._any = unit == 0xF8      # PZEM "general address": the reply may carry its own
        self.function = function
        self.length = 5 + 2 * count
        self.timeout_ms = timeout_ms
        self.gap_ms = gap_ms
        self.buf = bytearray(max(size, self.length + 32))
        self._pend = [0] * _NPEND
        self.begin()

    def begin(self):
        """Forget all bytes: the request has just been sent."""
        self.n = 0
        self.start = -1
        self.error = 0
        self.exc_code = 0
        self._chk = 0        # first position whose header was not looked at yet
        self._np = 0         # candidates in _pend (positions with our header, incomplete)

    def feed(self, src, k):
        """Take ``src[0:k]`` (bytes received). Returns FRAME, EXCEPTION or NEED."""
        buf = self.buf
        size = len(buf)
        i = 0
        while i < k:
            if self.n == size:
                self._compact()
            n = self.n
            take = min(k - i, size - n)
            for j in range(take):
                buf[n + j] = src[i + j]
            self.n = n + take
            i += take
            st = self._scan()
            if st:
                return st
        return NEED

    def _header(self, p):
        # 0 no, 1 normal reply, 2 exception reply (needs buf[p..p+2])
        b = self.buf
        if b[p] != self.unit and not (self._any and 1 <= b[p] <= 247):
            return 0
        f = b[p + 1]
        if f == self.function:
            return 1 if b[p + 2] == self.length - 5 else 0
        if f == self.function | 0x80:
            return 2
        return 0

    def _complete(self, p):
        # NEED (incomplete), FRAME/EXCEPTION (good), ERROR (bad CRC) for a candidate at p
        want = self.length if self.buf[p + 1] == self.function else 5
        if self.n - p < want:
            return NEED
        c = crc16_modbus(self.buf, p, p + want - 2)
        if self.buf[p + want - 2] != (c & 0xFF) or self.buf[p + want - 1] != (c >> 8):
            self.error = _E_CRC
            return ERROR
        self.start = p
        if want == 5:
            self.exc_code = self.buf[p + 2]
            self.error = _E_EXCEPTION
            return _EXCEPTION
        return FRAME

    def _scan(self):
        pend = self._pend
        j = 0
        while j < self._np:              # earlier candidates that may be complete now
            st = self._complete(pend[j])
            if st == NEED:
                j += 1
                continue
            if st != ERROR:
                return st
            self._np -= 1
            pend[j] = pend[self._np]
        p = self._chk
        last = self.n - 3
        while p <= last:
            if self._header(p):
                st = self._complete(p)
                if st == NEED:
                    if self._np < _NPEND:
                        pend[self._np] = p
                        self._np += 1
                elif st != ERROR:
                    self._chk = p + 1
                    return st
            p += 1
        self._chk = p
        return NEED

    def _compact(self):
        # the buffer is full of noise: drop what lies before the oldest live candidate (or
        # before the last 2 bytes, where a header may be starting)
        keep = self._chk
        for j in range(self._np):
            keep = min(keep, self._pend[j])
        if keep == 0:            # cannot happen (a candidate fits: size > length): be safe
            keep = 1
            self._np = 0
            self._chk = max(self._chk, 1)
        b = self.buf
        n = self.n - keep
        for j in range(n):
            b[j] = b[keep + j]
        self.n = n
        self._chk -= keep
        for j in range(self._np):
            self._pend[j] -= keep

    def idle(self, elapsed_ms, quiet_ms):
        """No (more) bytes for now: ``elapsed_ms`` since the request, ``quiet_ms`` since the
        last byte (or since the request). Returns ERROR (``error`` says why) or NEED."""
        if elapsed_ms < self.timeout_ms and (self._np == 0 or quiet_ms < self.gap_ms):
            return NEED
        self.error = self._diagnose()
        return ERROR

    def _diagnose(self):
        # why no frame came: the most telling thing in the bytes received
        if self.n == 0:
            return _E_TIMEOUT
        if self._np:
            return _E_TRUNCATED
        if self.error == _E_CRC:
            return _E_CRC
        b = self.buf
        why = _E_NOISE
        for p in range(self.n - 4):
            f = b[p + 1] & 0x7F
            if f == 0 or (f > 4 and f != 6):
                continue
            want = 5 if b[p + 1] & 0x80 else (5 + b[p + 2] if f <= 4 else 8)
            if p + want > self.n or crc16_modbus(b, p, p + want) != 0:
                continue
            if b[p] != self.unit:
                why = _E_UNIT
            elif f != self.function:
                return _E_FUNCTION
            else:
                return _E_LENGTH
        return why

    def reg(self, i):
        """Register ``i`` (0-based in the request) of the FRAME: big-endian 16-bit."""
        p = self.start + 3 + 2 * i
        return (self.buf[p] << 8) | self.buf[p + 1]

    def u32_lo_first(self, i):
        """Registers i (low word) and i+1 (high word): PZEM-004T v3's 32-bit values."""
        return self.reg(i) | (self.reg(i + 1) << 16)

    def f32(self, i, k):
        """Registers i, i+1 as a float32, high word first (Eastron SDM), times ``k``,
        rounded half to even: see ``f32_scaled``. None for NaN/inf/too large."""
        return f32_scaled(self.buf, self.start + 3 + 2 * i, k)
