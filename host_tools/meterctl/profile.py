"""``meterctl profile NAME`` and ``meterctl bill``: the IS 15959 profiles (block load survey,
daily, billing, instantaneous, name plate) by block transfer with a progress bar, to a table,
CSV or JSON, with the scaler profile applied and units in the column headers.

The columns are what the meter announces (IC 7 capture_objects, attribute 3) and the scalers
what its scaler profile (1.0.94.91.3-6.255) serves, in column order, for the register columns
(IC 3/4 attribute 2); nothing about the order is assumed (is15959-profiles.md §1).
"""
import datetime
import os
from decimal import Decimal

import click

from host_tools import format as fmt
from host_tools import objects
from host_tools.client import DlmsError, ObjectUndefined
from host_tools.meterctl.common import EXIT_USAGE, auth_mode, fail, has_secret, link_options, make_client, run
from host_tools.meterctl.events import _cell, _output, _read_buffer, _rows
from protocol import axdr_client as axdr
from protocol import obis

# name -> (profile, its scaler profile)
PROFILES = {"block": ("1.0.99.1.0.255", "1.0.94.91.4.255"), "daily": ("1.0.99.2.0.255", "1.0.94.91.5.255"),
            "billing": ("1.0.98.1.0.255", "1.0.94.91.6.255"),
            "instantaneous": ("1.0.94.91.0.255", "1.0.94.91.3.255"), "nameplate": ("0.0.94.91.10.255", None)}
UNITS = {**objects.UNIT_NAMES, 10: "INR", 255: ""}
PROFILES_OFF = "object not served: this meter has the IS 15959 profiles off (config profiles: true)"
EXIT_CODES = ("\b\nExit codes:\n"
              "  0    ok (also an empty range: the header, no rows)\n"
              "  1    the meter refused (profiles off, access denied) or a protocol error\n"
              "  2    usage error (a bad --from/--to or --from-entry/--to-entry, from after to),\n"
              "       port unusable or in use\n"
              "  3    no answer from the meter\n"
              "  130  Ctrl-C (nothing is changed: this command only reads)")
# bill takes no range: its usage errors are the link's and --csv's
BILL_EXIT_CODES = EXIT_CODES.replace(
    "usage error (a bad --from/--to or --from-entry/--to-entry, from after to),\n       port",
    "usage error (an unwritable --csv FILE), port")


def scaled_columns(caps, scalers):
    """Per capture object (class, ln, attr, _): (header, scaler or None). ``scalers``: the
    scaler profile's one entry as [[scaler, unit], ...] for the register columns, in order."""
    out = []
    it = iter(scalers)
    for ic, ln, attr, _ in caps:
        name = "%s.%d" % (obis.to_str(bytes(ln)), attr)
        if ic in (3, 4) and attr == 2:
            s, unit = next(it, (0, 255))
            u = UNITS.get(unit, str(unit))
            out.append((name + (" [%s]" % u if u else ""), s))
        else:
            out.append((name, None))
    return out


def apply_scalers(table, cols):
    """Values of the register columns times 10**scaler (exact decimals)."""
    for row in table:
        for i, (_name, s) in enumerate(cols):
            if s is not None and isinstance(row[i], int) and s:
                row[i] = str(Decimal(row[i]).scaleb(s))
    return table


def text_cell(tagged):
    """A buffer cell as events shows it, but a printable octet-string (serial, firmware, name
    plate texts) as its text and an empty one as ""."""
    tag, v = tagged
    if tag == axdr.OCTET_STRING and not fmt.looks_like_datetime(bytes(v)):
        b = bytes(v)
        if all(32 <= x < 127 for x in b):
            return b.decode()
    return _cell(tagged)


def read_profile(c, name, access, quiet):
    """(headers, entries in use, rows) of profile ``name`` with scalers applied. A meter that
    does not serve the profile (config profiles off): DlmsError with PROFILES_OFF."""
    code, scode = PROFILES[name]
    try:
        cols_raw, n, raw = _read_buffer(c, code, access, quiet, what="profile")
        caps = axdr.to_python(c.get(7, code, 3))
        scalers = []
        if scode is not None:
            entry = axdr.to_python(c.get(7, scode, 2))
            scalers = entry[0] if entry else []
    except ObjectUndefined:
        raise DlmsError(PROFILES_OFF)
    cols = scaled_columns(caps, scalers)
    _names, table = _rows(cols_raw, raw, cell=text_cell)
    return [h for h, _ in cols], n, apply_scalers(table, cols)


