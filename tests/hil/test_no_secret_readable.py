"""No key, secret or password is readable over DLMS: every client (public 16, reader 32 with
LLS, management 1 and utility settings 48 with HLS-GMAC, also 1 with HLS mechanism 2) reads
every attribute its object_list grants (IC 64 security setups, IC 15 associations, frame
counters, everything), and the bytes it received - every value, every frame, and on the ciphered
associations every deciphered APDU - are searched for each secret of the meter (GUEK, GAK, KEK,
HLS secret, LLS passwords; raw, hex and upper-case hex)."""
import pytest

from hil import identity
from host_tools.client import DataAccessError, DlmsClient, HlsKeys
from host_tools.meterctl.dlms import ASSOCIATION, parse_object_list

# HLS associations load ~4.3 KiB of security code each into a fragmented heap: at 64k they pass
# or fail from run to run (docs/MEMORY.md), so the whole file runs at 72k (tests may ask more)
pytestmark = [pytest.mark.hil]

HLS = HlsKeys(identity.GUEK, identity.GAK, identity.CLIENT_TITLE, kek=identity.KEK)
HLS2 = HlsKeys(identity.GUEK, identity.GAK, identity.CLIENT_TITLE, mechanism=2,
               secret=identity.HLS_SECRET)


def secrets():
    raw = [identity.GUEK, identity.GAK, identity.KEK, identity.HLS_SECRET]
    raw += [p.encode() for p in identity.PASSWORDS.values()]
    out = {}
    for s in raw:
        out[s] = s
        out[s.hex().encode()] = s
        out[s.hex().upper().encode()] = s
    return out


def read_everything(rig, **client):
    """Every readable attribute of every listed object -> (bytes heard, attributes read)."""
    heard = []
    n = 0
    def rx(direction, data):                  # what the meter sent (our AARQ carries LLS secrets)
        if direction == "rx":
            heard.append(bytes(data))

    with DlmsClient(rig.port, trace=rx, trace_apdu=rx, **client) as c:
        listed = parse_object_list(c.get_raw(15, ASSOCIATION, 2))
        classes = {o["class_id"] for o in listed}
        assert 64 in classes or client.get("client_sap") in (16, 32), classes
        for o in listed:
            for attr in o["read"]:
                try:
                    heard.append(c.get_raw(o["class_id"], o["obis"], attr))
                    n += 1
                except DataAccessError:
                    pass
    return b"".join(heard), n, listed


@pytest.mark.parametrize("mech", [5, 2])
def test_no_attribute_of_any_client_holds_a_secret(rig_factory, tmp_path, monkeypatch, mech):
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path / "state"))
    rig = rig_factory(sts=True, config={"security": identity.security_config(
        mech={"1": mech, "48": mech}), "passwords": dict(identity.PASSWORDS)})
    keys = HLS if mech == 5 else HLS2
    clients = [dict(client_sap=16), dict(client_sap=32, password=identity.PASSWORDS["32"]),
               dict(client_sap=1, hls=keys), dict(client_sap=48, hls=keys)]
    total = 0
    for client in clients:
        heard, n, listed = read_everything(rig, **client)
        total += n
        for s, what in secrets().items():
            assert s not in heard, "client %s read %r (a secret) from the meter" % (
                client.get("client_sap"), what)
        if client.get("hls") is not None:       # the management views do list the security setups
            assert {o["obis"] for o in listed} >= {"0.0.43.0.1.255", "0.0.43.0.3.255"}
    print("mechanism %d: %d attributes read by 4 clients, no secret among them" % (mech, total))
    assert total > 100


def test_gurux_hls_client_reads_no_secret_either(rig_factory):
    """gurux GXDLMSSecureClient (HIGH_GMAC, auth+enc, client 1): every readable attribute of
    every object, the deciphered reply data searched for the secrets."""
    from gurux_peer import DarError, readable
    from hls_peer import SecurePeer
    rig = rig_factory(sts=True, config={"security": identity.security_config(),
                                        "passwords": dict(identity.PASSWORDS)})
    heard = []

    class Recording(SecurePeer):
        def exchange(self, data):
            rd = SecurePeer.exchange(self, data)
            heard.append(bytes(rd.data.array()))
            return rd

    p = Recording(rig.port, client=1)
    n = 0
    try:
        p.connect()
        objs = p.objects()
        for obj in objs:
            for i in range(1, obj.getAttributeCount() + 1):
                if readable(obj, i):
                    try:
                        p.read(obj, i)
                        n += 1
                    except (DarError, ValueError, TypeError):
                        pass                      # gurux cannot parse some values: bytes kept
        p.release()
    finally:
        p.close()
    data = b"".join(heard)
    assert n > 50 and len(data) > 1000
    for s, what in secrets().items():
        assert s not in data, "gurux read %r (a secret) from the meter" % (what,)
