"""Hardware-in-the-loop harness (host side, CPython only).

- `PtyLink`, `Pty` (hil.ptylink): raw pty null-modem cables and the control pty.
- `PzemEmulator`, `Sdm120Emulator` (hil.pzem): metering modules on a
  pymodbus 3.16.1 RTU server.
- `Rig`, `EmulatedRig`, `BenchRig` (hil.rig): one interface for an emulated
  meter (MicroPython unix port behind ptys) and a real board on a bench.
- hil.pytest_plugin: ``--rig``/``--heap``/... options and the ``rig`` fixture.
"""

from .ptylink import A2B, B2A, Pty, PtyError, PtyLink
from .pzem import EmulatorError, PzemEmulator, Sdm120Emulator
from .rig import (DEFAULT_METER_CONFIG, BenchRig, EmulatedRig, Rig, RigCapabilityError,
                  RigError, RigTimeout, Telemetry)

__all__ = [
    "A2B", "B2A", "Pty", "PtyError", "PtyLink", "EmulatorError", "PzemEmulator", "Sdm120Emulator",
    "DEFAULT_METER_CONFIG", "BenchRig", "EmulatedRig", "Rig", "RigCapabilityError",
    "RigError", "RigTimeout", "Telemetry",
]
