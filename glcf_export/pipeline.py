"""The one export pipeline: trace → onnxslim → metadata → FP32 file → mixed FP16 file → checks.

``glcf export`` runs it into a staging folder and publishes the files only when every check
passes; ``glcf bench`` (presets and run folders) and ``benchmarks/export_time.py`` run the same
stages, so a graph that is timed is the graph that ships. Each stage's seconds are recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
from torch import nn

from glcf_export.checks import (
    CheckReport,
    check_fp16,
    check_fp32,
    check_ops,
    check_runner,
    torch_reference,
)
from glcf_export.onnx_export import export_fp32, set_metadata, to_mixed_fp16
from glcf_runtime.artifacts import FP16_FILE, FP32_FILE
from glcf_runtime.compare import infer_all
from glcf_runtime.metadata import ArtifactMetadata

T = TypeVar("T")
Log = Callable[[str], None]


@dataclass
class Graphs:
    """What the pipeline wrote into ``folder``: the models as saved and the seconds per stage."""

    folder: Path
    fp32: onnx.ModelProto
    mixed: onnx.ModelProto | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, stage: str, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        value = fn()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
        return value


def write_graphs(deploy: nn.Module, meta: ArtifactMetadata, folder: Path, image_size: int,
                 fp16: bool = True, log: Log = print) -> Graphs:
    """Trace ``deploy`` (uint8 frames in, map and score out) and save ``model.onnx`` and, with
    ``fp16``, ``model.fp16.onnx`` (networks FP16; LayerNorm, Softmax and the scorer FP32) in
    ``folder``, each carrying ``meta`` in its ``metadata_props`` with its checks pending
    (``onnx_export.mark_checked`` records them passed, once ``glcf export`` has run them)."""
    log("tracing the fused graph (Φ_L, bottleneck, decoders, scoring) …")
    graphs = Graphs(folder, onnx.ModelProto())
    graphs.fp32 = graphs.timed(
        "trace_and_simplify", lambda: export_fp32(deploy, folder / FP32_FILE, image_size))
    set_metadata(graphs.fp32, meta)
    graphs.timed("save_fp32", lambda: onnx.save(graphs.fp32, str(folder / FP32_FILE)))
    if fp16:
        log("making the mixed-precision FP16 file …")
        graphs.mixed = graphs.timed("mixed_fp16", lambda: to_mixed_fp16(graphs.fp32))
        set_metadata(graphs.mixed, ArtifactMetadata(**{**meta.__dict__, "precision": "fp16-mixed"}))
        graphs.timed("save_fp16", lambda: onnx.save(graphs.mixed, str(folder / FP16_FILE)))
    return graphs


def check_graphs(graphs: Graphs, model: nn.Module, scorer: nn.Module, images: np.ndarray,
                 batch: int, log: Log = print) -> CheckReport:
    """FP32 vs the torch reference at batch 1 and 4, FP16 vs FP32 on every image, and TensorRT 10
    operator coverage of both files. The report lists every failure; nothing is raised here."""
    report = CheckReport()
    log("checking FP32: ONNX Runtime vs the torch reference at batch 1 and 4 …")
    reference = graphs.timed("torch_reference", lambda: torch_reference(model, scorer, images[:4]))
    fp32 = graphs.timed("ort_session_fp32", lambda: check_runner(graphs.folder / FP32_FILE))
    with fp32:
        rule = scorer.cfg.score_rule.value
        graphs.timed("check_fp32", lambda: check_fp32(report, fp32, reference, images, rule))
        graphs.timed("check_ops_fp32", lambda: check_ops(report, FP32_FILE, graphs.fp32))
        if graphs.mixed is not None:
            log("checking the mixed FP16 file against FP32 …")
            fp32_out = infer_all(fp32, images, batch)
            with check_runner(graphs.folder / FP16_FILE) as fp16:
                graphs.timed("check_fp16", lambda: check_fp16(report, fp16, fp32_out, images, batch))
            graphs.timed("check_ops_fp16", lambda: check_ops(report, FP16_FILE, graphs.mixed))
    return report
