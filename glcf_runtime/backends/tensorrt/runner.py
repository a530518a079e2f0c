"""Native TensorRT backend (10.3 and newer): ``model.engine`` plus its JSON sidecar
``model.engine.json``.

The calls follow NVIDIA's TensorRT Python API (name-based I/O, ``execute_async_v3``), as in the
TensorRT 8.x→10.x migration guide and ``samples/python/common_runtime.py``, and are the same on
TensorRT 11: ``trt.Runtime(logger)`` (``DLA_core`` set first for an engine built for a DLA core),
``deserialize_cuda_engine``, ``engine.num_io_tensors`` / ``get_tensor_name`` / ``get_tensor_mode``
/ ``get_tensor_dtype`` / ``get_tensor_profile_shape(name, 0)``, ``create_execution_context()``,
``context.set_input_shape``, ``set_tensor_address``, ``execute_async_v3``. Device buffers for the
largest batch of profile 0 and pinned host buffers are allocated once; every batch runs on one
stream. An engine with a fixed batch (a DLA engine: min = max) runs smaller batches padded to it.
tensorrt and the CUDA binding (cuda-python or pycuda) are imported when a runner is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from glcf_runtime.artifacts import FP32_FILE
from glcf_runtime.backends.base import Runner, TensorInfo, check_io
from glcf_runtime.backends.tensorrt.cuda import CudaApi, load_cuda_api
from glcf_runtime.backends.tensorrt.probe import import_tensorrt
from glcf_runtime.backends.tensorrt.sidecar import REBUILD, read_sidecar, sidecar_path
from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.metadata import INPUT_NAME, MAP_NAME, SCORE_NAME, ArtifactMetadata, MetadataError

Profiles = dict[str, tuple[int, int]]

if TYPE_CHECKING:
    import tensorrt as trt

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
            f"on this device with {REBUILD}, or meanwhile run {engine.parent / FP32_FILE} with "
            "--backend onnxruntime"
        )


def dla_core_of(sidecar: dict[str, Any], file: Path) -> int | None:
    """The DLA core an engine was built for (``"dla": {"core": N, ...}``), None for the GPU.

    Raises:
        MetadataError: a ``dla`` entry that is not ``null`` or an object with a core >= 0.
    """
    dla = sidecar.get("dla")
    if dla is None:
        return None
    core = dla.get("core") if isinstance(dla, dict) else None
    if isinstance(core, bool) or not isinstance(core, int) or core < 0:
        raise MetadataError(f"{file}: 'dla' is {dla!r}, not null or {{\"core\": N}}; rebuild the "
                            f"engine with {REBUILD}")
    return core


def engine_io(engine: trt.ICudaEngine) -> tuple[list[TensorInfo], list[TensorInfo], Profiles]:
    """The engine's inputs and outputs as ``TensorInfo``, and each input's smallest and largest
    batch in profile 0. An input's shape is profile 0's largest, its batch fixed only where the
    profile's smallest and largest agree; an output's shape follows the input's, so it is None."""
    import tensorrt as trt

    inputs: list[TensorInfo] = []
    outputs: list[TensorInfo] = []
    profiles: Profiles = {}
    for name in (engine.get_tensor_name(i) for i in range(engine.num_io_tensors)):
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
        if engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
            outputs.append(TensorInfo(name, dtype, None))
            continue
        smallest, _, largest = (tuple(int(d) for d in s) for s in
                                engine.get_tensor_profile_shape(name, 0))  # min, opt, max
        profiles[name] = (smallest[0], largest[0])
        batch = largest[0] if smallest[0] == largest[0] else None
        inputs.append(TensorInfo(name, dtype, (batch, *largest[1:])))
    return inputs, outputs, profiles


