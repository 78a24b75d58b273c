"""The command line of the bench scripts: ``--help`` prints the script's docstring (what it
measures) and its options with their units; a bad argument is one ``error:`` line and exit 2
(argparse), before anything runs."""
import argparse


def parser(doc):
    """An ArgumentParser whose help is ``doc`` as written (the script's docstring)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def at_least(low):
    """An argparse ``type``: an integer >= ``low``; "0", "-3" and "ten" are one error line."""
    def whole(text):
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not a whole number" % text)
        if n < low:
            raise argparse.ArgumentTypeError("%d: give %d or more" % (n, low))
        return n
    return whole


count = at_least(1)     # a positive integer


def vm_option(ap):
    """``--vm unix|vm32|both``: which MicroPython binaries the script measures."""
    ap.add_argument("--vm", choices=("both", "unix", "vm32"), default="both",
                    help="which VM to measure: the 64-bit unix port, the 32-bit VM, or both "
                         "(default; the 32-bit VM is skipped when absent)")
