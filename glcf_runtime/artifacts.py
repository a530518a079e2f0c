"""The export folder: the names of its files, and the ways of running it (run modes).

``glcf export --out DIR`` writes the files below; ``glcf inspect``, ``glcf threshold``,
``glcf engine`` and ``glcf bench`` read them. A run mode is one way of running the folder: a
backend, the file it runs (for TensorRT: the ONNX file its engine is built from), the precision
of the graph's float parts, and the check in ``gates.json`` it must have passed before
``--backend auto`` offers it (None: the export's own checks; the ``fp16`` gate's failure fails the
export too, so an FP16 file that is there has passed it).

| run mode             | backend     | file              | precision | gate               |
|----------------------|-------------|-------------------|-----------|--------------------|
| `onnxruntime`        | onnxruntime | `model.onnx`      | fp32      |                    |
| `onnxruntime-fp16`   | onnxruntime | `model.fp16.onnx` | fp16      | fp16               |
| `tensorrt`           | tensorrt    | `model.fp16.onnx` | fp16      | fp16               |
| `openvino`           | openvino    | `model.onnx`      | fp32      |                    |
| `openvino-bf16`      | openvino    | `model.onnx`      | bf16      | openvino-bf16      |
| `openvino-int8`      | openvino    | `model.int8.onnx` | fp32      | openvino-int8      |
| `openvino-int8-bf16` | openvino    | `model.int8.onnx` | bf16      | openvino-int8-bf16 |
| `onnxruntime-int8`   | onnxruntime | `model.int8.onnx` | fp32      | int8               |
| `tensorrt-int8`      | tensorrt    | `model.int8.onnx` | fp32      | int8               |

``glcf bench --backends`` takes these names (and ``torch``). ``glcf inspect --backend`` takes
them too, or a backend with ``--precision`` and a file: ``--backend openvino --precision bf16`` on
an export folder is the ``openvino-bf16`` row (:func:`run_mode_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Backend(str, Enum):
    """The runtime's backends (``glcf_runtime.backends``)."""

    ONNXRUNTIME = "onnxruntime"
    TENSORRT = "tensorrt"
    OPENVINO = "openvino"
    AUTO = "auto"  # the fastest checked run mode here (glcf_runtime.backends.auto)


class Precision(str, Enum):
    """What the graph's float parts compute in (an INT8 file: the parts that are not quantized)."""

    FP32 = "fp32"
    FP16 = "fp16"  # the mixed file: networks FP16; LayerNorm, Softmax and the scorer FP32
    BF16 = "bf16"  # OpenVINO's inference precision hint on CPUs with native BF16


FP32_FILE = "model.onnx"
FP16_FILE = "model.fp16.onnx"  # mixed FP16 (DESIGN §4); what model.engine is built from
INT8_FILE = "model.int8.onnx"  # static QDQ INT8 (glcf export --int8)
ENGINE_FILE = "model.engine"  # TensorRT; its sidecar is backends.tensorrt.sidecar.sidecar_path
INT8_ENGINE_FILE = "model.int8.engine"  # TensorRT, strongly typed from INT8_FILE
GATES_FILE = "gates.json"  # {"fp16": {"passed": bool, ...}, "openvino-bf16": {...}, …}
EXPORT_REPORT = "export_report.json"  # {"batch": the largest batch the export checked, figures, …}
THRESHOLD_FILE = "threshold.json"  # a threshold re-calibrated on the deployed backend
TIMING_CACHE = "timing.cache"  # TensorRT's tactic timings, shared by the folder's engine builds
ONNX_FILES = (FP32_FILE, FP16_FILE, INT8_FILE)
ENGINES = {FP16_FILE: ENGINE_FILE, INT8_FILE: INT8_ENGINE_FILE}  # ONNX file → its engine's name
# A Triton model repository's version folder: Triton's own default file names per platform.
TRITON_FILES = {"onnxruntime_onnx": "model.onnx", "tensorrt_plan": "model.plan"}


@dataclass(frozen=True)
class RunMode:
    """One way of running an export folder (see the module docstring)."""

    backend: Backend
    file: str  # the ONNX file it runs; TensorRT: the one its engine is built from
    precision: Precision
    gate: str | None = None  # its key in gates.json; None: no gate of its own

    @property
    def runs(self) -> str:
        """The file the backend opens: the engine for TensorRT, else ``file``."""
        return ENGINES[self.file] if self.backend is Backend.TENSORRT else self.file


RUN_MODES = {  # order: glcf bench's default order of rows
    "onnxruntime": RunMode(Backend.ONNXRUNTIME, FP32_FILE, Precision.FP32),
    "onnxruntime-fp16": RunMode(Backend.ONNXRUNTIME, FP16_FILE, Precision.FP16, "fp16"),
    "tensorrt": RunMode(Backend.TENSORRT, FP16_FILE, Precision.FP16, "fp16"),
    "openvino": RunMode(Backend.OPENVINO, FP32_FILE, Precision.FP32),
    "openvino-bf16": RunMode(Backend.OPENVINO, FP32_FILE, Precision.BF16, "openvino-bf16"),
    "openvino-int8": RunMode(Backend.OPENVINO, INT8_FILE, Precision.FP32, "openvino-int8"),
    "openvino-int8-bf16": RunMode(Backend.OPENVINO, INT8_FILE, Precision.BF16, "openvino-int8-bf16"),
    "onnxruntime-int8": RunMode(Backend.ONNXRUNTIME, INT8_FILE, Precision.FP32, "int8"),
    "tensorrt-int8": RunMode(Backend.TENSORRT, INT8_FILE, Precision.FP32, "int8"),
}

# The run modes named other than a backend (a backend's own name is its plain mode, e.g. openvino).
MODE_NAMES = tuple(name for name in RUN_MODES if name not in {b.value for b in Backend})


def run_mode_of(backend: Backend | str, file: str, precision: Precision | str | None = None,
                ) -> str | None:
    """The run mode that runs export file ``file`` (an engine: the file it is built from) on
    ``backend``; ``precision`` is OpenVINO's option (None: fp32). None: no run mode does."""
    backend = Backend(backend)
    source = next((onnx for onnx, engine in ENGINES.items() if engine == file), file)
    wanted = Precision(precision) if precision is not None else None
    for name, mode in RUN_MODES.items():
        if mode.backend is not backend or mode.file != source:
            continue
        if backend is not Backend.OPENVINO or mode.precision is (wanted or Precision.FP32):
            return name
    return None
