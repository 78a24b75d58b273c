"""The emulated meter the interop tests (gurux-dlms, dlms-cosem) talk to."""
import os


def make_rig(rig_factory, **kw):
    """A rig provisioned with the STS test identity (so the token gateway is served).
    ``METER_FIRMWARE_DIR`` (development) runs another build of the firmware as .mpy files."""
    fw = os.environ.get("METER_FIRMWARE_DIR")
    if fw:
        kw.setdefault("firmware_dir", fw)
        kw.setdefault("image", "mpy")
    return rig_factory(sts=True, **kw)
