"""The few CUDA calls the native TensorRT runner needs, behind one small protocol.

Two implementations, chosen by what is importable and sees a GPU: NVIDIA's cuda-python
(``cuda.bindings.runtime``, ``cuda.cudart`` before 12.8; the route of TensorRT's own
``samples/python/common_runtime.py``) and pycuda (what JetPack users often have; the route of the
older TensorRT samples). Either serves building and running. Device memory is a plain ``int``
pointer, which is what ``IExecutionContext.set_tensor_address`` takes.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from glcf_runtime.errors import GlcfError

# What to install, per stack, where no binding imports (README "TensorRT").
INSTALL = (
    "pip install 'glcf[trt]' (TensorRT 10, CUDA 12) or 'glcf[trt-cu13]' (TensorRT 11, CUDA 13), "
    "which bring cuda-python; on a Jetson, JetPack ships TensorRT (python3-libnvinfer): use the "
    "system Python or a venv made with --system-site-packages, without those extras, with pycuda "
    "or cuda-python"
)


class CudaUnavailable(GlcfError):
    """No CUDA binding is installed, or none sees a GPU."""


class CudaApi(Protocol):
    """Device memory, pinned host memory, asynchronous copies and one stream."""

    name: str

    def device(self) -> tuple[str, str]:
        """``(GPU name, compute capability "major.minor")`` of the current device."""
        ...

    def malloc(self, nbytes: int) -> int: ...

    def free(self, pointer: int) -> None: ...

    def pinned_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray: ...

    def free_pinned(self, array: np.ndarray) -> None: ...

    def stream(self) -> Any: ...

    def stream_handle(self, stream: Any) -> int: ...

    def htod_async(self, pointer: int, host: np.ndarray, stream: Any) -> None: ...

    def dtoh_async(self, host: np.ndarray, pointer: int, stream: Any) -> None: ...

    def synchronize(self, stream: Any) -> None: ...

    def destroy_stream(self, stream: Any) -> None: ...


class CudaPythonApi:
    """cuda-python runtime bindings; every call returns ``(error, *values)``."""

    name = "cuda-python"

    def __init__(self, cudart: Any) -> None:
        self.rt = cudart

    def _ok(self, result: tuple) -> Any:
        if result[0] != self.rt.cudaError_t.cudaSuccess:
            raise GlcfError(f"CUDA runtime error {result[0]}")
        return result[1] if len(result) == 2 else result[1:]

    def device(self) -> tuple[str, str]:
        props = self._ok(self.rt.cudaGetDeviceProperties(self._ok(self.rt.cudaGetDevice())))
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return name.rstrip("\x00").strip(), f"{props.major}.{props.minor}"

    def malloc(self, nbytes: int) -> int:
        return int(self._ok(self.rt.cudaMalloc(nbytes)))

    def free(self, pointer: int) -> None:
        self._ok(self.rt.cudaFree(pointer))

    def pinned_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        pointer = int(self._ok(self.rt.cudaMallocHost(nbytes)))
        raw = (ctypes.c_byte * nbytes).from_address(pointer)
        return np.frombuffer(memoryview(raw), dtype=dtype).reshape(shape)

    def free_pinned(self, array: np.ndarray) -> None:
        self._ok(self.rt.cudaFreeHost(array.ctypes.data))

    def stream(self) -> Any:
        return self._ok(self.rt.cudaStreamCreate())

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def htod_async(self, pointer: int, host: np.ndarray, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._ok(self.rt.cudaMemcpyAsync(pointer, host.ctypes.data, host.nbytes, kind, stream))

    def dtoh_async(self, host: np.ndarray, pointer: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._ok(self.rt.cudaMemcpyAsync(host.ctypes.data, pointer, host.nbytes, kind, stream))

    def synchronize(self, stream: Any) -> None:
        self._ok(self.rt.cudaStreamSynchronize(stream))

    def destroy_stream(self, stream: Any) -> None:
        self._ok(self.rt.cudaStreamDestroy(stream))


class PyCudaApi:
    """pycuda driver API; ``pycuda.autoinit`` makes a context on device 0 current."""

    name = "pycuda"

    def __init__(self, driver: Any) -> None:
        self.drv = driver
        self._allocations: dict[int, Any] = {}  # pointer -> DeviceAllocation (keeps it alive)

    def device(self) -> tuple[str, str]:
        dev = self.drv.Context.get_device()
        major, minor = dev.compute_capability()
        return dev.name(), f"{major}.{minor}"

    def malloc(self, nbytes: int) -> int:
        allocation = self.drv.mem_alloc(nbytes)
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, pointer: int) -> None:
        self._allocations.pop(pointer).free()

    def pinned_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self.drv.pagelocked_empty(shape, dtype)

    def free_pinned(self, array: np.ndarray) -> None:
        allocation: Any = array.base  # pycuda's HostAllocation behind the array
        allocation.free()

    def stream(self) -> Any:
        return self.drv.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def htod_async(self, pointer: int, host: np.ndarray, stream: Any) -> None:
        self.drv.memcpy_htod_async(pointer, host, stream)

    def dtoh_async(self, host: np.ndarray, pointer: int, stream: Any) -> None:
        self.drv.memcpy_dtoh_async(host, pointer, stream)

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def destroy_stream(self, stream: Any) -> None:
        """pycuda destroys the stream when the object is collected."""


def _cuda_python() -> CudaPythonApi:
    """cuda-python's runtime API, once it has counted a GPU.

    Raises:
        ImportError: cuda-python is not installed.
        CudaUnavailable: it is, and sees no GPU (the words say why: its CUDA error).
    """
    try:
        from cuda.bindings import runtime as cudart  # pyright: ignore[reportAttributeAccessIssue]
    except ImportError:
        from cuda import cudart  # pyright: ignore  # cuda-python < 12.8
    try:
        error, count = cudart.cudaGetDeviceCount()
    except Exception as exc:  # the binding raises its own types where the driver library is absent
        raise CudaUnavailable(f"{type(exc).__name__}: {exc}") from None
    if error != cudart.cudaError_t.cudaSuccess:
        raise CudaUnavailable(getattr(error, "name", str(error)))
    if not count:
        raise CudaUnavailable("0 devices")
    return CudaPythonApi(cudart)


def _pycuda() -> PyCudaApi:
    """pycuda's driver API with a context on device 0 (``pycuda.autoinit``), once it has counted
    a GPU.

    Raises:
        ImportError: pycuda is not installed.
        CudaUnavailable: it is, and sees no GPU.
    """
    import pycuda.driver as driver  # pyright: ignore[reportMissingImports]

    try:
        driver.init()
        count = driver.Device.count()
        if count:  # pycuda.autoinit creates a context on device 0 and makes it current
            import pycuda.autoinit  # noqa: F401  # pyright: ignore[reportMissingImports]
    except ImportError:
        raise
    except Exception as exc:  # pycuda.driver.Error's subclasses (RuntimeError, LogicError, …)
        raise CudaUnavailable(f"{type(exc).__name__}: {exc}") from None
    if not count:
        raise CudaUnavailable("0 devices")
    return PyCudaApi(driver)


LOADERS: tuple[tuple[str, Callable[[], CudaApi]], ...] = (
    ("cuda-python", _cuda_python),
    ("pycuda", _pycuda),
)


def load_cuda_api() -> CudaApi:
    """The first binding that imports and sees a GPU: cuda-python, else pycuda.

    Raises:
        CudaUnavailable: neither is installed, or none sees a GPU (each one's reason is named).
    """
    missing, blind = [], []
    for name, load in LOADERS:
        try:
            return load()
        except ImportError:
            missing.append(f"{name} is not installed")
        except CudaUnavailable as exc:
            blind.append(f"{name}: {exc}")
    if not blind:
        raise CudaUnavailable(f"no CUDA binding for TensorRT ({'; '.join(missing)}): {INSTALL}")
    hint = ""
    if any("cudaErrorInsufficientDriver" in b for b in blind):
        hint = ("; cudaErrorInsufficientDriver means no NVIDIA driver, or one older than the CUDA "
                "of cuda-python (a CUDA 12 driver takes glcf[trt], whose cuda-python is 12.x)")
    raise CudaUnavailable(
        f"no CUDA GPU is visible ({'; '.join(blind + missing)}): check nvidia-smi (on a Jetson, "
        f"that the NVIDIA driver is loaded) and CUDA_VISIBLE_DEVICES{hint}"
    )
