"""A cable with a switch between a DLMS client and a meter's port: it can drop the meter's
answer after a chosen request (host side, CPython only).

``LineCut(port)`` opens ``port`` (e.g. ``rig.port``) as the client would and gives the client a
new raw pty at ``path``; a thread moves bytes both ways unchanged until a cut is armed::

    with LineCut(rig.port) as cut:
        cut.arm(is_action_request, heal=is_snrm)   # next ACTION reaches the meter, its answer
        run_client(cut.path)                       # (and everything after) is lost until the
        cut.cuts, cut.dropped                      # client's next SNRM

The client's frames are parsed (``protocol.hdlc_client.FrameStream``) as they pass; when a
frame matching the armed predicate has been passed on whole, every byte from the meter is
dropped until a client frame matches ``heal`` (then that frame passes and the line is whole
again) or ``heal_now()``. The request is delivered before the cut closes: the meter acts on
it, the client never hears. ``wait_frames(n)`` waits for the client's n-th frame (moments for
Ctrl-C); ``frames`` counts them. The rig's own PtyLink is not touched.

Predicates: ``is_action_request(frame)``, ``is_snrm(frame)``.
"""

import os
import select
import threading

from protocol import hdlc_client as hdlc

from .rawpty import READ_CHUNK, open_pair

__all__ = ["LineCut", "is_action_request", "is_snrm"]


def is_action_request(frame):
    """An I-frame carrying an ACTION-Request (0xC3) after the LLC header."""
    return hdlc.kind(frame.ctrl) == hdlc.K_I and frame.info[:4] == hdlc.LLC_REQUEST + b"\xc3"


def is_snrm(frame):
    """A SNRM (the client (re)starting its link)."""
    return hdlc.kind(frame.ctrl) == hdlc.K_SNRM


class LineCut:
    """See the module docstring. ``path`` is the client's end; ``close()`` stops everything."""

    def __init__(self, port):
        self._master, self._slave, self.path = open_pair()
        self._far = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self._cond = threading.Condition()
        self._stream = hdlc.FrameStream(skip_bad=True)
        self._trigger = self._heal = None
        self.cut = False
        self.cuts = 0            # times the line was cut
        self.dropped = 0         # bytes from the meter thrown away
        self.frames = 0          # client frames seen
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="LineCut", daemon=True)
        self._thread.start()

    def arm(self, trigger, heal=is_snrm):
        """Cut after the next client frame for which ``trigger(frame)`` is true; heal when a
        client frame matches ``heal`` (None: only ``heal_now``)."""
        with self._cond:
            self._trigger, self._heal = trigger, heal

    def disarm(self):
        """Forget an armed trigger that has not fired (a cut in place stays)."""
        with self._cond:
            self._trigger = None

    def heal_now(self):
        """Make the line whole again now."""
        with self._cond:
            self.cut = False
            self._cond.notify_all()

    def wait_frames(self, n, timeout=10.0):
        """Wait until the client has sent ``n`` frames (``frames``); True, False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.frames >= n or self._closed, timeout) and not self._closed

    def reset(self):
        """Zero ``frames`` and disarm (between clients)."""
        with self._cond:
            self.frames = 0
            self._trigger = None

    def close(self):
        """Stop the thread and close the ptys."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        for fd in (self._master, self._slave, self._far, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _run(self):
        while not self._closed:
            r, _, _ = select.select([self._master, self._far, self._wake_r], [], [], 1.0)
            if self._master in r:
                data = self._read(self._master)
                if data:
                    _write_all(self._far, data)
                    self._client_bytes(data)
            if self._far in r:
                data = self._read(self._far)
                if data:
                    with self._cond:
                        drop = self.cut
                        if drop:
                            self.dropped += len(data)
                    if not drop:
                        _write_all(self._master, data)

    @staticmethod
    def _read(fd):
        try:
            return os.read(fd, READ_CHUNK)
        except (BlockingIOError, OSError):
            return b""

    def _client_bytes(self, data):
        """Parse the client's frames: count them, fire the trigger, heal."""
        self._stream.feed(data)
        while True:
            item = self._stream.pop()
            if item is None:
                return
            frame = item[1]
            if frame is None:
                continue
            with self._cond:
                self.frames += 1
                if self.cut and self._heal is not None and self._heal(frame):
                    self.cut = False
                if self._trigger is not None and self._trigger(frame):
                    self._trigger = None
                    self.cut = True
                    self.cuts += 1
                self._cond.notify_all()


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        except OSError:
            return
        view = view[n:]
