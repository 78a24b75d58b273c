"""HLS-GMAC peers (gurux-dlms ``GXDLMSSecureClient``, security suite 0, authenticated+encrypted)
with the test identity's keys (hil/identity.py), and the rig and STS tokens they use: shared by
the HLS interop, meterctl-over-HLS and replay tests."""
from gurux_dlms.enums import Authentication, InterfaceType, Security
from gurux_dlms.objects import GXDLMSData
from gurux_dlms.secure import GXDLMSSecureClient

from gurux_peer import Peer, associated
from hil import identity
from host_tools import vend

EPOCH = 1767225600


def hls_rig(rig_factory, **sec):
    """A rig with the STS identity and the DLMS test identity's security (``sec``: its overrides)."""
    return rig_factory(sts=True, config={"security": identity.security_config(**sec)})


def sts_token(kwh10, minutes=0):
    """An STS credit token of ``kwh10`` tenths of a kWh for the test identity, issued ``minutes``
    after EPOCH."""
    return vend.vend_token(identity.decoder_key(), algorithm="ea07", tables=str(identity.TABLES),
                           base_date=identity.BASE_DATE, amount=kwh10,
                           issued=EPOCH + 60 * minutes, rnd=3)["token"]


class SecurePeer(Peer):
    """Peer (gurux over pyserial) with a GXDLMSSecureClient: HIGH_GMAC, auth+enc."""

    def __init__(self, port, client=1, ek=identity.GUEK, ak=identity.GAK, ic=1, **kw):
        Peer.__init__(self, port, client=client, **kw)
        c = GXDLMSSecureClient(True, client, 1, Authentication.HIGH_GMAC, None, InterfaceType.HDLC)
        c.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
        c.ciphering.systemTitle = identity.CLIENT_TITLE
        c.ciphering.blockCipherKey = ek
        c.ciphering.authenticationKey = ak
        c.ciphering.invocationCounter = ic
        self.c = c

    def connect(self):
        Peer.connect(self)
        if self.c.isAuthenticationRequired:
            rd = self.exchange(self.c.getApplicationAssociationRequest())
            self.c.parseApplicationAssociationResponse(rd.data)


def frame_counter(rig):
    """The frame counter (IC 1 0.0.43.1.1.255) read by the public client."""
    p = Peer(rig.port, client=16)
    try:
        p.connect()
        d = GXDLMSData("0.0.43.1.1.255")
        p.read(d, 2)
        p.release()
        return int(d.value)
    finally:
        p.close()


def gurux(rig, client=1, **kw):
    """A SecurePeer associated (HLS-GMAC) with the meter of ``rig``, its invocation counter one past
    the meter's frame counter."""
    return associated(SecurePeer(rig.port, client=client, ic=frame_counter(rig) + 1, **kw))
