"""Metering module types: one register-map table each, read by ``meter.metrology.Module``.

A map is ``(function, blocks, fields)``: ``blocks`` are the read requests of one poll as
``(first register address, register count)``; each field is
``(slot, block index, register address, kind, scale)``: the value of register ``address``
(absolute, as in the vendor's map) decoded as ``kind`` and multiplied by ``scale`` lands in
``Module.val[slot]`` as an int in the firmware's units (slot names below). The tables are
bytes literals (no heap on the board); ``blocks(m)``/``fields(m)`` read them as tuples.

- PZEM-004T v3 (Peacefair; mandulaj/PZEM-004T-v30, reference micropython.md §4): input
  registers 0x0000-0x0009, one request of 10, integers, 32-bit values low word first:
  V 0.1 V, I 1 mA, P 0.1 W, E 1 Wh, f 0.1 Hz, PF 0.01, alarm 0xFFFF. 9600 8N1.
- Eastron SDM120 / SDM630: float32 input registers, 2 each, high word first (big-endian),
  in V, A, W, Hz, kWh (Eastron "Modbus Protocol" maps, as esphome/esphome
  ``components/sdm_meter/sdm_meter_registers.h`` lists them): phase 1 (SDM630 phases 1-3)
  voltage 0x0000/0x0002/0x0004, current 0x0006/0x0008/0x000A, active power
  0x000C/0x000E/0x0010, phase-1 power factor 0x001E; total system power 0x0034 and total
  power factor 0x003E (SDM630); frequency 0x0046, import active energy 0x0048, export
  0x004A. An SDM120 is the SDM630 map's phase 1. Two requests a poll: 0x0000.. (V, I, P, PF)
  and 0x0046.. (Hz, import, export); the registers between the named ones are read and
  ignored (an Eastron meter answers them; ESPHome reads 0x0000-0x004F in one request).
  Factory setting 2400 baud (SDM120) / 9600 (SDM630), unit 1.

Energy: a float32 kWh register becomes integer Wh by ``round(kWh * 1000)``, half to even
(``protocol.modbus_rtu.f32_scaled``), each reading on its own: the meter charges the
difference of two rounded readings, so the sum of the charges telescopes to the last reading
minus the first, with no drift however many polls. float32 has a 24-bit significand: the step
between two representable kWh values is 2**(floor(log2 kWh) - 23) kWh, under 1 Wh below
16,384 kWh (2**14), 2 Wh up to 32,768 kWh, 4 Wh to 65,536, 8 Wh to 131,072 kWh. Above
16,384 kWh the counter itself moves in steps of 2 Wh or more; the meter then charges in the
counter's own steps (nothing is lost or counted twice: the next step carries the rest).
Power and power factor are signed on an SDM (export, leading); ``Module`` reports import
power (negative -> 0) and |PF|, as the PZEM does.
"""

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# value kinds
U16 = const(0)             # one register, unsigned
U32_LO_FIRST = const(1)    # two registers, low word first (PZEM-004T)
F32 = const(2)             # two registers, IEEE 754 float32, high word first (Eastron)

# slots of Module.val (units of the rest of the firmware)
VOLTAGE_DV = const(0)      # 0.1 V (phase 1)
CURRENT_MA = const(1)      # mA (phase 1)
POWER_DW = const(2)        # 0.1 W, total active power (signed on an SDM)
IMPORT_WH = const(3)       # Wh, import active energy counter
FREQUENCY_DHZ = const(4)   # 0.1 Hz
PF_CENTI = const(5)        # 0.01 (signed on an SDM)
ALARM = const(6)           # PZEM power alarm register (0xFFFF = alarm)
EXPORT_WH = const(7)       # Wh, export active energy counter
V2_DV = const(8)           # SDM630 phases 2 and 3, and per-phase power
V3_DV = const(9)
I2_MA = const(10)
I3_MA = const(11)
P1_DW = const(12)
P2_DW = const(13)
P3_DW = const(14)
NSLOT = const(15)

