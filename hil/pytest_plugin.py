"""pytest plugin: pick a rig on the command line, hand tests a `rig` fixture.

Load it from tests/conftest.py with ``pytest_plugins = ["hil.pytest_plugin"]``.

Options:
    --rig emulated|bench   which rig (default: emulated)
    --meter-port PATH      bench: the board's DLMS serial port
    --modbus-port PATH     bench: USB-RS485 adapter for the PZEM emulator
    --power-cmd CMD        bench: shell command switching the supply ({state} = on/off)
    --heap SIZE            emulated: MicroPython heap, e.g. 190k (ESP32: 56k); default 190k,
                           56k on the 32-bit VM chosen by --vm32
    --micropython PATH     emulated: the MicroPython unix port to run (any build)
    --vm32                 emulated: run on the 32-bit VM (hil.env.vm32_path, ../shared beside
                           the checkout) at ESP32's 56k when it is there, else on the 64-bit
                           wheel at 190k with one notice line (``make test`` passes it)
    @pytest.mark.heap32(SIZE, WHY)
                           a test that does not fit ESP32's 56k yet: on --vm32's VM (without
                           --heap) its rigs get SIZE instead; the run ends with one line
                           listing them (docs/MEMORY.md "32-bit": what still holds the heap)
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
                 stopped after the test), for custom provisioning or heap

When a test fails, its report gets a "firmware log" section with the tail of
the firmware's output and the last control lines.
"""

import pytest

from .bench import BenchRig
from .emulated import EmulatedRig
from .env import (MICROPYTHON_ENV, VM32_HEAP, find_micropython, find_vm32, set_micropython,
                  vm32_path)
from .rig import RigError

_RIGS_KEY = "_hil_rigs"
_WHEEL_HEAP = "190k"
# the session's default heap, its notice line, whether it is --vm32's 56k (then a test's heap32
# marker applies) and the tests that ran above it
_state = {"heap": _WHEEL_HEAP, "notice": None, "vm32": False, "raised": []}


def pytest_addoption(parser):
    group = parser.getgroup("hil", "hardware-in-the-loop rig")
    group.addoption("--rig", choices=("emulated", "bench"), default="emulated",
                    help="rig to run HIL tests on (default: emulated)")
    group.addoption("--meter-port", default=None,
                    help="bench rig: serial port of the meter's DLMS UART")
    group.addoption("--modbus-port", default=None,
                    help="bench rig: USB-RS485 port for the PZEM-004T emulator")
    group.addoption("--power-cmd", default=None,
                    help="bench rig: shell command switching the board's supply; "
                         "'{state}' becomes on/off (e.g. 'uhubctl -l 1-1 -p 2 -a {state}')")
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
        "markers", "heap32(size, why): the heap this test needs on the 32-bit VM while it does "
                   "not fit ESP32's 56k (used on --vm32 without --heap)")
    path = config.getoption("--micropython")
    heap = config.getoption("--heap")
    _state.update(heap=heap or _WHEEL_HEAP, notice=None, vm32=False, raised=[])
    if config.getoption("--vm32") and not path:
        path = find_vm32()
        if path:
            _state["heap"] = heap or VM32_HEAP
            _state["vm32"] = not heap
            _state["notice"] = "HIL on the 32-bit VM %s, heap %s" % (path, _state["heap"])
        else:
            _state["notice"] = ("HIL on the 64-bit wheel at %s: 32-bit VM not found at %s"
                                % (_state["heap"], vm32_path()))
    if path:
        set_micropython(path)
        try:
            find_micropython()  # a wrong path fails the run here, once, with its reason
        except RigError as e:
            raise pytest.UsageError(str(e))


def pytest_unconfigure(config):
    if config.getoption("--micropython") or config.getoption("--vm32"):
        set_micropython(None)


def pytest_sessionstart(session):
    """``--vm32``: one line saying which VM the HIL tier runs on (a missing VM is not silent)."""
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if _state["notice"] and tr is not None:
        tr.write_line(_state["notice"])


def default_heap(node=None):
    """The heap (str, e.g. "56k") a rig gets when the test names none: ``--heap``, else 56k on
    ``--vm32``'s VM (or the SIZE of ``node``'s heap32 marker), else 190k."""
    m = node.get_closest_marker("heap32") if node is not None and _state["vm32"] else None
    if m is None:
        return _state["heap"]
    if node.nodeid not in _state["raised"]:
        _state["raised"].append(node.nodeid)
    return m.args[0]


def pytest_terminal_summary(terminalreporter):
    """``--vm32``: the tests that ran above 56k (heap32 marker), one line; none: nothing."""
    raised = _state["raised"]
    if raised:
        files = {}
        for n in raised:
            f = n.split("::")[0].rsplit("/", 1)[-1]
            files[f] = files.get(f, 0) + 1
        terminalreporter.write_line(
            "HIL on the 32-bit VM: %d test(s) ran above %s (heap32 marker, docs/MEMORY.md): %s"
            % (len(raised), VM32_HEAP, ", ".join("%s %d" % kv for kv in sorted(files.items()))))


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
