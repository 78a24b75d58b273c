"""meterctl DLMS commands: ``objects`` (the association's object_list), ``events`` (event log
readout by block transfer, with progress, table / CSV / JSON) and ``decode`` (captured traffic
of any DLMS meter, see ``host_tools.decode``).

Registered by ``host_tools.cli`` (``_register_optional``). IC 15 object_list and IC 7 buffer
layouts: Blue Book §4.4.3 / §4.3.6; ``../shared/reference/dlms.md`` §3.
"""
import csv
import datetime
import json
import sys

import click

from host_tools import cli as C
from host_tools import decode as D
from host_tools import format as fmt
from host_tools.client import ProtocolError, dar_error
from protocol import apdu_client as apdu
from protocol import axdr_client as axdr
from protocol import obis

CLASS_NAMES = {1: "Data", 3: "Register", 4: "Extended register", 5: "Demand register",
               7: "Profile generic", 8: "Clock", 9: "Script table", 15: "Association LN",
               17: "SAP assignment", 18: "Image transfer", 20: "Activity calendar",
               22: "Single action schedule", 23: "IEC HDLC setup", 40: "Push setup",
               64: "Security setup", 70: "Disconnect control", 71: "Limiter",
               111: "Account", 112: "Credit", 113: "Charge", 115: "Token gateway"}
ASSOCIATION = "0.0.40.0.0.255"
EVENT_LOG = "0.0.99.98.0.255"


def parse_object_list(raw):
    """A-XDR object_list (IC 15 attr 2) -> list of dicts: class_id, version, obis, name,
    read / write (attribute ids), methods (method ids with access). Raises ProtocolError."""
    try:
        items = axdr.to_python(axdr.decode(raw, 0)[0])
        out = []
        for ic, ver, ln, rights in items:
            attrs, meths = rights[0], rights[1]
            out.append({"class_id": ic, "version": ver, "obis": obis.to_str(bytes(ln)),
                        "name": CLASS_NAMES.get(ic, "IC %d" % ic),
                        "read": [a[0] for a in attrs if a[1] & 1],
                        "write": [a[0] for a in attrs if a[1] & 2],
                        "methods": [m[0] for m in meths if m[1]]})
        return out
    except (axdr.AxdrError, TypeError, ValueError, IndexError) as e:
        raise ProtocolError("object_list is not an IC 15 object list: %s" % e)


def _ids(v):
    return ",".join(str(x) for x in v) or "-"


@click.command("objects")
@C.link_options(write=False)
def objects(**kw):
    """List the objects this association may see (IC 15 object_list) with access rights.

    \b
      meterctl objects -p /dev/pts/5                       # public client 16
      meterctl objects -p /dev/pts/5 --client 32 --password 00000000 --json
    """
    def body():
        with C._make_client(kw, write=False) as c:
            objs = parse_object_list(c.get_raw(15, ASSOCIATION, 2))
        if kw["as_json"]:
            C._emit_json(objs)
            return
        from rich.table import Table
        t = Table(title="object_list (client %s)" % (kw.get("client_sap") or C.PUBLIC_CLIENT))
        for col in ("OBIS", "IC", "class", "v", "read", "write", "methods"):
            t.add_column(col)
        for o in sorted(objs, key=lambda o: (o["class_id"], o["obis"])):
            t.add_row(o["obis"], str(o["class_id"]), o["name"], str(o["version"]), _ids(o["read"]),
                      _ids(o["write"]), _ids(o["methods"]))
        C._console().print(t)
    C._run(body)


def get_blocks(c, class_id, code, attr, selector=None, params=b"", on_block=None):
    """GET with GET-next until the last block, calling ``on_block(nbytes_so_far)`` after
    each; returns the raw A-XDR value. Raises DataAccessError / ProtocolError."""
    o6 = obis.parse(code) if isinstance(code, str) else code
    inv = c._next_invoke()
    r = c._request(apdu.get_request(inv, class_id, o6, attr, selector, params), inv,
                   apdu.GET_RESPONSE, "GET-Response")
    if r.kind == 1:
        if r.dar:
            raise dar_error(r.dar, "IC %d %s.%d" % (class_id, obis.to_str(o6), attr))
        if on_block:
            on_block(len(r.data))
        return bytes(r.data)
    buf = bytearray()
    expect = 1
    while True:
        if r.kind != 2:
            raise ProtocolError("expected a data block, got GET-Response type %s" % r.kind)
        if r.dar:
            raise dar_error(r.dar, "block %d" % expect)
        if r.block_no != expect:
            raise ProtocolError("meter sent block %d, expected %d" % (r.block_no, expect))
        buf += r.raw
        if on_block:
            on_block(len(buf))
        if r.last:
            return bytes(buf)
        inv = c._next_invoke()
        r = c._request(apdu.get_next_request(inv, expect), inv, apdu.GET_RESPONSE, "GET-Response")
        expect += 1


