"""meterctl over HLS (``--auth hls``) against the emulated meter provisioned with the DLMS test
identity (hil/identity.py): read, credit add, topup, relay and set over the ciphered management
association; our invocation counter persisted per key set and re-read from the meter's frame
counter when it falls behind; wrong keys refused; HLS mechanism 2 (ours and gurux Authentication.HIGH);
--trace shows the plaintext; a recorded session decodes with the keys."""
import json

import pytest
from click.testing import CliRunner

from hil import identity
from hls_peer import SecurePeer, hls_rig, sts_token
from host_tools import keystore
from host_tools.client import AssociationRejected, DlmsClient, HlsKeys
from host_tools.meterctl import cli
from protocol import apdu_client as apdu
from protocol import axdr_client as axdr
from protocol import security_client as sec

# HLS associations load ~4.3 KiB of security code each into a fragmented heap: at 64k they pass
# or fail from run to run (docs/MEMORY.md), so the whole file runs at 72k (tests may ask more)
pytestmark = [pytest.mark.hil]


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    """Our invocation counters in a fresh state directory per test."""
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def run(*args):
    r = CliRunner().invoke(cli.meterctl, [str(a) for a in args])
    return r


def ok(*args):
    r = run(*args)
    assert r.exit_code == 0, (r.output, r.stderr, r.exception)
    return r


def keyfile(tmp_path, **extra):
    return identity.write_key_file(tmp_path / "keys.json", **extra)


def credit(rig, kf):
    return json.loads(ok("read", "-p", rig.port, "--auth", "hls", "--key-file", kf, "--json").output)


def test_read_credit_topup_relay_over_hls(rig_factory, tmp_path):
    rig = hls_rig(rig_factory)
    kf = keyfile(tmp_path)
    auth = ("--auth", "hls", "--key-file", kf)
    before = credit(rig, kf)
    ok("credit", "add", "-p", rig.port, "--amount", "5.00", *auth)
    ok("topup", "-p", rig.port, *auth, sts_token(10))
    ok("relay", "disconnect", "-p", rig.port, *auth)
    rig.wait_relay(False)
    ok("relay", "connect", "-p", rig.port, *auth)
    ok("set", "0.0.96.3.10.255", "4", "--class", "70", "--value", "enum:4", "-p", rig.port, *auth)
    after = credit(rig, kf)
    keys = [k for k in after if "credit" in k.lower() and isinstance(after[k], (int, float))]
    assert keys, after
    assert any(after[k] > before[k] for k in keys), (before, after)
    # the public client still reads without keys; client 1 without any secret is a usage error
    ok("read", "-p", rig.port)
    assert run("credit", "add", "-p", rig.port, "--amount", "1").exit_code == 2


def test_counter_is_kept_per_key_set_and_never_repeats(rig_factory, tmp_path, state):
    rig = hls_rig(rig_factory)
    kf = keyfile(tmp_path)
    counter = keystore.Counter(identity.GUEK, identity.GAK, state)
    credit(rig, kf)
    first = counter.load()
    assert first is not None and first > 1
    credit(rig, kf)
    second = counter.load()
    assert second > first
    # another head-end (gurux) moves the meter's receive counter far ahead of ours
    p = SecurePeer(rig.port, ic=second + 5000)
    try:
        p.connect()
        p.release()
    finally:
        p.close()
    credit(rig, kf)                          # refused once, re-reads the frame counter, retries
    assert counter.load() > second + 5000


def test_wrong_keys_are_refused_with_the_standard_diagnostic(rig_factory, tmp_path):
    rig = hls_rig(rig_factory)
    kf = keyfile(tmp_path, ak=bytes(16).hex())
    r = run("credit", "add", "-p", rig.port, "--amount", "1", "--auth", "hls", "--key-file", kf)
    assert r.exit_code == 1 and "authentication-failure" in r.stderr, r.stderr
    with pytest.raises(AssociationRejected) as e:
        with DlmsClient(rig.port, client_sap=1, hls=HlsKeys(identity.GUEK, bytes(16),
                                                            identity.CLIENT_TITLE)):
            pass
    assert e.value.diagnostic == 13


def test_hls_mechanism_2_end_to_end(rig_factory, tmp_path):
    rig = hls_rig(rig_factory, mech={"1": 2, "48": 2})
    kf = keyfile(tmp_path, mech=2)
    before = credit(rig, kf)
    ok("credit", "add", "-p", rig.port, "--amount", "2.00", "--auth", "hls", "--key-file", kf)
    ok("credit", "add", "-p", rig.port, "--amount", "3.00", "--client", "48", "--auth", "hls",
       "--key-file", kf)
    assert credit(rig, kf) != before
    bad = keyfile(tmp_path, mech=2, hls=bytes(16).hex())
    r = run("credit", "add", "-p", rig.port, "--amount", "1", "--auth", "hls", "--key-file", bad)
    assert r.exit_code == 1, r.stderr


