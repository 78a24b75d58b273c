"""Minimal test runner that works on MicroPython (no unittest there) and CPython.

Usage: micropython tests/support/mpy_runner.py MODULE [MODULE ...]
Imports each module (from MICROPYPATH / sys.path), calls every ``test_*`` function,
prints one line per failure and a closing ``N passed, N failed`` line. Exit code 1 on failure.
Tests are plain functions using ``assert``; a test may raise ``SkipTest`` to be skipped.
"""
import sys


class SkipTest(Exception):
    pass


def run(names):
    passed = failed = skipped = 0
    for name in names:
        mod = __import__(name)
        for part in name.split(".")[1:]:
            mod = getattr(mod, part)
        for attr in sorted(dir(mod)):
            if not attr.startswith("test_"):
                continue
            fn = getattr(mod, attr)
            if not callable(fn):
                continue
            try:
                fn()
                passed += 1
            except SkipTest as e:
                skipped += 1
                print("SKIP %s.%s: %s" % (name, attr, e))
            except Exception as e:  # report and go on
                failed += 1
                print("FAIL %s.%s: %s %s" % (name, attr, type(e).__name__, e))
                try:
                    sys.print_exception(e)
                except AttributeError:
                    import traceback
                    traceback.print_exc()
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return failed


if __name__ == "__main__":
    sys.exit(1 if run(sys.argv[1:]) else 0)
