"""The package table of DESIGN §1, read from the code with ``ast``: every import, at module level
and inside functions, must be an arrow the table allows, and no two packages may import each other
(directly or round a longer cycle)."""

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
                if name in PACKAGES and name != package:
                    edges.add((package, name))
                    if name not in MAY_IMPORT[package]:
                        bad.append(f"{where}:{line}: {package} imports {name}")
                if name in NEVER.get(package, ()):
                    bad.append(f"{where}:{line}: {package} imports {name}")
                if at_top and name in ONLY_LAZILY.get(package, ()):
                    bad.append(f"{where}:{line}: {package} imports {name} at module level")
    return bad, edges


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


@pytest.mark.parametrize(("package", "line", "expected"), [
    ("glcf_runtime", "def f():\n    import torch\n", "glcf_runtime imports torch"),
    ("glcf_train", "from glcf_export.export import export_run\n", "glcf_train imports glcf_export"),
    ("glcf_bench", "import glcf_train.config\n", "glcf_bench imports glcf_train at module level"),
    ("calibration", "def f():\n    from glcf_runtime import loop\n", "calibration imports glcf_runtime"),
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
