"""Flash wear of refusals and lock-outs, measured on the NOR flash model (issue 12): a malformed
STS token refused below the keypad lock-out threshold writes nothing (its wrong-entry count stays
in RAM, meter.tokgate.enter), a power cut resets that count by at most ``lockout_after - 1`` entries
and never ends a keypad lock-out (journaled when it starts); the block erases a lock-out start
costs, for the keypad and for a DLMS client (meter.lockout), are bounded."""
import pytest

from hil import identity
from host_tools import objects
from host_tools.client import AssociationRejected, DlmsClient
from protocol.client_assoc import DataAccessError
from protocol import axdr_client as axdr

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]

BLOCKS = 64
MGMT = dict(client_sap=1, password="12345678")
GATEWAY = objects.TOKEN_GATEWAY.obis
MALFORMED = ("12345", "1234567890123456789X", "99999999999999999999999", "")
WRONG_CLASS = str((3 << 27) | 12345).zfill(20)       # a class 3 token (reserved): refused
NOT_A_TEST = "12345678901234567001"                  # class 1 bits, CRC wrong: no test token
# measured (64-block NOR model, littlefs): a keypad lock-out start journals one full record (1.0
# erase each, 11 starts); a DLMS lock-out start writes the small ``lock`` file and one security
# event (0 erases in 10 starts: littlefs commits them into its metadata blocks, erasing only when
# one compacts)
LOCKOUT_START_ERASES = 3


def _flash_sts_rig(rig_factory, **sts):
    return rig_factory(sts=True, flash={"blocks": BLOCKS, "seed": 7},
                       config={"sts": identity.sts_config(**sts)})


def _enter(c, digits):
    """Enter ``digits`` at the token gateway (IC 115 method 1); -> its status text."""
    assert c.action(115, GATEWAY, 1, axdr.Writer().octet_string(digits.encode()).getvalue())[0] == 0
    return bytes(axdr.to_python(c.get(115, GATEWAY, 4))[0]).decode()


def _token(amount, minutes):
    from host_tools import vend
    r = vend.vend_token(identity.decoder_key(), algorithm="ea07", tables=str(identity.TABLES),
                        base_date=identity.BASE_DATE, amount=amount, issued=1767225600 + 60 * minutes, rnd=3)
    return r["token"]


def erases(rig):
    rig.drain()
    return sum(rig.flash_wear())


def test_malformed_token_refusals_below_the_lockout_wear_no_flash(rig_factory):
    rig = _flash_sts_rig(rig_factory, lockout_after=200)
    n = 0
    with DlmsClient(rig.port, **MGMT) as c:
        assert _enter(c, "12345").startswith("format")          # the first refusal logs its event
        w0 = erases(rig)
        for i in range(120):
            assert _enter(c, MALFORMED[i % len(MALFORMED)]).split(":")[0] in ("format", "wrong_class", "crc")
            n += 1
        w1 = erases(rig)
    print("\nwear: %d block erases for %d malformed tokens refused below the lock-out (%.3f each)"
          % (w1 - w0, n, (w1 - w0) / n))
    assert w1 - w0 == 0


def test_power_cut_cannot_dodge_the_keypad_lockout(rig_factory):
    rig = _flash_sts_rig(rig_factory, lockout_after=3, lockout_base_s=600)
    with DlmsClient(rig.port, **MGMT) as c:
        assert _enter(c, "12345").startswith("format")
        assert _enter(c, "12345").startswith("format")
    rig.power_cut()                  # the two wrong entries were in RAM only: at most 2 forgotten
    rig.power_on()
    with DlmsClient(rig.port, **MGMT) as c:
        for _ in range(2):
            assert _enter(c, "12345") == "format"                 # counted from the last record
        w0 = erases(rig)
        assert _enter(c, "12345") == "format: keypad locked for 600 s"   # 3rd: the lock-out starts
        w1 = erases(rig)
        # attack pass (session 14): a malformed or class 3 entry during the lock-out restarted it,
        # journaled: one block erase per entry, ~70 a second. Now nothing but a test token counts
        for k in range(150):         # and one with class 1 bits that is no test token (new-user pass)
            assert _enter(c, (WRONG_CLASS, "12345", NOT_A_TEST)[k % 3]).startswith("locked_out: wait")
        w2 = erases(rig)
    rig.power_cut()
    rig.power_on()
    with DlmsClient(rig.port, **MGMT) as c:
        assert _enter(c, _token(10, 1)).startswith("locked_out")  # the lock-out survived the cut
    rig.advance(601)                 # over: the next wrong entry starts a longer one
    with DlmsClient(rig.port, **MGMT) as c:
        assert _enter(c, WRONG_CLASS) == "wrong_class: keypad locked for 1200 s"
    rig.advance(1201)
    with DlmsClient(rig.port, **MGMT) as c:
        assert _enter(c, _token(10, 1)) == "accepted"
    print("\nwear: %d block erases for the first keypad lock-out start, %d for 150 entries during it"
          % (w1 - w0, w2 - w1))
    assert w1 - w0 <= LOCKOUT_START_ERASES and w2 - w1 == 0


