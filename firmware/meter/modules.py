"""Metering module types: one register-map table each, read by ``meter.metrology.Module``.

A map is ``(function, blocks, fields)``: ``blocks`` are the read requests of one poll as
``(first register address, register count)``; each field is
``(slot, block index, register address, kind, scale)``: the value of register ``address``
(absolute, as in the vendor's map) decoded as ``kind`` and multiplied by ``scale`` lands in
``Module.val[slot]`` as an int in the firmware's units (slot names below).

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

PZEM004T = (4, ((0x0000, 10),), (
    (VOLTAGE_DV, 0, 0x0000, U16, 1),
    (CURRENT_MA, 0, 0x0001, U32_LO_FIRST, 1),
    (POWER_DW, 0, 0x0003, U32_LO_FIRST, 1),
    (IMPORT_WH, 0, 0x0005, U32_LO_FIRST, 1),
    (FREQUENCY_DHZ, 0, 0x0007, U16, 1),
    (PF_CENTI, 0, 0x0008, U16, 1),
    (ALARM, 0, 0x0009, U16, 1),
))

SDM120 = (4, ((0x0000, 0x20), (0x0046, 6)), (
    (VOLTAGE_DV, 0, 0x0000, F32, 10),
    (CURRENT_MA, 0, 0x0006, F32, 1000),
    (POWER_DW, 0, 0x000C, F32, 10),
    (PF_CENTI, 0, 0x001E, F32, 100),
    (FREQUENCY_DHZ, 1, 0x0046, F32, 10),
    (IMPORT_WH, 1, 0x0048, F32, 1000),
    (EXPORT_WH, 1, 0x004A, F32, 1000),
))

SDM630 = (4, ((0x0000, 0x12), (0x0034, 0x18)), (
    (VOLTAGE_DV, 0, 0x0000, F32, 10),
    (V2_DV, 0, 0x0002, F32, 10),
    (V3_DV, 0, 0x0004, F32, 10),
    (CURRENT_MA, 0, 0x0006, F32, 1000),
    (I2_MA, 0, 0x0008, F32, 1000),
    (I3_MA, 0, 0x000A, F32, 1000),
    (P1_DW, 0, 0x000C, F32, 10),
    (P2_DW, 0, 0x000E, F32, 10),
    (P3_DW, 0, 0x0010, F32, 10),
    (POWER_DW, 1, 0x0034, F32, 10),
    (PF_CENTI, 1, 0x003E, F32, 100),
    (FREQUENCY_DHZ, 1, 0x0046, F32, 10),
    (IMPORT_WH, 1, 0x0048, F32, 1000),
    (EXPORT_WH, 1, 0x004A, F32, 1000),
))


def lookup(kind):
    """The register map of a module type: "pzem004t", "sdm120" or "sdm630" (the
    ``modbus_module`` configuration value). ValueError for another name."""
    if kind == "pzem004t":
        return PZEM004T
    if kind == "sdm120":
        return SDM120
    if kind == "sdm630":
        return SDM630
    raise ValueError("module type")
