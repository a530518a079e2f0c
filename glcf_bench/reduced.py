"""The reduced-precision and OpenVINO rows of ``glcf bench``: opening them, and their accuracy
against ONNX Runtime FP32 on the same frames.

``openvino`` (model.onnx, FP32), ``openvino-bf16`` (its BF16 hint), ``openvino-int8`` and
``onnxruntime-int8`` (model.int8.onnx), ``tensorrt-int8`` (an engine built from model.int8.onnx,
strongly typed). A folder the benchmark exported itself (a preset or run) gets its INT8 file here,
calibrated on the benchmark's synthetic frames: its timing is real, its accuracy only says how far
the INT8 graph strays from FP32 on those frames (a preset's weights are random).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from glcf_runtime.artifacts import FP32_FILE, INT8_FILE, RUN_MODES, Backend
from glcf_runtime.backends import OnnxRuntimeRunner, Runner
from glcf_runtime.compare import read_gates, spearman
from glcf_runtime.errors import GlcfError
from glcf_runtime.requires import require

Log = Callable[[str], None]
CALIBRATION_FRAMES = 16


def open_reduced(name: str, folder: Path, temporary: bool, threads: int, max_batch: int,
                 log: Log) -> Runner:
    """The runner of row ``name`` (a run mode of ``glcf_runtime.artifacts``) on ``folder``.

    Raises:
        GlcfError: the row cannot run here (the bench records the message as the reason).
    """
    mode = RUN_MODES.get(name)
    if mode is None or (mode.backend is not Backend.OPENVINO and mode.file != INT8_FILE):
        raise GlcfError(f"unknown reduced-precision row {name!r}")
    if mode.backend is Backend.OPENVINO:
        from glcf_runtime.backends.openvino import OpenVinoRunner

        require("openvino", "openvino", who=f"the {name} row")
        path = int8_file(folder, temporary, log) if mode.file == INT8_FILE else folder / mode.file
        return OpenVinoRunner(path, precision=mode.precision.value, threads=threads, cache=temporary)
    if mode.backend is Backend.ONNXRUNTIME:
        path = int8_file(folder, temporary, log)
        return OnnxRuntimeRunner(path, providers=["cpu"], threads=threads)
    from glcf_runtime.backends import open_runner
    from glcf_runtime.backends.tensorrt.build import BuildOptions
    from glcf_runtime.backends.tensorrt.engines import build_for
    from glcf_runtime.backends.tensorrt.probe import require_tensorrt

    require_tensorrt()  # before the INT8 file is made: nothing to do without a GPU
    engine = folder / mode.runs
    if not engine.is_file():
        build_for(int8_file(folder, temporary, log), engine,
                  BuildOptions(batch=(1, 1, max_batch)), int8=True, log=log)
    return open_runner(engine, Backend.TENSORRT)


def int8_file(folder: Path, temporary: bool, log: Log) -> Path:
    """``model.int8.onnx`` of ``folder``; made here for a folder the benchmark exported."""
    path = folder / INT8_FILE
    if path.is_file():
        return path
    if not temporary:
        raise GlcfError(f"{folder} holds no {INT8_FILE}: glcf export writes it where its check "
                        "against FP32 passes (gates.json says why not; --int8 makes a failed "
                        "check an error)")
    from glcf_bench.frames import synthetic_frame
    from glcf_export.quantize import quantize_int8
    from glcf_runtime.metadata import read_metadata
    from glcf_runtime.preprocess import preprocess

    meta = read_metadata(folder / FP32_FILE, str(folder))
    spec = meta.preprocess_spec
    calib = np.stack([preprocess(synthetic_frame(i), spec) for i in range(CALIBRATION_FRAMES)])
    log(f"quantizing {folder / FP32_FILE} to INT8 (calibrated on {len(calib)} synthetic frames) …")
    quantize_int8(folder / FP32_FILE, path, calib, meta)
    return path


def check_images(spec, n: int = CALIBRATION_FRAMES) -> np.ndarray:
    """The frames every row scores for its accuracy (others than the INT8 calibration frames),
    pre-processed: uint8 ``[n, H, W, 3]``."""
    from glcf_bench.frames import synthetic_frame
    from glcf_runtime.preprocess import preprocess

    return np.stack([preprocess(synthetic_frame(CALIBRATION_FRAMES + i), spec) for i in range(n)])


def fill_accuracy(rows: list, scores: dict[str, np.ndarray], folder: Path) -> None:
    """Each row's ``spearman_vs_fp32`` (against the ``onnxruntime`` row's scores on the same
    frames) and ``auroc_change``: the largest AUROC change per defect kind that the export's gates
    measured on labelled images, where ``gates.json`` has it."""
    reference = scores.get("onnxruntime")
    gates = read_gates(folder)
    for row in rows:
        if row.backend in scores and reference is not None:
            row.spearman_vs_fp32 = spearman(reference, scores[row.backend])
        mode = RUN_MODES.get(row.backend)
        figures = gates.get(mode.gate if mode and mode.gate else "", {}).get("figures", {})
        changes = [v for k, v in figures.items() if k.startswith("auroc_") and k.endswith("_change")]
        if changes:
            row.auroc_change = max(changes, key=abs)
