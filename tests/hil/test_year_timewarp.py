"""Time-warp run of the real firmware (MicroPython unix port, 190 KB heap) under the UPPCL-like
profile, driven by a load trace nobody here invented: the BDEW H0 standard household load
profile (demandlib, 15-minute resolution, German holidays replaced by the profile's Indian
holiday calendar) scaled to an Indian household's annual consumption. The consumer tops up at
irregular times (seeded), sometimes late, sometimes too little. At every top-up and every
billing-month end the meter's credit and every charge must equal the exact reference model
(refmodel) to the paisa, and every relay operation must be the reference's, at an
allowed moment.

``make test`` runs 33 simulated days (one billing-month end); ``make soak`` (``-m slow``) the
whole year. Each run prints the wall time per simulated month.

Stepping: the PZEM emulator integrates the four quarter-hours of an hour first; the meter reads
that energy while its clock still shows the start of the hour (so it is charged there: every
tariff boundary in this profile lies on a whole local hour, so that is the hour's own rate);
then the clock moves to the next hour (day changes: fixed charge, billing month). Both phases
wait for the meter's telemetry, so the run is deterministic.
"""
import pytest

from timewarp import run, START, UPPCL, h0_hourly_quarters, profile_config  # noqa: F401


def _run_case(rig_factory, hours, capsys=None):
    trace = h0_hourly_quarters(holidays=UPPCL["policy"]["holidays"])
    rig = rig_factory(config=profile_config(50000), clock_epoch=START, poll_ms=3)
    lines = []
    summary = run(rig, hours, trace, log=lines.append)
    months = hours / (24 * 365 / 12)
    per_month = summary["wall_s"] / months
    lines.append("%d h simulated in %.1f s wall: %.1f s per simulated month; %d top-ups, "
                 "%d relay operations, %d Wh, largest difference vs reference: %d paise"
                 % (hours, summary["wall_s"], per_month, summary["topups"],
                    len(summary["relay_log"]), summary["wh"], summary["worst_paise"]))
    if capsys is not None:
        with capsys.disabled():
            print("\n" + "\n".join(lines))
    assert summary["worst_paise"] == 0
    return summary


@pytest.mark.hil
def test_month_timewarp_matches_reference(rig_factory, capsys):
    s = _run_case(rig_factory, 33 * 24, capsys)
    assert len(s["bills"]) == 1 and s["topups"] >= 1


@pytest.mark.hil
@pytest.mark.slow
def test_year_timewarp_matches_reference(rig_factory, capsys):
    s = _run_case(rig_factory, 365 * 24, capsys)
    assert len(s["bills"]) == 12 and s["relay_log"]
