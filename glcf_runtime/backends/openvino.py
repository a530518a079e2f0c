"""OpenVINO backend: ``model.onnx`` (FP32 or BF16 inference precision) or ``model.int8.onnx`` on
an x86 CPU, compiled once and cached next to the model.

openvino itself is imported when a runner is made, not when this module is. The compiled model is
cached in ``.openvino-cache`` beside the artifact (OpenVINO's ``CACHE_DIR``), so a second start
skips the compilation; a folder that cannot be written runs without the cache.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from glcf_runtime.artifacts import Precision
from glcf_runtime.backends.base import Runner, TensorInfo, check_io, check_streams
from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.metadata import INPUT_NAME, MAP_NAME, SCORE_NAME, ArtifactMetadata
from glcf_runtime.requires import installed, require

CACHE_DIR = ".openvino-cache"
DEVICE = "CPU"
log = logging.getLogger(__name__)


# OpenVINO's inference precision for the float parts (INT8 files: the parts not quantized); BF16
# needs native BF16 instructions (AVX-512 BF16 or AMX)
OV_PRECISION = {Precision.FP32: "f32", Precision.BF16: "bf16"}
# OpenVINO's element type names (``u8``) as numpy's
OV_DTYPES = {"u8": "uint8", "i8": "int8", "i32": "int32", "i64": "int64", "f16": "float16",
             "f32": "float32", "f64": "float64", "boolean": "bool"}


def openvino_available() -> bool:
    """Whether openvino can be imported here (nothing is imported when it cannot be found)."""
    return installed("openvino")


def native_bf16(core: Any = None) -> bool:
    """Whether OpenVINO's CPU plugin has native BF16 here (it lists BF16 among its capabilities
    only on CPUs with AVX-512 BF16 or AMX)."""
    core = core or require("openvino", "openvino").Core()
    return "BF16" in core.get_property(DEVICE, "OPTIMIZATION_CAPABILITIES")


def cpu_name(core: Any) -> str:
    return str(core.get_property(DEVICE, "FULL_DEVICE_NAME"))


class OpenVinoRunner(Runner):
    """A GLCF ONNX artifact compiled by OpenVINO for the CPU.

    Args:
        path: ``model.onnx`` or ``model.int8.onnx`` (static QDQ: OpenVINO runs its quantized
            MatMuls and convolutions in INT8).
        precision: fp32 or bf16 (OpenVINO's ``INFERENCE_PRECISION_HINT``).
        threads: inference threads; None: OpenVINO's default (all cores).
        streams: CPU streams, each with its own infer request (``lanes``): batches that score
            at the same time, the threads shared between them; 1: one stream for the lowest
            latency of a single batch (OpenVINO's LATENCY hint).
        cache: cache the compiled model in ``.openvino-cache`` next to ``path``.

    Raises:
        ConfigError: missing file, unknown precision, or BF16 on a CPU without native BF16.
        MetadataError: the model is not a GLCF deploy artifact this runtime understands.
    """

    backend = "openvino"

    def __init__(self, path: str | Path, precision: str | Precision = Precision.FP32,
                 threads: int | None = None, cache: bool = True, streams: int = 1) -> None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"no ONNX model at {path}; give model.onnx from glcf export")
        try:
            self.hint = Precision(precision)
        except ValueError:
            self.hint = None
        if self.hint not in OV_PRECISION:
            raise ConfigError(f"precision {precision!r}: choose "
                              f"{', '.join(p.value for p in OV_PRECISION)}")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        check_streams(streams, threads)
        ov = require("openvino", "openvino")
        core = ov.Core()
        if self.hint is Precision.BF16 and not native_bf16(core):
            raise ConfigError(
                f"this CPU ({cpu_name(core)}) has no native BF16 (AVX-512 BF16 or AMX): OpenVINO "
                "would not run BF16 here; use --precision fp32, or model.int8.onnx")
        self.cache = _cache_dir(path) if cache else None
        if self.cache is not None:
            core.set_property({"CACHE_DIR": str(self.cache)})
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": OV_PRECISION[self.hint]}
        if streams == 1:
            config["PERFORMANCE_HINT"] = "LATENCY"
        else:
            config["NUM_STREAMS"] = streams
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(str(path))
            props = _framework_props(model)
            compiled = core.compile_model(model, DEVICE, config)
        except Exception as exc:  # openvino raises RuntimeError with the plugin's message
            raise GlcfError(f"openvino cannot load {path}: {exc}") from None
        metadata = ArtifactMetadata.from_props(props, str(path))
        super().__init__(path, metadata)
        self._max_batch = check_io([tensor_info(p) for p in compiled.inputs],
                                   [tensor_info(p) for p in compiled.outputs], metadata, path)
        granted = int(compiled.get_property("NUM_STREAMS"))
        if granted < streams:
            raise ConfigError(f"OpenVINO runs at most {granted} streams of {path.name} on this CPU "
                              f"({cpu_name(core)}), not {streams}; lower --streams")
        self._compiled = compiled
        self._requests = [compiled.create_infer_request() for _ in range(streams)]  # first: infer
        self.threads = threads

    @property
    def max_batch(self) -> int | None:
        return self._max_batch

    def _stream_runs(self) -> list[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]:
        return [partial(self._run, request) for request in self._requests]

    @property
    def precision(self) -> str:
        """What runs: the file's precision (``int8-qdq``) and/or the inference precision hint."""
        if self.metadata.precision == "fp32":
            return self.hint.value
        return self.metadata.precision + ("+bf16" if self.hint is Precision.BF16 else "")

    def describe(self) -> str:
        threads = f", {self.threads} threads" if self.threads else ""
        streams = f", {self.streams} streams" if self.streams > 1 else ""
        return f"openvino {self.path.name} on {DEVICE} ({self.hint.value}{threads}{streams})"

    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run(self._requests[0], batch)

    @staticmethod
    def _run(request: Any, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        request.infer({INPUT_NAME: batch}, share_inputs=True)
        return request.get_tensor(MAP_NAME).data, request.get_tensor(SCORE_NAME).data

    def close(self) -> None:
        self._requests = []
        self._compiled = None


def _cache_dir(path: Path) -> Path | None:
    """``.openvino-cache`` beside the model, or None (with a note) where it cannot be written."""
    folder = path.resolve().parent
    cache = folder / CACHE_DIR
    writable = os.access(cache, os.W_OK) if cache.exists() else os.access(folder, os.W_OK)
    if writable:
        return cache
    log.info("%s is not writable: OpenVINO compiles %s on every start", cache, path.name)
    return None


def _framework_props(model: Any) -> dict[str, str]:
    """The ONNX file's ``metadata_props``, which OpenVINO's ONNX reader keeps under ``framework``."""
    if not model.has_rt_info(["framework"]):
        return {}
    keys = model.get_rt_info(["framework"]).astype(dict)
    return {key: model.get_rt_info(["framework", key]).astype(str) for key in keys}



def tensor_info(port: Any) -> TensorInfo:
    """A compiled model's input or output port as ``TensorInfo``; of a port's names, the
    contract's one where it has it."""
    names = port.get_names()
    name = next((n for n in (INPUT_NAME, MAP_NAME, SCORE_NAME) if n in names), port.get_any_name())
    kind = port.get_element_type().get_type_name()
    partial = port.get_partial_shape()
    shape = None if partial.rank.is_dynamic else tuple(
        d.get_length() if d.is_static else None for d in partial)
    return TensorInfo(name, OV_DTYPES.get(kind, kind), shape)
