"""The prepaid summary of a meter read over an association (docs/CONTRACTS.md object model).

``read_summary(client) -> dict`` works with any object that has ``get(class_id, obis, attr)``
returning a tagged A-XDR value and raising ``DataAccessError`` for a refused or missing object
(``host_tools.client.DlmsClient``). The OBIS codes and enumeration names it uses are public.
"""
from protocol import axdr_client as axdr
from protocol.client_assoc import DataAccessError
from host_tools import objects
from host_tools.creditunit import paise_or_none, unit_of
from host_tools.format import clock_iso

# Object model (docs/CONTRACTS.md, IS 15959 / Blue Book OBIS).
OBIS_CLOCK = objects.CLOCK.obis
OBIS_ENERGY_IMPORT = objects.ENERGY_IMPORT.obis
OBIS_ACCOUNT = objects.ACCOUNT.obis
OBIS_CREDIT = objects.CREDIT.obis
OBIS_DISCONNECT = objects.DISCONNECT_CONTROL.obis

CONTROL_STATES = {0: "disconnected", 1: "connected", 2: "ready_for_reconnection"}
PAYMENT_MODES = {1: "credit", 2: "prepayment"}
ACCOUNT_STATUS = {1: "new", 2: "active", 3: "closed"}
# IC 111 attribute 4 current_credit_status, bit 0 first on the wire (Blue Book IC 111)
CREDIT_STATUS_BITS = ("in_credit", "low_credit", "next_credit_enabled", "next_credit_selectable",
                      "credit_reference_list", "selectable_credit_in_use", "out_of_credit", "reserved")
# IC 112 attribute 8 credit_status (Blue Book IC 112)
EC_STATUS = {0: "enabled", 1: "selectable", 2: "selected", 3: "in use", 4: "exhausted"}
# the event the meter logs when it defers a disconnection (firmware/meter/events.py, one catalogue)
_EV_DISCONNECT_DEFERRED = next(c for c, name, _, _ in objects.events() if name == "EV_DISCONNECT_DEFERRED")


def _scaled_int(value, scaler):
    """value * 10**scaler as an int (floor for negative scalers)."""
    if scaler >= 0:
        return value * 10 ** scaler
    return value // 10 ** (-scaler)


def read_summary(client):
    """Read the prepaid summary from an associated client -> dict:

    energy_import_wh (int, scaler applied), energy_raw, energy_scaler, energy_unit; the credit
    registers as read, available_credit (IC 111), credit (IC 112 token credit), emergency_credit,
    in credit_unit ("paise" or "0.1 kWh", IC 111 attribute 15; credit_unit_note: None, or the
    sentence saying paise is assumed), and as available_credit_paise, credit_paise,
    emergency_credit_paise (the same values; None on a 0.1 kWh meter); payment_mode ("prepayment"/"credit"/int), account_status, relay_output_state
    (bool), control_state ("connected"/...), control_mode (int), clock (ISO 8601 text),
    clock_raw (hex). An object the meter does not have or does not let this client read is
    None (other makers' meters lack IC 111/112); a link failure raises.
    """
    out = {}

    def val(class_id, code, attr):
        try:
            return client.get(class_id, code, attr)
        except DataAccessError:
            return None

    v = val(3, OBIS_ENERGY_IMPORT, 2)
    scaler, unit = 0, 30
    su = val(3, OBIS_ENERGY_IMPORT, 3)
    if su is not None and su[0] == axdr.STRUCTURE and len(su[1]) == 2:
        scaler, unit = int(su[1][0][1]), int(su[1][1][1])
    raw = None if v is None else int(v[1])
    # unit 30 = Wh (Blue Book unit table); anything else is not active energy: no Wh figure
    out["energy_import_wh"] = _scaled_int(raw, scaler) if raw is not None and unit == 30 else None
    out["energy_raw"] = raw
    out["energy_scaler"] = scaler
    out["energy_unit"] = unit

    out["credit_unit"], out["credit_unit_note"] = unit_of(val(111, OBIS_ACCOUNT, 15))
    v = val(111, OBIS_ACCOUNT, 5)
    out["available_credit"] = None if v is None else int(v[1])
    v = val(112, OBIS_CREDIT, 2)
    out["credit"] = None if v is None else int(v[1])
    v = val(111, OBIS_ACCOUNT, 2)
    pm = st = None
    if v is not None and v[0] == axdr.STRUCTURE and len(v[1]) >= 2:
        pm, st = int(v[1][0][1]), int(v[1][1][1])
    out["payment_mode"] = PAYMENT_MODES.get(pm, pm)
    out["account_status"] = ACCOUNT_STATUS.get(st, st)

    v = val(70, OBIS_DISCONNECT, 2)
    out["relay_output_state"] = None if v is None else bool(v[1])
    v = val(70, OBIS_DISCONNECT, 3)
    out["control_state"] = None if v is None else CONTROL_STATES.get(int(v[1]), int(v[1]))
    v = val(70, OBIS_DISCONNECT, 4)
    out["control_mode"] = None if v is None else int(v[1])

    _why_supply(out, val)
    for key in ("available_credit", "credit", "emergency_credit"):
        out[key + "_paise"] = paise_or_none(out[key], out["credit_unit"])

    v = val(8, OBIS_CLOCK, 2)
    out["clock"] = None
    out["clock_raw"] = None
    if v is not None and isinstance(v[1], (bytes, bytearray)):
        out["clock_raw"] = bytes(v[1]).hex()
        try:
            out["clock"] = clock_iso(v[1])
        except ValueError:
            pass
    return out


def _why_supply(out, val):
    """Emergency credit and credit status, and why the relay is closed with no credit left
    (``relay_reason``): on emergency credit, credit mode (the head-end decides), or a
    disconnection the meter deferred (no-disconnection period: friendly hours, holiday)."""
    v = val(111, OBIS_ACCOUNT, 4)
    bits = None
    if v is not None and v[0] == axdr.BIT_STRING:          # (number of bits, bytes)
        nbits, raw = v[1]
        b = int.from_bytes(bytes(raw), "big") << (8 * len(raw) - nbits) >> (8 * len(raw) - 8) \
            if raw else 0
        bits = [n for i, n in enumerate(CREDIT_STATUS_BITS[:nbits]) if b >> (7 - i) & 1]
    out["credit_status"] = bits
    ec = val(112, objects.EMERGENCY_CREDIT.obis, 2)
    ecs = val(112, objects.EMERGENCY_CREDIT.obis, 8)
    out["emergency_credit"] = None if ec is None else int(ec[1])
    out["emergency_credit_status"] = None if ecs is None else EC_STATUS.get(int(ecs[1]), int(ecs[1]))
    last = val(1, objects.EVENT_CODE.obis, 2)
    credit = out.get("available_credit")
    reason = None
    if out.get("relay_output_state") and credit is not None and credit <= 0:
        if out["emergency_credit_status"] == "in use":
            reason = "on emergency credit"
        elif out.get("payment_mode") == "credit":
            reason = "credit mode: the head-end decides disconnection"
        elif last is not None and int(last[1]) == _EV_DISCONNECT_DEFERRED:
            reason = "disconnection deferred: no-disconnection period (friendly hours, holiday)"
        else:
            reason = "no credit: the meter will disconnect when its policy allows"
    out["relay_reason"] = reason

