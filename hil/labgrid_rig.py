"""`LabgridRig`: the `hil.rig.Rig` interface on a labgrid target carrying a `MeterBoardDriver`.

The same HIL tests run on a board farm unchanged: ``pytest --rig labgrid --lg-env env.yaml``
(with ``--lg-coordinator`` / ``LG_COORDINATOR`` for a remote place). What the rig can do follows
the target's wiring: ``dlms`` always; ``relay`` read back over DLMS (the disconnect control's
output_state, IC 70 0.0.96.3.10.255 attribute 2, by the public client: hil.relayback);
``power_cut`` with a power driver bound.
Load, clock and telemetry need the emulated board's control channel: tests needing them skip.
"""
from .relayback import RelayReadback
from .rig import Rig, RigError, RigTimeout

__all__ = ["LabgridRig"]


class LabgridRig(RelayReadback, Rig):
    """A meter board behind a labgrid ``target`` (see the module docstring).

    Args:
        target: a labgrid Target with a ``MeterBoardDriver`` (and optionally a
            ``MeterStrategy``, which is brought to "on"; else the driver is activated and
            the supply, if switchable, switched on).
        password: management LLS password (None: the driver's ``password``).
        keys: the management client's HLS keys (``host_tools.client.HlsKeys``; a board flashed
            with keys refuses LLS to client 1), None: LLS with ``password``.
        poll_s: interval of the DLMS relay read-back in `wait_relay`.

    Raises RigError if the board does not answer DLMS.
    """

    def __init__(self, target, password=None, poll_s=0.25, keys=None):
        self.target = target
        self.driver = self._driver(target)
        self.management_password = password or self.driver.password
        self.management_keys = keys
        self.poll_s = float(poll_s)
        caps = {"dlms", "relay"}
        if self.driver.power is not None:
            caps.add("power_cut")
        self.capabilities = frozenset(caps)
        try:
            strategy = target.get_driver("MeterStrategy")
        except Exception:  # noqa: BLE001 - labgrid's NoDriverFoundError: no strategy configured
            strategy = None
        try:
            if strategy is not None:
                strategy.transition("on")
            else:
                target.activate(self.driver)
                if self.driver.power is not None:
                    self.driver.set_power(True)
                self.driver.wait_ready()
        except Exception as e:
            raise RigError("labgrid target %s not ready: %s" % (target.name, e)) from e

    @staticmethod
    def _driver(target):
        from . import labgrid_driver  # noqa: F401 - registers the driver classes
        return target.get_driver("MeterBoardDriver", activate=False)

    @classmethod
    def board_serial(cls, target):
        """The serial the target's ``MeterBoardDriver`` names (its keystore entry), or None."""
        return cls._driver(target).serial

    @property
    def port(self):
        """The DLMS UART as a pyserial port string (device path or rfc2217:// URL)."""
        return self.driver.dlms_url

    def power_cut(self):
        """Switch the supply off through the target's power driver."""
        self.require("power_cut")
        self.driver.set_power(False)

    def power_on(self, timeout=None):
        """Switch the supply on and wait until the meter answers DLMS (RigTimeout)."""
        self.require("power_cut")
        self.driver.set_power(True)
        try:
            self.driver.wait_ready(timeout)
        except TimeoutError as e:
            raise RigTimeout(str(e)) from e

    def stop(self):
        """Leave the board as it is (the place stays acquired until labgrid-client release)."""
