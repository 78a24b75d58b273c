"""Raw pseudo-terminals (host side, CPython only): the building blocks of `hil.ptylink`.

- `make_raw(fd)`: raw mode, VMIN=0 VTIME=0, no echo, no CR/LF translation, no XON/XOFF.
- `open_pair()`: a raw pty pair -> (master fd non-blocking, slave fd, slave path).
- `symlink(link_dir, name, target)`: a stable name for a slave path.
- `Pty`: one raw pty pair whose master the rig keeps, line-oriented: the unix board's control
  channel (ASCII lines, ``\\n``-terminated, see docs/CONTRACTS.md).

The rig keeps a slave fd open for the life of the object, so the tty keeps its settings and the
master never sees EIO while the program on the far side restarts (a power cut).
"""

import errno
import os
import select
import termios
import threading
import tty

__all__ = ["Pty", "PtyError", "make_raw", "open_pair", "symlink", "READ_CHUNK"]

READ_CHUNK = 4096


class PtyError(Exception):
    """A pty could not be created, configured or used."""


def make_raw(fd):
    """Put the tty behind ``fd`` in raw mode with VMIN=0, VTIME=0.

    Raw means: no echo, no canonical line editing, no CR/LF translation on
    input or output, no XON/XOFF (0x11/0x13 pass through), no signals, 8 data
    bits.  Settings belong to the tty, so every opener of the slave sees them
    until it changes them itself.
    """
    tty.setraw(fd, termios.TCSANOW)
    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(termios.IXON | termios.IXOFF | termios.IXANY | termios.ICRNL
                  | termios.INLCR | termios.IGNCR | termios.ISTRIP)
    attrs[1] &= ~termios.OPOST
    attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG
                  | termios.IEXTEN)
    attrs[6][termios.VMIN] = 0
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def open_pair():
    """A raw pty pair: (master fd, non-blocking; slave fd, raw; slave path)."""
    master, slave = os.openpty()
    try:
        make_raw(slave)
        os.set_blocking(master, False)
        path = os.ttyname(slave)
    except Exception:
        os.close(master)
        os.close(slave)
        raise
    return master, slave, path


def symlink(link_dir, name, target):
    """Symlink ``link_dir/name`` -> ``target`` (replacing one); its path, or None without a dir/name."""
    if link_dir is None or name is None:
        return None
    link = os.path.join(str(link_dir), name)
    try:
        os.unlink(link)
    except FileNotFoundError:
        pass
    os.symlink(target, link)
    return link



class Pty:
    """One raw pty pair; the rig keeps the master (the unix board's ``ctl``).

    Args:
        on_line: optional callable(str) run in the reader thread for every
            complete line (without the ``\\n``; a trailing ``\\r`` stripped).
            If None, lines go to a queue read with `read_line`.
        link_dir, name: optional stable symlink to the slave path.

    Attributes:
        path: the slave device path to hand to the program.
    """

    def __init__(self, on_line=None, link_dir=None, name="ctl"):
        import queue

        self._on_line = on_line
        self._queue = queue.Queue()
        self._closed = False
        self._wlock = threading.Lock()
        self._fds = []
        try:
            self._m, self._s, self.path = open_pair()
            self._fds += [self._m, self._s]
            self._wake_r, self._wake_w = os.pipe()
            self._fds += [self._wake_r, self._wake_w]
            self.link = symlink(link_dir, name, self.path)
        except OSError as e:
            for fd in self._fds:
                os.close(fd)
            raise PtyError("cannot create pty: %s" % e) from e
        self._error = None
        self._thread = threading.Thread(target=self._run, name="Pty", daemon=True)
        self._thread.start()

    def write_line(self, s, timeout=5.0):
        """Send ``s`` + "\\n" (ASCII) to the program.

        Raises PtyError if the tty does not accept it within ``timeout``
        seconds (nobody reading and the tty buffer full).
        """
        if self._closed:
            raise PtyError("Pty is closed")
        if "\n" in s:
            raise ValueError("control line must not contain a newline: %r" % (s,))
        data = (s + "\n").encode("ascii")
        deadline = _now() + timeout
        with self._wlock:
            while data:
                try:
                    n = os.write(self._m, data)
                    data = data[n:]
                except BlockingIOError:
                    left = deadline - _now()
                    if left <= 0:
                        raise PtyError("control pty full: %r not delivered" % (s,))
                    select.select([], [self._m], [], min(left, 0.1))

    def read_line(self, timeout=5.0):
        """Next line from the queue (only without ``on_line``); None on timeout."""
        import queue

        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def flush_input(self):
        """Discard what was written to the program but not yet read by it."""
        if not self._closed:
            termios.tcflush(self._s, termios.TCIFLUSH)

    @property
    def error(self):
        """The exception that stopped the reader thread, or None."""
        return self._error

    def close(self):
        """Stop the reader thread and close the fds."""
        if self._closed:
            return
        self._closed = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(timeout=5.0)
        if self.link:
            try:
                os.unlink(self.link)
            except OSError:
                pass
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _run(self):
        buf = bytearray()
        poller = select.poll()
        poller.register(self._m, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while not self._closed:
                for fd, _ev in poller.poll(1000):
                    if fd == self._wake_r or self._closed:
                        continue
                    try:
                        data = os.read(self._m, READ_CHUNK)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        if e.errno == errno.EIO:
                            continue
                        raise
                    buf += data
                    while True:
                        i = buf.find(b"\n")
                        if i < 0:
                            break
                        line = bytes(buf[:i]).rstrip(b"\r").decode("ascii", "replace")
                        del buf[:i + 1]
                        self._dispatch(line)
        except Exception as e:  # pragma: no cover - reported through .error
            if not self._closed:
                self._error = e

    def _dispatch(self, line):
        if self._on_line is None:
            self._queue.put(line)
            return
        try:
            self._on_line(line)
        except Exception as e:  # keep reading; remember the first failure
            if self._error is None:
                self._error = e


def _now():
    import time

    return time.monotonic()
