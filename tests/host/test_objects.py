"""The object model spec (host_tools/objects.py) and what is generated from it.

The device's ``_TABLE``/``_REGS`` and the object table of docs/CONTRACTS.md must equal their
rendering from the spec; a change to the spec (e.g. one access right) fails here until
``python -m host_tools.objects --write`` regenerates them.
"""
import pytest

from host_tools import objects
from host_tools.firmware_src import firmware_module

REGEN = "regenerate with `python -m host_tools.objects --write`"


def _committed(path, begin):
    return objects.committed_block(path.read_text(), begin, objects.TABLE_END
                                   if begin != objects.MD_BEGIN else objects.MD_END)


def test_committed_table_is_generated_from_the_spec():
    have = _committed(objects.COSEM_PY, objects.TABLE_BEGIN)
    assert have == objects.table_source(), "cosem.py _TABLE differs from host_tools/objects.py: " + REGEN


def test_committed_regs_are_generated_from_the_spec():
    have = _committed(objects.COSEM_VALUES_PY, objects.REGS_BEGIN)
    assert have == objects.regs_source(), "cosem_values.py _REGS differs from the spec: " + REGEN


def test_contracts_object_table_is_rendered_from_the_spec():
    have = _committed(objects.CONTRACTS_MD, objects.MD_BEGIN)
    assert have == objects.markdown(), "docs/CONTRACTS.md object table differs from the spec: " + REGEN


def test_imported_device_tables_equal_the_spec():
    cosem = firmware_module("meter.cosem")
    values = firmware_module("meter.cosem_values")
    assert cosem._TABLE == objects.table_bytes(), REGEN
    assert values._REGS == objects.regs_bytes(), REGEN


def test_one_changed_access_right_shows_until_regenerated(monkeypatch):
    """A spec edit (public may no longer read the clock's time zone) changes the generated
    table, so the committed one no longer matches."""
    clock = objects.CLOCK
    public = clock.access[16]
    changed = clock._replace(access=dict(clock.access) | {
        16: public._replace(read=public.read - {3})})
    monkeypatch.setattr(objects, "OBJECTS", tuple(changed if o is clock else o for o in objects.OBJECTS))
    assert _committed(objects.COSEM_PY, objects.TABLE_BEGIN) != objects.table_source()
    assert _committed(objects.CONTRACTS_MD, objects.MD_BEGIN) != objects.markdown()


def test_rights_the_device_cannot_enforce_are_refused():
    o = objects.CLOCK
    mgmt = o.access[1]
    with pytest.raises(objects.SpecError, match="management 1 and utility settings 48"):
        objects.device_row(o._replace(access=dict(o.access) | {48: mgmt._replace(write=frozenset())}))
    with pytest.raises(objects.SpecError, match="reader .32. and management"):
        objects.device_row(o._replace(access=dict(o.access) | {32: mgmt._replace(
            read=frozenset({1}), write=frozenset(), call=frozenset())}))
    with pytest.raises(objects.SpecError, match="only the management associations"):
        objects.device_row(o._replace(access=dict(o.access) | {16: mgmt}))
    with pytest.raises(objects.SpecError, match="call: 7 out of range"):
        objects.device_row(o._replace(access=dict(o.access) | {
            1: mgmt._replace(call=frozenset({7})), 48: mgmt._replace(call=frozenset({7}))}))


def test_catalogue_lookups():
    assert objects.by_obis("0.0.19.10.0.255") is objects.CREDIT
    assert objects.CREDIT.ic == 112 and objects.CREDIT.ln == bytes([0, 0, 19, 10, 0, 255])
    assert objects.by_name("clock") is objects.CLOCK and objects.CLOCK.ic == 8
    assert objects.LDN.obis == "0.0.42.0.0.255" and objects.FIRMWARE_ID.obis == "1.0.0.2.0.255"
    assert (objects.ENERGY_IMPORT.unit, objects.ENERGY_IMPORT.scaler) == (30, 0)
    assert objects.VOLTAGE.scaler == -1 and objects.UNIT_NAMES[objects.VOLTAGE.unit] == "V"
    with pytest.raises(KeyError):
        objects.by_obis("1.0.99.99.0.255")
    assert len({o.obis for o in objects.OBJECTS}) == len(objects.OBJECTS)
    assert len({o.name for o in objects.OBJECTS}) == len(objects.OBJECTS)


def test_every_association_has_rights_on_every_object():
    saps = {sap for _, sap in objects.ASSOCIATIONS}
    for o in objects.OBJECTS:
        assert set(o.access) == saps, o.obis
        for sap in saps:
            assert 1 in o.rights(sap).read, "%s: logical name unreadable by %d" % (o.obis, sap)


def test_cli_prints_the_blocks(capsys):
    assert objects.main(["--table"]) == 0
    assert capsys.readouterr().out == objects.table_source()
    assert objects.main(["--markdown"]) == 0
    assert capsys.readouterr().out == objects.markdown()


def test_event_names_come_from_events_py():
    names = objects.event_names()
    assert names[10] == "credit added" and names[64] == "billing month closed"
    for code in (47, 48, 55, 56, 57, 64, 30, 90):
        assert names.get(code), code
    assert all(isinstance(t, str) and t for t in names.values())



def test_no_two_objects_of_a_class_share_the_device_argument():
    """The device picks an object's value by (IC, argument): two rows with the same pair would
    serve one object's value under the other's OBIS (IC 1 arguments 16.. are the event-log
    categories' event code and counter objects, read by meter.cosem_log; 32.. the IS 15959 profile
    objects, read by meter.cosem_prof)."""
    from host_tools import objects
    seen = {}
    for o in objects.OBJECTS:
        if o.ic in (1, 3, 112):
            key = (o.ic, o.arg)
            assert key not in seen or o.obis.startswith("0.0.43.1."), \
                "%s and %s share IC %d argument %d" % (seen.get(key), o.obis, o.ic, o.arg)
            seen.setdefault(key, o.obis)
    from host_tools.is15959_objects import IS15959_OBJECTS
    profiles = {r[0] for r in IS15959_OBJECTS}
    for o in objects.OBJECTS:
        if o.ic == 1 and 16 <= o.arg < 32:
            assert o.obis.startswith(("0.0.96.11.", "0.0.96.15.")), o.obis
        if o.arg >= 32:                 # IS 15959 profile rows (meter.cosem_prof)
            assert o.obis in profiles, o.obis


def test_every_profile_column_is_an_object_with_the_scaler_profiles_scaler_unit():
    """Each capture column of the IS 15959 profiles (meter.cosem_prof's column rows) is a served
    object of the column's class; a register's scaler and unit (cosem_values._REGS, its attribute
    3) are the ones the scaler profile gives the column."""
    prof = firmware_module("meter.cosem_prof")
    t = prof._TABLE
    n = 0
    for i in range(t[0], t[5]):
        c = t[6 + i * 12:6 + i * 12 + 12]
        o = objects.by_obis(".".join(str(x) for x in c[1:7]))
        assert o.ic == c[0], o.obis
        if o.ic == 3 and o.obis in objects.COLUMN_NAMES:
            assert (o.scaler & 0xFF, o.unit) == (c[8], c[9]), o.obis
            n += 1
    assert n == 17
