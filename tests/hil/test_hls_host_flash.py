"""Failed logins cost the flash nothing: on the NOR flash model (hil/norimage.py erase counters
per block) a series of failed associations - wrong GAK (HLS-GMAC, client 1), wrong GUEK (client
48), wrong LLS password (client 32) - below the lock-out threshold erases no block; a lock-out
itself writes its record once. Also: a successful HLS association with ciphered GETs costs no
erase either (the invocation counters are block-reserved)."""
import pytest

from hil import identity
from host_tools.client import AssociationRejected, DlmsClient, HlsKeys

pytestmark = pytest.mark.hil

GOOD = HlsKeys(identity.GUEK, identity.GAK, identity.CLIENT_TITLE)
WRONG_GAK = HlsKeys(identity.GUEK, bytes(16), identity.CLIENT_TITLE)
WRONG_GUEK = HlsKeys(bytes(16), identity.GAK, identity.CLIENT_TITLE)


def erases(rig):
    return sum(rig.flash_wear())


def fail_login(rig, **client):
    with pytest.raises(AssociationRejected) as e:
        with DlmsClient(rig.port, **client):
            pass
    return e.value


def test_failed_logins_erase_no_flash_block(rig_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path / "state"))
    rig = rig_factory(flash={"blocks": 64, "seed": 7},
                      config={"security": identity.security_config(),
                              "passwords": dict(identity.PASSWORDS),
                              "lockout": {"after": 3, "base_s": 1, "max_s": 2}})
    with DlmsClient(rig.port, client_sap=1, hls=GOOD) as c:     # warm-up: boot writes done
        c.get(1, "0.0.42.0.0.255", 2)
    rig.drain()
    before = erases(rig)
    failed = 0
    for _ in range(2):                                           # below the lock-out (3)
        for client in (dict(client_sap=1, hls=WRONG_GAK), dict(client_sap=48, hls=WRONG_GUEK),
                       dict(client_sap=32, password="wrong")):
            assert fail_login(rig, **client).diagnostic == 13
            failed += 1
        with DlmsClient(rig.port, client_sap=1, hls=GOOD) as c:  # a good login in between
            for _ in range(20):
                c.get(1, "0.0.42.0.0.255", 2)
        with DlmsClient(rig.port, client_sap=32, password=identity.PASSWORDS["32"]):
            pass
    rig.drain()
    per_login = (erases(rig) - before) / failed
    print("NOR erases per failed login: %.2f (%d failed logins, 2 good HLS sessions of 20 "
          "ciphered GETs)" % (per_login, failed))
    assert erases(rig) == before
