"""Bench targets that need torch: a preset (random weights) or a run folder, exported for the
benchmark through the one export pipeline (``glcf_export.pipeline``), and the ``torch`` backend.

torch, glcf_train and glcf_export are imported inside the functions, when such a target or
backend is asked for, so ``glcf bench EXPORT_DIR`` runs on a box with the runtime alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glcf_bench.target import BenchTarget, Log, folder_metadata
from glcf_runtime.artifacts import FP32_FILE
from glcf_runtime.metadata import ArtifactMetadata

if TYPE_CHECKING:
    from glcf_bench.torch_runner import TorchRunner
    from glcf_train.config import GlcfConfig
    from glcf_train.reference import ReferenceDetector
    from glcf_train.scoring import TorchScorer


def bench_metadata(
    cfg: GlcfConfig, stats: dict, threshold: float, rule: str, category: str = ""
) -> ArtifactMetadata:
    """Artifact metadata for a model the benchmark exports itself (``stats``: fusion μ, σ)."""
    import onnx
    import torch

    s = cfg.scoring
    fusion = {
        "w_local": s.w_local,
        "w_global": s.w_global,
        "scale_weights": list(s.scale_weights),
        "smoothing_sigma": s.smoothing_sigma,
        "stats": stats,
    }
    size = cfg.model.image_size
    return ArtifactMetadata(
        height=size,
        width=size,
        branch_mode=s.branch_mode,
        score_rule=s.score_rule,
        threshold=threshold,
        threshold_rule=rule,
        map_range=(0.0, 1.0),
        fusion=fusion,
        category=category,
        config_hash=cfg.hash(),
        preset=cfg.preset,
        extra={"torch": str(torch.__version__), "onnx": onnx.__version__, "made_by": "glcf bench"},
    )


def torch_module(model: Any, scorer: Any) -> ReferenceDetector:
    """What the ``torch`` backend times: the model as trained and evaluated, in eager mode.

    Not the graph's rewritten Swin blocks (``glcf_export.windowed``): the benchmark compares the
    deployed graph with the PyTorch model users trained. ``benchmarks/graph_optimizations.py``
    times every graph form in torch eager too.
    """
    from glcf_train.reference import ReferenceDetector

    return ReferenceDetector(model, scorer)


def preset_target(name: str, workdir: Path, log: Log) -> BenchTarget:
    """A randomly initialised preset fused with default scoring and identity statistics,
    exported into ``workdir``."""
    from glcf_train.builder import build_model
    from glcf_train.config import preset
    from glcf_train.scoring import FusionStats, TorchScorer

    start = time.perf_counter()
    cfg = preset(name)
    model, _ = build_model(cfg, random_init=True)
    model.eval()
    scorer = TorchScorer(cfg.scoring, cfg.model.image_size, FusionStats.identity())
    meta = bench_metadata(
        cfg, FusionStats.identity().to_dict(), 0.0, "placeholder: random weights, benchmark only"
    )
    target = _exported(model, scorer, meta, workdir, f"preset {name} (random init, identity "
                       "fusion stats)", log)
    target.export_seconds["build_model"] = time.perf_counter() - start
    return target


def _exported(model: Any, scorer: TorchScorer, meta: ArtifactMetadata, workdir: Path,
              description: str, log: Log) -> BenchTarget:
    """``model`` fused with ``scorer``, exported into ``workdir`` by the export pipeline."""
    from glcf_export.deploy import DeployModule
    from glcf_export.pipeline import write_graphs

    log(f"exporting the fused graph to {workdir} …")
    size = model.cfg.image_size
    graphs = write_graphs(DeployModule(model, scorer), meta, workdir, size, log=log)
    return BenchTarget(workdir, description, meta, torch_module(model, scorer), temporary=True,
                       export_seconds=dict(graphs.seconds))


def run_scorer(run: Path, cfg: GlcfConfig) -> tuple[TorchScorer, dict]:
    """The run's calibrated scorer and calibration; for an uncalibrated run (a benchmark needs
    none) identity statistics and a placeholder threshold."""
    from glcf_train.calibrate import NotCalibrated, scorer_for
    from glcf_train.scoring import FusionStats, TorchScorer

    try:
        return scorer_for(run, cfg)
    except NotCalibrated:
        scorer = TorchScorer(cfg.scoring, cfg.model.image_size, FusionStats.identity())
        return scorer, {
            "stats": FusionStats.identity().to_dict(),
            "threshold": {"threshold": 0.0, "rule": "placeholder: run not calibrated"},
        }


def run_target(run: Path, workdir: Path, log: Log) -> BenchTarget:
    """A run: the torch model from its checkpoint, ONNX files from an export inside it or fresh."""
    from glcf_train.builder import load_run

    model, cfg, ckpt = load_run(run, "cpu")
    scorer, calib = run_scorer(run, cfg)
    note = "calibrated" if "map_range" in calib else "uncalibrated: identity fusion stats"
    eager = torch_module(model, scorer)
    exports = sorted(p.parent for p in run.glob(f"*/{FP32_FILE}"))
    if exports:
        return BenchTarget(
            exports[0],
            f"run {run} ({note}), export {exports[0]}",
            folder_metadata(exports[0]),
            eager,
        )
    meta = bench_metadata(
        cfg,
        calib["stats"],
        float(calib["threshold"]["threshold"]),
        str(calib["threshold"]["rule"]),
        str(ckpt["data"].get("category") or ""),
    )
    return _exported(model, scorer, meta, workdir, f"run {run} ({note}), exported for the "
                     "benchmark", log)


def open_torch(target: BenchTarget, cuda_graphs: bool) -> TorchRunner:
    import torch

    from glcf_bench.torch_runner import TorchRunner

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return TorchRunner(target.deploy, target.folder / FP32_FILE, target.metadata, device,
                       cuda_graphs)
