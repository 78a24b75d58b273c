"""``meterctl events``: an event log / profile (IC 7 buffer) by block transfer, with progress,
as a table, CSV or JSON.

IC 7 buffer and selective access (1 by range, 2 by entry): Blue Book §4.3.6;
``../shared/reference/dlms.md`` §3.
"""
import csv
import json
import sys

import click

from host_tools import format as fmt
from host_tools import objects
from host_tools.client import ProtocolError
from host_tools.is15959_objects import COLUMN_NAMES
from host_tools.meterctl.common import EXIT_USAGE, PUBLIC_CLIENT, auth_mode, console, emit_json, fail, has_secret, \
    link_options, make_client, run
from protocol import axdr_client as axdr
from protocol import obis

EVENT_LOG = objects.EVENT_LOG.obis
# the audit trail by category (firmware/meter/audit.py): --log NAME -> its IC 7 profile
LOGS = {"all": EVENT_LOG}
LOGS.update({name: log.obis for name, (log, _code) in objects.EVENT_LOGS.items()})
# event-code columns: 0.0.96.11.x.255 attribute 2 of every log
EVENT_CODE_COLS = {objects.EVENT_CODE.obis + ".2"} | {code.obis + ".2" for _log, code in objects.EVENT_LOGS.values()}
# occurrence-count columns: 0.0.96.15.x.255 attribute 2 of the category logs
COUNTER_COLS = {objects.by_obis(code.obis.replace(".96.11.", ".96.15.")).obis + ".2"
                for _log, code in objects.EVENT_LOGS.values()}
# event codes this firmware logs, with their texts: firmware/meter/events.py, the one catalogue
EVENT_NAMES = objects.event_names()
# --json keys that do not change with --log: the code column is named after its log's OBIS
STABLE_KEYS = dict({c: "code" for c in EVENT_CODE_COLS}, **{c: "occurrences" for c in COUNTER_COLS})


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


def selective_access(caps, since, until, from_entry, to_entry):
    """(selector, A-XDR params) for the buffer read: by range on the clock column (``since`` /
    ``until``, date-time octet strings), by entry, or (None, b"") for the whole buffer."""
    if since is not None or until is not None:
        clock = next((x for x in caps if x[0] == 8), None)
        if clock is None:
            raise click.UsageError("--since/--until need a clock column in the profile")
        w = axdr.Writer().structure(4).structure(4).long_unsigned(8).octet_string(bytes(clock[1])) \
            .integer(clock[2]).long_unsigned(0)
        w.octet_string(since or fmt.parse_iso_datetime("2000-01-01T00:00:00"))
        w.octet_string(until or fmt.parse_iso_datetime("2099-12-31T23:59:59"))
        w.array(0)
        return 1, w.getvalue()
    if from_entry is not None or to_entry:
        return 2, axdr.Writer().structure(4).double_long_unsigned(from_entry or 1) \
            .double_long_unsigned(to_entry).long_unsigned(1).long_unsigned(0).getvalue()
    return None, b""


def _read_buffer(c, code, access, quiet, what="event log"):
    """(column names, entries in use, raw buffer) with a progress bar on stderr."""
    from rich.progress import Progress

    caps = axdr.to_python(c.get(7, code, 3))
    n = axdr.to_python(c.get(7, code, 7))
    cols = ["%s.%d" % (obis.to_str(bytes(x[1])), x[2]) for x in caps]
    selector, params = selective_access(caps, *access)
    per_row = 2 + sum(14 if x[0] == 8 else 5 for x in caps)
    with Progress(disable=quiet, transient=True, console=console(stderr=True)) as prog:
        task = prog.add_task("%s %s" % (what, code), total=max(1, n * per_row))
        raw = c.get_raw(7, code, 2, selector, params,
                         on_block=lambda got: prog.update(task, completed=got))
        prog.update(task, completed=max(1, n * per_row))
    return cols, n, raw


def _rows(cols, raw, cell=None):
    cell = cell or _cell
    try:
        rows = axdr.decode(raw, 0)[0][1]
    except axdr.AxdrError as e:
        raise ProtocolError("profile buffer undecodable: %s" % e)
    table = [[cell(v) for v in row[1]] for row in rows]
    # name this meter's event codes (firmware/meter/events.py) next to the event-code column
    ec = next((i for i, col in enumerate(cols) if col in EVENT_CODE_COLS), None)
    if ec is not None:
        cols = cols + ["event"]
        table = [r + [EVENT_NAMES.get(r[ec], "")] for r in table]
    return cols, table


