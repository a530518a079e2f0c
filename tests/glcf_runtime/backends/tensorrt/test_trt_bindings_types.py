"""pyright over the TensorRT modules against ``tensorrt-stubs`` (installed with ``--target`` into the
check cache, outside the virtualenv): no unknown attribute and no unknown or missing argument.

The modules are those the names scan finds TensorRT in (``collect_uses``). pyright runs twice, with
and without the stubs on its ``extraPaths``: what only the run with the stubs reports is what the
TensorRT types revealed; of that, unknown attributes (reportAttributeAccessIssue) and bad calls
(reportCallIssue) fail the test. The stubs describe TensorRT 10.13; the names of 10.3 and 11.4 are
checked against their compiled modules by test_trt_bindings_names.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.glcf_runtime.backends.tensorrt.test_trt_bindings_names import collect_uses
from tests.glcf_runtime.backends.tensorrt.trt_bindings import (
    REPO,
    SOURCES_ENV,
    Stubs,
    copy_tensorrt_package,
    product_files,
    stubs_dir,
)

FAILING_RULES = ("reportAttributeAccessIssue", "reportCallIssue")


def pyright(files: list[Path], extra_paths: list[Path], workdir: Path) -> list[dict]:
    """pyright's diagnostics of ``files`` (basic mode, this virtualenv's packages)."""
    config = workdir / "pyrightconfig.json"
    config.write_text(json.dumps({
        "extraPaths": [str(p) for p in extra_paths], "typeCheckingMode": "basic",
        "pythonVersion": f"{sys.version_info.major}.{sys.version_info.minor}",
    }))
    command = [sys.executable, "-m", "pyright", "--outputjson", "-p", str(config),
               "--pythonpath", sys.executable, *map(str, files)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workdir)
    try:
        return json.loads(result.stdout)["generalDiagnostics"]
    except (ValueError, KeyError):
        raise AssertionError(f"pyright gave no JSON (exit {result.returncode}):\n"
                             f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}") from None


def _line(d: dict) -> str:
    return f"{Path(d['file']).name}:{d['range']['start']['line'] + 1} [{d.get('rule')}] {d['message']}"


def tensorrt_diagnostics(files: list[Path], root: Path, workdir: Path) -> tuple[list[dict], list[dict]]:
    """(what only the run with the stubs reports, the run with the stubs)."""
    (workdir / "with").mkdir()
    (workdir / "without").mkdir()
    typed = pyright(files, [stubs_dir(), root, REPO], workdir / "with")
    plain = pyright(files, [root, REPO], workdir / "without")
    seen = {_line(d) for d in plain}
    return [d for d in typed if _line(d) not in seen], typed


@pytest.fixture(scope="module")
def stubs() -> Stubs:
    return Stubs(stubs_dir())


def _needs_pyright() -> None:
    if subprocess.run([sys.executable, "-m", "pyright", "--version"], capture_output=True).returncode:
        message = "pyright is not installed: pip install -e '.[dev]' (pyright[nodejs])"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def test_tensorrt_modules_type_check_against_the_stubs(tmp_path: Path, stubs: Stubs) -> None:
    _needs_pyright()
    files = sorted({u.file for u in collect_uses(product_files(), stubs)})
    assert files, "the names scan found no module that uses TensorRT"
    root = Path(os.environ.get(SOURCES_ENV) or REPO)
    revealed, typed = tensorrt_diagnostics(files, root, tmp_path)
    unresolved = [_line(d) for d in typed if d.get("rule") == "reportMissingImports"
                  and '"tensorrt' in d["message"]]
    assert not unresolved, f"pyright did not find the stubs in {stubs_dir()}: {unresolved}"
    failing = [_line(d) for d in revealed if d.get("rule") in FAILING_RULES and d["severity"] == "error"]
    assert not failing, "pyright with tensorrt-stubs:\n" + "\n".join(failing)


def test_a_misspelt_name_fails_pyright(tmp_path: Path, stubs: Stubs) -> None:
    """Every TensorRT name of the backend misspelt in a copy: pyright must flag those whose type
    it knows; the share it flags is how much of the TensorRT code it sees typed."""
    _needs_pyright()
    files = copy_tensorrt_package(tmp_path / "copy")
    uses = [u for u in collect_uses(files, stubs) if u.kind in ("attribute", "keyword")]
    for file in {u.file for u in uses}:
        lines = file.read_text().split("\n")
        for use in (u for u in uses if u.file == file):
            old = f".{use.name}" if use.kind == "attribute" else f"{use.name}="
            new = f".{use.name}_v2" if use.kind == "attribute" else f"{use.name}_v2="
            lines[use.line - 1] = lines[use.line - 1].replace(old, new, 1)
        file.write_text("\n".join(lines))
    revealed, _ = tensorrt_diagnostics(files, tmp_path / "copy", tmp_path)
    flagged = [u for u in uses if any(
        d["range"]["start"]["line"] + 1 == u.line and Path(d["file"]) == u.file
        and f"{u.name}_v2" in d["message"] and d.get("rule") in FAILING_RULES for d in revealed)]
    print(f"pyright flags {len(flagged)} of {len(uses)} misspelt TensorRT names: "
          f"{sorted({f'{u.owner}.{u.name}' for u in flagged})}")
    assert flagged, ("pyright flagged none of the misspelt TensorRT names: the modules give it no "
                     "TensorRT types (annotate with `if TYPE_CHECKING: import tensorrt as trt`)")


def test_the_stubs_stay_out_of_the_virtualenv() -> None:
    """``pip install --target`` of the stubs makes a ``tensorrt`` namespace package: it must not
    be importable here, where ``import tensorrt`` failing is what says TensorRT is missing."""
    folder = stubs_dir()
    probe = ("import importlib.util, json; s = importlib.util.find_spec('tensorrt'); "
             "print(json.dumps(None if s is None else [s.origin, list(s.submodule_search_locations or [])]))")
    spec = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                     check=True, cwd=REPO).stdout)
    if os.environ.get("CI", "").lower() == "true":
        assert spec is None, f"`import tensorrt` finds {spec} in CI's virtualenv"
    elif spec is not None:  # a real TensorRT on this machine is fine; the stubs' package is not
        assert spec[0] is not None, f"`import tensorrt` finds a namespace package: {spec}"
        assert str(folder) not in json.dumps(spec), f"the stubs leaked onto sys.path: {spec}"
    result = subprocess.run([sys.executable, "-c", "import tensorrt"], capture_output=True, cwd=REPO)
    assert spec is not None or result.returncode != 0
