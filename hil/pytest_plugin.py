"""pytest plugin: pick a rig on the command line, hand tests a `rig` fixture.

Load it from tests/conftest.py with ``pytest_plugins = ["hil.pytest_plugin"]``.

Options:
    --rig emulated|bench|pico   which rig (default: emulated; pico = hil.picorig.PicoRig)
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

When a test fails, its report gets a "firmware log" section with the tail of
the firmware's output and the last control lines.
"""

import pytest

from .bench import BenchRig
from .emulated import EmulatedRig
from .env import MICROPYTHON_ENV, find_micropython, set_micropython
from .rig import RigError

_RIGS_KEY = "_hil_rigs"


def pytest_addoption(parser):
    group = parser.getgroup("hil", "hardware-in-the-loop rig")
    group.addoption("--rig", choices=("emulated", "bench", "pico"), default="emulated",
                    help="rig to run HIL tests on (default: emulated; pico: hil.picorig)")
    group.addoption("--meter-port", default=None,
                    help="bench rig: serial port of the meter's DLMS UART")
    group.addoption("--modbus-port", default=None,
                    help="bench rig: USB-RS485 port for the PZEM-004T emulator")
    group.addoption("--power-cmd", default=None,
                    help="bench rig: shell command switching the board's supply; "
                         "'{state}' becomes on/off (e.g. 'uhubctl -l 1-1 -p 2 -a {state}')")
    group.addoption("--heap", default="190k",
                    help="emulated rig: MicroPython heap size (default 190k)")
    group.addoption("--micropython", default=None, metavar="PATH",
                    help="emulated rig: MicroPython unix port binary (default: $%s, then the "
                         "one next to this Python, then PATH)" % MICROPYTHON_ENV)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "hil: runs the firmware on the MicroPython unix port behind ptys")
    path = config.getoption("--micropython")
    if path:
        set_micropython(path)
        try:
            find_micropython()  # a wrong path fails the run here, once, with its reason
        except RigError as e:
            raise pytest.UsageError(str(e))


def pytest_unconfigure(config):
    if config.getoption("--micropython"):
        set_micropython(None)


def _make_rig(request, workdir, config=None, heap=None, sts=False, **kw):
    """``sts=True`` provisions the emulated meter with the STS test identity (hil.identity):
    decoder key in config.json and the sample EA07 tables in its filesystem."""
    opt = request.config.getoption
    if opt("--rig") == "bench":
        port = opt("--meter-port")
        if not port:
            pytest.skip("--rig bench needs --meter-port")
        if config:
            pytest.skip("bench rig cannot provision a custom config")
        return BenchRig(port, modbus_port=opt("--modbus-port"),
                        power_switch=_power_switch(opt("--power-cmd")))
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
    """A started rig for this test; stopped (process group killed) afterwards."""
    r = _make_rig(request, tmp_path / "rig")
    _register(request, r)
    try:
        yield r
    finally:
        r.stop()


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
