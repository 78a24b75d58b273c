"""Metering-module emulators by name: what `hil.emulated.EmulatedRig` puts on the Modbus line.

``MODULES`` maps a rig's module name to (emulator class, firmware config value): the names a
test passes (``rig_factory(module="sdm120")``) and the value written to the meter's config.json
under ``CONFIG_KEY`` so the firmware polls the same module type (``meter.modules.lookup``).
"""

from .modbus_sim import EmulatorError
from .pzem import PzemEmulator
from .sdm120 import Sdm120Emulator
from .sdm630 import Sdm630Emulator

__all__ = ["MODULES", "CONFIG_KEY", "DEFAULT_MODULE", "module_name", "open_module", "config_value"]

CONFIG_KEY = "metering_module"
DEFAULT_MODULE = "pzem"
MODULES = {
    "pzem": (PzemEmulator, "pzem004t"),
    "sdm120": (Sdm120Emulator, "sdm120"),
    "sdm630": (Sdm630Emulator, "sdm630"),
}
_ALIASES = {"pzem004t": "pzem", "pzem-004t": "pzem"}


def module_name(name):
    """The rig's name for a module: "pzem", "sdm120" or "sdm630" (also accepts the firmware's
    config value, e.g. "pzem004t"; None -> "pzem"). EmulatorError for anything else."""
    if name is None:
        return DEFAULT_MODULE
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in MODULES:
        raise EmulatorError("unknown metering module %r (known: %s)"
                            % (name, ", ".join(sorted(MODULES))))
    return key


def open_module(name, port_path, unit=1):
    """A started emulator of module ``name`` (see `module_name`) at Modbus address ``unit`` on
    ``port_path``, at the module's factory baud rate. EmulatorError if it does not start."""
    cls = MODULES[module_name(name)][0]
    return cls(port_path, unit=unit).start()


def config_value(name):
    """The firmware config value (``CONFIG_KEY``) for module ``name``: "pzem004t", "sdm120",
    "sdm630"."""
    return MODULES[module_name(name)][1]