# The maps are bytes literals (in flash with the ROMFS/frozen image, no heap): blocks are
# 3 bytes each (first address high, low, register count); fields 6 bytes each (slot, block,
# register address high, low, kind, scale as a power of ten). tests/device/test_metrology.py
# spells each map out in words and checks these bytes against it.
_PZEM004T_BLOCKS = b"\x00\x00\x0a"             # 0x0000, 10 registers
_PZEM004T_FIELDS = (
    b"\x00\x00\x00\x00\x00\x00"    # VOLTAGE_DV     0x0000 U16           x1
    b"\x01\x00\x00\x01\x01\x00"    # CURRENT_MA     0x0001 U32_LO_FIRST  x1
    b"\x02\x00\x00\x03\x01\x00"    # POWER_DW       0x0003 U32_LO_FIRST  x1
    b"\x03\x00\x00\x05\x01\x00"    # IMPORT_WH      0x0005 U32_LO_FIRST  x1
    b"\x04\x00\x00\x07\x00\x00"    # FREQUENCY_DHZ  0x0007 U16           x1
    b"\x05\x00\x00\x08\x00\x00"    # PF_CENTI       0x0008 U16           x1
    b"\x06\x00\x00\x09\x00\x00"    # ALARM          0x0009 U16           x1
)
_SDM120_BLOCKS = b"\x00\x00\x20\x00\x46\x06"   # 0x0000, 32 registers; 0x0046, 6
_SDM120_FIELDS = (
    b"\x00\x00\x00\x00\x02\x01"    # VOLTAGE_DV     0x0000 F32 x10   (V)
    b"\x01\x00\x00\x06\x02\x03"    # CURRENT_MA     0x0006 F32 x1000 (A)
    b"\x02\x00\x00\x0c\x02\x01"    # POWER_DW       0x000C F32 x10   (W)
    b"\x05\x00\x00\x1e\x02\x02"    # PF_CENTI       0x001E F32 x100
    b"\x04\x01\x00\x46\x02\x01"    # FREQUENCY_DHZ  0x0046 F32 x10   (Hz)
    b"\x03\x01\x00\x48\x02\x03"    # IMPORT_WH      0x0048 F32 x1000 (kWh)
    b"\x07\x01\x00\x4a\x02\x03"    # EXPORT_WH      0x004A F32 x1000 (kWh)
)
_SDM630_BLOCKS = b"\x00\x00\x12\x00\x34\x18"   # 0x0000, 18 registers; 0x0034, 24
_SDM630_FIELDS = (
    b"\x00\x00\x00\x00\x02\x01"    # VOLTAGE_DV     0x0000 F32 x10   (V, phase 1)
    b"\x08\x00\x00\x02\x02\x01"    # V2_DV          0x0002
    b"\x09\x00\x00\x04\x02\x01"    # V3_DV          0x0004
    b"\x01\x00\x00\x06\x02\x03"    # CURRENT_MA     0x0006 F32 x1000 (A, phase 1)
    b"\x0a\x00\x00\x08\x02\x03"    # I2_MA          0x0008
    b"\x0b\x00\x00\x0a\x02\x03"    # I3_MA          0x000A
    b"\x0c\x00\x00\x0c\x02\x01"    # P1_DW          0x000C F32 x10   (W)
    b"\x0d\x00\x00\x0e\x02\x01"    # P2_DW          0x000E
    b"\x0e\x00\x00\x10\x02\x01"    # P3_DW          0x0010
    b"\x02\x01\x00\x34\x02\x01"    # POWER_DW       0x0034 F32 x10   (W, total)
    b"\x05\x01\x00\x3e\x02\x02"    # PF_CENTI       0x003E F32 x100  (total)
    b"\x04\x01\x00\x46\x02\x01"    # FREQUENCY_DHZ  0x0046 F32 x10   (Hz)
    b"\x03\x01\x00\x48\x02\x03"    # IMPORT_WH      0x0048 F32 x1000 (kWh)
    b"\x07\x01\x00\x4a\x02\x03"    # EXPORT_WH      0x004A F32 x1000 (kWh)
)


def lookup(kind):
    """The register map of a module type: "pzem004t", "sdm120" or "sdm630" (the
    ``modbus_module`` configuration value), as ``(function, blocks, fields)`` bytes (layout
    above; ``blocks(m)`` and ``fields(m)`` spell them out). ValueError for another name."""
    if kind == "pzem004t":
        return 4, _PZEM004T_BLOCKS, _PZEM004T_FIELDS
    if kind == "sdm120":
        return 4, _SDM120_BLOCKS, _SDM120_FIELDS
    if kind == "sdm630":
        return 4, _SDM630_BLOCKS, _SDM630_FIELDS
    raise ValueError("module type")


def blocks(m):
    """[(first register address, count), ...] of a map from ``lookup``."""
    b = m[1]
    return [((b[i] << 8) | b[i + 1], b[i + 2]) for i in range(0, len(b), 3)]


def fields(m):
    """[(slot, block index, register address, kind, scale), ...] of a map from ``lookup``."""
    f = m[2]
    return [(f[i], f[i + 1], (f[i + 2] << 8) | f[i + 3], f[i + 4], 10 ** f[i + 5])
            for i in range(0, len(f), 6)]