def column_name(col):
    """A capture column "<obis>.<attr>" as the table heads it: the served object's name from
    host_tools.objects ("clock", "event code", "occurrences") or a profile's capture column
    (host_tools.is15959_objects), else the column itself; a unit suffix " [Wh]" is kept."""
    col, sep, unit = col.partition(" [")
    unit = sep + unit
    code, _, attr = col.rpartition(".")
    try:
        name = objects.by_obis(code).name
    except KeyError:
        name = COLUMN_NAMES.get(code)
        if name is None:
            return col + unit
    if name.endswith("event code"):
        return "event code"
    if name.endswith("event counter"):
        return "occurrences"
    return (name if attr == "2" else "%s (attribute %s)" % (name, attr)) + unit


def _output(code, cols, n, table, csv_path, as_json, transpose=False, table_too=True, aliases=None):
    """Rows to CSV (``csv_path``, "-" = stdout), JSON or a table (``transpose`` True: one line
    per column; None: so when the columns do not fit the console); ``table_too`` False: with a
    CSV file, one line that says what was written instead of the table. ``aliases`` {column:
    key}: JSON rows carry the column under that key too (a key that stays when the column's
    OBIS changes). A date-time cell not specified ("????-??-??T??:??:??", an MD time before
    any demand) is null in JSON, "????" in the table and CSV."""
    if csv_path:
        out = sys.stdout if csv_path == "-" else open(csv_path, "w", newline="")
        try:
            wr = csv.writer(out)
            wr.writerow(cols)
            wr.writerows(table)
        finally:
            if out is not sys.stdout:
                out.close()
    if as_json:
        alias = [(i, (aliases or {})[c]) for i, c in enumerate(cols) if c in (aliases or {})]
        emit_json({"columns": cols, "entries_in_use": n,
                   "rows": [dict(zip(cols, r), **{k: r[i] for i, k in alias})
                            for r in ([fmt.iso_or_none(x) for x in r] for r in table)]})
    elif csv_path and csv_path != "-" and not table_too:
        click.echo("%s: %d of %d entries written to %s" % (code, len(table), n, csv_path))
    elif csv_path != "-" and (transpose or transpose is None and _too_wide(cols, table)):
        _print_transposed(code, cols, n, table)
    elif csv_path != "-":
        from rich.markup import escape
        from rich.table import Table
        t = Table(title="%s: %d of %d entries" % (code, len(table), n))
        for col in cols:                   # names, not OBIS codes; the clock never cut (--json: all)
            name = column_name(col)        # "[min]" is a unit, not rich markup
            t.add_column(escape(name), no_wrap=name in ("clock", "event code", "occurrences"))
        for r in table:
            t.add_row(*[escape(str(x)) for x in r])
        console().print(t)


def _too_wide(cols, table, width=None):
    """True when a table of ``cols`` (one column each) cannot show its cells whole in the
    console's width (rich would cut them to "…") and has fewer entries than columns: then one
    line per column reads better (``transpose=None`` in ``_output``)."""
    width = width or console().width
    need = 1
    for j, col in enumerate(cols):
        words = column_name(col).split() or [""]
        need += 3 + max([len(max(words, key=len))] + [len(str(r[j])) for r in table])
    return need > width and len(table) < len(cols)


def _print_transposed(code, cols, n, table):
    """Many columns, few entries (billing): one line per column, one column per entry."""
    from rich.markup import escape
    from rich.table import Table
    t = Table(title="%s: %d of %d entries" % (code, len(table), n))
    t.add_column("column", no_wrap=True)
    for i in range(len(table)):
        t.add_column("entry %d" % (i + 1), no_wrap=True)
    for j, col in enumerate(cols):
        t.add_row(escape(column_name(col)), *[escape(str(r[j])) for r in table])
    console().print(t)


@click.command("events")
@link_options(write=False, client_help="Default 32 (the meter reader, LLS: give its --password); 1 "
                                       "(management) with --auth hls.", port_required=False)
@click.option("--log", "log", type=click.Choice(sorted(LOGS)), default=None,
              help="Audit-trail category to read: all (0.0.99.98.0.255, every event, the default), "
                   "power (98.2), transaction (98.3), other (98.4), tamper (98.5: cover, lock-outs with "
                   "the failed logins counted, refused tokens) or control (98.6). Categories add an occurrences column "
                   "(repetitions coalesced).")
