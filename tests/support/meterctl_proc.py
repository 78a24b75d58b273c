"""`meterctl` of this checkout as a subprocess: ``Emulate`` (a running `meterctl emulate`, its banner
read) and ``meterctl`` (one command run to the end). Used by the HIL tests of the emulator's
behaviour (test_findings_hil, test_profiles_newuser)."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


class Emulate:
    """`python -m host_tools.meterctl emulate` of this checkout; reads its banner."""

    def __init__(self, *args, env=None, stdin=None):
        self.p = subprocess.Popen([sys.executable, "-m", "host_tools.meterctl", "emulate", *args], cwd=str(ROOT),
                                  stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=dict(env or os.environ, PYTHONPATH=str(ROOT)))
        self.info = {}
        self.banner = []                            # its lines as printed
        for line in self.p.stdout:                  # blocks until the banner is out
            self.banner.append(line.rstrip("\n"))
            key, sep, value = line.partition(":")
            if sep:
                self.info[key.strip()] = value.strip()
            if line.startswith("Stop with Ctrl-C"):
                break
        assert "DLMS serial port" in self.info, self.p.stderr.read()

    def finish(self, timeout=60):
        out, err = self.p.communicate(timeout=timeout)
        return self.p.returncode, out, err

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def meterctl(*args):
    """`python -m host_tools.meterctl ARGS` of this checkout, run to the end (CompletedProcess)."""
    return subprocess.run([sys.executable, "-m", "host_tools.meterctl", *args], capture_output=True, text=True,
                          timeout=60, cwd=str(ROOT))
