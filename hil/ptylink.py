"""Pseudo-terminal wiring for the emulated bench (host side, CPython only).

`PtyLink` is a null-modem cable made of two pty pairs: whatever a program
writes to slave A comes out of slave B and vice versa.  A daemon thread
bridges the two masters with ``poll()`` and non-blocking I/O, counts the bytes
on the wire per direction, can show them to a tap, can put raw bytes on the
wire (garbage tests) and can reflect A's bytes back to A (the echo of an IEC
62056-21 optical head or a 2-wire RS-485 adapter).

`Pty` is a single raw pty pair whose master the rig keeps: the unix board's
control channel (ASCII lines, ``\\n``-terminated, see docs/CONTRACTS.md).

Both slave ends are put in raw mode (no echo, no CR/LF translation, no
XON/XOFF, 8 bits, VMIN=0 VTIME=0) and the rig keeps a slave fd open for the
life of the object, so the tty keeps its settings and the master never sees
EIO while the program on the far side restarts (a power cut).
"""

import errno
import os
import select
import termios
import threading
import tty

__all__ = ["PtyLink", "Pty", "PtyError", "A2B", "B2A", "make_raw"]

A2B = "a2b"
B2A = "b2a"
_DIRECTIONS = (A2B, B2A)
_READ_CHUNK = 4096
_DEFAULT_MAX_PENDING = 1 << 20  # bytes queued for a side nobody is reading


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


def _open_pair():
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


def _symlink(link_dir, name, target):
    if link_dir is None or name is None:
        return None
    link = os.path.join(str(link_dir), name)
    try:
        os.unlink(link)
    except FileNotFoundError:
        pass
    os.symlink(target, link)
    return link


