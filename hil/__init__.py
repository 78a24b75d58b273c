"""Hardware-in-the-loop harness (host side, CPython only).

- `PtyLink` (hil.ptylink), `Pty` (hil.rawpty): raw pty null-modem cables and the control pty.
- `PzemEmulator` (hil.pzem), `Sdm120Emulator` (hil.sdm120): metering modules on a
  pymodbus 3.16.1 RTU server (hil.modbus_sim).
- `Rig` and its errors (hil.rig); `EmulatedRig` (hil.emulated: the firmware on the MicroPython
  unix port behind ptys; its meter-facing half is hil.controlled, its control channel
  hil.control + hil.ctlchannel, its launch files hil.launch); `BenchRig` (hil.bench).
- hil.env: the checkout, `find_micropython`, heap sizes, the state-directory lock.
- hil.norimage: the emulated NOR flash image (wear counters, littlefs inspection).
- hil.pytest_plugin: ``--rig``/``--heap``/``--micropython``/... options, the ``rig``,
  ``rig_factory`` and ``meter_client`` fixtures and the ``needs`` marker (a pytest11 entry point).
- hil.multi: `start_meters(n, workdir)`, N emulated meters in one host process.
- hil.farm: N emulated meters exported to labgrid (exporter config + simplerest power switch).
- hil.labgrid_driver (imports labgrid): `MeterBoardDriver`, `MeterStrategy`; hil.labgrid_rig:
  `LabgridRig`, the Rig interface on a labgrid target (``--rig labgrid``).
"""

from .bench import BenchRig
from .emulated import EmulatedRig
from .env import REPO_ROOT, find_micropython
from .ptylink import A2B, B2A, Pty, PtyError, PtyLink
from .pzem import EmulatorError, PzemEmulator, Sdm120Emulator
from .rig import (DEFAULT_EPOCH, DEFAULT_METER_CONFIG, Rig, RigCapabilityError, RigError,
                  RigTimeout, Telemetry)

__all__ = [
    "A2B", "B2A", "Pty", "PtyError", "PtyLink", "EmulatorError", "PzemEmulator", "Sdm120Emulator",
    "DEFAULT_EPOCH", "DEFAULT_METER_CONFIG", "BenchRig", "EmulatedRig", "Rig", "RigCapabilityError",
    "RigError", "RigTimeout", "Telemetry", "REPO_ROOT", "find_micropython",
]
