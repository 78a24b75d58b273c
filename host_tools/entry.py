"""Console-script entry point for ``meterctl``: imports the CLI lazily so that a Ctrl-C while the
libraries load ends with one line and exit code 130, like a Ctrl-C anywhere else."""
import sys


def main():
    try:
        from host_tools.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    return cli_main()
