"""``model.int8.onnx``: the FP32 graph with static INT8 quantization in QDQ form, the one INT8 file
that TensorRT's explicit quantization (a strongly typed network) and OpenVINO both read.

ONNX Runtime's maintained quantizer does the work (``quantize_static``, ``QuantFormat.QDQ``):
symmetric INT8 activations and weights, one scale per output channel of each weight, activation
ranges calibrated on the run's good training images. Only the ungrouped convolutions and the
MatMuls with constant weights (the projections and MLPs) are quantized; depthwise convolutions, the
attention's activation-by-activation MatMuls, Softmax, LayerNorm and the whole scorer (``/scorer/``: squared errors onwards) stay in
FP32, and biases stay float (TensorRT dequantizes INT8 only).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import onnx

from glcf_export.onnx_export import SCORER_SCOPE, ExportError, set_metadata
from glcf_runtime.metadata import INPUT_NAME, ArtifactMetadata

INT8_PRECISION = "int8-qdq"
QUANTIZED_OPS = ["Conv", "MatMul"]


class CalibrationMethod(str, Enum):
    MINMAX = "minmax"  # the range each tensor reached on the calibration images
    PERCENTILE = "percentile"  # 99.999th percentile of |x|: clips rare outliers


@dataclass(frozen=True)
class Int8Options:
    calib_images: int = 256  # good training images the ranges are calibrated on (fewer: all)
    method: CalibrationMethod = CalibrationMethod.MINMAX


class _Images:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over uint8 frames, one frame per run."""

    def __init__(self, images: np.ndarray) -> None:
        self._images = images
        self._iter: Iterator[dict[str, np.ndarray]] = self._frames()

    def _frames(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self._images)):
            yield {INPUT_NAME: self._images[i : i + 1]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = self._frames()


def evenly(items: list, n: int) -> list:
    """``n`` items spread over ``items`` (all of them when there are fewer)."""
    if n >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def quantize_int8(fp32_path: Path, out: Path, images: np.ndarray, meta: ArtifactMetadata,
                  method: CalibrationMethod = CalibrationMethod.MINMAX) -> onnx.ModelProto:
    """Write ``out`` (static QDQ INT8 of ``fp32_path``, activation ranges from ``images``).

    Args:
        fp32_path: ``model.onnx``.
        out: where to write the INT8 file (a staging folder: nothing is checked here).
        images: uint8 ``[N, H, W, 3]`` BGR calibration frames (the run's good training images).
        meta: the FP32 file's metadata; the INT8 file carries it with precision ``int8-qdq``.

    Raises:
        ExportError: no calibration images, or nothing in the graph to quantize.
    """
    from onnxruntime.quantization import CalibrationMethod as OrtMethod
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if len(images) == 0:
        raise ExportError("INT8 calibration needs good training images; the run's data has none")
    fp32 = onnx.load(str(fp32_path))
    keep_float = [n.name for n in fp32.graph.node if n.name.startswith(SCORER_SCOPE)
                  or _activation_matmul(n, fp32.graph) or _depthwise(n)]
    if not any(n.op_type in QUANTIZED_OPS for n in fp32.graph.node if n.name not in keep_float):
        raise ExportError(f"{fp32_path} has no Conv or MatMul with constant weights outside the "
                          "scorer: nothing to quantize to INT8")
    methods = {CalibrationMethod.MINMAX: OrtMethod.MinMax, CalibrationMethod.PERCENTILE: OrtMethod.Percentile}
    with _without_preprocessing_advice():
        quantize_static(
            str(fp32_path), str(out), _Images(images),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTIZED_OPS, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float, calibrate_method=methods[CalibrationMethod(method)],
            extra_options={
                "ActivationSymmetric": True, "WeightSymmetric": True,
                "QuantizeBias": False,  # TensorRT's DequantizeLinear takes INT8 only, not INT32
                # QDQ on the inputs of the INT8 ops only: their outputs (and the bias Add) stay FP32
                "OpTypesToExcludeOutputQuantization": QUANTIZED_OPS,
                "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},  # weights [C_in, C_out]
                # No CalibMaxIntermediateOutputs: ONNX Runtime 1.32's MinMax calibrator drops the
                # collected ranges each time that many frames are reached (only the remainder counted).
            },
        )
    model = onnx.load(str(out))
    set_metadata(model, ArtifactMetadata(**{**meta.__dict__, "precision": INT8_PRECISION}))
    onnx.save(model, str(out))
    return model


class _PreprocessingAdvice(logging.Filter):
    """ONNX Runtime's quantizer advises, twice on the root logger, running its shape-inference
    pre-processing first; the exported graph is already simplified and shape-inferred (onnxslim),
    so the advice is not the user's to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "consider" not in record.getMessage() or "pre-processing" not in record.getMessage()


@contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    advice = _PreprocessingAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _depthwise(node: onnx.NodeProto) -> bool:
    """A grouped convolution (EfficientNet-Lite's depthwise ones): kept FP32. OpenVINO's INT8
    kernel for it diverged from ONNX Runtime's on the same QDQ file (a trained ``edge`` run on an
    AVX-512 VNNI CPU: map error 27 % of the range against 5.6 %; with the depthwise convolutions in
    FP32, 3.6 % and 4.8 %), and they hold a small share of the FLOPs."""
    return node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)


def _activation_matmul(node: onnx.NodeProto, graph: onnx.GraphProto) -> bool:
    """A MatMul of two activations (attention's Q·Kᵀ and P·V): kept FP32 (the quantizer's
    ``MatMulConstBOnly`` is not applied in QDQ form)."""
    constants = {i.name for i in graph.initializer}
    return node.op_type == "MatMul" and node.input[1] not in constants
