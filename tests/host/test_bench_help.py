"""Every benchmark answers ``--help`` with its docstring and exit 0, without starting its run
(new-user pass, session 12: four ran the full benchmark, bench_timewarp printed a traceback)."""
import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("bench_*.py")))
def test_bench_help_is_its_usage_not_a_run(script):
    r = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and len(r.stdout.strip().splitlines()) >= 2
    assert "RESULT" not in r.stdout                  # the device scripts' figures: nothing ran


def _run(script, *args):
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("bench_*.py")))
def test_bench_bad_argument_is_one_error_line_exit_2(script):
    """argparse everywhere (new-user pass, session 15: six scripts ignored their arguments and
    ran the full benchmark, or printed a traceback): a wrong option stops before anything runs."""
    r = _run(script, "--no-such-option")
    assert r.returncode == 2, (r.stdout, r.stderr)
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and errors[0].startswith(script + ": error:"), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize("script, args, says", [
    ("bench_timewarp.py", ["ten"], "'ten' is not a whole number"),     # was a ValueError traceback
    ("bench_modbus.py", ["--polls", "0"], "give 1 or more"),
    ("bench_sts.py", ["--device-tokens", "5"], "give 61 or more"),     # 60 warm up the acceptor
    ("bench_dlms.py", ["--baud", "fast"], "is not a whole number"),
    ("bench_security.py", ["--vm", "esp32"], "invalid choice"),
])
def test_bench_bad_value_names_the_option(script, args, says):
    r = _run(script, *args)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("script, option", [
    ("bench_dlms.py", "--baud BIT/S"), ("bench_modbus.py", "--polls N"), ("bench_sts.py", "--rows N"),
    ("bench_security.py", "--vm"), ("bench_hls_assoc.py", "--vm"), ("bench_timewarp.py", "months"),
])
def test_bench_help_lists_options_with_units(script, option):
    r = _run(script, "--help")
    assert r.returncode == 0 and option in r.stdout and "default" in r.stdout, r.stdout


def test_relay_sense_command_reads_the_contact_or_says_what_it_printed():
    # the bench rig's --relay-sense-cmd (hil.relayback; new-user pass, session 15)
    from hil.relayback import sense_command
    from hil.rig import RigError
    assert sense_command(None) is None
    assert sense_command("echo closed")() is True and sense_command("echo 0")() is False
    with pytest.raises(RigError, match="printed 'maybe'"):
        sense_command("echo maybe")()
    with pytest.raises(RigError, match="exit 3"):
        sense_command("exit 3")()


def _undescribed(help_text):
    """Option lines of an argparse --help with no description (none on the line, none below)."""
    lines = help_text.splitlines()
    bare = []
    for k, ln in enumerate(lines):
        if not ln.startswith("  -"):
            continue
        if "  " in ln.strip():                              # "  --gets N   GETs per meter ..."
            continue
        nxt = lines[k + 1] if k + 1 < len(lines) else ""
        if not (nxt.startswith("    ") and not nxt.strip().startswith("-")):
            bare.append(ln.strip())
    return [b for b in bare if not b.startswith("-h")]


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("bench_*.py")))
def test_bench_help_describes_every_option(script):
    # new-user pass (session 16): bench_meters.py --help listed its options without a word
    r = _run(script, "--help")
    assert _undescribed(r.stdout) == [], r.stdout
