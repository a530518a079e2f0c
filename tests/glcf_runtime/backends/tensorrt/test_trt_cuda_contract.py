"""cuda-python as the TensorRT backend calls it, over the real package on a machine without a GPU.

The contract comes from the product code's AST (``collect_uses`` over ``cuda.bindings.runtime`` /
``cuda.cudart``): every name read on the module exists; every call returns a tuple whose first
item is a ``cudaError_t`` and whose length is what the code takes apart (``err, value = ...``, or
one value through a checking wrapper); attributes read on a returned value exist on the class the
function's docstring returns; and with no GPU each product class and loader that calls the runtime
raises the project's GlcfError naming the CUDA error, never the library's own exception.

Each check runs in a fresh interpreter, once per cuda-python: the one in this virtualenv (torch's
cuda-bindings 13) and the one each TensorRT extra of pyproject.toml pins (fetched by
``trt_bindings fetch`` with ``--target``: torch and cuda-python 12 cannot share a virtualenv).
"""

from __future__ import annotations

import ast
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
    cache_dir,
    copy_tensorrt_package,
    cuda_python_pins,
    missing,
    module_name,
    product_files,
)

MODULES, LABEL = ("cuda.bindings.runtime", "cuda.cudart"), "cudart"


def _chain(node: ast.AST) -> list[str] | None:
    names = []
    while isinstance(node, ast.Attribute):
        names.insert(0, node.attr)
        node = node.value
    return [node.id, *names] if isinstance(node, ast.Name) else None


def _expectation(call: ast.Call, parents: dict) -> tuple[str, int, str | None]:
    """How the code takes the result apart: ("exact", n) by unpacking, ("value", 2) through a
    wrapper whose result is used, else ("any", 1); and the name the value is bound to."""
    parent = parents[call]
    if isinstance(parent, ast.Assign) and isinstance(parent.targets[0], ast.Tuple):
        elts = parent.targets[0].elts
        return "exact", len(elts), elts[1].id if len(elts) > 1 and isinstance(elts[1], ast.Name) else None
    if isinstance(parent, ast.Call) and call in parent.args:  # a wrapper such as self._ok(...)
        outer = parents[parent]
        if isinstance(outer, ast.Expr):
            return "any", 1, None
        name = outer.targets[0].id if isinstance(outer, ast.Assign) and isinstance(outer.targets[0], ast.Name) else None
        return "value", 2, name
    return "any", 1, None