def test_trace_shows_frames_and_plaintext(rig_factory, tmp_path):
    rig = hls_rig(rig_factory)
    kf = keyfile(tmp_path)
    r = ok("credit", "add", "-p", rig.port, "--amount", "1.00", "--auth", "hls", "--key-file", kf, "--trace")
    plain = [ln for ln in r.stderr.splitlines() if "plaintext APDU" in ln]
    assert any("C3 01" in ln for ln in plain), r.stderr        # the ACTION in clear
    assert any(" TX -> " in ln for ln in r.stderr.splitlines())
    assert "CB " in r.stderr                                    # glo-action-request on the wire


def test_provisioned_unix_board_answers_hls_with_the_keystore_keys(tmp_path):
    """`meterctl flash --board unix` generates the meter's DLMS keys into the keystore and its
    config.json; `meterctl read/credit add --auth hls --meter SERIAL` finds them there."""
    from host_tools.meterctl import unixboard
    ks = tmp_path / "meters.keystore"
    flash_dir = tmp_path / "flash"
    from hil import env
    with env.using_micropython(env.wheel_micropython()):   # mpremote's raw REPL: the wheel
        ok("flash", "--board", "unix", "--port", flash_dir, "--serial", "PPM0000042", "--sgc",
           "123456", "--heap", "320k", "--keystore", ks, "--json")
    rec = json.loads(ks.read_text())["meters"]["PPM0000042"]["security"]
    assert sorted(rec) == ["ak", "client_title", "ek", "hls", "kek", "title"]
    assert oct(ks.stat().st_mode & 0o777) == "0o600"
    cfg = json.loads((flash_dir / "config.json").read_text())["security"]
    assert (cfg["ek"], cfg["ak"], cfg["kek"]) == (rec["ek"], rec["ak"], rec["kek"])
    assert len({rec["ek"], rec["ak"], rec["kek"], rec["hls"], identity.GUEK.hex()}) == 5
    rig = unixboard.unix_rig(tmp_path / "rig", flash_dir, heap="320k")
    try:
        rig.start()
        auth = ("--auth", "hls", "--meter", "PPM0000042", "--keystore", ks)
        out = json.loads(ok("read", "-p", rig.port, *auth, "--json").output)
        ok("credit", "add", "-p", rig.port, "--amount", "4.00", *auth)
        assert json.loads(ok("read", "-p", rig.port, *auth, "--json").output) != out
        # the LLS management password of the keystore no longer opens client 1 (HLS only)
        r = run("credit", "add", "-p", rig.port, "--amount", "1", "--password",
                json.loads(ks.read_text())["meters"]["PPM0000042"]["passwords"]["1"])
        assert r.exit_code == 1, r.stderr
    finally:
        rig.stop()


def test_decode_a_recorded_ciphered_session(rig_factory, tmp_path):
    """A `credit add --auth hls --trace` session recorded from stderr decodes with
    `meterctl decode --key --auth-key`: the AARE's InitiateResponse, the IC 112 update_amount
    request and its response in clear; without the keys only the ciphered envelopes."""
    rig = hls_rig(rig_factory)
    kf = keyfile(tmp_path)
    r = ok("credit", "add", "-p", rig.port, "--amount", "6.00", "--auth", "hls", "--key-file", kf, "--trace")
    capture = tmp_path / "session.txt"
    capture.write_text(r.stderr)
    d = run("decode", capture, "--key", identity.GUEK.hex(), "--auth-key", identity.GAK.hex(), "--json")
    assert d.exit_code == 0, d.output
    text = d.output
    assert '"glo-initiate-response"' in text and '"0800065f1f' in text
    assert "0.0.19.10.0.255" in text and '"ACTION-Response' in text      # IC 112 update_amount
    assert "decrypt_error" not in text
    bare = run("decode", capture, "--json")
    assert "0.0.19.10.0.255" not in bare.output and "not decrypted" in bare.output


def test_read_side_commands_over_hls(rig_factory, tmp_path):
    """events, objects, get and config show/apply run over the ciphered management association."""
    rig = hls_rig(rig_factory)
    auth = ("--key-file", keyfile(tmp_path))            # --key-file alone implies --auth hls
    ev = json.loads(ok("events", "-p", rig.port, *auth, "--json").output)
    assert ev
    objs = ok("objects", "-p", rig.port, *auth, "--json").output
    assert "0.0.43.0.1.255" in objs and "0.0.43.1.1.255" in objs
    ok("get", "0.0.43.0.1.255", "5", "--class", "64", "-p", rig.port, *auth)
    prof = json.loads(ok("config", "show", "-p", rig.port, *auth, "--json").output)
    assert prof


