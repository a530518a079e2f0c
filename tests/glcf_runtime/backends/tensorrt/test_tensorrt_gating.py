"""The ``gpu`` and ``tensorrt`` markers (tests/conftest.py) look at the machine, not at torch alone:
a torch-free box with TensorRT and a GPU runs the TensorRT tests, a box without TensorRT skips
them with the reason. Each case runs a small pytest session in a subprocess with this project's
conftest as its plugin, on a made-up machine: torch shadowed by a package that is "not
installed", tensorrt by a stub package, and the GPU by an ``nvidia-smi`` that lists one (the
real cuda-python here sees no driver, and pycuda is not installed)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
INNER = """
import pytest

@pytest.mark.gpu
def test_gpu():
    pass

@pytest.mark.tensorrt
def test_tensorrt():
    import tensorrt

@pytest.mark.gpu
@pytest.mark.tensorrt
def test_both():
    pass
"""
NO_TORCH = "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
BROKEN_TRT = ("raise ImportError('libnvinfer.so.10: cannot open shared object file: No such file "
              "or directory', name='tensorrt')\n")


def _session(tmp_path: Path, *, tensorrt: str | None, gpu: bool) -> dict[str, str | None]:
    """Outcome per inner test: None when it ran and passed, else the skip reason."""
    fakes, bin_dir = tmp_path / "fakes", tmp_path / "bin"
    for folder, body in (("torch", NO_TORCH), ("tensorrt", tensorrt)):
        if body is not None:
            (fakes / folder).mkdir(parents=True)
            (fakes / folder / "__init__.py").write_text(body)
    bin_dir.mkdir()
    if gpu:
        smi = bin_dir / "nvidia-smi"
        smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)'\n")
        smi.chmod(0o755)
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: g\n    tensorrt: t\n")
    report = tmp_path / "report.xml"
    env = {**os.environ, "PYTHONPATH": f"{fakes}{os.pathsep}{REPO}",
           "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q",
         f"--junit-xml={report}", str(tmp_path / "test_inner.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 5), done.stdout + done.stderr
    outcomes: dict[str, str | None] = {}
    for case in ET.parse(report).iter("testcase"):
        assert case.find("failure") is None and case.find("error") is None, done.stdout
        skipped = case.find("skipped")
        outcomes[case.get("name")] = None if skipped is None else skipped.get("message")
    return outcomes


def test_torch_free_box_with_tensorrt_and_a_gpu_runs_them(tmp_path: Path) -> None:
    outcomes = _session(tmp_path, tensorrt="__version__ = '10.3.0'\n", gpu=True)
    assert outcomes == {"test_gpu": None, "test_tensorrt": None, "test_both": None}


def test_gpu_box_without_tensorrt_skips_only_the_tensorrt_tests(tmp_path: Path) -> None:
    outcomes = _session(tmp_path, tensorrt=None, gpu=True)
    assert outcomes["test_gpu"] is None
    for name in ("test_tensorrt", "test_both"):
        assert "tensorrt is not installed" in outcomes[name], outcomes


def test_tensorrt_that_does_not_load_is_named(tmp_path: Path) -> None:
    outcomes = _session(tmp_path, tensorrt=BROKEN_TRT, gpu=True)
    assert "libnvinfer.so.10" in outcomes["test_tensorrt"], outcomes


def _driver_here() -> bool:
    if subprocess.run(["sh", "-c", "command -v nvidia-smi"], capture_output=True).returncode == 0:
        return True
    try:
        from cuda.bindings import runtime
    except ImportError:
        return False
    error, count = runtime.cudaGetDeviceCount()
    return error == runtime.cudaError_t.cudaSuccess and count > 0


@pytest.mark.skipif(_driver_here(), reason="this machine has an NVIDIA driver")
def test_no_gpu_skips_both_with_their_reasons(tmp_path: Path) -> None:
    outcomes = _session(tmp_path, tensorrt="__version__ = '10.3.0'\n", gpu=False)
    assert "no CUDA GPU is visible" in outcomes["test_gpu"], outcomes
    assert "no CUDA GPU is visible" in outcomes["test_tensorrt"], outcomes
