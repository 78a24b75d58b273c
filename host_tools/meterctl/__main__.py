"""Console-script entry point for ``meterctl`` (and ``python -m host_tools.meterctl``).

Imports the CLI lazily so that a Ctrl-C while the libraries load ends with one line and exit
code 130, like a Ctrl-C anywhere else. Once the command has finished (its exit code decided),
Ctrl-C is ignored: a late one cannot turn a completed command into "interrupted".
"""
import signal
import sys


def _unraisable(u, _default=sys.unraisablehook):
    # a Ctrl-C that lands in a callback of the import machinery (importlib's module-lock weakref)
    # is "ignored" by the interpreter with a traceback on stderr (CI, session 12): not one line
    if u.exc_type is not None and issubclass(u.exc_type, KeyboardInterrupt):
        return
    _default(u)


sys.unraisablehook = _unraisable


def main():
    """Run meterctl on ``sys.argv``; exits with meterctl's exit code."""
    try:
        from host_tools.meterctl.cli import main as cli_main
        from host_tools.meterctl.common import PROCESS
        PROCESS["owned"] = True      # a change's settled outcome is final: SIGINT stays ignored
        cli_main()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.stderr.write("meterctl: error: interrupted: nothing was sent\n")
        sys.exit(130)
    except SystemExit:
        signal.signal(signal.SIGINT, signal.SIG_IGN)     # done: the exit code stands
        raise


if __name__ == "__main__":
    main()
