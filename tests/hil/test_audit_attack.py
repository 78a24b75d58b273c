"""The audit trail and "an error answer means nothing changed", tried as an attacker would, over
the serial port of the emulated meter (the real firmware on the micropython command, littlefs on
the NOR flash model): a flood of failed logins cannot wipe top-up or tamper records nor wear the
flash; the clock past 2038 works and before 2000 is refused untouched; a token the credit
register cannot take is refused before its TID is stored."""
import pytest

from hil import identity
from hil import norimage
from host_tools import objects
from host_tools import vend
from host_tools.client import AssociationRejected, DataAccessError, DlmsClient
from protocol import axdr_client as axdr
from protocol import obis

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]

BLOCKS = 64
MGMT = dict(client_sap=1, password="12345678")
READER = dict(client_sap=32, password="00000000")
CREDIT = objects.CREDIT.obis
CLOCK = objects.CLOCK.obis
GATEWAY = objects.TOKEN_GATEWAY.obis
EV_CREDIT, EV_CLOCK_SET, EV_AUTH_FAIL, EV_LOCKOUT, EV_TOKEN_BAD = 10, 20, 30, 31, 51
EV_COVER_OPEN, EV_COVER_CLOSED = 60, 61
T_2038 = 2 ** 31                      # 2038-01-19T03:14:08Z: the first second past signed 32-bit
T_2040 = 2208988800                   # 2040-01-01T00:00:00Z


def _flash_rig(rig_factory, **kw):
    return rig_factory(flash={"blocks": BLOCKS, "seed": 5}, **kw)


def _log(c, name):
    """Rows (time, code[, occurrences]) of a category log (``meter.audit``), and its capture columns."""
    log, _code = objects.EVENT_LOGS[name] if name != "all" else (objects.EVENT_LOG, None)
    caps = [(x[0], obis.to_str(bytes(x[1]))) for x in val(c, 7, log.obis, 3)]
    rows = val(c, 7, log.obis, 2)
    return caps, [tuple(r) for r in rows]


def val(c, *args):
    """The attribute's value as Python (``axdr.to_python`` of the GET)."""
    return axdr.to_python(c.get(*args))


def _top_up(c, paise):
    return c.action(112, CREDIT, 1, axdr.Writer().double_long_unsigned(paise).getvalue())[0]


def _fail_logins(rig, n):
    """n LLS logins with a wrong password on one HDLC link; returns how many were refused."""
    refused = 0
    c = DlmsClient(rig.port, client_sap=1, password="wrong!!!", timeout=5)
    try:
        c.open()
        c.link()
        for _ in range(n):
            try:
                c.associate()
            except AssociationRejected:
                refused += 1
    finally:
        c.close()
    return refused


def test_login_flood_keeps_top_ups_and_tamper_records_and_wears_no_flash(rig_factory):
    rig = _flash_rig(rig_factory)
    with DlmsClient(rig.port, **MGMT) as c:
        for paise in (1111, 2222, 3333):
            assert _top_up(c, paise) == 0
    rig.set_cover(True)
    rig.wait_event(EV_COVER_OPEN)
    rig.set_cover(False)
    rig.wait_event(EV_COVER_CLOSED)
    rig.drain()
    wear0 = sum(rig.flash_wear())
    refused = _fail_logins(rig, 1000)
    wear1 = sum(rig.flash_wear())
    # the first failures are refused as such, the rest by the lock-out (meter.lockout)
    assert refused == 1000
    assert wear1 - wear0 == 0, "block erases during 1,000 failed logins: %d" % (wear1 - wear0)
    print("\nwear: %d block erases for 1,000 failed logins" % (wear1 - wear0))
    with DlmsClient(rig.port, **READER) as c:
        caps, rows = _log(c, "transaction")
        assert caps == [(8, "0.0.1.0.0.255"), (1, "0.0.96.11.3.255"), (1, "0.0.96.15.3.255")]
        assert [r[1] for r in rows].count(EV_CREDIT) == 3
        _, tamper = _log(c, "tamper")
        codes = [r[1] for r in tamper]
        assert EV_COVER_OPEN in codes and EV_COVER_CLOSED in codes
        # the flood: no entry per failed login, one when the lock-out started
        assert EV_AUTH_FAIL not in codes and codes.count(EV_LOCKOUT) == 1
        assert val(c, 1, "0.0.96.11.5.255", 2) == EV_LOCKOUT
        _, power = _log(c, "power")
        _, everything = _log(c, "all")
    assert all(len(r) == 2 for r in everything)                      # the all-events view as before
    assert [r[1] for r in everything].count(EV_CREDIT) == 3 and power
    rig.power_cut()
    st = norimage.inspect(rig.flash_image, BLOCKS)
    assert [e[2] for e in st["categories"]["3"] if e[1] == EV_CREDIT] == [1111, 2222, 3333]
    assert [e[1] for e in st["categories"]["5"] if e[1] in (EV_COVER_OPEN, EV_COVER_CLOSED)] == \
        [EV_COVER_OPEN, EV_COVER_CLOSED]