def _iso_arg(ctx, param, value):
    if value is None:
        return None
    try:
        return fmt.parse_iso_datetime(value)
    except ValueError as e:
        raise click.BadParameter(str(e))


def _cell(tagged):
    tag, v = tagged
    if tag == axdr.OCTET_STRING and len(v) == 12 and fmt.looks_like_datetime(v):
        return fmt.clock_iso(v)
    if tag in (axdr.OCTET_STRING,):
        return bytes(v).hex()
    if tag in (axdr.STRUCTURE, axdr.ARRAY):
        return json.dumps(fmt.to_jsonable(tagged)["value"])
    if tag == axdr.BIT_STRING:
        return fmt.to_jsonable(tagged)["value"]
    return v


@click.command("events")
@C.link_options(write=False)
@click.option("--obis", "code", default=EVENT_LOG, show_default=True, help="Profile generic (IC 7) to read.")
@click.option("--from-entry", type=click.IntRange(1), default=None, help="First entry (1 = oldest): selective access by entry.")
@click.option("--to-entry", type=click.IntRange(0), default=0, help="Last entry (0 = newest).")
@click.option("--since", callback=_iso_arg, default=None, help="From date-time (ISO 8601): selective access by range on the clock.")
@click.option("--until", callback=_iso_arg, default=None, help="To date-time (ISO 8601).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), default=None, help="Write the rows as CSV ('-' = stdout).")
def events(code, from_entry, to_entry, since, until, csv_path, **kw):
    """Read an event log / profile (IC 7 buffer) by block transfer, with a progress bar.

    The buffer is not public: the default client is the meter reader 32 (LLS), so give its
    --password (or a management client's).

    \b
      meterctl events -p /dev/pts/5 --password 00000000
      meterctl events -p /dev/pts/5 --client 32 --password 00000000
      meterctl events -p /dev/pts/5 --client 32 --password 00000000 --from-entry 10 --csv ev.csv
      meterctl events ... --since 2026-01-01T00:00:00+05:30 --until 2026-01-02T00:00:00+05:30 --json
    """
    if kw.get("client_sap") is None:
        kw["client_sap"] = 32
    if kw["client_sap"] != C.PUBLIC_CLIENT and not kw.get("password"):
        raise click.UsageError("the event log is read by the meter reader (client 32) or a management "
                               "client: give --password (or METERCTL_PASSWORD)")

    def body():
        with C._make_client(kw, write=False) as c:
            caps = axdr.to_python(c.get(7, code, 3))
            n = axdr.to_python(c.get(7, code, 7))
            cols = ["%s.%d" % (obis.to_str(bytes(x[1])), x[2]) for x in caps]
            selector, params = None, b""
            if since is not None or until is not None:
                clock = next((x for x in caps if x[0] == 8), None)
                if clock is None:
                    raise click.UsageError("--since/--until need a clock column in the profile")
                w = axdr.Writer().structure(4).structure(4).long_unsigned(8).octet_string(bytes(clock[1])) \
                    .integer(clock[2]).long_unsigned(0)
                w.octet_string(since or fmt.parse_iso_datetime("2000-01-01T00:00:00"))
                w.octet_string(until or fmt.parse_iso_datetime("2099-12-31T23:59:59"))
                w.array(0)
                selector, params = 1, w.getvalue()
            elif from_entry is not None or to_entry:
                selector = 2
                params = axdr.Writer().structure(4).double_long_unsigned(from_entry or 1) \
                    .double_long_unsigned(to_entry).long_unsigned(1).long_unsigned(0).getvalue()
            per_row = 2 + sum(14 if x[0] == 8 else 5 for x in caps)
            quiet = kw["as_json"] or csv_path == "-" or not sys.stderr.isatty()
            from rich.progress import Progress
            with Progress(disable=quiet, transient=True, console=C._console().__class__(stderr=True)) as prog:
                task = prog.add_task("event log %s" % code, total=max(1, n * per_row))
                raw = get_blocks(c, 7, code, 2, selector, params,
                                 on_block=lambda got: prog.update(task, completed=got))
                prog.update(task, completed=max(1, n * per_row))
        try:
            rows = axdr.decode(raw, 0)[0][1]
        except axdr.AxdrError as e:
            raise ProtocolError("profile buffer undecodable: %s" % e)
        table = [[_cell(v) for v in row[1]] for row in rows]
        # name this meter's event codes (firmware/meter/events.py) next to the event-code column
        ec = cols.index(EVENT_CODE_COL) if EVENT_CODE_COL in cols else None
        if ec is not None:
            cols = cols + ["event"]
            table = [r + [EVENT_NAMES.get(r[ec], "")] for r in table]
        if csv_path:
            out = sys.stdout if csv_path == "-" else open(csv_path, "w", newline="")
            try:
                wr = csv.writer(out)
                wr.writerow(cols)
                wr.writerows(table)
            finally:
                if out is not sys.stdout:
                    out.close()
        if kw["as_json"]:
            C._emit_json({"columns": cols, "entries_in_use": n,
                          "rows": [dict(zip(cols, r)) for r in table]})
        elif csv_path != "-":
            from rich.table import Table
            t = Table(title="%s: %d of %d entries" % (code, len(table), n))
            for col in cols:
                t.add_column(col)
            for r in table:
                t.add_row(*[str(x) for x in r])
            C._console().print(t)
    C._run(body)


EVENT_CODE_COL = "0.0.96.11.0.255.2"
# event codes this firmware logs (firmware/meter/events.py, policy.py, app.py)
EVENT_NAMES = {
    1: "first boot", 2: "power down", 3: "power up", 4: "watchdog reset", 10: "credit added",
    20: "clock set", 21: "configuration changed", 30: "LLS authentication failure",
    40: "relay open: credit exhausted", 41: "relay closed: credit restored", 42: "relay open",
    43: "relay closed", 45: "low credit", 46: "emergency credit on", 47: "emergency credit ended",
    48: "disconnection deferred (no-disconnection period)", 50: "token accepted",
    51: "token rejected", 55: "max power limit trip", 56: "max power limit reclose",
    57: "max power limit lock-out", 60: "cover opened (tamper)", 61: "cover closed",
    64: "billing month closed", 90: "DLMS error", 91: "store error",
}


def _hexkey(ctx, param, value):
    if value is None:
        return None
    try:
        b = bytes.fromhex(value.replace(" ", ""))
    except ValueError:
        raise click.BadParameter("not hex")
    return b


@click.command("decode")
@click.argument("source", required=False)
@click.option("--hex", "hex_text", default=None, help="Hex bytes given on the command line.")
@click.option("--key", callback=_hexkey, default=None, help="Block cipher key (GUEK, 32 hex digits): decrypt ciphered APDUs.")
@click.option("--auth-key", callback=_hexkey, default=None, help="Authentication key (GAK, 32 hex digits).")
@click.option("--system-title", callback=_hexkey, default=None, help="Sender system title (16 hex digits) for service-specific glo APDUs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def decode(source, hex_text, key, auth_key, system_title, as_json):
    """Decode captured DLMS traffic: HDLC frames (a 7E... stream, segments reassembled) or bare
    APDUs (one per line) from a capture file, stdin ('-') or --hex.

    \b
      meterctl decode capture.txt
      meterctl decode --hex "7E A0 07 03 21 93 0F 01 7E"
      meterctl decode push.txt --key 000102030405060708090A0B0C0D0E0F --auth-key D0D1...DF --json
    """
    if hex_text is not None:
        text = hex_text
    elif source is None or source == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(source, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            C._fail("cannot read %s: %s" % (source, e.strerror), 2)
        except UnicodeDecodeError:
            C._fail("%s is not a text capture: give hex (one frame or APDU per line, '#' comments)"
                    % source, 2)
    try:
        records = D.decode_text(text, key, auth_key, system_title)
    except D.DecodeError as e:
        C._fail(str(e), 2)
    if as_json:
        C._emit_json(records)
    else:
        click.echo(D.render(records))
    bad = [r for r in records if ("frame" in r and not r["frame"]["ok"]) or ("apdu" in r and "error" in r["apdu"])]
    if bad:
        sys.exit(1)
