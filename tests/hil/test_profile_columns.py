"""Every capture column of every IS 15959 profile is an object of its own (a head-end checks
capture_objects against the object_list and reads each register's scaler_unit): in the reader
(32) and both management (1, 48) associations each column is in the object_list, its attribute 2
reads (the value of the profile's last entry where the buffer holds it) and, for IC 3/4, its
attribute 3 equals the scaler profile's {scaler, unit}; the public client (16) is refused. With
the profiles off the object_list is the one without any profile object (the columns included)."""
import pytest

from host_tools.client import DlmsClient
from host_tools.is15959_objects import COLUMN_NAMES, IS15959_OBJECTS
from protocol.client_assoc import AccessDenied, ObjectUndefined
from gurux_peer import PASSWORDS
from profile_rig import PROFILES, day_of_load

pytestmark = pytest.mark.hil

# profiles whose last entry is fixed while the rig stands still (the billing and instantaneous
# ones capture the running values)
STILL = ("1.0.99.1.0.255", "1.0.99.2.0.255", "0.0.94.91.10.255")


def _ln(b):
    return ".".join(str(x) for x in b)


def _object_list(c):
    return {(e[1][0][1], _ln(e[1][2][1])) for e in c.get(15, "0.0.40.0.0.255", 2)[1]}


def _columns(c, code):
    """[(ic, obis, attr)] of the profile's capture_objects."""
    return [(s[0][1], _ln(s[1][1]), s[2][1]) for _t, s in c.get(7, code, 3)[1]]


def _scalers(c, scode):
    """{obis: (scaler, unit)} of a scaler profile."""
    cols = _columns(c, scode)
    entry = c.get(7, scode, 2)[1][0][1]
    return {ob: (su[1][0][1], su[1][1][1]) for (_ic, ob, _a), su in zip(cols, entry)}


def _check(c):
    listed = _object_list(c)
    n = 0
    for code, scode in PROFILES.items():
        cols = _columns(c, code)
        scalers = _scalers(c, scode) if scode else {}
        entries = c.get(7, code, 2)[1]
        last = entries[-1][1] if entries else None          # None: 0 (no day closed yet)
        for j, (ic, ob, attr) in enumerate(cols):
            assert (ic, ob) in listed, (code, ob)
            v = c.get(ic, ob, attr)
            if code in STILL and ob in COLUMN_NAMES:     # the others: live registers
                assert v == (last[j] if last else (v[0], 0)), (code, ob, v)
            if ic in (3, 4):
                s = c.get(ic, ob, 3)[1]
                assert (s[0][1], s[1][1]) == scalers[ob], (code, ob)
            n += 1
    return n


def test_every_capture_column_is_an_object_with_the_scaler_profiles_scaler(rig_factory):
    rig = day_of_load(rig_factory, 3)     # a few closed blocks
    for sap in (32, 1, 48):
        with DlmsClient(rig.port, client_sap=sap, password=PASSWORDS[sap]) as c:
            assert _check(c) == 57          # the columns of the five profiles
            with_profiles = _object_list(c)
    with DlmsClient(rig.port, client_sap=16) as c:
        for ob in COLUMN_NAMES:
            ic = [r[1] for r in IS15959_OBJECTS if r[0] == ob][0]
            with pytest.raises(AccessDenied):
                c.get(ic, ob, 2)
    rig.stop()
    rig = day_of_load(rig_factory, 3, profiles=False)
    with DlmsClient(rig.port, client_sap=32, password=PASSWORDS[32]) as c:
        without = _object_list(c)
        with pytest.raises(ObjectUndefined):
            c.get(3, "1.0.1.29.0.255", 2)
    prof = {(r[1], r[0]) for r in IS15959_OBJECTS}
    assert without == with_profiles - prof and not without & prof


def _range_with_clock_column(n):
    """IC 7 range descriptor (Blue Book IC 7 §4.3.6): the whole century, selected_values = the
    clock column ``n`` times."""
    clock = b"\x02\x04\x12\x00\x08\x09\x06\x00\x00\x01\x00\x00\xff\x0f\x02\x12\x00\x00"

    def dt(y):
        return b"\x09\x0c" + y.to_bytes(2, "big") + b"\x01\x01\xff\x00\x00\x00\x00\x00\x00\x00"
    return b"\x02\x04" + clock + dt(2000) + dt(2099) + b"\x01" + bytes([n]) + clock * n


def test_a_column_selected_twice_is_refused_not_multiplied(rig_factory):
    """A reader listing one column N times in selected_values must not make the meter build an
    answer N times the buffer (found by attack: 40 repeats, a 33 KB answer, MemoryError on 32
    bits): other-reason (250), and the association goes on."""
    from protocol.client_assoc import DataAccessError
    rig = day_of_load(rig_factory, hours=3)
    with DlmsClient(rig.port, client_sap=32, password=PASSWORDS[32]) as c:
        one = c.get(7, "1.0.99.1.0.255", 2, 1, _range_with_clock_column(1))[1]
        assert len(one) >= 3 and all(len(e[1]) == 1 for e in one)   # 30-min blocks, the clock only
        # 12, not the attack's 40: the 40 runs in test_selective_access_hil.py
        for n in (2, 12):
            with pytest.raises(DataAccessError) as e:
                c.get(7, "1.0.99.1.0.255", 2, 1, _range_with_clock_column(n))
            assert e.value.dar == 250, (n, e.value)
        assert c.get(7, "1.0.99.1.0.255", 2, 1, _range_with_clock_column(1))[1] == one