def test_repeated_refusals_are_counted_and_flushed_when_their_window_closes(rig_factory):
    # no keypad lock-out here: during one a malformed entry is "locked_out" (session 14)
    rig = rig_factory(sts=True, config={"sts": identity.sts_config(lockout_after=100)})
    with DlmsClient(rig.port, **MGMT) as c:
        for _ in range(25):           # malformed tokens: 25 refusals "format"
            assert c.action(115, GATEWAY, 1, axdr.Writer().octet_string(b"12345").getvalue())[0] == 0
        assert bytes(val(c, 115, GATEWAY, 4)[0]).startswith(b"format")
    rig.advance(1000)                                  # past the 900 s window: the count is written
    with DlmsClient(rig.port, **READER) as c:
        _, tamper = _log(c, "tamper")
        assert [r[2] for r in tamper if r[1] == EV_TOKEN_BAD] == [25]
        assert val(c, 1, "0.0.96.11.5.255", 2) == EV_TOKEN_BAD
        assert val(c, 1, "0.0.96.15.5.255", 2) == 25
    rig.power_cut()
    rig.power_on()
    with DlmsClient(rig.port, **READER) as c:
        _, tamper = _log(c, "tamper")
        assert [r[2] for r in tamper if r[1] == EV_TOKEN_BAD] == [25]


def test_lockouts_of_every_client_keep_a_metering_tamper_record(rig_factory):
    # attack pass (session 16): every lock-out was a record in the 20-entry security ring, which
    # also holds the metering counter's re-base (62): 3 wrong logins per client address, 3 clients,
    # the clock past each lock-out, and 62 was gone after 63 guesses. Now a client's first lock-out
    # and its first at max_s are logged, not each doubling between (meter.lockout).
    rig = rig_factory(module="pzem", config={"credit_paise": 10000000, "metering": {"fail_polls": 5, "fail_s": 60},
                                             "lockout": {"after": 3, "base_s": 10, "max_s": 3600}})
    rig.set_load(2000)
    t = rig.advance(1800)
    n0 = len(rig.events)
    rig.pzem.reset_energy()           # the module's counter goes back: the meter re-bases, event 62
    r0 = rig.pzem.requests            # (test_metering_faults: the low readings seen before the clock moves)
    rig.wait_meter(lambda m: m.epoch == t.epoch and rig.pzem.requests >= r0 + 4, timeout=20)
    rig.set_load(0)
    rig.advance(60, expect_wh=t.wh)
    rig.wait_event("62", timeout=20, start=n0)
    for rnd in range(10):             # 10 << 9 > 3600: the last round reaches max_s
        for sap in (1, 32, 48):
            c = DlmsClient(rig.port, client_sap=sap, password="wrong!!!", timeout=5)
            try:
                c.open()
                c.link()
                for _ in range(3):
                    with pytest.raises(AssociationRejected):
                        c.associate()
            finally:
                c.close()
        rig.set_clock(rig.clock + min(10 << rnd, 3600) + 1)
    with DlmsClient(rig.port, **READER) as c:
        _, tamper = _log(c, "tamper")
    codes = [r[1] for r in tamper]
    assert 62 in codes, codes
    assert 1 <= codes.count(EV_LOCKOUT) <= 6, codes     # per client: the first and the first at max_s


