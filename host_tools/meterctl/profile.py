"""``meterctl profile NAME`` and ``meterctl bill``: the IS 15959 profiles (block load survey,
daily, billing, instantaneous, name plate) by block transfer with a progress bar, to a table,
CSV or JSON, with the scaler profile applied and units in the column headers.

The columns are what the meter announces (IC 7 capture_objects, attribute 3) and the scalers
what its scaler profile (1.0.94.91.3-6.255) serves, in column order, for the register columns
(IC 3/4 attribute 2); nothing about the order is assumed (is15959-profiles.md §1).
"""
from decimal import Decimal

import click

from host_tools import objects
from host_tools.meterctl.common import auth_mode, has_secret, link_options, make_client, run
from host_tools.meterctl.events import _iso_arg, _output, _read_buffer, _rows
from protocol import axdr_client as axdr
from protocol import obis

# name -> (profile, its scaler profile)
PROFILES = {"block": ("1.0.99.1.0.255", "1.0.94.91.4.255"), "daily": ("1.0.99.2.0.255", "1.0.94.91.5.255"),
            "billing": ("1.0.98.1.0.255", "1.0.94.91.6.255"),
            "instantaneous": ("1.0.94.91.0.255", "1.0.94.91.3.255"), "nameplate": ("0.0.94.91.10.255", None)}
UNITS = {**objects.UNIT_NAMES, 10: "INR", 255: ""}


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


def read_profile(c, name, access, quiet):
    """(headers, entries in use, rows) of profile ``name`` with scalers applied."""
    code, scode = PROFILES[name]
    cols_raw, n, raw = _read_buffer(c, code, access, quiet)
    caps = axdr.to_python(c.get(7, code, 3))
    scalers = []
    if scode is not None:
        entry = axdr.to_python(c.get(7, scode, 2))
        scalers = entry[0] if entry else []
    cols = scaled_columns(caps, scalers)
    _names, table = _rows(cols_raw, raw)
    return [h for h, _ in cols], n, apply_scalers(table, cols)


def _reader_kw(kw):
    if kw.get("client_sap") is None:
        kw["client_sap"] = 1 if auth_mode(kw) == "hls" else 32
    if not has_secret(kw):
        raise click.UsageError("the profiles are read by the meter reader (client 32) or a management "
                               "client: give --password (or METERCTL_PASSWORD)")


@click.command("profile")
@link_options(write=False)
@click.argument("name", type=click.Choice(sorted(PROFILES)))
@click.option("--from", "since", callback=_iso_arg, default=None, help="From date-time (ISO 8601): by range on the clock.")
@click.option("--to", "until", callback=_iso_arg, default=None, help="To date-time (ISO 8601).")
@click.option("--from-entry", type=click.IntRange(1), default=None, help="First entry (1 = oldest).")
@click.option("--to-entry", type=click.IntRange(0), default=0, help="Last entry (0 = newest).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the rows as CSV ('-' = stdout).")
def profile(name, since, until, from_entry, to_entry, csv_path, **kw):
    """Read an IS 15959 profile (block, daily, billing, instantaneous, nameplate) with scalers
    applied and units in the header.

    \b
      meterctl profile block -p /dev/pts/5 --password 00000000 --from 2026-01-02T00:00:00+05:30 --csv lp.csv
      meterctl profile daily -p /dev/pts/5 --password 00000000 --json
    """
    _reader_kw(kw)
    quiet = kw["as_json"] or csv_path == "-"

    def body():
        with make_client(kw, write=False) as c:
            cols, n, table = read_profile(c, name, (since, until, from_entry, to_entry), quiet)
        _output(PROFILES[name][0], cols, n, table, csv_path, kw["as_json"])
    run(body)


@click.command("bill")
@link_options(write=False)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the rows as CSV ('-' = stdout).")
def bill(csv_path, **kw):
    """The billing entries (1.0.98.1.0.255): closed cycles, then the running one.

    \b
      meterctl bill -p /dev/pts/5 --password 00000000
    """
    _reader_kw(kw)

    def body():
        with make_client(kw, write=False) as c:
            cols, n, table = read_profile(c, "billing", (None, None, None, 0), True)
        _output(PROFILES["billing"][0], cols, n, table, csv_path, kw["as_json"])
    run(body)
