"""Checks every export runs before it reports success: ONNX Runtime vs the torch reference scorer,
FP16 vs FP32, and TensorRT 10 operator coverage. Each exported file is scored through a project
``Runner`` (``check_runner``) and compared through ``glcf_runtime.compare``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from glcf_export.onnx_export import ExportError
from glcf_export.quantize import evenly
from glcf_runtime.backends.base import Runner
from glcf_runtime.backends.onnxruntime import OnnxRuntimeRunner
from glcf_runtime.compare import Outputs, infer_all, spearman
from glcf_train.data.datasets import Sample, read_split

MIN_CHECK_IMAGES = 4  # check_fp32 compares batch 1 with batch 4 on this many images
MAX_CHECK_IMAGES = 32
MAP_TOLERANCE = 1e-4  # FP32 anomaly-map error, relative to the map's range
SCORE_TOLERANCE = 1e-5  # FP32 score error, relative
SPEARMAN_MIN = 0.999  # FP16 vs FP32 rank agreement of the scores


@dataclass
class CheckReport:
    figures: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    ops: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


def check_samples(root: Path, category: str | None,
                  log: Callable[[str], None] = print) -> list[Sample]:
    """The real images every export checks on: the good validation images, then test images
    (anomalous ones spread the scores, which a rank check needs) where the data set has them.

    A plain folder of 20–39 images holds out only 2 or 3 validation images and has no test split;
    training images, spread evenly, then fill the set up to ``MIN_CHECK_IMAGES``, and ``log``
    says so. The checks compare the exported
    graph with the torch reference on the same images — numerical agreement, not detection — so
    an image the model was trained on checks the graph as well as any other.

    Raises:
        ExportError: training, validation and test images together are fewer than
            ``MIN_CHECK_IMAGES``.
    """
    val, test = read_split(root, category, "validation"), read_split(root, category, "test")
    half = MAX_CHECK_IMAGES // 2
    samples = (val[: max(half, MAX_CHECK_IMAGES - len(test))]
               + test[:: max(1, len(test) // half)][:half])
    missing = MIN_CHECK_IMAGES - len(samples)
    if missing <= 0:
        return samples
    where = Path(root) / (category or "")
    train = read_split(root, category, "train")
    if len(train) < missing:
        raise ExportError(f"the export checks need at least {MIN_CHECK_IMAGES} images of {where}; "
                          f"found {len(samples) + len(train)} (training, validation and test "
                          "together): add good images and train again")
    splits = "validation and test" if test else "validation"
    log(f"warning: {where} gives only {len(samples)} {splits} images; the export checks also use"
        f" {missing} of its training images (they compare the exported graph with the torch "
        "reference, they do not measure detection)")
    return samples + evenly(train, missing)


def check_runner(path: Path) -> OnnxRuntimeRunner:
    """The project's ONNX Runtime runner on ``path`` with the CPU provider: every check scores a
    graph through the same ``Runner`` a deployment opens, on the same provider everywhere."""
    return OnnxRuntimeRunner(path, providers=["cpu"])


def check_fp32(report: CheckReport, runner: Runner, reference: tuple[np.ndarray, np.ndarray],
               images: np.ndarray, score_rule: str = "std") -> None:
    """``runner`` (the FP32 file) at batch 1 and batch 4 against the torch reference
    ``(maps, scores)``.

    A ``std`` score is checked relative to itself. A ``max`` score is one value of the map, so
    it is held to the map's tolerance, relative to the map's range (a max near 0 would make a
    relative error meaningless).
    """
    ref_maps, ref_scores = reference
    span = float(ref_maps.max() - ref_maps.min()) or 1.0
    n = min(len(images), 4)
    score_scale = np.full(n, span) if score_rule == "max" else np.maximum(np.abs(ref_scores[:n]), 1e-12)
    score_tolerance = MAP_TOLERANCE if score_rule == "max" else SCORE_TOLERANCE
    for batch in (1, 4):
        scores, maps = infer_all(runner, images[:n], batch)
        map_err = float(np.abs(maps - ref_maps[:n]).max()) / span
        score_err = float((np.abs(scores - ref_scores[:n]) / score_scale).max())
        report.figures[f"fp32_b{batch}_map_err_rel_range"] = map_err
        report.figures[f"fp32_b{batch}_score_err_rel"] = score_err
        if map_err > MAP_TOLERANCE:
            report.failures.append(f"FP32 batch {batch}: anomaly-map error {map_err:.2e} of the map's "
                                   f"range > {MAP_TOLERANCE:.0e}")
        if score_err > score_tolerance:
            report.failures.append(f"FP32 batch {batch}: {score_rule} score error {score_err:.2e} "
                                   f"relative > {score_tolerance:.0e}")


def check_fp16(report: CheckReport, runner16: Runner, fp32: Outputs,
               images: np.ndarray, batch: int) -> None:
    """``runner16`` (the mixed FP16 file) against the FP32 file's outputs on ``images``."""
    scores16, maps16 = infer_all(runner16, images, batch)
    scores32, maps32 = fp32
    span = float(maps32.max() - maps32.min()) or 1.0
    rho = spearman(scores32, scores16)
    report.figures["fp16_spearman"] = rho
    report.figures["fp16_map_err_rel_range"] = float(np.abs(maps16 - maps32).max()) / span
    report.figures["fp16_score_err_rel"] = float(
        (np.abs(scores16 - scores32) / np.maximum(np.abs(scores32), 1e-12)).max())
    if not (np.isfinite(maps16).all() and np.isfinite(scores16).all()):
        report.failures.append("FP16: the outputs hold NaN/inf (overflow in an FP16 node)")
    if not rho >= SPEARMAN_MIN:  # NaN (one side constant) fails too
        report.failures.append(f"FP16: Spearman of scores vs FP32 {rho:.5f} < {SPEARMAN_MIN}")


def check_ops(report: CheckReport, name: str, model: onnx.ModelProto) -> None:
    from glcf_export import trt_ops

    ops = trt_ops.op_report(model)
    report.ops[name] = sorted(ops.counts)
    if not ops.ok:
        report.failures.append(f"{name}: operators TensorRT 10 does not parse: {ops.format()}")


@torch.no_grad()
def torch_reference(model: torch.nn.Module, scorer: torch.nn.Module,
                    images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unfused torch model and reference scorer, one image at a time (float64-free ground truth)."""
    maps, scores = [], []
    for i in range(len(images)):
        m, s = scorer(model(torch.from_numpy(images[i : i + 1]), scorer.cfg.branch_mode))
        maps.append(m.numpy())
        scores.append(s.numpy())
    return np.concatenate(maps), np.concatenate(scores)
