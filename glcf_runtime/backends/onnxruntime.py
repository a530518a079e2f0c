"""ONNX Runtime backend: CPU, CUDA or TensorRT execution provider over ``model*.onnx``.

onnxruntime itself is imported when a runner is made, not when this module is (absolute imports
keep this module from shadowing the package).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from glcf_runtime.backends.base import Runner, TensorInfo, check_io, check_streams, cpu_cores
from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.metadata import INPUT_NAME, MAP_NAME, SCORE_NAME, ArtifactMetadata
from glcf_runtime.requires import require

# Best first; only those onnxruntime.get_available_providers() lists are used.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
# What else to install where onnxruntime is missing (its GPU build is another package).
GPU_BUILD = " (or pip install onnxruntime-gpu for the CUDA and TensorRT providers)"
# ONNX Runtime's element type names (``tensor(float)``) that are not numpy's.
ORT_DTYPES = {"float": "float32", "double": "float64", "float16": "float16", "uint8": "uint8",
              "int8": "int8", "int32": "int32", "int64": "int64", "bool": "bool"}
OPTIMIZATION_LEVELS = {
    "all": "ORT_ENABLE_ALL",
    "extended": "ORT_ENABLE_EXTENDED",
    "basic": "ORT_ENABLE_BASIC",
    "disable": "ORT_DISABLE_ALL",
}


def tensor_info(arg: Any) -> TensorInfo:
    """An ``onnxruntime.NodeArg`` as ``TensorInfo`` (``tensor(float)`` → ``float32``)."""
    kind = str(arg.type).removeprefix("tensor(").removesuffix(")")
    dtype = ORT_DTYPES.get(kind, str(arg.type))
    shape = None if arg.shape is None else tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorInfo(arg.name, dtype, shape)


def choose_providers(requested: list[str] | None, available: list[str]) -> list[str]:
    """The execution providers to ask for, best first.

    Args:
        requested: names (``CUDAExecutionProvider``) or aliases (``cuda``); None: best available.
        available: ``onnxruntime.get_available_providers()``.

    Raises:
        ConfigError: a requested provider that this onnxruntime build does not have.
    """
    if not requested:
        return [p for p in PREFERRED_PROVIDERS if p in available] or list(available)
    chosen = [PROVIDER_ALIASES.get(p.lower(), p) for p in requested]
    missing = [p for p in chosen if p not in available]
    if missing:
        raise ConfigError(
            f"execution provider(s) {', '.join(missing)} not available in this "
            f"onnxruntime build; available: {', '.join(available)} "
            "(install onnxruntime-gpu for CUDA / TensorRT)"
        )
    return chosen


class OnnxRuntimeRunner(Runner):
    """A GLCF ONNX artifact in an ``onnxruntime.InferenceSession``.

    Args:
        path: ``model.onnx`` or ``model.fp16.onnx``.
        providers: execution providers, best first; None picks the best available of
            TensorRT, CUDA, CPU (ONNX Runtime falls back along the list node by node).
        threads: intra-op threads (CPU provider); None: ONNX Runtime's default (all cores).
        optimization: graph optimisation level: all, extended, basic or disable.
        spinning: let idle intra-op threads busy-wait (lower latency on an otherwise idle
            many-core machine; off by default).
        streams: sessions of the same file, the threads split between them (``lanes``):
            batches that score at the same time, each on its caller's thread.

    Raises:
        ConfigError: missing file, unknown provider or optimisation level.
        MetadataError: the model is not a GLCF deploy artifact this runtime understands.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        providers: list[str] | None = None,
        threads: int | None = None,
        optimization: str = "all",
        spinning: bool = False,
        streams: int = 1,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"no ONNX model at {path}; give model.onnx from glcf export")
        if optimization not in OPTIMIZATION_LEVELS:
            raise ConfigError(
                f"optimization {optimization!r}: choose one of {', '.join(OPTIMIZATION_LEVELS)}"
            )
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        check_streams(streams, threads)
        if streams > 1:  # the cores split between the sessions
            threads = max(1, (threads or cpu_cores()) // streams)
        ort = require("onnxruntime", "runtime", note=GPU_BUILD)
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, OPTIMIZATION_LEVELS[optimization]
        )
        if threads is not None:
            options.intra_op_num_threads = threads
        # Off by default: idle workers do not busy-wait, which leaves the cores to the capture
        # and decode threads of the camera loop. On the 2-core build machine batch-1 latency was
        # the same either way within run-to-run noise (benchmarks/session_options.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        chosen = choose_providers(providers, ort.get_available_providers())
        try:
            sessions = [ort.InferenceSession(str(path), sess_options=options, providers=chosen)
                        for _ in range(streams)]
        except Exception as exc:  # onnxruntime raises its own exception types
            raise GlcfError(f"onnxruntime cannot load {path}: {exc}") from None
        metadata = ArtifactMetadata.from_props(
            sessions[0].get_modelmeta().custom_metadata_map, str(path)
        )
        super().__init__(path, metadata)
        self._sessions = sessions  # one per stream; the first runs ``infer``
        self._max_batch = check_io([tensor_info(i) for i in sessions[0].get_inputs()],
                                   [tensor_info(o) for o in sessions[0].get_outputs()], metadata, path)
        self._outputs = [MAP_NAME, SCORE_NAME]

    @property
    def max_batch(self) -> int | None:
        return self._max_batch

    @property
    def providers(self) -> list[str]:
        """Providers the session really uses, best first."""
        return list(self._sessions[0].get_providers())

    def _stream_runs(self) -> list[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]:
        return [partial(self._run, session) for session in self._sessions]

    def describe(self) -> str:
        streams = f", {self.streams} streams" if self.streams > 1 else ""
        return f"onnxruntime {self.path.name} on {', '.join(self.providers)}{streams}"

    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run(self._sessions[0], batch)

    def _run(self, session: Any, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        maps, scores = session.run(self._outputs, {INPUT_NAME: batch})
        return maps, scores

    def close(self) -> None:
        self._sessions = []