def contract(files: list[Path]) -> dict:
    """What the product code expects of the CUDA runtime module (JSON for :func:`probe`)."""
    uses = collect_uses(files, Stubs(None), MODULES, LABEL)
    spec: dict = {"names": sorted({(u.owner, u.name) for u in uses}), "calls": [], "entries": []}
    by_file = {f: ast.parse(f.read_text()) for f in {u.file for u in uses}}
    for file, tree in by_file.items():
        parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        lines = {u.line for u in uses if u.file == file}
        callers: set[ast.AST] = set()
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno in lines):
            if not (isinstance(call.func, ast.Attribute) and (LABEL, call.func.attr) in spec["names"]):
                continue
            scope = call
            while not isinstance(scope, ast.FunctionDef | ast.Module):
                scope = parents[scope]
            callers.add(scope)
            assigned = {n.targets[0].id: n.value for n in ast.walk(scope)
                        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
            args = [_chain(assigned.get(a.id, a) if isinstance(a, ast.Name) else a) for a in call.args]
            kind, length, value = _expectation(call, parents)
            attrs = sorted({n.attr for n in ast.walk(scope) if isinstance(n, ast.Attribute)
                            and isinstance(n.value, ast.Name) and n.value.id == value})
            spec["calls"].append({"where": f"{file.name}:{call.lineno}", "function": call.func.attr,
                                  "args": args, "expect": [kind, length], "value_attrs": attrs})
        for scope in callers:
            parent = parents.get(scope)
            if not isinstance(scope, ast.FunctionDef) or scope.name == "__init__":
                continue
            if isinstance(parent, ast.ClassDef):
                anns = [ast.unparse(a.annotation) if a.annotation else "" for a in scope.args.args[1:]]
                spec["entries"].append([module_name(file), parent.name, scope.name, anns])
            elif isinstance(parent, ast.Module) and len(scope.args.args) == len(scope.args.defaults):
                spec["entries"].append([module_name(file), None, scope.name, []])
    return spec


def _argument(rt: object, chain: list[str] | None) -> int:
    """An enum the code passes (``self.rt.cudaMemcpyKind.X`` → ``rt.cudaMemcpyKind.X``), else 0:
    pointers, sizes, streams and devices of 0 are safe where there is no GPU."""
    for start in range(len(chain or [])):
        value = rt
        try:
            for name in (chain or [])[start:]:
                value = getattr(value, name)
        except AttributeError:
            continue
        if isinstance(value, int):
            return value
    return 0


def _value_class(rt: object, function: object) -> type | None:
    """The class the docstring's Returns section names (``prop : cudaDeviceProp``)."""
    doc = (function.__doc__ or "").split("Returns")[-1].split("See Also")[0]
    for word in doc.split():
        name = word.removeprefix(":py:obj:`~.").rstrip("`")
        found = getattr(rt, name, None) if word.startswith(":py:obj:`~.") else None
        if isinstance(found, type) and not issubclass(found, int):
            return found
    return None


def probe() -> None:
    """In the child interpreter: check ``contract()``'s JSON (stdin) against the importable module."""
    import numpy as np

    from glcf_runtime.errors import GlcfError

    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        from cuda import cudart as rt
    spec = json.load(sys.stdin)
    error, count = rt.cudaGetDeviceCount()
    out = {"file": rt.__file__, "gpu": bool(error == rt.cudaError_t.cudaSuccess and count),
           "error": getattr(error, "name", str(error)), "missing": [], "calls": [], "raised": []}
    for owner, name in spec["names"]:
        if not hasattr(rt if owner == LABEL else getattr(rt, owner, None), name):
            out["missing"].append(f"{owner}.{name}")
    if out["gpu"]:  # the shapes and errors below are those of a machine without a GPU
        print(json.dumps(out))
        return
    for call in spec["calls"]:
        function = getattr(rt, call["function"], None)
        if function is None:
            continue
        result = function(*[_argument(rt, chain) for chain in call["args"]])
        value_class = _value_class(rt, function) if call["value_attrs"] else None
        absent = [a for a in call["value_attrs"] if value_class is None or not hasattr(value_class(), a)]
        out["calls"].append({**call, "tuple": isinstance(result, tuple),
                             "length": len(result) if isinstance(result, tuple) else None,
                             "first": type(result[0]).__name__ if isinstance(result, tuple) else None,
                             "absent_value_attrs": absent})
    dummies = {"ndarray": np.zeros(4, np.uint8), "tuple": (4,), "dtype": np.dtype(np.uint8)}
    for module, cls, function, anns in spec["entries"]:
        target = getattr(__import__(module, fromlist=["_"]), cls or function)
        name = f"{cls}.{function}" if cls else function
        try:
            if cls is None:
                target()
            else:
                args = [next((d for k, d in dummies.items() if k in a), 0) for a in anns]
                getattr(target(rt), function)(*args)
            out["raised"].append([name, "returned", "", False])
        except Exception as exc:
            out["raised"].append([name, type(exc).__name__, str(exc), isinstance(exc, GlcfError)])
    print(json.dumps(out))


def providers() -> list[str]:
    """This virtualenv's cuda-python, and the one each TensorRT extra pins."""
    return ["virtualenv", *cuda_python_pins()]


def run_probe(provider: str, files: list[Path]) -> dict:
    env = dict(os.environ)
    root = Path(os.environ.get(SOURCES_ENV) or REPO)
    path = [str(root), str(REPO)]
    if provider == "virtualenv":
        found = subprocess.run([sys.executable, "-c", "import cuda.bindings.runtime"], capture_output=True)
        if found.returncode:
            pytest.skip("no cuda-python (cuda.bindings) in this virtualenv")
    else:
        folder = cache_dir() / "cuda-python" / provider
        stamp = folder / "requirement.txt"
        if not stamp.is_file() or stamp.read_text() != cuda_python_pins()[provider]:
            missing(f"cuda-python as glcf[{provider}] pins it ({cuda_python_pins()[provider]})")
        path.insert(0, str(folder))
    env["PYTHONPATH"] = os.pathsep.join(path)
    code = "from tests.glcf_runtime.backends.tensorrt.test_trt_cuda_contract import probe; probe()"
    result = subprocess.run([sys.executable, "-c", code], input=json.dumps(contract(files)),
                            capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=providers())
def probed(request: pytest.FixtureRequest) -> dict:
    return run_probe(request.param, product_files())


def test_the_contract_is_found_in_the_code() -> None:
    spec = contract(product_files())
    assert spec["calls"] and spec["entries"], f"no CUDA runtime call found in the product code: {spec}"


def test_every_name_exists(probed: dict) -> None:
    assert not probed["missing"], f"{probed['file']} has no {probed['missing']}"


def test_results_are_error_and_value_tuples(probed: dict) -> None:
    if probed["gpu"]:
        pytest.skip("a GPU is visible: these are the shapes of a machine without one")
    wrong = []
    for c in probed["calls"]:
        kind, length = c["expect"]
        fits = c["length"] == length if kind in ("exact", "value") else (c["length"] or 0) >= 1
        if not (c["tuple"] and c["first"] == "cudaError_t" and fits) or c["absent_value_attrs"]:
            wrong.append(f"{c['where']} {c['function']}: returns {c['first']} ×{c['length']}, "
                         f"the code expects {kind} {length}; value lacks {c['absent_value_attrs']}")
    assert probed["calls"] and not wrong, "\n".join(wrong) or "no call was made"


def test_no_gpu_raises_the_projects_error_naming_the_cuda_error(probed: dict) -> None:
    if probed["gpu"]:
        pytest.skip("a GPU is visible here")
    bad = [r for r in probed["raised"] if not r[3] or probed["error"] not in r[2]]
    assert probed["raised"] and not bad, (
        f"without a GPU ({probed['error']}) each of these must raise a GlcfError naming it: {bad}")


def test_a_misspelt_cuda_call_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A runtime function renamed in a copy of the backend is reported missing."""
    files = copy_tensorrt_package(tmp_path)
    use = [u for u in collect_uses(files, Stubs(None), MODULES, LABEL) if u.owner == LABEL][-1]
    lines = use.file.read_text().split("\n")
    lines[use.line - 1] = lines[use.line - 1].replace(f".{use.name}", f".{use.name}V2", 1)
    use.file.write_text("\n".join(lines))
    monkeypatch.setenv(SOURCES_ENV, str(tmp_path))
    probed = run_probe("virtualenv", product_files())
    assert f"{LABEL}.{use.name}V2" in probed["missing"], probed["missing"]
