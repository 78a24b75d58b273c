"""The import layering of docs/DESIGN.md §1 as a tested contract (AST only: seconds, nothing imported).

Every ``import``/``from ... import`` counts, at module level or inside a function (lazy imports
hide cycles just as well). Module names: ``protocol/x.py`` is ``protocol.x``, ``firmware/meter/x.py``
``meter.x``, ``firmware/boards/x.py`` ``boards.x``, ``firmware/main.py`` ``main``, host code by its
path (``host_tools.x``, ``hil.x``, ``bench.x``), ``tests/support/x.py`` is also importable as ``x``
(the tests put that folder on sys.path). Each rule is one test; a failure names file:line and the
rule. ``check(modules)`` applies the rules to any module set (see the self-test at the end).
"""
import ast
import collections

import pytest

from host_tools.firmware_src import ROOT

Imp = collections.namedtuple("Imp", "target line")
Mod = collections.namedtuple("Mod", "name path imports tree")

# the host library: every module directly in host_tools/ but the demo (the command layer is
# host_tools/meterctl/)
HOST_LIBRARY = tuple(sorted(p.stem for p in (ROOT / "host_tools").glob("*.py")
                            if p.stem not in ("__init__", "demo")))
DEVICE_TOPS = ("protocol", "meter", "boards", "main")


def module_name(rel):
    """Dotted module name of a repository path ("firmware/meter/app.py" -> "meter.app")."""
    parts = rel[:-3].split("/")
    if parts[0] == "firmware":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _dynamic(tree):
    """String literals of a module that imports by name (importlib.import_module, __import__):
    each one may be a module it imports (the CLI registers its command modules that way)."""
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        getattr(n.func, "attr", None) == "import_module" or getattr(n.func, "id", None) == "__import__")]
    if calls:
        for n in ast.walk(tree):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.replace(".", "").replace(
                    "_", "").isalnum() and "." in n.value:
                yield Imp(n.value, n.lineno)


def _imports(tree, name, is_pkg):
    pkg = name if is_pkg else name.rpartition(".")[0]
    yield from _dynamic(tree)
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            for a in n.names:
                yield Imp(a.name, n.lineno)
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                up = pkg.split(".")
                up = up[:len(up) - (n.level - 1)] if n.level > 1 else up
                base = ".".join(p for p in up + ([base] if base else []) if p)
            yield Imp(base, n.lineno)
            for a in n.names:                  # "from meter import cosem" imports meter.cosem
                yield Imp(base + "." + a.name, n.lineno)


def parse(files):
    """{rel path: source} -> {module name: Mod}."""
    mods = {}
    for rel, src in files.items():
        tree = ast.parse(src, rel)
        name = module_name(rel)
        mods[name] = Mod(name, rel, list(_imports(tree, name, rel.endswith("__init__.py"))), tree)
    return mods


def repo_files():
    out = {}
    for d in ("protocol", "firmware", "host_tools", "hil", "bench", "tests"):
        for p in (ROOT / d).rglob("*.py"):
            out[p.relative_to(ROOT).as_posix()] = p.read_text()
    return out


