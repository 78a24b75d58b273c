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
    --meter-password PW    bench/labgrid: the management (client 1) LLS password (METER_PASSWORD)
    --meter-key-file PATH  bench/labgrid: the board's HLS keys as a key file (``meterctl emulate``
                           prints its path; METER_KEY_FILE): management client 1 runs HLS
    --meter-serial SERIAL  bench/labgrid: the board's keystore entry (``meterctl flash`` wrote it;
                           METER_SERIAL; labgrid: with --meter-keystore, the driver's ``serial``)
    --meter-keystore PATH  the keystore of --meter-serial (METER_KEYSTORE, else meterctl's default)
    --meter-port PATH      bench: the board's DLMS serial port
    --modbus-port PATH     bench: USB-RS485 adapter for the PZEM emulator
    --power-cmd CMD        bench: shell command switching the supply, run with ``{state}``
                           replaced by ``on`` or ``off`` (one without ``{state}``: a usage error)
    --relay-sense-cmd CMD  bench: shell command printing the relay contact (1/closed or 0/open);
                           without it the relay is read back over DLMS (hil.relayback)
    --heap SIZE            emulated: MicroPython heap, e.g. 190k (ESP32: 56k); default 190k,
                           VM32_HEAP on the 32-bit VM chosen by --vm32
    --micropython PATH     emulated: the MicroPython unix port to run (any build)
    --vm32                 emulated: run on the 32-bit VM (hil.env.vm32_path, ../shared beside
                           the checkout) at hil.env.VM32_HEAP (ESP32's 56k; heap32 markers
                           raise it per test) when it is there, else on the 64-bit wheel at 190k with one
                           notice line (``make test`` passes it)
    --hil-timeout SECONDS  a HIL test (not marked slow) still running after this fails with a
                           timeout instead of hanging, e.g. on a meter out of memory (default 300;
                           0: none)

Which micropython runs (hil.env.find_micropython, the one place that decides): ``--micropython
PATH``, else the ``METER_MICROPYTHON`` environment variable, else the ``micropython`` next to the
running interpreter (a venv's bin/) or in the checkout's .venv, else the first on PATH. A path
given by option or variable that is not an executable file fails the run; it is never skipped.

Fixtures:
    rig          a started rig, fresh state under tmp_path, stopped after the test
    rig_factory  callable(config=None, heap=None, **kw) -> started rig (all
                 stopped after the test), for custom provisioning or heap; each rig is
                 checked against the test's ``needs`` markers as ``rig`` is
    meter_client a connected, associated ``host_tools.client.DlmsClient`` on ``rig.port``
                 (``rig.management_client()``: management client 1 with the rig's HLS keys, else
                 its LLS password), released after the test

Markers:
    @pytest.mark.needs("power_cut", ...)  skip (with the reason) when the rig lacks a capability
                                          (names: hil.rig.CAPABILITIES)
    @pytest.mark.hil                      added to every test that uses a rig
    @pytest.mark.heap32(SIZE, WHY)        a test that does not fit VM32_HEAP yet: on --vm32's VM
                                          (without --heap) its rigs get SIZE; the run ends with
                                          one line counting them (docs/MEMORY.md "32-bit")

When a test fails, its report gets a "firmware log" section with the tail of
the firmware's output and the last control lines.
"""

import os

import pytest

from .bench import BenchRig
from .emulated import EmulatedRig
from .env import (ESP32_HEAP, heap_bytes, MICROPYTHON_ENV, VM32_HEAP, find_micropython, find_vm32,
                  set_micropython, vm32_path)
from .relayback import sense_command
from .rig import CAPABILITIES, RigError

_RIGS_KEY = "_hil_rigs"
_WHEEL_HEAP = "190k"
# the session's default heap, its notice line, whether it is --vm32's VM32_HEAP (then a test's heap32
# marker applies) and the tests that ran above it (counted from the reports: xdist-proof)
_state = {"heap": _WHEEL_HEAP, "notice": None, "vm32": False, "raised": {}, "keys": None}
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
    group.addoption("--relay-sense-cmd", default=None,
                    help="bench rig: shell command printing the relay contact, 1/closed or 0/open "
                         "(e.g. 'gpioget gpiochip0 17'); default: output_state over DLMS")
    group.addoption("--meter-password", default=os.environ.get("METER_PASSWORD"),
                    help="bench/labgrid rig: management (client 1) LLS password (default: "
                         "$METER_PASSWORD, else the emulated meter's)")
    group.addoption("--meter-key-file", default=os.environ.get("METER_KEY_FILE"), metavar="PATH",
                    help="bench/labgrid rig: the board's HLS key file (meterctl emulate prints it; "
                         "default $METER_KEY_FILE): the management client uses HLS")
    group.addoption("--meter-serial", default=os.environ.get("METER_SERIAL"), metavar="SERIAL",
                    help="bench/labgrid rig: the board's keystore entry (meterctl flash --serial; "
                         "default $METER_SERIAL): the management client uses its HLS keys")
    group.addoption("--meter-keystore", default=os.environ.get("METER_KEYSTORE"), metavar="PATH",
                    help="keystore of --meter-serial (default $METER_KEYSTORE, else meterctl's: "
                         "$METERCTL_KEYSTORE, ~/.config/meterctl/meters.keystore)")
    group.addoption("--heap", default=None,
                    help="emulated rig: MicroPython heap size (default 190k; %s on --vm32's VM)"
                         % VM32_HEAP)
    group.addoption("--micropython", default=None, metavar="PATH",
                    help="emulated rig: MicroPython unix port binary (default: $%s, then the "
                         "one next to this Python, then PATH)" % MICROPYTHON_ENV)
    group.addoption("--vm32", action="store_true",
                    help="emulated rig: the 32-bit VM (../shared/micropython32) at %s when it is "
                         "there, else the 64-bit wheel with a notice" % VM32_HEAP)
    group.addoption("--hil-timeout", type=float, default=300.0, metavar="SECONDS",
                    help="fail a HIL test (not marked slow) running longer than this (default "
                         "300, 0: none)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "hil: runs the firmware on the MicroPython unix port behind ptys")
    config.addinivalue_line(
        "markers", "needs(*capabilities): skip unless the rig has them (hil.rig.CAPABILITIES)")
    config.addinivalue_line(
        "markers", "heap32(size, why): the heap this test needs on the 32-bit VM while it does "
                   "not fit hil.env.VM32_HEAP (used on --vm32 without --heap)")
    path = _choose_vm(config)
    if path:
        set_micropython(path)
        try:
            find_micropython()  # a wrong path fails the run here, once, with its reason
        except RigError as e:
            raise pytest.UsageError(str(e))
    if config.getoption("--rig") == "labgrid" and not _lg_env(config):
        raise pytest.UsageError("--rig labgrid needs --lg-env ENV.yaml (labgrid installed)")
    cmd = config.getoption("--power-cmd")
    if cmd and "{state}" not in cmd:
        raise pytest.UsageError("--power-cmd %r has no {state} (it becomes on/off), e.g. "
                                "'relayctl {state}'" % cmd)
    _state["keys"] = _meter_keys(config)


def _meter_keys(config, serial=None):
    """The HLS keys --meter-key-file or --meter-serial name for the bench/labgrid board's
    management client (None: LLS); ``serial`` (a labgrid driver's) stands in for --meter-serial
    when --meter-keystore is given. A usage error when the keys do not load."""
    opt = config.getoption
    serial = opt("--meter-serial") or (serial if opt("--meter-keystore") else None)
    if opt("--rig") not in ("bench", "labgrid") or not (opt("--meter-key-file") or serial):
        return None
    from host_tools import keystore
    try:
        return keystore.load_hls_keys(opt("--meter-key-file"), serial, opt("--meter-keystore"))
    except keystore.KeystoreError as e:
        raise pytest.UsageError("--rig %s: %s" % (opt("--rig"), e))


def _lg_env(config):
    """labgrid's --lg-env value (None without labgrid's plugin or the option)."""
    try:
        return config.getoption("lg_env")
    except ValueError:
        return None


def _choose_vm(config):
    """The binary the options name (None: find_micropython's default) and the session's heap:
    ``--vm32`` picks the 32-bit VM at VM32_HEAP, or leaves a notice line when it is missing."""
    path = config.getoption("--micropython")
    heap = config.getoption("--heap")
    _state.update(heap=heap or _WHEEL_HEAP, notice=None, vm32=False, raised={})
    if config.getoption("--vm32") and not path:
        path = find_vm32()
        if path:
            _state.update(heap=heap or VM32_HEAP, vm32=not heap)
            _state["notice"] = ("HIL on the 32-bit VM %s, heap %s (ESP32: %s, docs/MEMORY.md)"
                                % (path, _state["heap"], ESP32_HEAP))
        else:
            _state["notice"] = ("HIL on the 64-bit wheel at %s: 32-bit VM not found at %s"
                                % (_state["heap"], vm32_path()))
    return path


def pytest_unconfigure(config):
    if config.getoption("--micropython") or config.getoption("--vm32"):
        set_micropython(None)


def pytest_report_header(config):
    """``--vm32``: which VM the HIL tier runs on (a missing VM is one line, not silence)."""
    return _state["notice"]


def default_heap(node=None):
    """The heap (str, e.g. "56k") a rig gets when the test names none: ``--heap``, else VM32_HEAP
    on ``--vm32``'s VM (or the SIZE of ``node``'s heap32 marker), else 190k."""
    m = node.get_closest_marker("heap32") if node is not None and _state["vm32"] else None
    if m is None or heap_bytes(m.args[0]) <= heap_bytes(_state["heap"]):
        return _state["heap"]
    if ("heap32", m.args[0]) not in node.user_properties:
        node.user_properties.append(("heap32", m.args[0]))
    return m.args[0]


def pytest_runtest_logreport(report):
    if report.when == "teardown" and any(k == "heap32" for k, _ in report.user_properties):
        f = report.nodeid.split("::")[0].rsplit("/", 1)[-1]
        _state["raised"][f] = _state["raised"].get(f, 0) + 1


def pytest_terminal_summary(terminalreporter):
    """``--vm32``: the notice again, and the tests that ran above VM32_HEAP (heap32), one line."""
    raised = _state["raised"]
    if _state["notice"]:
        terminalreporter.write_line(_state["notice"])
    if raised:
        terminalreporter.write_line(
            "HIL on the 32-bit VM: %d test(s) ran above %s (heap32 marker, docs/MEMORY.md): %s"
            % (sum(raised.values()), VM32_HEAP,
               ", ".join("%s %d" % kv for kv in sorted(raised.items()))))


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
    if kind in ("bench", "labgrid") and config:         # PicoRig provisions its own config.json
        pytest.skip("--rig %s cannot provision a custom config" % kind)
    if kind == "labgrid":
        from .labgrid_rig import LabgridRig
        target = request.getfixturevalue("target")
        keys = _state["keys"] or _meter_keys(request.config, LabgridRig.board_serial(target))
        return LabgridRig(target, password=opt("--meter-password"), keys=keys)
    if kind == "bench":
        port = opt("--meter-port")
        if not port:
            pytest.skip("--rig bench needs --meter-port")
        return BenchRig(port, modbus_port=opt("--modbus-port"),
                        power_switch=_power_switch(opt("--power-cmd")),
                        password=opt("--meter-password"), keys=_state["keys"],
                        relay_sense=sense_command(opt("--relay-sense-cmd")))
    if opt("--rig") == "pico":
        return _make_pico(workdir, config, sts, dict(kw, heap=heap) if heap else kw)
    if sts:
        from hil import identity
        config = dict(config or {})
        config.setdefault("sts", identity.sts_config())
        start = kw.pop("start", True)
        rig = EmulatedRig(workdir, heap=heap or default_heap(request.node), config=config,
                          start=False, **kw)
        identity.install_tables(rig.state_dir)
        if start:
            try:
                rig.start()
            except Exception:
                rig.stop()
                raise
        return rig
    return EmulatedRig(workdir, heap=heap or default_heap(request.node), config=config, **kw)


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
    client (SAP 1) by ``rig.management_client()``: HLS with ``rig.management_keys`` (a meter
    provisioned with keys: ``--meter-key-file``/``--meter-serial`` on a bench), else the LLS
    password ``rig.management_password``. Released and closed after the test."""
    rig.require("dlms")
    with rig.management_client() as c:
        yield c


@pytest.fixture
def rig_factory(request, tmp_path):
    """Start rigs with custom provisioning: ``rig_factory(config={...}, heap="56k")``; each is
    checked against the test's ``needs`` markers (skip with the reason)."""
    made = []
    needs = _needs(request)

    def factory(config=None, heap=None, name=None, **kw):
        workdir = tmp_path / (name or "rig%d" % len(made))
        r = _make_rig(request, workdir, config=config, heap=heap, **kw)
        made.append(r)
        _register(request, r)
        r.require(*needs)
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


class HilTimeout(Exception):
    """A HIL test ran past ``--hil-timeout`` (e.g. the meter ran out of memory and a client
    waits for an answer that never comes)."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """``--hil-timeout``: SIGALRM in the test's (main) thread raises HilTimeout after the limit,
    for tests marked ``hil`` and not ``slow``; the rig fixtures then stop the meter."""
    import signal
    import threading
    limit = item.config.getoption("--hil-timeout") or 0
    if (limit <= 0 or item.get_closest_marker("hil") is None or item.get_closest_marker("slow")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return

    def expired(signum, frame):
        raise HilTimeout("HIL test still running after %g s (--hil-timeout)" % limit)

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


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
