"""The prepaid summary of a meter read over an association (docs/CONTRACTS.md object model).

``read_summary(client) -> dict`` works with any object that has ``get(class_id, obis, attr)``
returning a tagged A-XDR value and raising ``DataAccessError`` for a refused or missing object
(``host_tools.client.DlmsClient``). The OBIS codes and enumeration names it uses are public.
"""
from protocol import axdr_client as axdr
from protocol.client_assoc import DataAccessError
from host_tools import objects
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


def _scaled_int(value, scaler):
    """value * 10**scaler as an int (floor for negative scalers)."""
    if scaler >= 0:
        return value * 10 ** scaler
    return value // 10 ** (-scaler)


def read_summary(client):
    """Read the prepaid summary from an associated client -> dict:

    energy_import_wh (int, scaler applied), energy_raw, energy_scaler, energy_unit, available_credit_paise,
    credit_paise, payment_mode ("prepayment"/"credit"/int), account_status, relay_output_state
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

    v = val(111, OBIS_ACCOUNT, 5)
    out["available_credit_paise"] = None if v is None else int(v[1])
    v = val(112, OBIS_CREDIT, 2)
    out["credit_paise"] = None if v is None else int(v[1])
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