@click.option("--obis", "code", default=None, help="Profile generic (IC 7) to read [default: %s]." % EVENT_LOG)
@click.option("--from-entry", type=click.IntRange(1), default=None, help="First entry (1 = oldest): selective access by entry.")
@click.option("--to-entry", type=click.IntRange(0), default=0, help="Last entry (0 = newest).")
@click.option("--since", callback=_iso_arg, default=None, help="From date-time (ISO 8601): selective access by range on the clock.")
@click.option("--until", callback=_iso_arg, default=None, help="To date-time (ISO 8601).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), default=None, help="Write the rows as CSV ('-' = stdout).")
@click.option("--state", "state_dir", type=click.Path(file_okay=False, exists=True), default=None, metavar="DIR",
              help="Read an emulated meter's log from its state directory (meterctl emulate prints it), "
                   "with each event's detail (TID, paise, relay cause, failed logins, counter): no --port. "
                   "Over DLMS the meter serves no detail column.")
def events(log, code, from_entry, to_entry, since, until, csv_path, state_dir, **kw):
    """Read an event log / profile (IC 7 buffer) by block transfer, with a progress bar.

    The logs are the profiles of the IS 15959 event categories 0.0.99.98.2/3/4/6.255 (power,
    transaction, other, control) holding this firmware's own event codes (named in the event
    column; docs/CONTRACTS.md "Audit trail"), plus 0.0.99.98.0.255, all events merged, and
    98.5, tamper and security events (where IS 15959 has the voltage and non-rollover logs).
    --json rows carry the event code under "code" (and the count under "occurrences") whatever
    the log, as well as under the column's OBIS.

    The buffer is not public: the default client is the meter reader 32 (LLS), so give its
    --password; with --auth hls (--key-file/--meter) the default is the management client 1.

    \b
      meterctl events -p /dev/pts/5 --password 00000000
      meterctl events -p /dev/pts/5 --password 00000000 --log tamper
      meterctl events -p /dev/pts/5 --client 32 --password 00000000
      meterctl events -p /dev/pts/5 --client 32 --password 00000000 --from-entry 10 --csv ev.csv
      meterctl events ... --since 2026-01-01T00:00:00+05:30 --until 2026-01-02T00:00:00+05:30 --json
      meterctl events --state /tmp/meterctl-emulate-x/state --log transaction   # with the details

    Each event's detail (the TID of a token, the paise of a top-up, why the relay moved, the
    failed logins of a lock-out, a re-based counter) is recorded by the meter but not served in
    its IC 7 buffers: --state DIR reads it from an emulated meter's files (detail and detail_is
    in --json).
    """
    if state_dir is not None:
        return events_from_files(state_dir, log, code, (from_entry, to_entry, since, until), csv_path, kw)
    if not kw.get("port"):
        raise click.UsageError("Missing option '--port' / '-p' (or --state DIR: an emulated meter's files)")
    if kw.get("client_sap") is None:
        kw["client_sap"] = 1 if auth_mode(kw) == "hls" else 32
    if kw["client_sap"] != PUBLIC_CLIENT and not has_secret(kw):
        raise click.UsageError("the event log is read by the meter reader (client 32) or a management "
                               "client: give --password (or METERCTL_PASSWORD)")
    if log and code:
        raise click.UsageError("give --log or --obis, not both")
    code = LOGS[log] if log else (code or EVENT_LOG)
    if (since is not None or until is not None) and (from_entry is not None or to_entry):
        fail("give --since/--until (by time) or --from-entry/--to-entry (by entry), not both", EXIT_USAGE)
    if from_entry is not None and to_entry and from_entry > to_entry:
        fail("--from-entry %d is after --to-entry %d" % (from_entry, to_entry), EXIT_USAGE)
    # date-time octets (IEC 62056-6-2 §4.1.6.1) compare as dates without the day of week, when
    # both carry the same deviation
    if since is not None and until is not None and since[9:11] == until[9:11] \
            and since[:4] + since[5:8] > until[:4] + until[5:8]:
        fail("--since is after --until", EXIT_USAGE)
    quiet = kw["as_json"] or csv_path == "-" or not sys.stderr.isatty()

    def body():
        with make_client(kw, write=False) as c:
            cols, n, raw = _read_buffer(c, code, (since, until, from_entry, to_entry), quiet)
        cols, table = _rows(cols, raw)
        _output(code, cols, n, table, csv_path, kw["as_json"], table_too=False, aliases=STABLE_KEYS)
    run(body)


def events_from_files(state_dir, log, code, ranges, csv_path, kw):
    """``events --state DIR``: the log from an emulated meter's files (host_tools.eventfiles),
    with the detail column; no link options, no range (the whole log, oldest first)."""
    from host_tools import eventfiles
    if code or any(x for x in ranges):
        raise click.UsageError("--state reads the whole log from files: give --log, not --obis or a range")
    try:
        rows = eventfiles.read_events(state_dir, log or "all")
    except eventfiles.EventFilesError as e:
        fail(str(e), EXIT_USAGE)
    if kw["as_json"]:
        emit_json({"source": state_dir, "log": log or "all", "entries_in_use": len(rows), "rows": rows})
        return
    cols = ["clock (UTC)", "event code", "occurrences", "event", "detail"]
    table = [[r["clock"], r["code"], r["occurrences"], r["event"], eventfiles.detail_text(r)] for r in rows]
    _output("%s log in %s" % (log or "all", state_dir), cols, len(rows), table, csv_path, False,
            transpose=False, table_too=False)
