"""pytest plugin: pick a rig on the command line, hand tests a `rig` fixture.

Installed with the package it is a ``pytest11`` entry point named ``hil.pytest_plugin``, so any
test suite in an environment where ``prepaid-meter`` is installed gets the fixtures below (the
entry point's name is the module name, so a conftest that also lists ``pytest_plugins =
["hil.pytest_plugin"]`` does not register it twice). Under pytest-xdist each worker builds
nothing: the controller prepares the firmware image once (``hil.launch.prepare_build``).

Options:
    --rig emulated|bench|labgrid|pico   which rig (default: emulated; pico = hil.picorig.PicoRig,
                           the real MicroPython rp2 port in rp2040js)
    --lg-env FILE          labgrid: the environment YAML (labgrid's own pytest option; its target
                           carries a ``MeterBoardDriver``, see hil.labgrid_driver)
    --meter-password PW    bench/labgrid: the management (client 1) LLS password
    --meter-port PATH      bench: the board's DLMS serial port
    --modbus-port PATH     bench: USB-RS485 adapter for the PZEM emulator
    --power-cmd CMD        bench: shell command switching the supply ({state} = on/off)
    --heap SIZE            emulated: MicroPython heap, e.g. 190k (ESP32: 56k)
    --micropython PATH     emulated: the MicroPython unix port to run (any build)

Which micropython runs (hil.env.find_micropython, the one place that decides): ``--micropython
PATH``, else the ``METER_MICROPYTHON`` environment variable, else the ``micropython`` next to the
running interpreter (a venv's bin/) or in the checkout's .venv, else the first on PATH. A path
given by option or variable that is not an executable file fails the run; it is never skipped.

Fixtures:
    rig          a started rig, fresh state under tmp_path, stopped after the test
    rig_factory  callable(config=None, heap=None, **kw) -> started rig (all
                 stopped after the test), for custom provisioning or heap
    meter_client a connected, associated ``host_tools.client.DlmsClient`` on ``rig.port``
                 (management client 1 with the rig's password), released after the test

Markers:
    @pytest.mark.needs("power_cut", ...)  skip (with the reason) when the rig lacks a capability
                                          (names: hil.rig.CAPABILITIES)
    @pytest.mark.hil                      added to every test that uses a rig

When a test fails, its report gets a "firmware log" section with the tail of
the firmware's output and the last control lines.
"""

import pytest

from .bench import BenchRig
from .emulated import EmulatedRig
from .env import MICROPYTHON_ENV, find_micropython, set_micropython
from .rig import CAPABILITIES, RigError

_RIGS_KEY = "_hil_rigs"
RIG_KINDS = ("emulated", "bench", "labgrid", "pico")


def pytest_addoption(parser):
    group = parser.getgroup("hil", "hardware-in-the-loop rig")
    group.addoption("--rig", choices=RIG_KINDS, default="emulated",
                    help="rig to run HIL tests on (default: emulated; labgrid needs --lg-env; "
                         "pico: hil.picorig)")
    group.addoption("--meter-port", default=None,
                    help="bench rig: serial port of the meter's DLMS UART")
    group.addoption("--modbus-port", default=None,
                    help="bench rig: USB-RS485 port for the PZEM-004T emulator")
    group.addoption("--power-cmd", default=None,
                    help="bench rig: shell command switching the board's supply; "
                         "'{state}' becomes on/off (e.g. 'uhubctl -l 1-1 -p 2 -a {state}')")
    group.addoption("--meter-password", default=None,
                    help="bench/labgrid rig: management (client 1) LLS password "
                         "(default: the emulated meter's)")
    group.addoption("--heap", default="190k",
                    help="emulated rig: MicroPython heap size (default 190k)")
    group.addoption("--micropython", default=None, metavar="PATH",
                    help="emulated rig: MicroPython unix port binary (default: $%s, then the "
                         "one next to this Python, then PATH)" % MICROPYTHON_ENV)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "hil: runs the firmware on the MicroPython unix port behind ptys")
    config.addinivalue_line(
        "markers", "needs(*capabilities): skip unless the rig has them (hil.rig.CAPABILITIES)")
    path = config.getoption("--micropython")
    if path:
        set_micropython(path)
        try:
            find_micropython()  # a wrong path fails the run here, once, with its reason
        except RigError as e:
            raise pytest.UsageError(str(e))
    if config.getoption("--rig") == "labgrid" and not _lg_env(config):
        raise pytest.UsageError("--rig labgrid needs --lg-env ENV.yaml (labgrid installed)")


def _lg_env(config):
    """labgrid's --lg-env value (None without labgrid's plugin or the option)."""
    try:
        return config.getoption("lg_env")
    except ValueError:
        return None


def pytest_unconfigure(config):
    if config.getoption("--micropython"):
        set_micropython(None)


def pytest_sessionstart(session):
    """Build the firmware image once, in the xdist controller (or the only process) before any
    worker starts a rig: workers then find the cache fresh and never rebuild it under each
    other (hil.launch.prepare_build locks it too)."""
    config = session.config
    if hasattr(config, "workerinput") or config.getoption("--rig") != "emulated":
        return
    if config.getoption("collectonly", False):
        return
    from .launch import prepare_build
    try:
        prepare_build()
    except Exception:  # noqa: BLE001 - each rig builds again and reports it with its context
        pass


