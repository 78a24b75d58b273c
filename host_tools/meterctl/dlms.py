"""``meterctl objects`` (the association's object_list) and ``meterctl decode`` (captured
traffic of any DLMS meter, see ``host_tools.decode``).

IC 15 object_list layout: Blue Book §4.4.3; ``../shared/reference/dlms.md`` §3.
"""
import sys

import click

from host_tools import decode as D
from host_tools import decode_modbus as MB
from host_tools import objects
from host_tools.client import ProtocolError
from host_tools.meterctl.common import console, emit_json, fail, link_options, \
    make_client, run
from protocol import axdr_client as axdr
from protocol import obis

CLASS_NAMES = {1: "Data", 3: "Register", 4: "Extended register", 5: "Demand register",
               7: "Profile generic", 8: "Clock", 9: "Script table", 15: "Association LN",
               17: "SAP assignment", 18: "Image transfer", 20: "Activity calendar",
               22: "Single action schedule", 23: "IEC HDLC setup", 40: "Push setup",
               64: "Security setup", 70: "Disconnect control", 71: "Limiter",
               111: "Account", 112: "Credit", 113: "Charge", 115: "Token gateway"}
ASSOCIATION = objects.ASSOCIATION.obis


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
@link_options(write=False)
def objects(**kw):
    """List the objects this association may see (IC 15 object_list) with access rights.

    \b
      meterctl objects -p /dev/pts/5                       # public client 16
      meterctl objects -p /dev/pts/5 --password 00000000   # the reader 32
      meterctl objects -p /dev/pts/5 --client 32 --password 00000000 --json
    """
    def body():
        with make_client(kw, write=False) as c:
            objs = parse_object_list(c.get_raw(15, ASSOCIATION, 2))
            sap = c.client_sap
        if kw["as_json"]:
            emit_json(objs)
            return
        from rich.table import Table
        t = Table(title="object_list (client %s)" % sap)
        for col in ("OBIS", "IC", "class", "v", "read", "write", "methods"):   # 80 columns: OBIS whole
            t.add_column(col, no_wrap=col in ("OBIS", "IC", "v"), overflow="fold")
        for o in sorted(objs, key=lambda o: (o["class_id"], o["obis"])):
            t.add_row(o["obis"], str(o["class_id"]), o["name"], str(o["version"]), _ids(o["read"]),
                      _ids(o["write"]), _ids(o["methods"]))
        console().print(t)
    run(body)


def _hexkey(ctx, param, value):
    if value is None:
        return None
    try:
        b = bytes.fromhex(value.replace(" ", ""))
    except ValueError:
        raise click.BadParameter("not hex")
    return b


def _read_capture(source, hex_text):
    if hex_text is not None:
        return hex_text
    if source is None or source == "-":
        return sys.stdin.read()
    try:
        with open(source, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        fail("cannot read %s: %s" % (source, e.strerror), 2)
    except UnicodeDecodeError:
        fail("%s is not a text capture: give hex (one frame or APDU per line, '#' comments)"
             % source, 2)


@click.command("decode")
@click.argument("source", required=False)
@click.option("--hex", "hex_text", default=None, help="Hex bytes given on the command line.")
@click.option("--key", callback=_hexkey, default=None, help="Block cipher key (GUEK, 32 hex digits): decrypt ciphered APDUs.")
@click.option("--auth-key", callback=_hexkey, default=None, help="Authentication key (GAK, 32 hex digits).")
@click.option("--system-title", callback=_hexkey, default=None, help="Sender system title (16 hex digits) for service-specific glo APDUs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--modbus", type=click.Choice(["pzem004t", "sdm120", "sdm630"]), default=None,
              help="Decode Modbus RTU frames (one per line) of this metering module by register name.")
def decode(source, hex_text, key, auth_key, system_title, as_json, modbus):
    """Decode captured DLMS traffic: HDLC frames (a 7E... stream, segments reassembled) or bare
    APDUs (one per line) from a capture file, stdin ('-') or --hex.

    \b
      meterctl decode capture.txt
      meterctl decode --hex "7E A0 07 03 21 93 0F 01 7E"
      meterctl decode push.txt --key 000102030405060708090A0B0C0D0E0F --auth-key D0D1...DF --json
    """
    text = _read_capture(source, hex_text)
    mod = D if modbus is None else MB
    try:
        records = D.decode_text(text, key, auth_key, system_title) if modbus is None else \
            MB.decode_text(text, modbus)
    except D.DecodeError as e:
        fail(str(e), 2)
    if as_json:
        emit_json(records)
    else:
        click.echo(mod.render(records))
    bad = [r for r in records if ("frame" in r and not r["frame"]["ok"]) or
           any("error" in r.get(k, {}) for k in ("apdu", "modbus"))]
    if bad:
        sys.exit(1)
