"""Every TensorRT name the product code uses is in the compiled bindings of each TensorRT version
checked (``trt_bindings.BINDINGS``): read from ``tensorrt.so`` itself, no GPU or libnvinfer needed.

The names come from the code's AST (:func:`collect_uses`): attributes read on the ``tensorrt``
module, on its classes and enums, argument names, annotations, and methods and properties of
objects whose TensorRT class follows from the code (constructors, annotations, the stubs' return
types, arguments passed between the project's functions). A use under ``if`` on
``tensorrt.__version__`` is checked against the versions that branch runs on; one under
``hasattr``/``getattr(..., default)`` must exist in at least one version.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.glcf_runtime.backends.tensorrt.trt_bindings import (
    Binding,
    Stubs,
    copy_tensorrt_package,
    product_files,
    read_binding,
    stubs_dir,
    wheels,
)
from tests.glcf_runtime.backends.tensorrt.trt_names import check_names, collect_uses


@pytest.fixture(scope="module")
def bindings() -> dict[str, Binding]:
    return {version: read_binding(version, wheel) for version, wheel in wheels().items()}


@pytest.fixture(scope="module")
def stubs() -> Stubs:
    return Stubs(stubs_dir())


def test_every_tensorrt_name_is_in_each_bindings_version(bindings, stubs) -> None:
    report = check_names(product_files(), bindings, stubs)
    assert report.checked, "no TensorRT name found in the product code: is the scan broken?"
    assert not report.problems, "\n".join(report.problems)
    if report.notes:
        import warnings

        warnings.warn("TensorRT names not decided:\n" + "\n".join(report.notes), stacklevel=1)


def _imports_tensorrt(file: Path) -> bool:
    return any(isinstance(n, ast.Import) and any(a.name == "tensorrt" for a in n.names)
               for n in ast.walk(ast.parse(file.read_text())))


def test_the_scan_reaches_every_module_that_imports_tensorrt(stubs) -> None:
    files = product_files()
    uses = collect_uses(files, stubs)
    importing = {f for f in files if _imports_tensorrt(f)}
    assert importing, "no product module imports tensorrt"
    assert importing <= {u.file for u in uses}, importing - {u.file for u in uses}
    assert any(u.owner != "tensorrt" and u.kind == "attribute" for u in uses), (
        "no method or property of a TensorRT object was reached: the type inference is broken")


def test_a_misspelt_name_fails(tmp_path: Path, bindings, stubs) -> None:
    """A method of a TensorRT object, renamed in a copy of the backend, is reported by name."""
    files = copy_tensorrt_package(tmp_path)
    use = next(u for u in collect_uses(files, stubs)
               if u.owner != "tensorrt" and u.kind == "attribute" and not u.guards)
    lines = use.file.read_text().split("\n")
    assert f".{use.name}" in lines[use.line - 1], (use, lines[use.line - 1])
    lines[use.line - 1] = lines[use.line - 1].replace(f".{use.name}", f".{use.name}_v2", 1)
    use.file.write_text("\n".join(lines))
    problems = check_names(files, bindings, stubs).problems
    assert any(f"{use.owner}.{use.name}_v2" in p and "not in the compiled bindings" in p
               for p in problems), problems


VERSIONED = '''
import tensorrt as trt


def flag(config):
    major = int(trt.__version__.split(".")[0])
    if major >= 11:
        return trt.{new}
    return trt.NetworkDefinitionCreationFlag.{old}


def probe(level):
    if trt.__version__ >= level:
        return trt.{new}


def typed(version):
    if version.strongly_typed_always:
        return 0
    return trt.NetworkDefinitionCreationFlag.{old}
'''


def test_version_branches_are_checked_against_their_versions(tmp_path: Path, bindings, stubs) -> None:
    old, new = "EXPLICIT_BATCH", "IRuntimeConfig"  # removed in TensorRT 11; added after 10.3
    v10, v11 = sorted(bindings, key=lambda v: int(v.split(".")[0]))
    assert bindings[v10].has(old) and not bindings[v11].has(old), "premise: EXPLICIT_BATCH left in 11"
    assert bindings[v11].has(new) and not bindings[v10].has(new), "premise: IRuntimeConfig is new"
    source = tmp_path / "versioned.py"
    source.write_text(VERSIONED.format(old=old, new=new))
    report = check_names([source], bindings, stubs)
    assert not report.problems, report.problems
    for name, branch in ((f"tensorrt.{new}", "level"), (f"Flag.{old}", "version.strongly_typed_always")):
        assert any(name in n and branch in n and "does not decide" in n for n in report.notes), report.notes
    source.write_text(VERSIONED.format(old=old, new=new).replace("if major >= 11:", "if True:"))
    problems = check_names([source], bindings, stubs).problems
    assert any(f"tensorrt.{new}" in p and v10 in p for p in problems), problems
    assert any(f"NetworkDefinitionCreationFlag.{old}" in p and v11 in p for p in problems), problems
