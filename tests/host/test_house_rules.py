"""House rules that keep the code easy to see and to change (docs/CONTRACTS.md, "House rules").

- no module under host_tools/, hil/ or firmware/meter/ over 450 lines;
- no function over 80 lines in those nor in protocol/ and firmware/boards/;
- no path of one machine in any tracked file (a test or doc that names the absolute location of a
  checkout or a home directory works on one machine only);
- no test sleeps on a fixed time where it could wait on a condition: ``time.sleep`` in tests is
  allowed only on lines that say why (``# sleep-ok: <reason>``);
- no test module is a library: nothing under tests/ or bench/ imports a ``test_*`` module (lazy
  imports in functions and ``importlib.import_module("test_x")`` included); shared helpers (peers,
  clients, campaign machinery) live in tests/support/.
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


# Files not yet folded onto tests/support (each with why); the rule skips them.
_IMPORTS_TESTS_SKIP = ()


def _is_test_module(dotted):
    return any(part.startswith("test_") for part in dotted.split("."))


def imports_of_test_modules(source, filename="<source>"):
    """(line, module) of every import of a ``test_*`` module in ``source``: ``import test_x``,
    ``from test_x import y``, ``from tests.host.test_x import y``, ``from tests.host import test_x``,
    ``importlib.import_module("test_x")`` / ``__import__("test_x")``, at any depth (lazy too)."""
    hits = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            hits += [(node.lineno, a.name) for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            mod = "." * node.level + (node.module or "")
            if _is_test_module(mod):
                hits.append((node.lineno, mod))
            else:
                hits += [(node.lineno, mod.rstrip(".") + "." + a.name if node.module else mod + a.name)
                         for a in node.names if a.name.startswith("test_")]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f, arg = node.func, node.args[0].value
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name in ("import_module", "__import__") and isinstance(arg, str) and _is_test_module(arg):
                hits.append((node.lineno, arg))
    return hits


def test_no_test_module_is_imported_as_a_library():
    found = []
    for p in _py(("tests", "bench")):
        rel = p.relative_to(ROOT).as_posix()
        if rel in _IMPORTS_TESTS_SKIP:
            continue
        found += ["%s:%d imports %s" % (rel, line, mod) for line, mod in imports_of_test_modules(p.read_text(), rel)]
    assert not found, ("test modules imported as libraries (move the helper to tests/support/ and "
                       "import it from there in every user):\n%s" % "\n".join(found))


def test_the_test_module_import_rule_fires_on_every_form():
    src = (
        "import os\n"
        "import test_hdlc\n"                                   # 2
        "from test_interop_gurux import DarError, connect\n"   # 3
        "import gurux_peer, test_replay as r\n"                # 4
        "from tests.host.test_tid_alloc import parallel_vend\n"  # 5
        "from tests.host import test_tid_alloc\n"              # 6
        "from . import test_local\n"                           # 7
        "def f():\n"
        "    from test_powercut_campaign import Campaign\n"    # 9: lazy
        "    import importlib\n"
        "    importlib.import_module('test_hls_interop')\n"    # 11
        "    return __import__('tests.hil.test_flash')\n"      # 12
    )
    assert imports_of_test_modules(src) == [
        (2, "test_hdlc"), (3, "test_interop_gurux"), (4, "test_replay"),
        (5, "tests.host.test_tid_alloc"), (6, "tests.host.test_tid_alloc"), (7, ".test_local"),
        (9, "test_powercut_campaign"), (11, "test_hls_interop"), (12, "tests.hil.test_flash")]
    clean = ("import pytest\nfrom gurux_peer import Peer\nimport tests.support.fake_meter\n"
             "from hdlc_rx import drain\nfrom tests import conftest\nmod = __import__(name)\n"
             "def test_x():\n    from testing import y\n")
    assert imports_of_test_modules(clean) == []
