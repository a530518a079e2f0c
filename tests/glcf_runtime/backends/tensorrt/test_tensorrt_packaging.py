"""The TensorRT extras pin one stack each (TensorRT and cuda-python built for the same CUDA major),
and ``all`` stays free of them: a CUDA 13 cuda-python on a CUDA 12 driver sees no GPU at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[4]
EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _pins(extra: str) -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in EXTRAS[extra]]
    return {r.name: r for r in reqs}


@pytest.mark.parametrize(("extra", "tensorrt", "inside", "outside"), [
    ("trt", "tensorrt-cu12", {"tensorrt-cu12": ["10.3.0", "10.13.3.9"], "cuda-python": ["12.8.0", "12.9.2"]},
     {"tensorrt-cu12": ["10.2.0", "11.0.0"], "cuda-python": ["12.6.2.post1", "13.0.0"]}),
    ("trt-cu13", "tensorrt-cu13", {"tensorrt-cu13": ["11.0.0", "11.4.0.106"], "cuda-python": ["13.0.0", "13.5.0"]},
     {"tensorrt-cu13": ["10.13.0", "12.0.0"], "cuda-python": ["12.9.0", "14.0.0"]}),
])
def test_each_stack_is_pinned(extra: str, tensorrt: str, inside: dict, outside: dict) -> None:
    pins = _pins(extra)
    assert set(pins) == {tensorrt, "cuda-python"}, EXTRAS[extra]
    for name, versions in inside.items():
        assert all(pins[name].specifier.contains(v) for v in versions), (name, pins[name])
    for name, versions in outside.items():
        assert not any(pins[name].specifier.contains(v) for v in versions), (name, pins[name])


def _closure(extra: str) -> set[str]:
    """Every distribution an extra pulls in, following ``glcf[...]`` references."""
    names: set[str] = set()
    for requirement in EXTRAS[extra]:
        req = Requirement(requirement)
        if req.name == "glcf":
            for inner in req.extras:
                names |= _closure(inner)
        else:
            names.add(req.name)
    return names


def test_all_does_not_pull_tensorrt() -> None:
    """``pip install 'glcf[all]'`` on a Jetson must not replace JetPack's TensorRT with a wheel."""
    pulled = _closure("all")
    assert not {n for n in pulled if n.startswith("tensorrt") or n in ("cuda-python", "pycuda")}
    assert {"onnxruntime", "torch", "openvino"} <= pulled
