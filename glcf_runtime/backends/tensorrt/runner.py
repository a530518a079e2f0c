"""Native TensorRT 10 backend: ``model.engine`` plus its JSON sidecar ``model.engine.json``.

The calls follow NVIDIA's TensorRT 10 Python API (name-based I/O, ``execute_async_v3``), as in the
TensorRT 8.x→10.x migration guide and ``samples/python/common_runtime.py``:
``trt.Runtime(logger).deserialize_cuda_engine``, ``engine.num_io_tensors`` /
``get_tensor_name`` / ``get_tensor_mode`` / ``get_tensor_dtype`` /
``get_tensor_profile_shape(name, 0)``, ``engine.create_execution_context()``,
``context.set_input_shape``, ``context.set_tensor_address``, ``context.execute_async_v3``.
Device buffers for the largest batch of profile 0 and pinned host buffers are allocated once;
every batch runs on one stream. tensorrt and the CUDA binding are imported when a runner is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from glcf_runtime.backends.base import Runner
from glcf_runtime.backends.tensorrt.cuda import CudaApi, load_cuda_api
from glcf_runtime.backends.tensorrt.sidecar import REBUILD, read_sidecar, sidecar_path
from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.metadata import INPUT_NAME, MAP_NAME, SCORE_NAME, ArtifactMetadata, MetadataError


def _capability(value: Any) -> str:
    """``"8.7"``, ``[8, 7]`` or ``8.7`` → ``"8.7"``."""
    if isinstance(value, list | tuple):
        return ".".join(str(v) for v in value)
    return str(value)


def check_compatible(
    sidecar: dict[str, Any], engine: Path, trt_version: str, device: tuple[str, str]
) -> None:
    """Refuse an engine built by another TensorRT version or for another GPU.

    Args:
        sidecar: the engine's sidecar (``tensorrt_version``, ``gpu_name``, ``compute_capability``).
        engine: the engine file, for the message.
        trt_version: ``tensorrt.__version__`` here.
        device: ``(GPU name, compute capability)`` here.

    Raises:
        GlcfError: says what the engine was built for and how to rebuild it.
    """
    built = (
        str(sidecar.get("tensorrt_version")),
        str(sidecar.get("gpu_name")),
        _capability(sidecar.get("compute_capability")),
    )
    here = (trt_version, device[0], device[1])
    if built != here:
        raise GlcfError(
            f"{engine} was built with TensorRT {built[0]} for {built[1]} (compute capability "
            f"{built[2]}); this device has TensorRT {here[0]} on {here[1]} (compute capability "
            f"{here[2]}). Engines do not move between GPU models or TensorRT versions: rebuild it "
            f"on this device with {REBUILD}, or meanwhile run {engine.parent / 'model.onnx'} with "
            "--backend onnxruntime"
        )


def import_tensorrt() -> Any:
    """``import tensorrt``, or a GlcfError that says what to install and what to use meanwhile."""
    try:
        import tensorrt
    except ImportError:
        raise GlcfError(
            "the TensorRT backend needs the tensorrt Python package: on Jetson it comes with "
            "JetPack (apt install python3-libnvinfer), elsewhere pip install 'glcf[trt]' "
            "(tensorrt and cuda-python). Meanwhile run the ONNX model with the ONNX Runtime "
            "backend: glcf inspect DIR/model.onnx --backend onnxruntime"
        ) from None
    return tensorrt


class TensorRTRunner(Runner):
    """A GLCF TensorRT engine with pre-allocated buffers for profile 0's largest batch.

    Args:
        engine_path: ``model.engine`` (or ``.plan``) with ``model.engine.json`` beside it.
        cuda: the CUDA binding; None: cuda-python or pycuda, whichever is importable.

    Raises:
        MetadataError: missing or foreign sidecar, or engine I/O that breaks the contract.
        GlcfError: no tensorrt / CUDA binding, or an engine built for another device.
    """

    backend = "tensorrt"

    def __init__(self, engine_path: str | Path, cuda: CudaApi | None = None) -> None:
        path = Path(engine_path)
        if not path.is_file():
            raise ConfigError(f"no TensorRT engine at {path}; build one with {REBUILD}")
        sidecar = read_sidecar(path)
        props = {k: v for k, v in sidecar.items() if isinstance(v, str)}
        super().__init__(path, ArtifactMetadata.from_props(props, str(sidecar_path(path))))
        trt = import_tensorrt()
        self._cuda = cuda or load_cuda_api()
        self._device = self._cuda.device()
        check_compatible(sidecar, path, trt.__version__, self._device)
        self._trt_version = trt.__version__
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise GlcfError(
                f"TensorRT could not deserialise {path} (its log says why); rebuild it "
                f"on this device with {REBUILD}"
            )
        self._max_batch = self._check_io(trt)
        self._context = self._engine.create_execution_context()
        self._host: dict[str, np.ndarray] = {}
        self._dev: dict[str, int] = {}
        self._stream: Any = None
        self._allocate()
        self._bound_batch = 0  # batch size the context's input shape is set to

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def describe(self) -> str:
        return (
            f"tensorrt {self.path.name} on {self._device[0]} (TensorRT {self._trt_version}, "
            f"{self._cuda.name})"
        )

    def _check_io(self, trt: Any) -> int:
        """Check names, modes and dtypes of the engine's tensors; return profile 0's max batch."""
        engine, h, w = self._engine, self.metadata.height, self.metadata.width
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        expected = {INPUT_NAME: np.uint8, MAP_NAME: np.float32, SCORE_NAME: np.float32}
        dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        if inputs != [INPUT_NAME] or dtypes != {k: np.dtype(v) for k, v in expected.items()}:
            raise MetadataError(
                f"{self.path} has tensors {dtypes} (inputs {inputs}); a GLCF engine "
                f"has input {INPUT_NAME} uint8 and outputs {MAP_NAME}, {SCORE_NAME} "
                f"float32; rebuild with {REBUILD}"
            )
        _, _, largest = engine.get_tensor_profile_shape(INPUT_NAME, 0)  # min, opt, max
        if tuple(largest)[1:] != (h, w, 3):
            raise MetadataError(
                f"{self.path}: profile shape {tuple(largest)} does not match the "
                f"metadata's {h}x{w}; rebuild with {REBUILD}"
            )
        return int(largest[0])

    def _allocate(self) -> None:
        """Pinned host and device buffers for the largest batch, bound to the context by name."""
        b, h, w = self._max_batch, self.metadata.height, self.metadata.width
        shapes = {
            INPUT_NAME: ((b, h, w, 3), np.uint8),
            MAP_NAME: ((b, h, w), np.float32),
            SCORE_NAME: ((b,), np.float32),
        }
        for name, (shape, dtype) in shapes.items():
            self._host[name] = self._cuda.pinned_empty(shape, np.dtype(dtype))
            self._dev[name] = self._cuda.malloc(self._host[name].nbytes)
            if not self._context.set_tensor_address(name, self._dev[name]):
                raise GlcfError(f"TensorRT refused the address of tensor {name!r}")
        self._stream = self._cuda.stream()
        self._handle = self._cuda.stream_handle(self._stream)

    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, cuda = batch.shape[0], self._cuda
        host_in = self._host[INPUT_NAME][:n]
        np.copyto(host_in, batch)
        if n != self._bound_batch:
            if not self._context.set_input_shape(INPUT_NAME, batch.shape):
                raise GlcfError(f"TensorRT refused input shape {batch.shape} for {self.path}")
            self._bound_batch = n
        cuda.htod_async(self._dev[INPUT_NAME], host_in, self._stream)
        if not self._context.execute_async_v3(self._handle):
            raise GlcfError(f"TensorRT failed to run {self.path} (its log says why)")
        maps, scores = self._host[MAP_NAME][:n], self._host[SCORE_NAME][:n]
        cuda.dtoh_async(maps, self._dev[MAP_NAME], self._stream)
        cuda.dtoh_async(scores, self._dev[SCORE_NAME], self._stream)
        cuda.synchronize(self._stream)
        return maps, scores

    def close(self) -> None:
        """Free buffers and the stream, then the context, engine and runtime (in that order)."""
        if self._stream is None:
            return
        self._cuda.synchronize(self._stream)
        for name in list(self._dev):
            self._cuda.free(self._dev.pop(name))
            self._cuda.free_pinned(self._host.pop(name))
        self._cuda.destroy_stream(self._stream)
        self._stream = None
        self._context = self._engine = self._runtime = None