def _when(ctx, param, value):
    """--from/--to: ISO 8601, a date alone = its 00:00; without an offset the meter's local
    time. A bad one: one ``meterctl: error:`` line, exit 2."""
    if value is None:
        return None
    try:
        when = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return when, fmt.parse_iso_datetime(value)
    except ValueError:
        fail("%s %r: not a date-time (want e.g. 2026-01-01, 2026-01-01T06:00 in the meter's "
             "local time, or 2026-01-01T06:00:00+05:30)" % (param.opts[0], value), EXIT_USAGE)


def check_csv(csv_path):
    """A --csv FILE that could not be written after a long read: one line, exit 2, before it."""
    if csv_path and csv_path != "-":
        parent = os.path.dirname(os.path.abspath(csv_path))
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            fail("--csv %s: cannot write there (no such directory or no permission)" % csv_path, EXIT_USAGE)


def check_access(name, since, until, from_entry, to_entry):
    """The selective access, checked: (from, to, from entry, to entry) for the read, or one
    ``meterctl: error:`` line and exit 2 for a range that cannot be what was meant."""
    by_time = since is not None or until is not None
    if by_time and (from_entry is not None or to_entry):
        fail("give --from/--to (by time) or --from-entry/--to-entry (by entry), not both", EXIT_USAGE)
    if by_time and name == "nameplate":
        fail("the name plate has no clock column: read it whole (no --from/--to)", EXIT_USAGE)
    if since is not None and until is not None:
        a, b = since[0], until[0]
        if (a.tzinfo is None) != (b.tzinfo is None):
            a, b = a.replace(tzinfo=None), b.replace(tzinfo=None)
        if a > b:
            fail("--from %s is after --to %s" % (since[0].isoformat(), until[0].isoformat()), EXIT_USAGE)
    if from_entry is not None and to_entry and from_entry > to_entry:
        fail("--from-entry %d is after --to-entry %d" % (from_entry, to_entry), EXIT_USAGE)
    return (since and since[1], until and until[1], from_entry, to_entry)


def _reader_kw(kw):
    if kw.get("client_sap") is None:
        kw["client_sap"] = 1 if auth_mode(kw) == "hls" else 32
    if not has_secret(kw):
        raise click.UsageError("the profiles are read by the meter reader (client 32) or a management "
                               "client: give --password (or METERCTL_PASSWORD)")


@click.command("profile", epilog=EXIT_CODES)
@link_options(write=False)
@click.argument("name", type=click.Choice(sorted(PROFILES)))
@click.option("--from", "since", callback=_when, default=None,
              help="From date-time (ISO 8601; without an offset the meter's local time): entries whose "
                   "clock (the interval's end) is at or after it.")
@click.option("--to", "until", callback=_when, default=None, help="To date-time (ISO 8601), inclusive.")
@click.option("--from-entry", type=click.IntRange(1), default=None, help="First entry (1 = oldest).")
@click.option("--to-entry", type=click.IntRange(0), default=0, help="Last entry (0 = newest).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the rows as CSV ('-' = stdout; a file: one line says how many, no table). "
                   "Scaled values are exact decimals.")
def profile(name, since, until, from_entry, to_entry, csv_path, **kw):
    """Read an IS 15959 profile (block, daily, billing, instantaneous, nameplate) with scalers
    applied and units in the header. The meter must have the profiles on (config
    "profiles": true; `meterctl emulate --profiles` for an emulated one).

    \b
      meterctl profile block -p /dev/pts/5 --password 00000000 --from 2026-01-02T00:00:00+05:30 --csv lp.csv
      meterctl profile daily -p /dev/pts/5 --password 00000000 --json
    """
    _reader_kw(kw)
    access = check_access(name, since, until, from_entry, to_entry)
    check_csv(csv_path)
    quiet = kw["as_json"] or csv_path == "-"

    def body():
        with make_client(kw, write=False) as c:
            cols, n, table = read_profile(c, name, access, quiet)
        _output(PROFILES[name][0], cols, n, table, csv_path, kw["as_json"], transpose=None, table_too=False)
    run(body)


@click.command("bill", epilog=BILL_EXIT_CODES)
@link_options(write=False)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the rows as CSV ('-' = stdout).")
def bill(csv_path, **kw):
    """The billing entries (1.0.98.1.0.255): closed cycles, then the running one (the table:
    one line per column, one column per entry; --csv/--json: one row per entry).

    \b
      meterctl bill -p /dev/pts/5 --password 00000000
    """
    _reader_kw(kw)
    check_csv(csv_path)

    def body():
        with make_client(kw, write=False) as c:
            cols, n, table = read_profile(c, "billing", (None, None, None, 0), True)
        _output(PROFILES["billing"][0], cols, n, table, csv_path, kw["as_json"], transpose=True,
                table_too=False)
    run(body)