class TensorRTRunner(Runner):
    """A GLCF TensorRT engine with pre-allocated buffers for profile 0's largest batch.

    Args:
        engine_path: ``model.engine`` (or ``.plan``) with ``model.engine.json`` beside it.
        cuda: the CUDA binding; None: cuda-python or pycuda, whichever imports and sees a GPU.

    Raises:
        MetadataError: missing or foreign sidecar, or engine I/O that breaks the contract.
        GlcfError: no tensorrt / CUDA binding, an engine built for another device, or for a DLA
            core this device lacks.
    """

    backend = "tensorrt"

    def __init__(self, engine_path: str | Path, cuda: CudaApi | None = None) -> None:
        path = Path(engine_path)
        if not path.is_file():
            raise ConfigError(f"no TensorRT engine at {path}; build one with {REBUILD}")
        sidecar = read_sidecar(path)
        props = {k: v for k, v in sidecar.items() if isinstance(v, str)}
        super().__init__(path, ArtifactMetadata.from_props(props, str(sidecar_path(path))))
        self._dla_core = dla_core_of(sidecar, sidecar_path(path))
        self._trt_version: str = import_tensorrt().__version__  # installed, loads, 10.3 or newer
        import tensorrt as trt

        self._cuda = cuda or load_cuda_api()
        self._device = self._cuda.device()
        check_compatible(sidecar, path, self._trt_version, self._device)
        self._host: dict[str, np.ndarray] = {}
        self._dev: dict[str, int] = {}
        self._stream: Any = None
        self._handle = 0
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        if self._dla_core is not None:
            self._use_dla_core(runtime, self._dla_core)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise GlcfError(
                f"TensorRT could not deserialise {path} (its log says why); rebuild it "
                f"on this device with {REBUILD}"
            )
        inputs, outputs, profiles = engine_io(engine)
        check_io(inputs, outputs, self.metadata, path, f"rebuild with {REBUILD}")
        self._min_batch, self._max_batch = profiles[INPUT_NAME]
        context = engine.create_execution_context()
        self._allocate(context)
        self._runtime: trt.Runtime | None = runtime
        self._engine: trt.ICudaEngine | None = engine
        self._context: trt.IExecutionContext | None = context
        self._bound_batch = 0  # batch size the context's input shape is set to

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def describe(self) -> str:
        where = "" if self._dla_core is None else f", DLA core {self._dla_core} + GPU fallback"
        return (
            f"tensorrt {self.path.name} on {self._device[0]}{where} (TensorRT "
            f"{self._trt_version}, {self._cuda.name})"
        )

    def _use_dla_core(self, runtime: trt.Runtime, core: int) -> None:
        """Run the engine on the DLA core it was built for (TensorRT's default would be core 0)."""
        if core >= runtime.num_DLA_cores:
            raise GlcfError(
                f"{self.path} was built for DLA core {core}; this device has "
                f"{runtime.num_DLA_cores} DLA core(s). Rebuild it here with {REBUILD} and "
                "--dla 0 (or without --dla for the GPU)"
            )
        runtime.DLA_core = core

    def _allocate(self, context: trt.IExecutionContext) -> None:
        """Pinned host and device buffers for the largest batch, bound to the context by name;
        where one allocation fails, those made before it are freed."""
        b, h, w = self._max_batch, self.metadata.height, self.metadata.width
        shapes = {
            INPUT_NAME: ((b, h, w, 3), np.uint8),
            MAP_NAME: ((b, h, w), np.float32),
            SCORE_NAME: ((b,), np.float32),
        }
        try:
            for name, (shape, dtype) in shapes.items():
                self._host[name] = self._cuda.pinned_empty(shape, np.dtype(dtype))
                self._dev[name] = self._cuda.malloc(self._host[name].nbytes)
                if not context.set_tensor_address(name, self._dev[name]):
                    raise GlcfError(f"TensorRT refused the address of tensor {name!r}")
            self._host[INPUT_NAME].fill(0)  # the padding rows of a fixed-batch engine
            self._stream = self._cuda.stream()
            self._handle = self._cuda.stream_handle(self._stream)
        except BaseException:
            self._release()
            raise

    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        context = self._context
        if context is None:
            raise GlcfError(
                f"the TensorRT runner of {self.path} is closed; open the engine again "
                "(open_runner) to run more batches"
            )
        n, cuda = batch.shape[0], self._cuda
        run = max(n, self._min_batch)  # a fixed-batch engine runs its one size; rows n: are padding
        host_in = self._host[INPUT_NAME][:run]
        np.copyto(host_in[:n], batch)
        if run != self._bound_batch:
            if not context.set_input_shape(INPUT_NAME, (run, *batch.shape[1:])):
                raise GlcfError(f"TensorRT refused input shape {batch.shape} for {self.path}")
            self._bound_batch = run
        cuda.htod_async(self._dev[INPUT_NAME], host_in, self._stream)
        if not context.execute_async_v3(self._handle):
            raise GlcfError(f"TensorRT failed to run {self.path} (its log says why)")
        maps, scores = self._host[MAP_NAME][:run], self._host[SCORE_NAME][:run]
        cuda.dtoh_async(maps, self._dev[MAP_NAME], self._stream)
        cuda.dtoh_async(scores, self._dev[SCORE_NAME], self._stream)
        cuda.synchronize(self._stream)
        return maps[:n], scores[:n]

    def _release(self) -> None:
        """Free whatever buffers and stream exist (each once), after a partial allocation too."""
        while self._dev:
            self._cuda.free(self._dev.popitem()[1])
        while self._host:
            self._cuda.free_pinned(self._host.popitem()[1])
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._cuda.destroy_stream(stream)

    def close(self) -> None:
        """Free buffers and the stream, then the context, engine and runtime (in that order)."""
        if self._context is None:
            return
        if self._stream is not None:
            self._cuda.synchronize(self._stream)
        self._release()
        self._context = self._engine = self._runtime = None
