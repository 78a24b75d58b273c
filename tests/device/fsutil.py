"""Temporary directories for device tests, on MicroPython and CPython (no tempfile/shutil there)."""
import os


def tmpdir(tag):
    d = "/tmp/mpt_%s_%s" % (tag, "".join("%02x" % b for b in os.urandom(4)))
    os.mkdir(d)
    return d


def rmtree(d):
    for name in os.listdir(d):
        p = d + "/" + name
        try:
            os.remove(p)
        except OSError:
            rmtree(p)
    os.rmdir(d)
