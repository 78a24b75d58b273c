"""The IS 15959 profile objects the meter serves (firmware/meter/profiles.py holds the data,
cosem_prof.py serves it): the rows host_tools.objects adds to its object table, and the column
meanings meterctl shows. Sources and choices: ../shared/reference/is15959-profiles.md.

``IS15959_OBJECTS``: (obis, IC, name, attributes, methods, device arg, unit, scaler, value type,
what it serves). Read by the reader (32) and both management associations; the public client
reads the logical name only, so the objects are not in its object_list. No event scaler
profile 1.0.94.91.7.255: this meter's event logs capture no register (clock, code, occurrences),
and a profile without capture objects is unreadable to a client (gurux refuses it).
"""

_IC7 = "IS 15959 profile generic: "
IS15959_OBJECTS = (
    ("1.0.99.1.0.255", 7, "block load profile", 8, 2, 32, None, None, None,
     _IC7 + "clock (block end), block import/export Wh, average V and I, status (1 supply failed, "
     "2 clock set, 4 late start), block charge paise; period 1.0.0.8.4.255; >= 35 days"),
    ("1.0.99.2.0.255", 7, "daily load profile", 8, 2, 33, None, None, None,
     _IC7 + "local midnight: import Wh, balance, the day's energy/fixed/duty debits and top-ups "
     "(paise); >= 40 days"),
    ("1.0.98.1.0.255", 7, "billing profile", 8, 2, 34, None, None, None,
     _IC7 + "billing date, import Wh total and TZ1-4, MD total and TZ1-4 with times, cycle "
     "charges (paise), power-on minutes; 13 closed cycles, then the running one"),
    ("1.0.94.91.0.255", 7, "instantaneous profile", 8, 2, 35, None, None, None,
     _IC7 + "one entry captured on read"),
    ("0.0.94.91.10.255", 7, "name plate", 8, 2, 36, None, None, None,
     _IC7 + "serial, manufacturer, firmware, meter type, category, current rating, year"),
    ("1.0.94.91.3.255", 7, "instantaneous scaler profile", 8, 2, 40, None, None, None,
     _IC7 + "scaler/unit of each register column"),
    ("1.0.94.91.4.255", 7, "block load scaler profile", 8, 2, 41, None, None, None,
     _IC7 + "scaler/unit of each register column"),
    ("1.0.94.91.5.255", 7, "daily load scaler profile", 8, 2, 42, None, None, None,
     _IC7 + "scaler/unit of each register column"),
    ("1.0.94.91.6.255", 7, "billing scaler profile", 8, 2, 43, None, None, None,
     _IC7 + "scaler/unit of each register column"),
) + tuple(
    ("1.0.1.6.%d.255" % z, 4, "maximum demand" + (" TZ%d" % z if z else ""), 5, 1, 48 + z, None,
     None, None, "W in the running billing cycle (scaler 0, unit W); attribute 5 the end of its "
     "demand period" + (" (TZ%d: %s)" % (z, ("outside the tariff's TOD windows", "TOD window 1",
                                               "TOD window 2", "TOD windows 3 and later")[z - 1])
                        if z else ""))
    for z in range(5)
) + (
    ("0.0.0.1.0.255", 1, "billing count", 2, 0, 50, None, None, None, "double-long-unsigned"),
    ("1.0.0.8.0.255", 1, "demand integration period", 2, 0, 51, None, None, None,
     "long-unsigned s (config demand_period, default 900)"),
    ("1.0.0.8.4.255", 1, "profile capture period", 2, 0, 52, None, None, None,
     "long-unsigned s (config profile_period, default 1800)"),
    ("0.0.96.7.0.255", 1, "power failures", 2, 0, 53, None, None, None, "double-long-unsigned"),
    ("0.0.94.91.0.255", 1, "tamper count", 2, 0, 54, None, None, None,
     "double-long-unsigned, cover openings"),
    ("0.0.96.2.0.255", 1, "programming count", 2, 0, 55, None, None, None,
     "double-long-unsigned, clock sets and configuration changes"),
    ("0.0.0.1.1.255", 1, "available billing periods", 2, 0, 56, None, None, None,
     "unsigned, closed cycles kept"),
    ("0.0.10.0.1.255", 9, "MD reset script", 2, 1, 57, None, None, None,
     "IC 9 script table, script 1: capture a billing entry (the running cycle so far) and reset MD "
     "(method 1 execute, management only; event 65)"),
    ("0.0.0.1.2.255", 3, "billing date", 3, 1, 5, 255, 0, "octet-string",
     "date-time of the last billing entry"),
    ("0.0.94.91.14.255", 3, "power-on duration", 3, 1, 6, 6, 0, "double-long-unsigned",
     "cumulative minutes, counted in demand periods"),
    ("0.0.94.91.8.255", 3, "power-off duration", 3, 1, 7, 6, 0, "double-long-unsigned",
     "cumulative minutes"),
)

