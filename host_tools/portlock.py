"""One command per meter port: an advisory lock file that names its holder.

Two programs talking HDLC on one serial port at once corrupt each other's frames, and a
top-up can then be applied while both report a failure. ``DlmsClient`` opens its port with
pyserial's ``exclusive=True`` (``flock`` on POSIX), which stops any second opener; this module
adds a lock file per port under the meterctl state directory that records the holder's pid and
command, so that the refusal can say who holds the port::

    with portlock.hold("/dev/ttyUSB0", "meterctl credit add"):
        ...                       # PortInUse("/dev/ttyUSB0 is in use by pid 4242 (meterctl read)")

The lock is ``flock`` on ``<state>/ports/<port>.lock`` (released by the kernel when the holder
dies, so a stale file never blocks); the last release removes the file (only while still holding
it, and a taker checks that the file it locked is still the one at the path), and a port that
does not exist gets no lock file. Within one process the lock is counted: nested ``hold`` of
the same port (a command that reconnects to check its outcome) keeps it without a gap.
The port is named by its real path, so a symlink and its target are one port; pyserial URLs
(``socket://``, ``loop://``) are not files and get no lock file.

Public API: ``state_dir()``, ``lock_path(port)``, ``hold(port, command)`` (context manager),
``acquire(port, command) -> PortLock`` with ``release()``, ``PortInUse`` (``port``, ``holder``).
"""

import errno
import fcntl
import os
import threading

__all__ = ["PortInUse", "PortLock", "acquire", "hold", "lock_path", "state_dir", "port_key"]

_held = {}                 # lock path -> [fd, count] held by this process
_guard = threading.Lock()


class PortInUse(Exception):
    """Another process holds the port. ``holder`` is "pid N (command)" when known, else a
    description; ``str()`` is the one-line message ``<port> is in use by <holder>``."""

    def __init__(self, port, holder=None):
        self.port = port
        self.holder = holder or "another program"
        Exception.__init__(self, "%s is in use by %s" % (port, self.holder))


def state_dir():
    """meterctl's state directory: ``$METERCTL_STATE_DIR``, else ``$XDG_STATE_HOME/meterctl``,
    else ``~/.local/state/meterctl`` (not created here)."""
    return os.environ.get("METERCTL_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "meterctl")


def port_key(port):
    """The port's identity: the real path of a device file (symlinks followed), else the
    string itself (a pyserial URL)."""
    if "://" in port:
        return port
    return os.path.realpath(port)


def lock_path(port):
    """``<state>/ports/<real path with / as _>.lock`` for a device path; None for a URL."""
    key = port_key(port)
    if "://" in key:
        return None
    name = key.strip("/").replace("/", "_") or "root"
    return os.path.join(state_dir(), "ports", name + ".lock")


class PortLock:
    """A held port lock (see ``acquire``); ``release()`` is idempotent."""

    def __init__(self, path):
        self.path = path
        self._released = path is None

    def release(self):
        """Drop this hold; the lock file's flock goes with the process's last hold."""
        if self._released:
            return
        self._released = True
        with _guard:
            entry = _held.get(self.path)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del _held[self.path]
                if _is_at_path(entry[0], self.path):
                    try:
                        os.unlink(self.path)   # still ours (flocked): no stale file stays behind
                    except OSError:
                        pass
                os.close(entry[0])       # closing the description drops the flock

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def _is_at_path(fd, path):
    """True when ``path`` still names the file open on ``fd`` (not unlinked or replaced)."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _holder_text(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    pid, _, command = text.partition(" ")
    if not pid.isdigit():
        return "another meterctl"
    return "pid %s (%s)" % (pid, command) if command else "pid %s" % pid


def acquire(port, command="meterctl"):
    """Take the lock of ``port`` for ``command`` (text recorded for whoever is refused).

    Returns a ``PortLock``. Raises PortInUse when another process holds it. A state directory
    that cannot be written (read-only home) gives a PortLock that locks nothing: the
    exclusive open of the port itself still stops a second opener.
    """
    path = lock_path(port)
    if path is None or not os.path.exists(port_key(port)):
        return PortLock(None)          # a URL, or no such port: its open fails, no lock file left
    with _guard:
        entry = _held.get(path)
        if entry is not None:
            entry[1] += 1
            return PortLock(path)
        fd = _lock_file(port, path)
        if fd is None:
            return PortLock(None)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, ("%d %s\n" % (os.getpid(), command)).encode("utf-8", "replace"))
        except OSError:
            pass
        _held[path] = [fd, 1]
        return PortLock(path)


def _lock_file(port, path):
    """flock the lock file at ``path`` -> fd (None: the state directory is not writable).
    Retries when the holder removed the file between our open and our flock. Raises PortInUse."""
    for _ in range(20):
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _holder_text(fd) if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
            os.close(fd)
            raise PortInUse(port, holder)
        if _is_at_path(fd, path):
            return fd
        os.close(fd)                   # its holder released and removed it: take the new file
    return None


def hold(port, command="meterctl"):
    """``acquire`` as a context manager: ``with hold(port, cmd): ...``. Raises PortInUse."""
    return acquire(port, command)
