"""Every third-party module the code imports is declared in pyproject.toml, in an extra that
installs alongside that package (the README's `pip install -e ".[all]"` must be enough to run)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"glcf_runtime", "glcf_train", "glcf_export", "glcf_bench", "glcf_cli", "calibration", "tests",
               "benchmarks"}
# Modules of optional GPU seams that are not installed here, and their distributions.
NOT_INSTALLED = {"tensorrt": {"tensorrt-cu12", "tensorrt-cu13"}, "cuda": {"cuda-python"},
                 "pycuda": {"pycuda"}}
# The extras each package may rely on (besides the core dependencies).
EXTRAS = {
    "glcf_runtime": ("runtime", "trt", "openvino", "plant"),  # plant: --publish (imported lazily)
    "calibration": ("train",),
    "glcf_train": ("train", "export"),
    "glcf_export": ("export", "train", "trt", "openvino"),
    "glcf_bench": ("runtime", "train", "export", "trt", "openvino"),
    "glcf_cli": ("runtime", "train", "export", "trt", "openvino"),
}
OPTIONAL_SEAMS = {"pycuda"}  # tried lazily, with cuda-python as the declared alternative


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")


def _imports(package: str) -> set[str]:
    found = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - FIRST_PARTY - set(sys.stdlib_module_names) - {"__future__"}


def test_imports_are_declared() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    extras = {k: {_name(r) for r in v if not r.startswith("glcf[")}
              for k, v in project["optional-dependencies"].items()}
    dists = importlib.metadata.packages_distributions()
    missing = []
    for package, allowed in EXTRAS.items():
        declared = core.union(*(extras[e] for e in allowed))
        for module in sorted(_imports(package) - OPTIONAL_SEAMS):
            names = {d.lower().replace("_", "-") for d in dists.get(module, [])}
            names |= NOT_INSTALLED.get(module, set())
            assert names, f"{package} imports {module}, which is neither installed nor known"
            if not names & declared:
                missing.append(f"{package} imports {module} ({', '.join(sorted(names))}), "
                               f"not in core or extras {allowed}")
    assert not missing, "\n".join(missing)


def test_all_extra_covers_what_the_demo_runs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (all_extra,) = project["optional-dependencies"]["all"]
    assert set(all_extra[len("glcf["):-1].split(",")) >= {"runtime", "train", "export"}
