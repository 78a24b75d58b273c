"""HDLC receive helpers shared by the device-tier tests (runs on MicroPython and CPython: the
device runner puts tests/support on MICROPYPATH)."""


def drain(rx):
    """Every complete frame the receiver ``rx`` holds now, in order (``rx.pop()`` until None)."""
    out = []
    while True:
        f = rx.pop()
        if f is None:
            return out
        out.append(f)
