"""Test rigs: one interface for an emulated meter and a real board on a bench.

A test talks to a `Rig`:

- ``rig.port``: the meter's DLMS UART, as a serial device path for host
  clients (pyserial, meterctl).
- ``rig.set_load(watts)`` / ``rig.advance(seconds)``: the metering module's
  load and the passing of (simulated) time.
- ``rig.relay_closed()``, ``rig.press_button()``, ``rig.power_cut()`` /
  ``rig.power_on()``, ``rig.clock``, ``rig.wait_meter(pred, timeout)``.
- ``rig.capabilities``: what this rig can do; ``rig.require("power_cut")``
  skips the calling pytest test with a reason when it cannot.

The rigs themselves:

- `hil.emulated.EmulatedRig` runs the real firmware on the MicroPython unix port (the ``unix``
  board, process contract in docs/CONTRACTS.md) behind ptys, with a PZEM-004T v3 emulator on its
  Modbus UART and a control channel (`hil.control`) for relay, button, clock and telemetry.
- `hil.bench.BenchRig` is a real board on a USB serial port, optionally with the same PZEM
  emulator on a USB-RS485 adapter.

This module holds only the interface, the capability names, the errors and `Telemetry`; it
imports nothing else of ``hil`` (everything else imports it).

Every wait is bounded and every timeout error carries the firmware log
tail and the last control lines, so a failing HIL test says why.
"""

import atexit
import collections

__all__ = [
    "Rig", "Telemetry", "RigError", "RigTimeout", "RigCapabilityError", "CAPABILITIES",
    "DEFAULT_METER_CONFIG", "DEFAULT_EPOCH", "register_live", "unregister_live",
]

DEFAULT_EPOCH = 1767225600  # 2026-01-01T00:00:00Z

DEFAULT_METER_CONFIG = {
    "serial": "PPM0000001",
    "logical_device_name": "PPM0000001",
    "server_address": 1,
    "passwords": {"1": "12345678", "32": "00000000", "48": "ABCDEFGH"},
    "tariff_paise_per_kwh": 650,
    "credit_paise": 0,
    "modbus_unit": 1,
}

# Capabilities a rig may have.
CAPABILITIES = frozenset([
    "dlms",          # rig.port reaches the meter's DLMS UART
    "load",          # rig.set_load() drives the metering module
    "energy",        # the metering module integrates energy (rig.advance's first half)
    "clock",         # rig.clock / rig.advance() set the meter's RTC
    "telemetry",     # rig.meter / rig.wait_meter(): the meter reports each metering cycle
    "relay",         # rig.relay_closed() reads the relay output
    "button",        # rig.press_button()
    "power_cut",     # rig.power_cut() / rig.power_on()
    "events",        # rig.events / rig.wait_event()
    "firmware_log",  # rig.log_tail()
    "wire",          # rig.dlms_link: byte counters, taps, inject (garbage tests)
    "test_identity", # the meter holds hil.identity's secrets (LLS passwords 12345678 ..., STS and
                     # DLMS test keys): tests may log in with them (not a lab's own board)
])


# attributes of the emulated rigs (hil.controlled) and the capability that stands for each
_EMULATED_ONLY = {"events": "events", "wait_event": "events", "dlms_link": "wire", "modbus_link": "wire",
                  "mem": None, "hang": None, "set_cover": None, "sync": None, "set_clock": "clock",
                  "meter": "telemetry", "telemetry_history": "telemetry", "relay_history": "relay"}


class Telemetry(collections.namedtuple("Telemetry", "epoch wh credit relay")):
    """One ``meter`` control line: RTC epoch (s), import energy (Wh), credit
    (paise, may be negative), relay closed (bool)."""

    __slots__ = ()

    @property
    def credit_paise(self):
        """Alias of ``credit`` (integer paise)."""
        return self.credit


class RigError(Exception):
    """The rig or the meter behind it failed (message carries the log tail)."""


class RigTimeout(RigError):
    """A bounded wait on the meter expired."""


class RigCapabilityError(RigError):
    """The rig cannot do what was asked (raised outside pytest; inside, skip)."""


