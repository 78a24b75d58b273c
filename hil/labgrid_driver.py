"""labgrid driver and strategy for a prepaid meter board (needs labgrid >= 24: gRPC coordinator).

Importing this module registers two classes with labgrid's ``target_factory``; an environment
YAML lists it under ``imports:`` (examples/labgrid/env.yaml):

- `MeterBoardDriver`: the board's wiring as a test sees it. Bindings: ``dlms`` (a
  ``SerialPort``/``NetworkSerialPort``, the meter's DLMS UART; with several serial resources name
  it: ``bindings: {dlms: dlms}``) and an optional ``power`` (any labgrid ``PowerProtocol``
  driver: NetworkPowerDriver, ExternalPowerDriver, USBPowerDriver...). Attributes name the other
  serial resources: ``console`` (the MicroPython REPL, for ``meterctl flash``/mpremote) and
  ``modbus`` (a USB-RS485 adapter on the metering bus, for a PZEM emulator); ``password`` the
  management client's LLS password, ``board`` (esp32/rp2040/unix) and ``serial`` for flashing.
- `MeterStrategy`: states ``off``, ``on`` (supply on, the meter answers DLMS) and ``flashed``
  (``meterctl flash`` over the console, then on).

`hil.labgrid_rig.LabgridRig` puts the `hil.rig.Rig` interface on such a target; the plugin's
``--rig labgrid`` builds it from labgrid's ``target`` fixture.
"""
import enum
import subprocess
import sys
import time

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.step import step
from labgrid.strategy.common import Strategy, StrategyError, never_retry
from labgrid.util.proxy import proxymanager

__all__ = ["MeterBoardDriver", "MeterStrategy", "Status", "port_url"]

_SERIAL_CLASSES = ("NetworkSerialPort", "SerialPort", "RawSerialPort", "USBSerialPort")


def port_url(resource):
    """A pyserial port string for a labgrid serial resource: its device path (local
    SerialPort/USBSerialPort) or ``rfc2217://host:port`` / ``socket://host:port`` (a
    NetworkSerialPort, through labgrid's proxy manager when the exporter is behind one)."""
    if type(resource).__name__ != "NetworkSerialPort":
        return resource.port
    host, port = proxymanager.get_host_and_port(resource)
    if resource.protocol == "raw":
        return "socket://%s:%s" % (host, port)
    return "rfc2217://%s:%s?ign_set_control" % (host, port)


@target_factory.reg_driver
@attr.s(eq=False)
class MeterBoardDriver(Driver):
    """A meter board: DLMS UART, optional power switch, console and Modbus adapter (see the
    module docstring)."""

    bindings = {"dlms": set(_SERIAL_CLASSES), "power": {"PowerProtocol", None}}
    password = attr.ib(default="12345678", validator=attr.validators.instance_of(str))
    board = attr.ib(default="esp32", validator=attr.validators.instance_of(str))
    serial = attr.ib(default=None)
    console = attr.ib(default=None)
    modbus = attr.ib(default=None)
    boot_timeout = attr.ib(default=30.0)

    @property
    def dlms_url(self):
        """pyserial port string of the DLMS UART (path or rfc2217:// URL)."""
        return port_url(self.dlms)

    def _named(self, name):
        if not name:
            return None
        for cls in _SERIAL_CLASSES:
            try:
                return self.target.get_resource(cls, name=name, wait_avail=False)
            except Exception:  # noqa: BLE001 - labgrid raises NoResourceFoundError per class
                continue
        raise StrategyError("no serial resource named %r in %s" % (name, self.target))

    @property
    def console_url(self):
        """pyserial port string of the REPL console, or None without a ``console`` resource."""
        res = self._named(self.console)
        return None if res is None else port_url(res)

    @property
    def modbus_url(self):
        """pyserial port string of the metering-bus adapter, or None without one."""
        res = self._named(self.modbus)
        return None if res is None else port_url(res)

    @Driver.check_active
    def set_power(self, on):
        """Switch the board's supply (RuntimeError without a power driver)."""
        if self.power is None:
            raise RuntimeError("%s has no power driver bound" % self.target)
        self.target.activate(self.power)
        self.power.on() if on else self.power.off()

    @Driver.check_active
    def answers(self, timeout=2.0):
        """True if the meter completes an HDLC connect (SNRM/UA) and disconnect on DLMS."""
        from host_tools.client import DlmsClient, DlmsError
        try:
            with DlmsClient(self.dlms_url, timeout=timeout) as c:
                c.disconnect()
            return True
        except (DlmsError, OSError):
            return False

    @Driver.check_active
    def wait_ready(self, timeout=None, interval=0.5):
        """Wait until `answers` (a real board gives no event: probe every ``interval`` s).
        TimeoutError after ``timeout`` (default ``boot_timeout``) s."""
        deadline = time.monotonic() + float(timeout or self.boot_timeout)
        while not self.answers():
            if time.monotonic() >= deadline:
                raise TimeoutError("meter on %s not answering DLMS" % self.dlms_url)
            time.sleep(interval)

    @Driver.check_active
    @step(args=["extra"])
    def flash(self, extra=()):
        """``meterctl flash --board B --port CONSOLE [--serial S] EXTRA...``; returns its output.
        Raises StrategyError without a console resource or if the flash fails."""
        url = self.console_url
        if url is None:
            raise StrategyError("flash needs a 'console' serial resource")
        argv = [sys.executable, "-m", "host_tools.meterctl", "flash", "--board", self.board,
                "--port", url]
        if self.serial:
            argv += ["--serial", str(self.serial)]
        r = subprocess.run(argv + list(extra), capture_output=True, text=True, timeout=900)
        if r.returncode:
            raise StrategyError("meterctl flash failed: %s" % (r.stdout + r.stderr)[-2000:])
        return r.stdout


class Status(enum.Enum):
    """States of `MeterStrategy`."""
    unknown = 0
    off = 1
    on = 2
    flashed = 3


@target_factory.reg_driver
@attr.s(eq=False)
class MeterStrategy(Strategy):
    """off / on (answers DLMS) / flashed (meterctl flash, then on)."""

    bindings = {"meter": "MeterBoardDriver", "power": {"PowerProtocol", None}}
    status = attr.ib(default=Status.unknown)

    @never_retry
    @step(args=["status"])
    def transition(self, status, *, step):  # noqa: ARG002 - labgrid's step protocol
        """Bring the board to ``status`` (a Status or its name)."""
        if not isinstance(status, Status):
            status = Status[status]
        if status == Status.unknown:
            raise StrategyError("can not transition to %s" % status)
        if status == self.status:
            return
        self.target.activate(self.meter)
        if status == Status.off:
            self.meter.set_power(False)
        elif status == Status.flashed:
            self.meter.flash()
            self._power_on()
        else:
            self._power_on()
        self.status = status

    def _power_on(self):
        if self.power is not None:
            self.meter.set_power(True)
        self.meter.wait_ready()