class PtyLink:
    """Two raw pty pairs bridged by a thread: a virtual serial cable.

    Args:
        link_dir: optional directory for stable symlinks to the slave paths.
        names: (name_a, name_b) of those symlinks.
        echo: if true, bytes written by side A are also returned to side A
            (an optical head / RS-485 transceiver that hears itself).
        taps: optional dict {"a2b"|"b2a": callable(bytes)} called from the
            bridge thread with every chunk that crosses the wire.
        max_pending: bytes held per direction for a side that is not reading;
            beyond that the wire drops bytes (counted in ``dropped``).

    Attributes:
        a_path, b_path: slave device paths (``/dev/pts/N``) for the two ends.
        a_link, b_link: the symlinks, or None.
        counts: {"a2b": int, "b2a": int} bytes that crossed the wire
            (injected bytes included, echo not counted).
        dropped: {"a2b": int, "b2a": int} bytes discarded for overflow.
    """

    def __init__(self, link_dir=None, names=("a", "b"), echo=False, taps=None,
                 max_pending=_DEFAULT_MAX_PENDING):
        self._fds = []
        self._lock = threading.Condition()
        self._closed = False
        self.echo = bool(echo)
        self.max_pending = int(max_pending)
        self._taps = {A2B: None, B2A: None}
        for d, fn in (taps or {}).items():
            self.set_tap(d, fn)
        self.counts = {A2B: 0, B2A: 0}
        self.dropped = {A2B: 0, B2A: 0}
        try:
            self._ma, self._sa, self.a_path = _open_pair()
            self._fds += [self._ma, self._sa]
            self._mb, self._sb, self.b_path = _open_pair()
            self._fds += [self._mb, self._sb]
            self._wake_r, self._wake_w = os.pipe()
            self._fds += [self._wake_r, self._wake_w]
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self.a_link = _symlink(link_dir, names[0], self.a_path)
            self.b_link = _symlink(link_dir, names[1], self.b_path)
        except OSError as e:
            self._close_fds()
            raise PtyError("cannot create pty link: %s" % e) from e
        # Bytes waiting to be written to a master: key = destination master fd.
        self._pending = {self._ma: bytearray(), self._mb: bytearray()}
        self._error = None
        self._thread = threading.Thread(target=self._run, name="PtyLink", daemon=True)
        self._thread.start()

    # -- public API ---------------------------------------------------------

    def set_tap(self, direction, fn):
        """Install (or remove with None) the tap for "a2b" or "b2a"."""
        if direction not in _DIRECTIONS:
            raise ValueError("direction must be 'a2b' or 'b2a', got %r" % (direction,))
        self._taps[direction] = fn

    def inject(self, direction, data):
        """Put raw ``data`` on the wire as if sent by the source side.

        ``direction`` "a2b" delivers to B, "b2a" delivers to A.  Counted in
        ``counts`` like real traffic; not echoed.
        """
        if direction not in _DIRECTIONS:
            raise ValueError("direction must be 'a2b' or 'b2a', got %r" % (direction,))
        data = bytes(data)
        self._check_open()
        with self._lock:
            self.counts[direction] += len(data)
            self._queue(self._mb if direction == A2B else self._ma, direction, data)
        self._wake()

    def reset_counters(self):
        """Zero the byte counters (not the drop counters)."""
        with self._lock:
            self.counts[A2B] = 0
            self.counts[B2A] = 0

    def flush(self, side):
        """Discard bytes not yet read by side "a" or "b" (queued and in its tty).

        Used when the program on that side dies: a board without power does
        not receive what was sent meanwhile.
        """
        if side not in ("a", "b"):
            raise ValueError("side must be 'a' or 'b', got %r" % (side,))
        self._check_open()
        master, slave = (self._ma, self._sa) if side == "a" else (self._mb, self._sb)
        with self._lock:
            del self._pending[master][:]
            termios.tcflush(slave, termios.TCIFLUSH)
            self._lock.notify_all()

    def drain(self, timeout=5.0):
        """Wait until nothing is queued inside the bridge (both directions).

        Returns True if drained, False on timeout.
        """
        with self._lock:
            return self._lock.wait_for(
                lambda: not self._pending[self._ma] and not self._pending[self._mb],
                timeout)

    def wait_count(self, direction, n, timeout=5.0):
        """Wait until ``counts[direction] >= n``; returns True, False on timeout."""
        if direction not in _DIRECTIONS:
            raise ValueError("direction must be 'a2b' or 'b2a', got %r" % (direction,))
        with self._lock:
            return self._lock.wait_for(lambda: self.counts[direction] >= n, timeout)

    @property
    def error(self):
        """The exception that stopped the bridge thread, or None."""
        return self._error

    def close(self):
        """Stop the bridge thread, close all fds, remove the symlinks."""
        if self._closed:
            return
        self._closed = True
        self._wake()
        self._thread.join(timeout=5.0)
        for link in (self.a_link, self.b_link):
            if link:
                try:
                    os.unlink(link)
                except OSError:
                    pass
        self._close_fds()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- internals ----------------------------------------------------------

    def _check_open(self):
        if self._closed:
            raise PtyError("PtyLink is closed")
        if self._error is not None:
            raise PtyError("PtyLink bridge stopped: %r" % (self._error,))

    def _close_fds(self):
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _queue(self, dst, direction, data):
        buf = self._pending[dst]
        buf += data
        over = len(buf) - self.max_pending
        if over > 0:
            # The oldest bytes fall off the wire, as on a UART nobody reads.
            del buf[:over]
            self.dropped[direction] += over

    def _run(self):
        try:
            self._loop()
        except Exception as e:  # pragma: no cover - reported through .error
            if not self._closed:
                self._error = e

    def _loop(self):
        poller = select.poll()
        src_to = {self._ma: (self._mb, A2B), self._mb: (self._ma, B2A)}
        registered = {}
        while not self._closed:
            with self._lock:
                for fd in (self._ma, self._mb):
                    mask = select.POLLIN
                    if self._pending[fd]:
                        mask |= select.POLLOUT
                    if registered.get(fd) != mask:
                        poller.register(fd, mask)
                        registered[fd] = mask
            if self._wake_r not in registered:
                poller.register(self._wake_r, select.POLLIN)
                registered[self._wake_r] = select.POLLIN
            for fd, ev in poller.poll(1000):
                if self._closed:
                    return
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                    continue
                if ev & select.POLLOUT:
                    self._flush_pending(fd)
                if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    self._read_from(fd, *src_to[fd])

    def _read_from(self, src, dst, direction):
        try:
            data = os.read(src, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno == errno.EIO:  # no slave open; cannot happen while we hold one
                return
            raise
        if not data:
            return
        tap = self._taps[direction]
        with self._lock:
            self.counts[direction] += len(data)
            self._queue(dst, direction, data)
            if self.echo and src == self._ma:
                self._pending[self._ma] += data
            self._lock.notify_all()
        if tap is not None:
            try:
                tap(data)
            except Exception:  # a broken tap must not cut the cable
                pass
        self._flush_pending(dst)
        if self.echo and src == self._ma:
            self._flush_pending(self._ma)

    def _flush_pending(self, dst):
        with self._lock:
            buf = self._pending[dst]
            if not buf:
                return
            try:
                n = os.write(dst, buf)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.EIO:
                    return
                raise
            del buf[:n]
            if not buf:
                self._lock.notify_all()


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
            self._m, self._s, self.path = _open_pair()
            self._fds += [self._m, self._s]
            self._wake_r, self._wake_w = os.pipe()
            self._fds += [self._wake_r, self._wake_w]
            self.link = _symlink(link_dir, name, self.path)
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
                        data = os.read(self._m, _READ_CHUNK)
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
