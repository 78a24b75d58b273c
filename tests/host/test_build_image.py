"""The device image leaves the host-only protocol modules out, and no device module needs them."""
import pathlib
import re

from host_tools import build

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _imported_modules(text):
    out = set()
    for m in re.finditer(r"^\s*from (protocol|meter|boards)(\.\w+)? import ([\w, ]+)", text, re.M):
        if m.group(2):
            out.add(m.group(1) + m.group(2))
        else:
            out.update(m.group(1) + "." + n.strip().split(" ")[0] for n in m.group(3).split(","))
    for m in re.finditer(r"^\s*import (protocol|meter|boards)\.(\w+)", text, re.M):
        out.add(m.group(1) + "." + m.group(2))
    return out


def test_host_only_modules_are_not_device_sources():
    rels = {rel for rel, _ in build.sources()}
    assert "protocol/apdu.py" in rels and "meter/app.py" in rels
    for rel in build.HOST_ONLY:
        assert (ROOT / rel).exists(), rel
        assert rel not in rels
    assert {rel for rel, _ in build.sources(host=True)} == rels | set(build.HOST_ONLY)


def test_no_device_module_imports_a_host_only_module():
    host = {rel[:-3].replace("/", ".") for rel in build.HOST_ONLY}
    offenders = []
    for rel, src in build.sources():
        used = _imported_modules(src.read_text())
        offenders += ["%s imports %s" % (rel, m) for m in sorted(used & host)]
    assert offenders == []


def test_built_image_omits_host_only_modules(tmp_path):
    out, manifest = build.build("unix", tmp_path / "unix")
    files = set(manifest["files"])
    assert "protocol/apdu.mpy" in files and "main.py" in files
    for rel in build.HOST_ONLY:
        assert rel[:-3] + ".mpy" not in files
        assert not (out / (rel[:-3] + ".mpy")).exists()
