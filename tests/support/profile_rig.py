"""An emulated meter with the IS 15959 profiles on and a day of load behind it, and the profile
catalogue the profile tests read (tests/hil/test_profiles_interop.py, test_profile_columns.py)."""
from interop_rig import make_rig
from timewarp import START, profile_config

# profile -> its scaler profile (None: name plate has none); the clock-indexed ones by range
PROFILES = {"1.0.99.1.0.255": "1.0.94.91.4.255", "1.0.99.2.0.255": "1.0.94.91.5.255",
            "1.0.98.1.0.255": "1.0.94.91.6.255", "1.0.94.91.0.255": "1.0.94.91.3.255",
            "0.0.94.91.10.255": None}
BY_RANGE = ("1.0.99.1.0.255", "1.0.99.2.0.255")


def day_of_load(rig_factory, hours=30, profiles=True):
    """A rig with ``hours`` h of rising load, the clock set at each hour (closed blocks)."""
    rig = make_rig(rig_factory, config=dict(profile_config(50000), profiles=profiles), clock_epoch=START,
                   poll_ms=3)
    t = START
    for h in range(hours):
        rig.pzem.set_load(400 + 40 * h)
        rig.pzem.advance(3600)
        wh = rig.pzem.energy_wh
        rig.wait_meter(lambda m: m.wh == wh, timeout=10)
        t += 3600
        rig.set_clock(t)
        rig.wait_meter(lambda m: m.epoch == t, timeout=10)
    return rig
