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
# the events that tell why the relay is where it is (firmware/meter/events.py, one catalogue)
_EV = {name: c for c, name, _, _ in objects.events()}
_EV_DISCONNECT_DEFERRED = _EV["EV_DISCONNECT_DEFERRED"]
# relay_reason_code in ``read --json``: a stable word per reason (the prose in relay_reason may change)
RELAY_REASON_CODES = ("remote_disconnect", "max_power_lockout", "max_power_trip", "credit_exhausted",
                      "credit_exhausted_after_emergency", "credit_restored", "ready_for_reconnection",
                      "emergency_credit", "credit_mode", "disconnection_deferred", "no_credit_pending")
CONTROL_EVENT_CODE = objects.EVENT_LOGS["control"][1].obis          # 0.0.96.11.6.255
TRANSACTION_LOG = objects.EVENT_LOGS["transaction"][0].obis         # 0.0.99.98.3.255
CONTROL_LOG = objects.EVENT_LOGS["control"][0].obis                 # 0.0.99.98.6.255


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

    def val(class_id, code, attr, selector=None, params=b""):
        try:
            return client.get(class_id, code, attr, selector, params) if selector else \
                client.get(class_id, code, attr)
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
    disconnection the meter deferred (no-disconnection period: friendly hours, holiday).
    ``relay_reason`` is prose for a person; ``relay_reason_code`` the same reason as a stable
    word for a script (RELAY_REASON_CODES), both None when the relay needs no explanation."""
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
    if out.get("relay_output_state") is False:
        reason = _why_open(out, val)
    elif out.get("relay_output_state") and credit is not None and credit <= 0:
        if out["emergency_credit_status"] == "in use":
            reason = "emergency_credit", "on emergency credit"
        elif out.get("payment_mode") == "credit":
            reason = "credit_mode", "credit mode: the head-end decides disconnection"
        elif last is not None and int(last[1]) == _EV_DISCONNECT_DEFERRED:
            reason = ("disconnection_deferred",
                      "disconnection deferred: no-disconnection period (friendly hours, holiday)")
        else:
            reason = "no_credit_pending", "no credit: the meter will disconnect when its policy allows"
    out["relay_reason_code"], out["relay_reason"] = reason or (None, None)
    out["emergency_credit_end"] = _ec_end(out, val) if out["emergency_credit_status"] == "in use" else None


def _int(v):
    try:
        return int(v[1])
    except (TypeError, ValueError, IndexError):
        return None


def _why_open(out, val):
    """Why the relay is open, from what the meter serves: the control state (0 disconnected by
    a remote command; 2 opened by the meter itself), the last control event (0.0.96.11.6.255:
    a max power limit trip or lock-out, the relay opened for credit), the credit status and the
    emergency credit's (exhausted: it ended). (code, text), or None when nothing tells."""
    cs, mode = out.get("control_state"), out.get("control_mode")
    if cs == "disconnected":
        return "remote_disconnect", ("disconnected by a remote command (remote_disconnect): a remote_reconnect (meterctl relay "
                "connect) %s" % ("closes it" if mode in (2, 4) else "makes it ready, then the button closes it"))
    code = _control_cause(val)
    mpl = _int(val(71, objects.LIMITER.obis, 3))
    limit = "" if mpl is None else " (%d W)" % (mpl // 10)
    if code == _EV["EV_MPL_LOCKOUT"]:
        return "max_power_lockout", ("max power limit lock-out: the load went over the limit%s too often; a button press or "
                "a remote reconnect clears it" % limit)
    if code == _EV["EV_MPL_TRIP"]:
        after = _int(val(71, objects.LIMITER.obis, 7))
        return "max_power_trip", ("max power limit trip: the load went over the limit%s; the relay recloses by itself%s"
                % (limit, "" if after is None else " %d s after the trip" % after))
    credit = out.get("available_credit")
    if "out_of_credit" in (out.get("credit_status") or []) or credit is not None and credit <= 0:
        if out.get("emergency_credit_status") == "exhausted":
            return "credit_exhausted_after_emergency", ("credit exhausted after the emergency credit "
                                                        "ended: a top-up reconnects")
        return "credit_exhausted", "credit exhausted: a top-up reconnects"
    if code == _EV["EV_RELAY_OPEN_CREDIT"]:
        return "credit_restored", "opened for credit; credit is back: the button (or the meter, control mode 5/6) recloses it"
    # ready for reconnection after "relay open" (42): the button, or a remote disconnect followed by a
    # remote reconnect (control mode 5/6); its cause is the event's detail, which no buffer serves
    if cs == "ready_for_reconnection" and code is None:
        return "ready_for_reconnection", (
            "ready for reconnection: the button recloses it (opened by a max power limit trip or lock-out, "
            "the button, or a remote disconnect since reconnected; the reader, with --password, tells a trip)")
    if cs == "ready_for_reconnection":
        return "ready_for_reconnection", (
            "ready for reconnection: the button recloses it (opened by the button, or by a remote disconnect "
            "since reconnected: the cause is in the event's detail, not served over DLMS)")
    return None


def _last_entries(val, log, k):
    """The newest ``k`` entries of the IC 7 ``log`` as tuples (clock bytes, code, ...), oldest
    first; [] when the client may not read it (the public client reads no buffer)."""
    n = _int(val(7, log, 7))
    if not n:
        return []
    sel = axdr.Writer().structure(4).double_long_unsigned(max(1, n - k + 1)).double_long_unsigned(n) \
        .long_unsigned(1).long_unsigned(0).getvalue()
    try:
        return client_rows(val(7, log, 2, 2, sel))
    except (TypeError, ValueError, IndexError):
        return []


def _control_cause(val):
    """The code of the control event that opened the relay: the newest control event
    (0.0.96.11.6.255), or, when that is "relay open" (42, its cause only in its detail, which the
    profile does not carry), the max power limit trip or lock-out logged at the same second just
    before it (the control log 0.0.99.98.6.255, read by the reader and management clients)."""
    rows = _last_entries(val, CONTROL_LOG, 2)
    if len(rows) == 2 and rows[1][1] == _EV["EV_RELAY_OPEN"] and rows[0][0] == rows[1][0]:
        return rows[0][1]
    if rows:
        return rows[-1][1]
    code = _int(val(1, CONTROL_EVENT_CODE, 2))
    return None if code == _EV["EV_RELAY_OPEN"] else code       # the public client: cause unseen


def _ec_end(out, val):
    """When the emergency credit in use ends, as far as the meter serves it: ``balance`` (in the
    meter's credit unit, the balance at which it is used up: the policy's min_credit, from the profile
    0.128.96.5.0.255, else 0, minus its limit, IC 112 attribute 6) and ``time`` (ISO: its
    period, attribute 11, from the newest "emergency credit on" event in the transaction log);
    None where not served (the public client reads none of them)."""
    ec = objects.EMERGENCY_CREDIT.obis
    limit, period = _int(val(112, ec, 6)), _int(val(112, ec, 11))
    end = {"balance": _min_credit(val(1, objects.PROFILE.obis, 2)) - limit if limit else None,
           "time": None}
    if period:
        try:
            on = [r for r in _last_entries(val, TRANSACTION_LOG, 10) if r[1] == _EV["EV_EC_ON"]]
            if on:
                y, mo, d, _wd, h, mi, sec, _hs, dev, _st = axdr.parse_datetime(on[-1][0])
                import datetime
                t = datetime.datetime(y, mo, d, h, mi, sec) + datetime.timedelta(seconds=period)
                b = axdr.datetime_bytes(t.year, t.month, t.day, t.hour, t.minute, t.second, deviation=dev)
                end["time"] = clock_iso(b)
        except (TypeError, ValueError, IndexError):
            pass
    return end if end["balance"] is not None or end["time"] is not None else None


def _min_credit(tagged):
    """The policy's min_credit (the credit unit) in the profile JSON (tagged octet-string), else 0."""
    import json
    try:
        return int(json.loads(bytes(tagged[1]).decode()).get("policy", {}).get("min_credit", 0))
    except (TypeError, ValueError, AttributeError):
        return 0


def client_rows(tagged):
    """IC 7 buffer rows (tagged array of structures) -> [(clock bytes, code, ...)]."""
    return [tuple(bytes(v) if isinstance(v, (bytes, bytearray)) else v for _t, v in row[1]) for row in tagged[1]]

