"""The layering, read from the source (ast): what each folder of the package may import.

runtime/ and devices/ are what ships to a device: numpy, onnxruntime and the standard
library only (devices/ may read runtime/). The library (runtime, devices, export, train)
never reaches the tools beside it (cli, bench, reliability), neither by an import statement
nor by a module name handed to importlib. hypothesis is a test dependency: reliability/ and
tests/ only.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY = ("runtime", "devices", "export", "train")
TOOLS = ("cli", "bench", "reliability", "web")
STDLIB = set(sys.stdlib_module_names) | {"tomli"}  # tomli: the tomllib backport on Python 3.10
EDGE = {"numpy", "onnxruntime"}
# What a folder of the edge install may import besides the standard library, numpy and onnxruntime.
EDGE_FOLDERS = {"runtime": ("runtime",), "devices": ("runtime", "devices")}
TOOL_NAME = re.compile(r"\bedgernn\.(cli|bench|reliability|web)\b")


def sources(root: Path, *folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (root / f).rglob("*.py"))


def imports(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, at any depth (lazy ones too).

    ``from a import b`` counts as importing ``a.b`` (b may be a module: ``from edgernn import cli``).
    """
    package = ["edgernn", *path.relative_to(root).parent.parts]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []  # relative: from the file's package
            module = ".".join(base + ([node.module] if node.module else []))
            out += [(node.lineno, module)] + [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return out


def edge_violations(root: Path, folder: str) -> list[str]:
    allowed = tuple(f"edgernn.{f}" for f in EDGE_FOLDERS[folder])
    bad = []
    for path in sources(root, folder):
        for line, module in imports(path, root):
            top = module.split(".")[0]
            inside = module == "edgernn" or any(module == a or module.startswith(a + ".") for a in allowed)
            if top in STDLIB or top in EDGE or inside:
                continue
            bad.append(f"{path.relative_to(root)}:{line} imports {module}")
    return bad


def tool_violations(root: Path) -> list[str]:
    bad = []
    for path in sources(root, *LIBRARY):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        bad += [f"{path.relative_to(root)}:{line} imports {m}" for line, m in imports(path, root) if TOOL_NAME.match(m)]
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):  # a module name handed to importlib, __import__, a subprocess's -m
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node not in docstrings:
                found = TOOL_NAME.search(node.value)
                if found:
                    bad.append(f"{path.relative_to(root)}:{node.lineno} names {found.group(0)}")
    return bad


@pytest.mark.parametrize("folder", sorted(EDGE_FOLDERS))
def test_the_edge_folders_import_only_numpy_onnxruntime_and_the_standard_library(folder: str) -> None:
    bad = edge_violations(REPO, folder)
    assert not bad, (
        f"{folder}/ may import only numpy, onnxruntime, the standard library and "
        + ", ".join(f"edgernn.{f}" for f in EDGE_FOLDERS[folder])
        + ":\n"
        + "\n".join(bad)
    )


def test_the_library_never_reaches_the_tools() -> None:
    bad = tool_violations(REPO)
    assert not bad, "the library (runtime, devices, export, train) must not use the tools:\n" + "\n".join(bad)


def test_hypothesis_is_imported_only_by_the_harness_and_the_tests() -> None:
    everywhere = sources(REPO, *LIBRARY, "cli", "bench", "web") + sorted(REPO.glob("*.py"))
    bad = [
        f"{p.relative_to(REPO)}:{line}" for p in everywhere for line, m in imports(p) if m.split(".")[0] == "hypothesis"
    ]
    assert not bad, "hypothesis (a test dependency) imported outside reliability/ and tests/: " + ", ".join(bad)


def test_the_readers_see_a_lazy_a_relative_and_a_string_import(tmp_path: Path) -> None:
    """The checks above are not blind: violations planted in a copy of the layout are all found."""
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "planted.py").write_text(
        '"""Docs may say edgernn.bench."""\n'
        "def f():\n    import torch\n    from ..bench import suite\n    return __import__('edgernn.cli.run')\n",
        encoding="utf-8",
    )
    (tmp_path / "runtime" / "fine.py").write_text("import os\nimport numpy\nfrom . import spec\n", encoding="utf-8")
    assert edge_violations(tmp_path, "runtime") == [
        "runtime/planted.py:3 imports torch",
        "runtime/planted.py:4 imports edgernn.bench",
        "runtime/planted.py:4 imports edgernn.bench.suite",
    ]
    assert tool_violations(tmp_path) == [
        "runtime/planted.py:4 imports edgernn.bench",
        "runtime/planted.py:4 imports edgernn.bench.suite",
        "runtime/planted.py:5 names edgernn.cli",
    ]


def _docstrings(tree: ast.Module) -> set[ast.AST]:
    """The docstring nodes of ``tree`` (prose may name a tool: "see edgernn.bench")."""
    out: set[ast.AST] = set()
    for owner in ast.walk(tree):
        if isinstance(owner, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and owner.body:
            first = owner.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(first.value)
    return out
