"""One command per port (host_tools.portlock and the client's exclusive open): a second
command at a held port exits 2 at once with one line naming the holder."""

import os
import subprocess
import sys
import select
import textwrap

import pytest
from click.testing import CliRunner

from host_tools import portlock
from host_tools.client import DlmsClient, PortInUse
from host_tools.firmware_src import ROOT
from host_tools.meterctl.cli import meterctl


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


@pytest.fixture
def pty_path(pty_pair):
    return pty_pair[1]


@pytest.fixture
def holder(pty_path):
    """Another process that holds ``pty_path`` as ``meterctl credit add`` would (lock file
    and exclusive open) until its stdin closes."""
    code = textwrap.dedent("""
        import sys
        from host_tools import portlock
        from host_tools.client import DlmsClient
        lock = portlock.acquire(sys.argv[1], "meterctl credit add")
        c = DlmsClient(sys.argv[1]); c.open()
        print("held", flush=True)
        sys.stdin.read()
    """)
    p = subprocess.Popen([sys.executable, "-c", code, pty_path], cwd=str(ROOT), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.stdout.readline().strip() == "held"
    yield p
    p.stdin.close()
    p.wait(10)


def test_lock_is_per_port_counted_in_process_and_released(tmp_path, pty_path):
    a = portlock.acquire(pty_path, "one")
    b = portlock.acquire(pty_path, "two")            # same process: nested, no gap
    path = portlock.lock_path(pty_path)
    assert path.startswith(portlock.state_dir()) and os.path.exists(path)
    with open(path) as f:
        assert f.read() == "%d one\n" % os.getpid()
    a.release()
    a.release()                                       # idempotent
    b.release()
    with portlock.hold(pty_path, "three"):
        pass


def test_symlink_and_target_are_one_port(tmp_path, pty_path):
    link = tmp_path / "meter"
    link.symlink_to(pty_path)
    assert portlock.lock_path(str(link)) == portlock.lock_path(pty_path)
    assert portlock.lock_path("socket://localhost:4059") is None
    assert portlock.acquire("loop://", "x").path is None


def test_second_process_is_refused_naming_the_holder(holder, pty_path):
    with pytest.raises(portlock.PortInUse) as e:
        portlock.acquire(pty_path, "meterctl read")
    assert str(e.value) == "%s is in use by pid %d (meterctl credit add)" % (pty_path, holder.pid)


def test_client_opens_exclusively(pty_path):
    a = DlmsClient(pty_path)
    a.open()
    try:
        with pytest.raises(PortInUse) as e:
            DlmsClient(pty_path).open()
        assert str(e.value) == "%s is in use by another program" % pty_path
    finally:
        a.close()
    b = DlmsClient(pty_path)
    b.open()                                          # released with the close
    b.close()


@pytest.mark.parametrize("args", [
    ["read"],
    ["credit", "add", "--amount", "5", "--password", "x"],
    ["relay", "disconnect", "--password", "x"],
    ["set", "0.0.1.0.0.255", "2", "--value", "date-time:2026-01-01T10:00:00", "--password", "x"],
    ["config", "show", "--password", "x"],
])
def test_cli_at_a_held_port_exits_2_at_once_with_one_line(holder, pty_pair, args):
    master, pty_path = pty_pair
    r = CliRunner().invoke(meterctl, args[:1] + args[1:] + ["--port", pty_path, "--timeout", "5"])
    assert r.exit_code == 2, r.output
    assert r.stderr == "meterctl: error: %s is in use by pid %d (meterctl credit add)\n" % (pty_path, holder.pid)
    assert r.stdout == ""
    assert select.select([master], [], [], 0)[0] == []      # at once: not a byte sent