class Rig:
    """Interface every rig implements; methods a rig lacks skip the test.

    Subclasses set ``capabilities`` (a frozenset of names from CAPABILITIES)
    and override what they support.
    """

    capabilities = frozenset()
    #: LLS password of the management client (SAP 1); the `meter_client` fixture uses it
    management_password = DEFAULT_METER_CONFIG["passwords"]["1"]
    #: HLS keys (``host_tools.client.HlsKeys``) of the management client, None: LLS; a meter
    #: provisioned with keys (``meterctl flash``, ``meterctl emulate``) refuses LLS to client 1
    management_keys = None

    def management_client(self, **kw):
        """A ``host_tools.client.DlmsClient`` on `port` as the management client (SAP 1): HLS with
        `management_keys` when the rig has them (the invocation counter read from the meter),
        else LLS with `management_password`. ``kw``: more DlmsClient arguments."""
        from host_tools.client import DlmsClient
        if self.management_keys is not None:
            kw.setdefault("hls", self.management_keys)
        else:
            kw.setdefault("password", self.management_password)
        return DlmsClient(self.port, client_sap=1, **kw)

    # -- capability handling -------------------------------------------------

    def has(self, capability):
        """True if this rig has ``capability``."""
        return capability in self.capabilities

    def require(self, *capabilities):
        """Skip the running pytest test unless the rig has all ``capabilities``.

        Outside pytest raises RigCapabilityError.
        """
        missing = [c for c in capabilities if c not in self.capabilities]
        if missing:
            self._lacks("capability %s" % ", ".join(missing))

    def _lacks(self, what):
        reason = "%s lacks %s" % (type(self).__name__, what)
        try:
            import pytest
        except ImportError:  # pragma: no cover
            raise RigCapabilityError(reason)
        pytest.skip(reason)

    def __getattr__(self, name):
        """What only the emulated boards have (``events``, ``dlms_link``, ``mem`` ...): a test
        using it on another rig (a bench board) is skipped with the reason, not an AttributeError."""
        if name not in _EMULATED_ONLY or "telemetry" in self.capabilities:   # an emulated board
            raise AttributeError("%r object has no attribute %r" % (type(self).__name__, name))
        cap = _EMULATED_ONLY[name]
        if cap:
            self.require(cap)
        self._lacks("%s (the emulated board's control channel)" % name)

    # -- the interface (default: not available on this rig) --------------------

    @property
    def port(self):
        """Serial device path of the meter's DLMS UART."""
        self.require("dlms")
        raise NotImplementedError

    @property
    def serial(self):
        """Alias of `port` (DESIGN.md §7 name)."""
        return self.port

    def set_load(self, watts, pf_centi=100):
        """Set the load seen by the metering module (whole watts)."""
        self.require("load")
        raise NotImplementedError

    def advance(self, seconds, timeout=10.0):
        """Let ``seconds`` of simulated time pass; returns the meter's Telemetry."""
        self.require("energy", "clock")
        raise NotImplementedError

    def relay_closed(self):
        """True if the supply relay is closed (load connected)."""
        self.require("relay")
        raise NotImplementedError

    def wait_relay(self, closed, timeout=10.0):
        """Wait until the relay is closed (True) / open (False)."""
        self.require("relay")
        raise NotImplementedError

    def press_button(self):
        """Press the meter's push button (e.g. reconnect after top-up)."""
        self.require("button")
        raise NotImplementedError

    def power_cut(self):
        """Remove the meter's supply abruptly."""
        self.require("power_cut")
        raise NotImplementedError

    def power_on(self, timeout=None):
        """Restore the supply and wait until the meter is ready."""
        self.require("power_cut")
        raise NotImplementedError

    @property
    def clock(self):
        """The meter's RTC (epoch seconds); settable."""
        self.require("clock")
        raise NotImplementedError

    @clock.setter
    def clock(self, epoch):
        self.require("clock")
        raise NotImplementedError

    def wait_meter(self, predicate, timeout=10.0):
        """Wait for telemetry satisfying ``predicate(Telemetry)``; return it."""
        self.require("telemetry")
        raise NotImplementedError

    def drain(self, quiet_ms=100, timeout=10.0):
        """Wait until the DLMS wire has been quiet (no byte either way) for ``quiet_ms`` and the
        meter has read everything sent to it; RigTimeout after ``timeout`` s."""
        self.require("wire")
        raise NotImplementedError

    def log_tail(self, lines=40):
        """Last lines of the firmware's output ("" if the rig has none)."""
        return ""

    def stop(self):
        """Release everything the rig holds (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# Rigs alive in this interpreter (strong references until stop()), stopped at
# exit so no firmware process outlives the test run.
_LIVE = set()


def register_live(rig):
    """Keep ``rig`` to be stopped at interpreter exit (until `unregister_live`)."""
    _LIVE.add(rig)


def unregister_live(rig):
    """Forget ``rig`` (it has stopped)."""
    _LIVE.discard(rig)


@atexit.register
def _stop_all():  # pragma: no cover - exit path
    for rig in list(_LIVE):
        try:
            rig.stop()
        except Exception:
            pass
