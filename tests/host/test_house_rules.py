"""House rules that keep the code easy to see and to change (docs/CONTRACTS.md, "House rules").

- no module under host_tools/, hil/ or firmware/meter/ over 450 lines;
- no function over 80 lines in those nor in protocol/ and firmware/boards/;
- no path of one machine in any tracked file (a test or doc that names the absolute location of a
  checkout or a home directory works on one machine only);
- no test sleeps on a fixed time where it could wait on a condition: ``time.sleep`` in tests is
  allowed only on lines that say why (``# sleep-ok: <reason>``).
Each failure names the file, the line and the rule.
"""
import ast
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
SIZED = ("host_tools", "hil", "firmware/meter")
FUNCTIONS = SIZED + ("protocol", "firmware/boards")


def _py(dirs):
    for d in dirs:
        yield from sorted((ROOT / d).rglob("*.py"))


def _tracked():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [ROOT / p for p in out.stdout.decode().split("\0") if p]


def test_no_module_over_450_lines():
    big = ["%s: %d lines" % (p.relative_to(ROOT), n) for p in _py(SIZED)
           for n in [len(p.read_text().splitlines())] if n > MAX_MODULE_LINES]
    assert not big, "modules over %d lines:\n%s" % (MAX_MODULE_LINES, "\n".join(big))


def test_no_function_over_80_lines():
    long = []
    for p in _py(FUNCTIONS):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append("%s:%d %s(): %d lines" % (p.relative_to(ROOT), node.lineno, node.name, n))
    assert not long, "functions over %d lines:\n%s" % (MAX_FUNCTION_LINES, "\n".join(long))


_MACHINE_PATH = re.compile(r"(?<![\w.])/(work|home|Users|root)/[\w.-]+")


def test_no_path_of_one_machine_in_tracked_files():
    hits = []
    for p in _tracked():
        if p.suffix not in (".py", ".md", ".txt", ".json", ".toml", ".cfg", ".yaml", ".yml", "") \
                or not p.is_file():
            continue
        try:
            text = p.read_text()
        except UnicodeDecodeError:
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if _MACHINE_PATH.search(line):
                hits.append("%s:%d: %s" % (p.relative_to(ROOT), i, line.strip()[:100]))
    assert not hits, "absolute paths of one machine:\n%s" % "\n".join(hits)


def test_tests_wait_on_conditions_not_fixed_sleeps():
    sleeps = []
    for p in _py(("tests", "bench")):
        if p.name == pathlib.Path(__file__).name:
            continue
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if re.search(r"\btime\.sleep\(|\bsleep\((?!_ms)", line) and "sleep-ok:" not in line \
                    and not line.lstrip().startswith("#"):
                sleeps.append("%s:%d: %s" % (p.relative_to(ROOT), i, line.strip()))
    assert not sleeps, ("fixed sleeps in tests (wait on a condition, or say why with "
                        "'# sleep-ok: <reason>'):\n%s" % "\n".join(sleeps))
