"""Pseudo-terminal wiring for the emulated bench (host side, CPython only).

`PtyLink` is a null-modem cable made of two pty pairs: whatever a program
writes to slave A comes out of slave B and vice versa.  A daemon thread
bridges the two masters with ``poll()`` and non-blocking I/O, counts the bytes
on the wire per direction, can show them to a tap, can put raw bytes on the
wire (garbage tests) and can reflect A's bytes back to A (the echo of an IEC
62056-21 optical head or a 2-wire RS-485 adapter).

`Pty` (hil.rawpty, re-exported here) is a single raw pty pair whose master the rig keeps: the
unix board's control channel.

Both slave ends are put in raw mode (no echo, no CR/LF translation, no
XON/XOFF, 8 bits, VMIN=0 VTIME=0) and the rig keeps a slave fd open for the
life of the object, so the tty keeps its settings and the master never sees
EIO while the program on the far side restarts (a power cut).
"""

import errno
import fcntl
import os
import select
import struct
import termios
import threading
import time

from .rawpty import READ_CHUNK, Pty, PtyError, make_raw, open_pair, symlink

__all__ = ["PtyLink", "Pty", "PtyError", "A2B", "B2A", "make_raw"]

A2B = "a2b"
B2A = "b2a"
_DIRECTIONS = (A2B, B2A)
_DEFAULT_MAX_PENDING = 1 << 20  # bytes queued for a side nobody is reading


class PtyLink:
    """Two raw pty pairs bridged by a thread: a virtual serial cable.

    Args:
        link_dir: optional directory for stable symlinks to the slave paths.
        names: (name_a, name_b) of those symlinks.
        echo: if true, bytes written by side A are also returned to side A
            (an optical head / RS-485 transceiver that hears itself).
        taps: optional dict {"a2b"|"b2a": callable(bytes)} called from the
            bridge thread with every chunk the source side sent (before any filter).
        max_pending: bytes held per direction for a side that is not reading;
            beyond that the wire drops bytes (counted in ``dropped``).

    Attributes:
        a_path, b_path: slave device paths (``/dev/pts/N``) for the two ends.
        a_link, b_link: the symlinks, or None.
        counts: {"a2b": int, "b2a": int} bytes that crossed the wire
            (injected bytes included, bytes a filter held back not, echo not counted).
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
        self._filters = {A2B: None, B2A: None}
        for d, fn in (taps or {}).items():
            self.set_tap(d, fn)
        self.counts = {A2B: 0, B2A: 0}
        self.dropped = {A2B: 0, B2A: 0}
        try:
            self._ma, self._sa, self.a_path = open_pair()
            self._fds += [self._ma, self._sa]
            self._mb, self._sb, self.b_path = open_pair()
            self._fds += [self._mb, self._sb]
            self._wake_r, self._wake_w = os.pipe()
            self._fds += [self._wake_r, self._wake_w]
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self.a_link = symlink(link_dir, names[0], self.a_path)
            self.b_link = symlink(link_dir, names[1], self.b_path)
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

    def set_filter(self, direction, fn):
        """Install (or remove with None) the filter for "a2b" or "b2a": ``fn(bytes) -> bytes``
        is called from the bridge thread with each chunk the source sent and returns what goes
        on to the destination now (b"" holds everything back; the filter's owner may deliver
        it later with `inject`). A filter that raises passes the chunk unchanged. Used by
        `hil.linenoise.LineNoise` (noise on the Modbus line)."""
        if direction not in _DIRECTIONS:
            raise ValueError("direction must be 'a2b' or 'b2a', got %r" % (direction,))
        self._filters[direction] = fn

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
            self._lock.notify_all()
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
        master, slave = self._side(side)
        self._check_open()
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

    def unread(self, side):
        """Bytes the program on side "a" or "b" has not read yet: queued in the bridge plus
        waiting in its tty (FIONREAD on the slave)."""
        master, slave = self._side(side)
        with self._lock:
            queued = len(self._pending[master])
        buf = fcntl.ioctl(slave, termios.FIONREAD, b"\0\0\0\0")
        return queued + struct.unpack("i", buf)[0]

    def wait_quiet(self, quiet_s, timeout=10.0, side="a"):
        """Wait until no byte has crossed the wire (either way, by ``counts``) for ``quiet_s``
        seconds and the program on ``side`` has read everything sent to it (`unread` == 0).

        Returns True, or False after ``timeout`` s. The window starts at the call.
        """
        self._side(side)
        deadline = time.monotonic() + timeout
        with self._lock:
            seen = dict(self.counts)
            since = time.monotonic()
            while True:
                now = time.monotonic()
                if self.counts != seen:
                    seen, since = dict(self.counts), now
                elif now - since >= quiet_s and self.unread(side) == 0:
                    return True
                left = deadline - now
                if left <= 0:
                    return False
                rest = quiet_s - (now - since)
                # a byte wakes us (notify); the reader emptying its tty gives no event: look again
                self._lock.wait(min(left, rest if rest > 0 else min(quiet_s, 0.02) or 0.001))

    @property
    def running(self):
        """True while the bridge thread moves bytes (False once closed)."""
        return self._thread.is_alive()

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

    def _side(self, side):
        if side not in ("a", "b"):
            raise ValueError("side must be 'a' or 'b', got %r" % (side,))
        return (self._ma, self._sa) if side == "a" else (self._mb, self._sb)

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
            data = os.read(src, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno == errno.EIO:  # no slave open; cannot happen while we hold one
                return
            raise
        if not data:
            return
        tap = self._taps[direction]
        out = data
        filt = self._filters[direction]
        if filt is not None:
            try:
                out = bytes(filt(data))
            except Exception:  # a broken filter must not cut the cable
                out = data
        with self._lock:
            self.counts[direction] += len(out)
            self._queue(dst, direction, out)
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
