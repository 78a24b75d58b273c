"""Console-script entry point for ``meterctl`` (and ``python -m host_tools.meterctl``).

Imports the CLI lazily so that a Ctrl-C while the libraries load ends with one line and exit
code 130, like a Ctrl-C anywhere else.
"""
import sys


def main():
    """Run meterctl on ``sys.argv``; exits with meterctl's exit code."""
    try:
        from host_tools.meterctl.cli import main as cli_main
        from host_tools.meterctl.common import PROCESS
        PROCESS["owned"] = True      # a change's reported outcome is final: no late Ctrl-C
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    return cli_main()


if __name__ == "__main__":
    main()