def _fail(rig, n):
    c = DlmsClient(rig.port, client_sap=32, password="wrong!!!", timeout=5)
    try:
        c.open()
        c.link()
        for _ in range(n):
            with pytest.raises(AssociationRejected):
                c.associate()
    finally:
        c.close()


def test_flash_cost_of_a_dlms_lockout_start(rig_factory):
    rig = rig_factory(flash={"blocks": BLOCKS, "seed": 7},
                      config={"lockout": {"after": 3, "base_s": 10, "max_s": 3600}})
    _fail(rig, 3)                    # the first lock-out: creates the ``lock`` file and its event
    rig.wait_event("31", timeout=5)
    per = []
    for k in range(10):              # further lock-outs, each after the last one ended
        rig.advance(min(10 << k, 3600) + 1)
        w0 = erases(rig)
        _fail(rig, 3)
        per.append(erases(rig) - w0)
    rig.drain()
    # logged: the first lock-out (10 s) and the first at max_s (10 << 9 > 3600), not the doublings
    assert [e[0] for e in rig.events].count("31") == 2
    print("\nwear: block erases per DLMS lock-out start: %s (%.2f each)" % (per, sum(per) / len(per)))
    assert max(per) <= LOCKOUT_START_ERASES and sum(per) <= len(per)


def _rows(c, name):
    """Rows (time, code, occurrences) of a category log (IC 7 buffer, ``meter.audit``)."""
    return [tuple(r) for r in axdr.to_python(c.get(7, objects.EVENT_LOGS[name][0].obis, 2))]


def test_a_pending_key_section_reentered_past_its_window_wears_no_flash(rig_factory):
    # attack pass (session 14): a key-change set's 1st section entered alone every 91 s (just past
    # the 90 s window: a new key change each time) journaled and logged event 50 each time: ~1 block
    # erase per entry, the 50-entry transaction ring flushed in ~83 min. A pending section is RAM
    # only: event 80 in the other ring, coalesced; no journal record
    from host_tools import vend
    rig = _flash_sts_rig(rig_factory)
    first = vend.key_change_tokens(identity.decoder_key(), identity.decoder_key(krn=2), 2, identity.KT,
                                   identity.TI, sgc=identity.SGC, tables=str(identity.TABLES))[0]["token"]
    n = 40                           # ~1 h of re-entries
    with DlmsClient(rig.port, **MGMT) as c:
        assert _enter(c, first) == "key_change_pending"
        rig.drain()
        w0, t0, o0 = erases(rig), _rows(c, "transaction"), _rows(c, "other")
        for _ in range(n):
            rig.set_clock(rig.clock + 91)
            assert _enter(c, first) == "key_change_pending"
        w1, t1, o1 = erases(rig), _rows(c, "transaction"), _rows(c, "other")
    written = len(t1) - len(t0) + len(o1) - len(o0)
    print("\nwear: %d block erases, %d event records written (%d in the transaction ring) for %d pending "
          "sections re-entered every 91 s (%.1f erases per hour)"
          % (w1 - w0, written, len(t1) - len(t0), n, (w1 - w0) * 3600.0 / (91 * n)))
    assert w1 - w0 == 0 and t1 == t0
    # counted, not written: a record per coalescing window (meter.audit.REPEAT_S, 900 s) at most
    assert sum(r[2] for r in o1 if r[1] == 80) - sum(r[2] for r in o0 if r[1] == 80) == n
    assert len(o1) - len(o0) <= n * 91 // 900 + 1


@pytest.mark.parametrize("n", [201, 277, 1000])
def test_a_token_parameter_longer_than_any_method_takes_is_refused_and_the_link_stays(rig_factory, n):
    """An IC 115 ACTION whose octet-string is hundreds of digits (a 20-digit token, ~42 with spaces)
    is refused from its length (action-result type-unmatched, 12) before it is decoded or copied: at
    56k a 277- or 1000-digit string was a MemoryError inside the ACTION (attack pass 15), answered with
    no reply and a dropped link. The same association then enters a real token."""
    rig = _flash_sts_rig(rig_factory)
    with DlmsClient(rig.port, **MGMT) as c:
        before = c.get(112, "0.0.19.10.0.255", 2)[1]
        with pytest.raises(DataAccessError) as e:
            c.action(115, GATEWAY, 1, axdr.Writer().octet_string(b"7" * n).getvalue())
        assert e.value.dar == 12
        assert c.get(112, "0.0.19.10.0.255", 2)[1] == before
        assert _enter(c, _token(10, 1)).startswith("accepted")
        assert c.get(112, "0.0.19.10.0.255", 2)[1] > before