def _set_clock(c, y, mo, d, hh=0, mi=0, ss=0):
    dt = axdr.datetime_bytes(y, mo, d, hh, mi, ss, 0, 0, 0)          # deviation 0: UTC
    return c.set(8, CLOCK, 2, axdr.Writer().octet_string(dt).getvalue())


def _state(c):
    return (val(c, 112, CREDIT, 2), val(c, 8, CLOCK, 2), val(c, 7, objects.EVENT_LOG.obis, 7))


@pytest.mark.parametrize("when, epoch", [((2038, 1, 19, 3, 14, 8), T_2038), ((2040, 1, 1), T_2040)])
def test_clock_past_2038_works_and_survives_a_power_cut(rig_factory, when, epoch):
    rig = _flash_rig(rig_factory)
    with DlmsClient(rig.port, **MGMT) as c:
        _set_clock(c, *when)
        assert _top_up(c, 5000) == 0
        assert val(c, 112, CREDIT, 2) == 5000
        assert axdr.parse_datetime(val(c, 8, CLOCK, 2))[0] == when[0]
    rig.wait_meter(lambda m: m.epoch >= epoch)         # metering and journaling go on past it
    rig.power_cut()
    rig.power_on()
    with DlmsClient(rig.port, **READER) as c:
        assert val(c, 112, CREDIT, 2) == 5000
        t = axdr.parse_datetime(val(c, 8, CLOCK, 2))
        assert t[0] == when[0]
        _, other = _log(c, "other")
        assert EV_CLOCK_SET in [r[1] for r in other]
    st = norimage.inspect(rig.flash_image, BLOCKS)
    assert st["journal"]["hot"][4] >= epoch


@pytest.mark.parametrize("when", [(1969, 12, 31, 23, 59, 59), (1999, 12, 31, 23, 59, 59)])
def test_clock_before_2000_is_refused_and_nothing_changes(rig_factory, when):
    rig = _flash_rig(rig_factory)
    with DlmsClient(rig.port, **MGMT) as c:
        assert _top_up(c, 700) == 0
        rig.drain()
        before = _state(c)
        wear = sum(rig.flash_wear())
        with pytest.raises(DataAccessError) as e:
            _set_clock(c, *when)
        assert e.value.dar == 250                                     # other-reason
        assert _state(c) == before
    assert sum(rig.flash_wear()) == wear
    rig.power_cut()
    rig.power_on()
    with DlmsClient(rig.port, **READER) as c:
        assert val(c, 112, CREDIT, 2) == 700
        assert axdr.parse_datetime(val(c, 8, CLOCK, 2))[0] == 2026


@pytest.mark.parametrize("value", ["07EA021EFF00000000FEB600",        # 30 February 2026
                                   "07EA021DFF00000000FEB600",        # 29 February 2026
                                   "07EA041FFF00000000FEB600",        # 31 April
                                   "07EA0511FF000000007FFF00",        # deviation 0x7FFF: 22 days
                                   "07EA05110100000000FEB600"])       # Monday 17 May 2026 (a Sunday)
def test_clock_impossible_date_is_refused_and_nothing_changes(rig_factory, value):
    # accepted before: 30 February became 2 March (two billing dates passed, credit -469 Rs)
    rig = _flash_rig(rig_factory)
    with DlmsClient(rig.port, **MGMT) as c:
        rig.drain()
        before = _state(c)
        with pytest.raises(DataAccessError) as e:
            c.set(8, CLOCK, 2, axdr.Writer().octet_string(bytes.fromhex(value)).getvalue())
        assert e.value.dar == 250                                     # other-reason
        assert _state(c) == before
        ok = bytes.fromhex("07EC021D0212000000FEB600")               # 29 Feb 2028, Tuesday: leap
        assert c.set(8, CLOCK, 2, axdr.Writer().octet_string(ok).getvalue()) == 0
        assert axdr.parse_datetime(val(c, 8, CLOCK, 2))[:4] == (2028, 2, 29, 2)


