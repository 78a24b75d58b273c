"""IC 7 selective access (Blue Book IC 7 §4.3.6) with hostile parameters, over the pty of the real
firmware: the event log 0.0.99.98.0.255 and the IS 15959 profiles (block load, billing). Each
malformed parameter gets the standard data-access-result: type-unmatched (12) for a wrong type
or shape (junk after the parameter, entry numbers that are not double-long-unsigned, bounds that
are not a date-time), other-reason (250) for a restricting object that is not the column's exact
definition (as an unknown one always was) or more selected_values than there are columns. The
same association then reads as before. from_entry 0 reads as 1 (gurux clients send it; gurux's
server does the same). docs/CONTRACTS.md "Selective access"."""
import pytest

from host_tools.client import DataAccessError, DlmsClient
from protocol import obis
from gurux_peer import PASSWORDS
from profile_rig import day_of_load

pytestmark = pytest.mark.hil

LOG, BLOCK, BILLING = "0.0.99.98.0.255", "1.0.99.1.0.255", "1.0.98.1.0.255"


def _cod(ic, code, attr=2, index=0):
    """A capture_object_definition {class long-unsigned, logical name octet-string(6), attribute
    integer, data index long-unsigned}."""
    return (b"\x02\x04\x12" + ic.to_bytes(2, "big") + b"\x09\x06" + obis.parse(code) + b"\x0f"
            + bytes([attr]) + b"\x12" + index.to_bytes(2, "big"))


CLOCK = _cod(8, "0.0.1.0.0.255")


def _dt(year):
    return b"\x09\x0c" + year.to_bytes(2, "big") + b"\x01\x01\xff\x00\x00\x00\x00\x80\x00\x00"


def _range(ro=CLOCK, lo=_dt(2000), hi=_dt(2099), cols=()):
    return b"\x02\x04" + ro + lo + hi + b"\x01" + bytes([len(cols)]) + b"".join(cols)


def _entry(a, b, c0=1, c1=0, tags=b"\x06\x06\x12\x12"):
    out = b"\x02\x04"
    for tag, v in zip(tags, (a, b, c0, c1)):
        size = {6: 4, 5: 4, 18: 2, 16: 2, 17: 1, 15: 1}[tag]
        out += bytes([tag]) + v.to_bytes(size, "big")
    return out


def _loaded(rig_factory):
    """3 h of load (closed blocks, a billing entry of the running cycle) and a few events."""
    rig = day_of_load(rig_factory, hours=3)
    for _ in range(2):
        rig.set_cover(True)
        rig.wait_event(60)                 # cover opened
        rig.set_cover(False)
        rig.wait_event(61)                 # cover closed
    return rig


def _refused(c, code, sel, params, dar):
    with pytest.raises(DataAccessError) as e:
        c.get_raw(7, code, 2, sel, params)
    assert e.value.dar == dar, (code, sel, params.hex(), e.value)


def _entry_cases(c, code):
    whole = c.get_raw(7, code, 2)
    first = c.get_raw(7, code, 2, 2, _entry(1, 1))
    assert first[:2] == b"\x01\x01"                               # an array of one entry
    bad = [_entry(1, 1) + b"\xff",                               # a byte after the parameter
           _entry(1, 1) + b"\x12\x00\x01",                       # an element after the structure
           b"\x02\x05" + _entry(1, 1)[2:] + b"\x06\x00\x00\x00\x01",  # five elements
           _entry(1, 1, tags=b"\x11\x06\x12\x12"),               # from_entry unsigned
           _entry(1, 1, tags=b"\x06\x10\x12\x12"),               # to_entry long
           _entry(1, 1, tags=b"\x05\x06\x12\x12"),               # from_entry double-long
           _entry(1, 1, tags=b"\x06\x06\x0f\x12"),               # from_selected_value integer
           _entry(1, 1, tags=b"\x06\x06\x12\x11")]               # to_selected_value unsigned
    for p in bad:
        _refused(c, code, 2, p, 12)
        assert c.get_raw(7, code, 2, 2, _entry(1, 1)) == first
    # from_entry 0 is entry 1 (gurux's sample clients send 0; gurux's own server reads it as 1)
    assert c.get_raw(7, code, 2, 2, _entry(0, 1)) == first
    assert c.get_raw(7, code, 2, 2, _entry(0, 0)) == whole
    return whole