def test_gurux_high_is_mechanism_2(rig_factory):
    """gurux's Authentication.HIGH (AES-128-ECB of the challenge under the secret, ciphered
    context) associates with a meter configured for mechanism 2 and reads the serial."""
    from gurux_dlms.enums import Authentication, InterfaceType, Security
    from gurux_dlms.objects import GXDLMSData
    from gurux_dlms.secure import GXDLMSSecureClient
    rig = hls_rig(rig_factory, mech={"1": 2, "48": 2})
    p = SecurePeer(rig.port, client=1)
    c = GXDLMSSecureClient(True, 1, 1, Authentication.HIGH, identity.HLS_SECRET, InterfaceType.HDLC)
    c.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
    c.ciphering.systemTitle = identity.CLIENT_TITLE
    c.ciphering.blockCipherKey = identity.GUEK
    c.ciphering.authenticationKey = identity.GAK
    c.ciphering.invocationCounter = 1
    p.c = c
    try:
        p.connect()
        d = GXDLMSData("0.0.42.0.0.255")
        p.read(d, 2)
        p.release()
    finally:
        p.close()
    assert bytes(d.value) == b"PPM0000001"


@pytest.mark.parametrize("inner", ["C004C1", "C104C101", "C301C100700000130A00FF0101050000"],
                         ids=["get-kind-4", "set-with-list-short", "action-truncated"])
def test_an_exception_response_on_a_ciphered_association_comes_in_clear(rig_factory, tmp_path, inner):
    """A malformed request inside a glo- APDU is answered with the ExceptionResponse (D8), which has
    no ciphered form, and the association goes on; it used to raise inside the meter (no
    ciphered tag for D8), drop the link and log 'dlms error'."""
    rig = hls_rig(rig_factory)
    c = DlmsClient(rig.port, client_sap=1, hls=HlsKeys(identity.GUEK, identity.GAK, identity.CLIENT_TITLE),
                   timeout=5)
    with c:
        reply = c.exchange(c.assoc.hls.wrap(bytes.fromhex(inner)))
        assert reply[0] == 0xD8, reply.hex()
        assert c.assoc.hls.unwrap(reply) == reply
        # the same association still answers a ciphered GET
        assert c.get(8, "0.0.1.0.0.255", 2)
    assert not [e for e in rig.events if e[0] == "90"], rig.events     # 90: dlms error


@pytest.mark.parametrize("sc", [0x20, 0x10], ids=["encryption-only", "authentication-only"])
def test_a_request_not_authenticated_and_encrypted_is_refused(rig_factory, sc):
    """Security policy 3 (IC 64 v0: all messages authenticated and encrypted): a ciphered request
    with security control 0x20 (encryption only: no GCM tag, so whoever sits on the line can flip
    its plaintext bits: a captured 0x30 top-up with its tag cut off and its amount changed) or
    0x10 (authentication only) is refused with deciphering-error and changes nothing; the same
    top-up as 0x30 then applies (Green Book 9.2.7.2.4)."""
    rig = hls_rig(rig_factory)
    c = DlmsClient(rig.port, client_sap=1, hls=HlsKeys(identity.GUEK, identity.GAK, identity.CLIENT_TITLE),
                   timeout=5)
    obis = bytes((0, 0, 19, 10, 0, 255))
    with c:
        before = c.get(112, "0.0.19.10.0.255", 2)[1]
        s = c.assoc.hls
        plain = apdu.action_request(1, 112, obis, 1, axdr.Writer().double_long(50000).getvalue())
        h, n = sec.HEADROOM, len(plain)
        buf = bytearray(h + n + sec.TAILROOM)
        buf[h:h + n] = plain
        p = s.suite.seal(buf, h, h + n, sc, s.next_ic(), s.title, s.form)
        reply = c.exchange(bytes(buf[p:h + n + (sec.TAG_LEN if sc & sec.SC_AUTH else 0)]))
        assert reply == b"\xD8\x01\x05", reply.hex()     # service-not-allowed, deciphering-error
        assert c.get(112, "0.0.19.10.0.255", 2)[1] == before
        c.action(112, "0.0.19.10.0.255", 1, axdr.Writer().double_long(50000).getvalue())
        assert c.get(112, "0.0.19.10.0.255", 2)[1] == before + 50000
