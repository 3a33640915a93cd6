"""The native seam: one module imports the extension, and its type stub names what it has."""

import ast
import re
from pathlib import Path

import pytest

from features.native_ext import ext

ROOT = Path(__file__).resolve().parents[2]
STUB = ROOT / "native" / "bespoke_native.pyi"


def test_only_native_ext_imports_the_extension():
    importers = []
    for pkg in ("flows", "operators", "connectors", "agent", "features", "policies", "scripts"):
        for p in (ROOT / pkg).rglob("*.py"):
            if re.search(r"^\s*(import bespoke_native|from bespoke_native import)",
                         p.read_text(), re.M):
                importers.append(str(p.relative_to(ROOT)))
    assert importers == ["features/native_ext.py"]


@pytest.mark.skipif(ext is None, reason="bespoke_native is not built")
def test_the_stub_names_exactly_what_the_extension_has():
    tree = ast.parse(STUB.read_text())
    stubbed = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))
               and not n.name.startswith("_")}
    built = {n for n in dir(ext) if not n.startswith("_")
             and not isinstance(getattr(ext, n), type(ast))}  # maturin's self-reference
    assert stubbed == built
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for name, node in classes.items():
        if name.startswith("_"):
            continue
        methods = {f.name for c in [node] + [classes[b.id] for b in node.bases
                                              if isinstance(b, ast.Name) and b.id in classes]
                   for f in c.body if isinstance(f, ast.FunctionDef)
                   and not f.name.startswith("__")}
        have = {m for m in dir(getattr(ext, name)) if not m.startswith("__")}
        assert methods <= have, (name, methods - have)


def test_pure_kernels_do_not_touch_python():
    """``native/src/kernels/`` is plain Rust (tested by ``cargo test`` without Python): the
    PyO3 bindings live beside it, never inside."""
    kernels = sorted((ROOT / "native" / "src" / "kernels").glob("*.rs"))
    assert len(kernels) >= 5
    for p in kernels:
        code = "\n".join(line for line in p.read_text().splitlines()
                         if not line.lstrip().startswith("//"))
        assert "pyo3" not in code and "Python<" not in code and "Bound<" not in code, p.name