def test_entry_descriptor_junk_and_wrong_integer_types_are_type_unmatched(rig_factory):
    rig = _loaded(rig_factory)
    with DlmsClient(rig.port, client_sap=32, password=PASSWORDS[32]) as c:
        for code in (LOG, BLOCK, BILLING):
            _entry_cases(c, code)


def _range_cases(c, code, ro, cols):
    whole = c.get_raw(7, code, 2, 1, _range(ro))
    assert whole == c.get_raw(7, code, 2)
    for p, dar in [
            (_range(ro) + b"\xff", 12),                                          # junk after it
            (_range(ro)[:-1] + b"\x01" + cols[0] + b"\x00", 12),                  # junk after a column
            (_range(ro, lo=b"\x06\x00\x00\x00\x00", hi=b"\x06\xff\xff\xff\xff"), 12),  # epoch bounds
            (_range(ro, lo=b"\x05\x00\x00\x00\x00", hi=b"\x05\x7f\xff\xff\xff"), 12),
            (_range(ro, hi=b"\x09\x0b" + _dt(2099)[2:13]), 12),                   # 11 bytes
            (_range(ro[:2] + b"\x10" + ro[3:]), 12),                             # class as long
            (_range(ro[:-3] + b"\x11\x00"), 12),                                 # data index unsigned
            (_range(b"\x02\x04\x12\xff\xff" + ro[5:]), 250),                     # class 65535
            (_range(ro[:14] + b"\x00" + ro[15:]), 250),                          # attribute 0
            (_range(ro[:-2] + b"\x00\x01"), 250),                                # data index 1
            (_range(ro, cols=[cols[0][:-2] + b"\x00\x01"]), 250),                # a column's element
            (_range(ro, cols=[cols[0]] * (len(cols) + 1)), 250),                 # more than there are
            (_range(ro, cols=[_cod(65535, "0.0.1.0.0.255")]), 250)]:
        _refused(c, code, 1, p, dar)
        assert c.get_raw(7, code, 2, 1, _range(ro)) == whole
    # the columns picked, in the order asked
    assert c.get_raw(7, code, 2, 1, _range(ro, cols=cols[::-1])) != whole


def test_range_descriptor_needs_the_exact_restricting_object_and_date_time_bounds(rig_factory):
    rig = _loaded(rig_factory)
    with DlmsClient(rig.port, client_sap=32, password=PASSWORDS[32]) as c:
        _range_cases(c, LOG, CLOCK, [CLOCK, _cod(1, "0.0.96.11.0.255")])
        _range_cases(c, BLOCK, CLOCK, [CLOCK, _cod(3, "1.0.1.29.0.255")])
        billing_date = _cod(3, "0.0.0.1.2.255")
        _range_cases(c, BILLING, billing_date, [billing_date, _cod(3, "1.0.1.8.0.255")])
        _refused(c, BILLING, 1, _range(CLOCK), 250)          # the clock is no billing column
        _refused(c, "0.0.94.91.10.255", 1, _range(_cod(1, "0.0.96.1.0.255")), 250)  # name plate


def test_forty_selected_values_are_refused_before_they_are_decoded(rig_factory):
    """40 column definitions in selected_values (an attack) are refused from the array's count,
    before anything is decoded: on a 32-bit profiles meter (--vm32, 76k) decoding them into lists
    failed with MemoryError and dropped the link. The largest valid range read (every billing
    column selected) still answers, as before."""
    rig = _loaded(rig_factory)
    billing_date = _cod(3, "0.0.0.1.2.255")
    with DlmsClient(rig.port, client_sap=32, password=PASSWORDS[32]) as c:
        caps = c.get(7, BILLING, 3)[1]
        every = [_cod(s[1][0][1], obis.to_str(bytes(s[1][1][1])), s[1][2][1]) for s in caps]
        assert len(every) == 20
        all_cols = c.get_raw(7, BILLING, 2, 1, _range(billing_date, cols=every))
        assert all_cols == c.get_raw(7, BILLING, 2)
        for _ in range(3):
            _refused(c, BLOCK, 1, _range(CLOCK, cols=[CLOCK] * 40), 250)
            _refused(c, LOG, 1, _range(CLOCK, cols=[CLOCK] * 40), 250)
            _refused(c, BILLING, 1, _range(billing_date, cols=every * 2), 250)
            assert c.get_raw(7, BILLING, 2, 1, _range(billing_date, cols=every)) == all_cols