def _token(amount, minutes):
    r = vend.vend_token(identity.decoder_key(), algorithm="ea07", tables=str(identity.TABLES),
                        base_date=identity.BASE_DATE, amount=amount, issued=1767225600 + 60 * minutes, rnd=3)
    return r["token"]


def _enter(c, digits):
    assert c.action(115, GATEWAY, 1, axdr.Writer().octet_string(digits.encode()).getvalue())[0] == 0
    return (val(c, 115, GATEWAY, 6)[0], bytes(val(c, 115, GATEWAY, 4)[0]).decode(), val(c, 112, CREDIT, 2))


def test_token_at_the_credit_ceiling_is_refused_before_its_tid_is_stored(rig_factory):
    # a credit 650 paise below the ceiling (2**30 - 1) at 650 paise/kWh: 1 kWh fits, 10 kWh not
    ceiling = 2 ** 30 - 1
    rig = rig_factory(sts=True, config={"tariff_paise_per_kwh": 650, "credit_paise": ceiling - 650})
    tok = _token(100, 1)                      # 10.0 kWh = 6500 paise
    with DlmsClient(rig.port, **MGMT) as c:
        status, reason, credit = _enter(c, tok)
        assert (status, reason, credit) == (6, "overflow", ceiling - 650)
        # a small debit: the consumer uses energy, then the same token goes in
        assert _enter(c, _token(10, 2))[2] == ceiling    # 1 kWh fits exactly
    rig.set_load(2000)
    rig.advance(3600 * 5)                     # 10 kWh used
    with DlmsClient(rig.port, **MGMT) as c:
        credit = val(c, 112, CREDIT, 2)
        assert credit <= ceiling - 6500
        status, reason, after = _enter(c, tok)
        assert (status, reason, after) == (3, "accepted", credit + 6500)
        assert _enter(c, tok)[1] == "used"


def test_meterctl_events_reads_each_category(rig):
    import json

    from click.testing import CliRunner

    from host_tools.meterctl import cli

    def run(*a):
        return CliRunner().invoke(cli.meterctl, ["events", "--port", rig.port, "--password", "00000000",
                                                 "--json", *a])
    with DlmsClient(rig.port, **MGMT) as c:
        assert _top_up(c, 4321) == 0
        assert c.action(70, objects.DISCONNECT_CONTROL.obis, 1, b"\x0f\x00")[0] == 0   # remote open
    rig.set_cover(True)
    rig.wait_event(EV_COVER_OPEN)
    _fail_logins(rig, 3)
    want = {"transaction": {10}, "control": {42}, "tamper": {60, 31}, "power": {1}, "other": set()}
    for name, codes in want.items():
        r = run("--log", name)
        assert r.exit_code == 0, r.output
        out = json.loads(r.output)
        x = objects.EVENT_LOGS[name][0].obis.split(".")[4]
        assert out["columns"] == ["0.0.1.0.0.255.2", "0.0.96.11.%s.255.2" % x, "0.0.96.15.%s.255.2" % x,
                                  "event"]
        got = {row["0.0.96.11.%s.255.2" % x] for row in out["rows"]}
        assert codes <= got, (name, got)
        if name == "tamper":
            locks = [row for row in out["rows"] if row["0.0.96.11.5.255.2"] == EV_LOCKOUT]
            assert [row["0.0.96.15.5.255.2"] for row in locks] == [1]
    r = run()                                               # all events, as before
    assert {10, 42, 60, 31, 1} <= {row["0.0.96.11.0.255.2"] for row in json.loads(r.output)["rows"]}
    assert run("--log", "tamper", "--obis", "0.0.99.98.5.255").exit_code == 2
