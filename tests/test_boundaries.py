"""The package table of DESIGN §1, read from the code with ``ast``: every import, at module level
and inside functions, must be an arrow the table allows, and no two packages may import each other
(directly or round a longer cycle). Neither the packages nor ``benchmarks/`` import the test tree,
and ``benchmarks/`` scripts import the packages as installed (no ``sys.path`` edits)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("calibration", "glcf_runtime", "glcf_train", "glcf_export", "glcf_bench", "glcf_cli")
MAY_IMPORT = {  # package -> our packages it may import, anywhere in its code
    "calibration": set(),
    "glcf_runtime": {"calibration"},
    "glcf_train": {"glcf_runtime", "calibration"},
    "glcf_export": {"glcf_train", "glcf_runtime", "calibration"},
    "glcf_bench": {"glcf_runtime", "calibration", "glcf_train", "glcf_export"},
    "glcf_cli": {"calibration", "glcf_runtime", "glcf_train", "glcf_export", "glcf_bench"},
}
NEVER = {"calibration": {"torch", "timm", "torchvision"},  # not even lazily
         "glcf_runtime": {"torch", "timm", "torchvision"}}
ONLY_LAZILY = {"glcf_bench": {"torch", "timm", "torchvision", "glcf_train", "glcf_export"}}
TEST_TREE = "tests"  # product code and benchmarks never import it


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(top-level name, line, at module level) of every absolute import in one file."""
    tree = ast.parse(path.read_text(), str(path))
    module_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(name.split(".")[0], node.lineno, id(node) in module_level) for name in names]
    return found


def violations(root: Path) -> tuple[list[str], set[tuple[str, str]]]:
    """Every import the table forbids under ``root``, and the package edges found."""
    bad, edges = [], set()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            where = path.relative_to(root)
            for name, line, at_top in imports(path):
                if name == TEST_TREE:
                    bad.append(f"{where}:{line}: {package} imports the test tree ({name})")
                if name in PACKAGES and name != package:
                    edges.add((package, name))
                    if name not in MAY_IMPORT[package]:
                        bad.append(f"{where}:{line}: {package} imports {name}")
                if name in NEVER.get(package, ()):
                    bad.append(f"{where}:{line}: {package} imports {name}")
                if at_top and name in ONLY_LAZILY.get(package, ()):
                    bad.append(f"{where}:{line}: {package} imports {name} at module level")
    return bad, edges


def benchmark_violations(root: Path) -> list[str]:
    """Imports of the test tree and ``sys.path`` edits in the scripts under ``root/benchmarks``:
    what they need from the packages is imported as installed (``pip install -e .``)."""
    bad = []
    for path in sorted((root / "benchmarks").rglob("*.py")):
        where = path.relative_to(root)
        bad += [f"{where}:{line}: benchmarks import the test tree ({name})"
                for name, line, _ in imports(path) if name == TEST_TREE]
        bad += [f"{where}:{node.lineno}: benchmarks edit sys.path"
                for node in ast.walk(ast.parse(path.read_text(), str(path))) if _sys_path(node)]
    return bad


def _sys_path(node: ast.AST) -> bool:
    """``sys.path`` (read or written) or ``from sys import path``."""
    if isinstance(node, ast.Attribute):
        return node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id == "sys"
    return (isinstance(node, ast.ImportFrom) and node.module == "sys"
            and any(alias.name == "path" for alias in node.names))


def cycles(edges: set[tuple[str, str]]) -> list[str]:
    """Packages that reach themselves through the import edges."""
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for a, b in edges:
                if a == todo[-1] and b not in seen:
                    seen.add(b)
                    todo.insert(0, b)
            todo.pop()
        return seen

    return [p for p in PACKAGES if p in reach(p)]


def test_the_code_keeps_the_package_table() -> None:
    bad, edges = violations(REPO)
    assert not bad, "imports the package table of DESIGN §1 forbids:\n" + "\n".join(bad)
    assert not cycles(edges), f"package cycle through {cycles(edges)}"
    assert ("glcf_cli", "glcf_runtime") in edges and ("glcf_export", "glcf_train") in edges


def test_benchmarks_import_the_packages_not_the_tests() -> None:
    bad = benchmark_violations(REPO)
    assert not bad, ("benchmarks/ must import what it needs from the packages (test helpers it "
                     "shares live in glcf_bench.fixtures):\n" + "\n".join(bad))


@pytest.mark.parametrize(("code", "expected"), [
    ("from tests.glcf_runtime.fuzz import run_fuzz\n", "benchmarks import the test tree (tests)"),
    ("import tests.browser\n", "benchmarks import the test tree (tests)"),
    ("import sys\nsys.path.insert(0, '..')\n", "benchmarks edit sys.path"),
    ("from sys import path\npath.append('..')\n", "benchmarks edit sys.path"),
])
def test_a_benchmark_reaching_into_the_tests_is_caught(tmp_path: Path, code: str,
                                                        expected: str) -> None:
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "planted.py").write_text(code)
    bad = benchmark_violations(tmp_path)
    assert len(bad) == 1 and expected in bad[0] and "planted.py" in bad[0], bad


@pytest.mark.parametrize(("package", "line", "expected"), [
    ("glcf_runtime", "def f():\n    import torch\n", "glcf_runtime imports torch"),
    ("glcf_train", "from glcf_export.export import export_run\n", "glcf_train imports glcf_export"),
    ("glcf_bench", "import glcf_train.config\n", "glcf_bench imports glcf_train at module level"),
    ("calibration", "def f():\n    from glcf_runtime import loop\n", "calibration imports glcf_runtime"),
    ("glcf_bench", "from tests.glcf_runtime import fuzz\n", "glcf_bench imports the test tree"),
])
def test_an_upward_import_is_caught(tmp_path: Path, package: str, line: str, expected: str) -> None:
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / package / "planted.py").write_text(line)
    bad, _ = violations(tmp_path)
    assert len(bad) == 1 and expected in bad[0] and "planted.py" in bad[0], bad


def test_a_cycle_is_caught() -> None:
    assert cycles({("glcf_train", "glcf_export"), ("glcf_export", "glcf_train")}) == [
        "glcf_train", "glcf_export"]
    assert cycles({("glcf_cli", "glcf_train"), ("glcf_train", "glcf_runtime")}) == []