def _resolve(target, mods):
    """The module of ours an import names (longest known prefix), or None (stdlib, third party)."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in mods:
            return cand
    return None


def _support_alias(mods):
    """Bare names of tests/support modules ("fake_meter" -> "tests.support.fake_meter")."""
    return {m.rpartition(".")[2]: m for m in mods if m.startswith("tests.support.")}


def edges(mods):
    """(importer, imported, line) for every import between our modules."""
    alias = _support_alias(mods)
    for m in mods.values():
        for imp in m.imports:
            t = _resolve(imp.target, mods)
            if t is None and imp.target.split(".")[0] in alias:
                t = alias[imp.target.split(".")[0]]
            # a submodule needs its own package initialised first: that is not an import edge
            # (``from . import launch`` inside hil.emulated names the package hil, then hil.launch)
            if t is not None and t != m.name and not m.name.startswith(t + "."):
                yield m.name, t, imp.line


def _top(name):
    return name.split(".")[0]


def _where(mods, a, line):
    return "%s:%d" % (mods[a].path, line)


def rule_device_layers(mods):
    allowed = {"protocol": {"protocol"}, "meter": {"protocol", "meter"}, "boards": {"protocol", "boards"}}
    out = []
    for a, b, line in edges(mods):
        top = _top(a)
        if top in allowed and _top(b) not in allowed[top]:
            out.append("%s %s imports %s: %s may import only %s" % (
                _where(mods, a, line), a, b, top, " and ".join(sorted(allowed[top]))))
    return out


def rule_machine_only_in_boards(mods):
    out = []
    for m in mods.values():
        if _top(m.name) in DEVICE_TOPS and _top(m.name) != "boards":
            for imp in m.imports:
                if imp.target.split(".")[0] == "machine":
                    out.append("%s:%d %s imports machine: only boards/ may" % (m.path, imp.line, m.name))
    return out


def rule_no_asyncio_on_the_device(mods):
    """Device code runs its tasks as generators in ``meter.metrology.loop``: asyncio (~4 KiB of heap on
    32 bits with its tasks and streams) is not imported on the device (docs/MEMORY.md)."""
    return ["%s:%d %s imports asyncio: device tasks are generators (meter.metrology.loop)" % (m.path, imp.line, m.name)
            for m in mods.values() if _top(m.name) in DEVICE_TOPS
            for imp in m.imports if imp.target.split(".")[0] == "asyncio"]


def _is_cli(name):
    last = name.rpartition(".")[2]
    return name.startswith("host_tools.") and (last in ("cli", "entry", "__main__") or last.startswith("cmd_"))


def rule_host_library(mods):
    lib = {"host_tools." + n for n in HOST_LIBRARY}
    return ["%s %s imports %s: a host library module imports neither hil nor the CLI" % (
        _where(mods, a, line), a, b) for a, b, line in edges(mods)
        if a in lib and (_top(b) == "hil" or _is_cli(b))]


def rule_tests_imported_only_by_tests(mods):
    out = []
    for a, b, line in edges(mods):
        if _top(b) != "tests" or _top(a) == "tests":
            continue
        if _top(a) == "bench" and b.startswith("tests.support."):
            continue
        out.append("%s %s imports %s: nothing outside tests/ imports tests (bench: tests/support only)"
                   % (_where(mods, a, line), a, b))
    return out


def _syspath_edits(tree):
    for n in ast.walk(tree):
        tgt = None
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            tgt = n.func.value if n.func.attr in ("insert", "append", "extend", "remove") else None
        elif isinstance(n, (ast.Assign, ast.AugAssign)):
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                tgt = t.value if isinstance(t, ast.Subscript) else t
        if (isinstance(tgt, ast.Attribute) and tgt.attr == "path" and isinstance(tgt.value, ast.Name)
                and tgt.value.id == "sys"):
            yield n.lineno


# scripts that run on the emulated board (MicroPython), where sys.path is the board's own
BOARD_SCRIPTS = ("hil/romboot.py",)


def rule_no_syspath_edits(mods):
    return ["%s:%d %s edits sys.path: host_tools/ and hil/ locate sources with host_tools.firmware_src"
            % (m.path, line, m.name) for m in mods.values() if _top(m.name) in ("host_tools", "hil")
            and m.path not in BOARD_SCRIPTS for line in _syspath_edits(m.tree)]


def cycles(mods, keep):
    """Import cycles (lists of module names, first repeated last) among modules ``keep(name)``."""
    graph = collections.defaultdict(dict)
    for a, b, line in edges(mods):
        if keep(a) and keep(b):
            graph[a].setdefault(b, line)
    index, low, stack, on, out = {}, {}, [], set(), []

    def strong(v):                       # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in list(graph):
        if v not in index:
            strong(v)
    return [_describe(mods, graph, comp) for comp in out]


def _describe(mods, graph, comp):
    inside = set(comp)
    return "cycle: " + ", ".join("%s -> %s (%s)" % (a, b, _where(mods, a, graph[a][b]))
                                 for a in comp for b in sorted(graph[a]) if b in inside)


def rule_no_device_cycles(mods):
    return cycles(mods, lambda n: _top(n) in DEVICE_TOPS)


def rule_no_host_cycles(mods):
    return cycles(mods, lambda n: _top(n) not in DEVICE_TOPS)


# The host layers: the library (host_tools: client, decode, vend, build, ...) < the rig (hil) <
# the command layer (host_tools.meterctl and the demo), which may use both.
_COMMAND_LAYER = ("host_tools.meterctl", "host_tools.demo")


def _layer(name):
    for c in _COMMAND_LAYER:
        if name == c or name.startswith(c + "."):
            return "meterctl"
    return _top(name)


def rule_no_package_cycles(mods):
    """Cycles between packages and host layers (host_tools library, hil, meterctl commands),
    module by module."""
    first = {}
    for a, b, line in edges(mods):
        if _layer(a) != _layer(b):
            first.setdefault((_layer(a), _layer(b)), "%s -> %s (%s)" % (a, b, _where(mods, a, line)))
    return ["package cycle %s <-> %s: %s; %s" % (p, q, first[(p, q)], first[(q, p)])
            for (p, q) in sorted(first) if p < q and (q, p) in first]


RULES = (rule_device_layers, rule_machine_only_in_boards, rule_no_asyncio_on_the_device, rule_host_library,
         rule_tests_imported_only_by_tests, rule_no_syspath_edits, rule_no_device_cycles,
         rule_no_host_cycles, rule_no_package_cycles)


def check(mods):
    """All violations of all rules, as text lines."""
    return [v for r in RULES for v in r(mods)]


@pytest.fixture(scope="module")
def repo():
    return parse(repo_files())


def _assert(violations):
    assert not violations, "\n".join(violations)


def test_protocol_meter_boards_import_only_their_layers(repo):
    _assert(rule_device_layers(repo))


def test_machine_only_in_boards(repo):
    _assert(rule_machine_only_in_boards(repo))


def test_device_code_does_not_import_asyncio(repo):
    _assert(rule_no_asyncio_on_the_device(repo))


def test_host_library_imports_neither_hil_nor_cli(repo):
    _assert(rule_host_library(repo))


def test_nothing_outside_tests_imports_tests(repo):
    _assert(rule_tests_imported_only_by_tests(repo))


def test_no_sys_path_edits_in_host_tools_and_hil(repo):
    _assert(rule_no_syspath_edits(repo))


def test_no_import_cycles_in_device_code(repo):
    _assert(rule_no_device_cycles(repo))


def test_no_import_cycles_in_host_code(repo):
    _assert(rule_no_host_cycles(repo))


def test_no_import_cycles_between_packages(repo):
    _assert(rule_no_package_cycles(repo))


def test_the_rules_fire_on_a_synthetic_module_set():
    mods = parse({
        "firmware/meter/x.py": "import host_tools.client\n\ndef f():\n    from meter import y\n",
        "firmware/meter/y.py": "from meter import x\n",
        "firmware/meter/z.py": "import machine\n",
        "firmware/boards/b.py": "def f():\n    import asyncio.stream\n",
        "protocol/p.py": "from meter import x\n",
        "host_tools/__init__.py": "",
        "host_tools/client.py": "def f():\n    import hil.rig\n",
        "host_tools/cli.py": "import sys\nsys.path.insert(0, 'x')\nimport fake_meter\n",
        "hil/__init__.py": "",
        "hil/rig.py": "from . import flash\n",
        "hil/flash.py": "def f():\n    from .rig import Rig\n    import host_tools.client\n",
        "tests/support/fake_meter.py": "",
    })
    found = check(mods)
    text = "\n".join(found)
    assert "firmware/meter/x.py:1 meter.x imports host_tools.client: meter may import only meter and protocol" in text
    assert "protocol/p.py:1 protocol.p imports meter.x: protocol may import only protocol" in text
    assert "firmware/meter/z.py:1 meter.z imports machine" in text
    assert "firmware/boards/b.py:2 boards.b imports asyncio" in text
    assert "host_tools/client.py:2 host_tools.client imports hil.rig" in text
    assert "host_tools/cli.py:2 host_tools.cli edits sys.path" in text
    assert "host_tools/cli.py:3 host_tools.cli imports tests.support.fake_meter" in text
    assert any(v.startswith("cycle: meter.x -> meter.y") for v in rule_no_device_cycles(mods)), found
    assert any("hil.flash -> hil.rig (hil/flash.py:2)" in v for v in rule_no_host_cycles(mods)), found
    assert any(v.startswith("package cycle hil <-> host_tools") for v in found), found