def _needs(request):
    """Capabilities the test's ``needs`` markers ask for (tuple of names)."""
    caps = []
    for mark in request.node.iter_markers("needs"):
        for c in mark.args:
            if c not in CAPABILITIES:
                raise pytest.UsageError("needs(%r): unknown capability (one of %s)"
                                        % (c, ", ".join(sorted(CAPABILITIES))))
            caps.append(c)
    return tuple(caps)


def _make_rig(request, workdir, config=None, heap=None, sts=False, **kw):
    """A started rig of the ``--rig`` kind. ``sts=True`` provisions the emulated meter with the
    STS test identity (hil.identity): decoder key in config.json and the sample EA07 tables in
    its filesystem. Skips the test for what the chosen rig cannot do."""
    opt = request.config.getoption
    kind = opt("--rig")
    if kind != "emulated" and config:
        pytest.skip("--rig %s cannot provision a custom config" % kind)
    if kind == "labgrid":
        from .labgrid_rig import LabgridRig
        return LabgridRig(request.getfixturevalue("target"), password=opt("--meter-password"))
    if kind == "bench":
        port = opt("--meter-port")
        if not port:
            pytest.skip("--rig bench needs --meter-port")
        return BenchRig(port, modbus_port=opt("--modbus-port"),
                        power_switch=_power_switch(opt("--power-cmd")),
                        password=opt("--meter-password"))
    if opt("--rig") == "pico":
        return _make_pico(workdir, config, sts, dict(kw, heap=heap) if heap else kw)
    if sts:
        from hil import identity
        config = dict(config or {})
        config.setdefault("sts", identity.sts_config())
        start = kw.pop("start", True)
        rig = EmulatedRig(workdir, heap=heap or opt("--heap"), config=config, start=False, **kw)
        identity.install_tables(rig.state_dir)
        if start:
            try:
                rig.start()
            except Exception:
                rig.stop()
                raise
        return rig
    return EmulatedRig(workdir, heap=heap or opt("--heap"), config=config, **kw)


_PICO_KW = ("clock_epoch", "poll_ms", "module", "start", "boot_timeout", "relay_gates_load")


def _make_pico(workdir, config, sts, kw):
    """A PicoRig (hil.picorig); skips when Node/rp2040js/the UF2 are missing or the test asks
    for what only the unix board has (heap size, NOR flash model, watchdog period, ...)."""
    from .picorig import PicoRig, unavailable
    why = unavailable()
    if why:
        pytest.skip(why)
    kw.pop("wait_first_meter", None)
    other = sorted(k for k in kw if k not in _PICO_KW)
    if other:
        pytest.skip("PicoRig has no %s (unix board only)" % ", ".join(other))
    return PicoRig(workdir, config=config, sts=sts, **kw)


def _power_switch(cmd):
    if not cmd:
        return None
    import subprocess

    def switch(on):
        subprocess.run(cmd.replace("{state}", "on" if on else "off"), shell=True,
                       check=True, timeout=60)

    return switch


def _register(request, rig):
    rigs = getattr(request.node, _RIGS_KEY, None)
    if rigs is None:
        rigs = []
        setattr(request.node, _RIGS_KEY, rigs)
    rigs.append(rig)


@pytest.fixture
def rig(request, tmp_path):
    """A started rig for this test; stopped (process group killed) afterwards. The test's
    ``needs`` markers are checked against ``rig.capabilities`` first (skip with the reason)."""
    needs = _needs(request)
    r = _make_rig(request, tmp_path / "rig")
    _register(request, r)
    try:
        r.require(*needs)
        yield r
    finally:
        r.stop()


@pytest.fixture
def meter_client(rig):
    """A connected, associated ``host_tools.client.DlmsClient`` on ``rig.port``: management
    client (SAP 1) with the rig's LLS password (``rig.management_password``). Released and
    closed after the test."""
    from host_tools.client import DlmsClient
    rig.require("dlms")
    with DlmsClient(rig.port, client_sap=1, password=rig.management_password) as c:
        yield c


@pytest.fixture
def rig_factory(request, tmp_path):
    """Start rigs with custom provisioning: ``rig_factory(config={...}, heap="56k")``."""
    made = []

    def factory(config=None, heap=None, name=None, **kw):
        workdir = tmp_path / (name or "rig%d" % len(made))
        r = _make_rig(request, workdir, config=config, heap=heap, **kw)
        made.append(r)
        _register(request, r)
        return r

    try:
        yield factory
    finally:
        errors = []
        for r in made:
            try:
                r.stop()
            except RigError as e:
                errors.append(e)
        if errors:
            raise errors[0]


def pytest_collection_modifyitems(config, items):
    """Tests that use a rig are HIL tests: mark them ``hil``."""
    for item in items:
        if {"rig", "rig_factory"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.hil)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for i, r in enumerate(getattr(item, _RIGS_KEY, ())):
        tail = r.log_tail(60)
        trace = r.ctl_trace_lines(20) if hasattr(r, "ctl_trace_lines") else ()
        text = tail or "(no firmware log)"
        if trace:
            text += "\n--- control lines (last 20) ---\n" + "\n".join(trace)
        rep.sections.append(("firmware log (rig %d, %s)" % (i, type(r).__name__), text))