# The profiles' capture columns served as objects of their own (IS 15959 meters serve them so: a
# head-end checks capture_objects against the object list and reads each register's scaler_unit):
# (obis, IC, name, unit, scaler, value type); value = the column in the profile's last entry (the
# last block, day or the running billing cycle; 0 before the first), scaler_unit the scaler
# profile's. IC 3 args 8.., IC 1 args 58.. (meter.cosem_prof.value).
_DL, _DLU, _LU = "double-long", "double-long-unsigned", "long-unsigned"
COLUMNS = (
    ("1.0.1.29.0.255", 3, "block import", 30, 0, _DLU), ("1.0.2.29.0.255", 3, "block export", 30, 0, _DLU),
    ("1.0.12.27.0.255", 3, "average voltage", 35, -1, _LU),
    ("1.0.11.27.0.255", 3, "average current", 33, -2, _LU),
    ("0.128.94.96.1.255", 3, "block charge", 10, -2, _DL),
    ("0.128.94.96.2.255", 3, "day energy charge", 10, -2, _DL),
    ("0.128.94.96.3.255", 3, "day fixed charge", 10, -2, _DL),
    ("0.128.94.96.4.255", 3, "day duty", 10, -2, _DL), ("0.128.94.96.5.255", 3, "day top-ups", 10, -2, _DLU),
    ("0.128.94.96.6.255", 3, "cycle energy charge", 10, -2, _DL),
    ("0.128.94.96.7.255", 3, "cycle fixed charge", 10, -2, _DL),
    ("0.128.94.96.8.255", 3, "cycle duty", 10, -2, _DL),
    ("0.0.94.91.13.255", 3, "cycle power-on duration", 6, 0, _DLU),
) + tuple(("1.0.1.8.%d.255" % z, 3, "import TZ%d" % z, 30, 0, _DLU) for z in range(1, 5)) + (
    ("0.0.96.10.1.255", 1, "block status", None, None, "unsigned"),
    ("0.0.96.1.0.255", 1, "serial number", None, None, "octet-string"),
    ("0.0.94.91.9.255", 1, "meter type", None, None, "unsigned"),
    ("0.0.94.91.11.255", 1, "category", None, None, "octet-string"),
    ("0.0.94.91.12.255", 1, "current rating", None, None, "octet-string"),
    ("0.0.96.1.4.255", 1, "year of manufacture", None, None, "octet-string"),
)
COLUMN_ARGS = {3: 8, 1: 58}           # the first arg of the IC 3 / IC 1 columns
IS15959_OBJECTS += tuple(
    (ob, ic, name, (3 if ic == 3 else 2), int(ic == 3), COLUMN_ARGS[ic] + i - (17 if ic == 1 else 0),
     unit, sc, vt if ic == 3 else None,
     "IS 15959 capture column: %s of the profile's last entry" % (vt if ic == 1 else "value"))
    for i, (ob, ic, name, unit, sc, vt) in enumerate(COLUMNS))

# the names meterctl heads the capture columns with
COLUMN_NAMES = {ob: name for ob, _ic, name, _u, _s, _vt in COLUMNS}
