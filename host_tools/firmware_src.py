"""Where the firmware sources are, for host code that builds, checks or runs them.

Host tools need the device sources in three ways: to build an image (``host_tools.build``), to
run them on the MicroPython unix port (``hil``), and to apply the firmware's own rules on the
host (``meterctl config check`` validates a profile with ``meter.profile.check_profile``, so a
rule exists once). meterctl runs from a checkout (``pip install -e .``, which ``make setup``
does): the sources are ``<checkout>/firmware`` and ``<checkout>/protocol``. Nothing else in the
host code computes these paths, and no host module edits ``sys.path``.

``firmware_module("meter.profile")`` imports a device module on CPython without touching
``sys.path``: it registers the firmware's top-level packages (``meter``, ``boards``) by their
location (importlib specs), the way the board's filesystem presents them to MicroPython.
"""
import importlib
import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIRMWARE_DIR = ROOT / "firmware"
PROTOCOL_DIR = ROOT / "protocol"

__all__ = ["ROOT", "FIRMWARE_DIR", "PROTOCOL_DIR", "firmware_module", "check_checkout"]

# the firmware's top-level packages as MicroPython sees them on the board's filesystem
_PACKAGES = ("meter", "boards")


def check_checkout():
    """Raise FileNotFoundError with a one-line reason when the firmware sources are missing
    (an installed copy of meterctl without its checkout)."""
    if not (FIRMWARE_DIR / "meter" / "app.py").is_file():
        raise FileNotFoundError(
            "firmware sources not found at %s: meterctl runs from a checkout "
            "(git clone, then `make setup` or `pip install -e .`)" % FIRMWARE_DIR)


def _register(package):
    have = sys.modules.get(package)
    if have is not None:
        where = [pathlib.Path(p).resolve() for p in getattr(have, "__path__", ())]
        if (FIRMWARE_DIR / package).resolve() not in where:
            raise ImportError("a different %r package is already imported (%s)" % (package, where))
        return
    spec = importlib.util.spec_from_file_location(
        package, FIRMWARE_DIR / package / "__init__.py",
        submodule_search_locations=[str(FIRMWARE_DIR / package)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[package] = mod
    spec.loader.exec_module(mod)


def firmware_module(name):
    """Import the device module ``name`` (e.g. ``"meter.profile"``) from the firmware sources.

    Returns the module. Raises FileNotFoundError (no checkout) or ImportError.
    """
    check_checkout()
    top = name.split(".", 1)[0]
    if top not in _PACKAGES:
        raise ImportError("%r is not a firmware package (%s)" % (name, ", ".join(_PACKAGES)))
    _register(top)
    return importlib.import_module(name)
