"""Either CUDA binding serves building and running: cuda-python, or pycuda alone (what a JetPack
box often has). The pycuda here is a fake of the few pycuda.driver calls used; cuda-python is
the real package, which on this machine (no NVIDIA driver) reports cudaErrorInsufficientDriver."""

from __future__ import annotations

import sys
import types

import pytest

from glcf_runtime.backends.tensorrt.cuda import CudaUnavailable, PyCudaApi, load_cuda_api
from glcf_runtime.backends.tensorrt.probe import (
    GpuInfo,
    TensorRTUnavailable,
    gpu_info,
    require_tensorrt,
    tensorrt_here,
)


def _fake_pycuda(devices: int = 1) -> dict[str, types.ModuleType]:
    """pycuda.driver's ``init``, ``Device`` (``count``, ``name``, ``compute_capability``) and
    ``Context.get_device``; pycuda.autoinit, which makes a context on device 0 when imported."""
    driver = types.ModuleType("pycuda.driver")
    state = {"initialised": False, "context": False}

    class Device:
        def __init__(self, index: int) -> None:
            self.index = index

        @staticmethod
        def count() -> int:
            if not state["initialised"]:
                raise RuntimeError("cuInit has not been called")
            return devices

        def name(self) -> str:
            return "Orin"

        def compute_capability(self) -> tuple[int, int]:
            return 8, 7

    class Context:
        @staticmethod
        def get_device() -> Device:
            if not state["context"]:
                raise RuntimeError("no current context")
            return Device(0)

    driver.init = lambda flags=0: state.update(initialised=True)
    driver.Device, driver.Context = Device, Context
    autoinit = types.ModuleType("pycuda.autoinit")
    if devices:
        state.update(initialised=True, context=True)
        autoinit.device, autoinit.context = Device(0), Context()
    package = types.ModuleType("pycuda")
    package.__path__ = []
    package.driver, package.autoinit = driver, autoinit
    return {"pycuda": package, "pycuda.driver": driver, "pycuda.autoinit": autoinit}


@pytest.fixture
def pycuda_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A box with pycuda and without cuda-python."""
    for name in ("cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)
    for name, module in _fake_pycuda().items():
        monkeypatch.setitem(sys.modules, name, module)


def test_pycuda_alone_reports_the_gpu(pycuda_only: None) -> None:
    api = load_cuda_api()
    assert isinstance(api, PyCudaApi) and api.device() == ("Orin", "8.7")
    assert gpu_info() == GpuInfo("Orin", "8.7")


def test_pycuda_alone_is_enough_for_tensorrt(pycuda_only: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    assert require_tensorrt() is trt
    ok, why = tensorrt_here()
    assert ok, why


def test_pycuda_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)
    for name, module in _fake_pycuda(devices=0).items():
        monkeypatch.setitem(sys.modules, name, module)
    with pytest.raises(CudaUnavailable, match=r"no CUDA GPU is visible.*pycuda: 0 devices"):
        load_cuda_api()


def test_no_binding_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("cuda.bindings", "cuda.bindings.runtime", "cuda.cudart", "pycuda",
                 "pycuda.driver", "pycuda.autoinit"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(TensorRTUnavailable) as err:
        gpu_info()
    text = str(err.value)
    assert "cuda-python is not installed" in text and "pycuda is not installed" in text
    assert "glcf[trt]" in text and "pycuda" in text


def test_real_cuda_python_without_a_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed cuda-python, on a machine without an NVIDIA driver (skips where one is)."""
    runtime = pytest.importorskip("cuda.bindings.runtime")
    error, _ = runtime.cudaGetDeviceCount()
    if error == runtime.cudaError_t.cudaSuccess:
        pytest.skip("a CUDA driver is present here")
    monkeypatch.setitem(sys.modules, "pycuda", None)
    with pytest.raises(CudaUnavailable) as err:
        load_cuda_api()
    assert "no CUDA GPU is visible" in str(err.value)
    assert f"cuda-python: {error.name}" in str(err.value) and "nvidia-smi" in str(err.value)
