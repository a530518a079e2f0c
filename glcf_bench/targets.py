"""What `glcf bench` measures: the model under test and the backends that run it.

The model comes from an export folder, a run folder (torch model from the checkpoint; ONNX files
from an export inside the run, else exported into a temporary folder), or a preset (randomly
initialised, identity fusion statistics, exported into a temporary folder). Every backend is
opened through :func:`open_backend`, which either returns a ``glcf_runtime`` ``Runner`` or
raises :class:`BackendUnavailable` with the reason, so no backend is ever silently dropped.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import onnx
import torch
from torch import nn

from glcf_bench.torch_runner import TorchRunner
from glcf_export.deploy import DeployModule
from glcf_export.onnx_export import export_fp32, read_metadata, set_metadata, to_mixed_fp16
from glcf_runtime.backends import OnnxRuntimeRunner, Runner, open_runner
from glcf_runtime.backends.tensorrt.sidecar import read_sidecar
from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.metadata import ArtifactMetadata
from glcf_train.builder import build_model, load_run
from glcf_train.checkpoint import CHECKPOINT_NAME
from glcf_train.config import GlcfConfig, preset
from glcf_train.scoring import FusionStats, TorchScorer

Log = Callable[[str], None]
EXPORT_FILES = ("model.onnx", "model.fp16.onnx", "model.engine")


class BenchBackend(str, Enum):
    TORCH = "torch"  # the trained modules + scorer, eager (FP32 on CPU, FP16 autocast on CUDA)
    ONNXRUNTIME = "onnxruntime"  # model.onnx, CPU provider
    ONNXRUNTIME_FP16 = "onnxruntime-fp16"  # model.fp16.onnx, CPU provider
    TENSORRT = "tensorrt"  # model.engine, native TensorRT


class BackendUnavailable(GlcfError):
    """A backend that cannot run here; the message is the reason recorded in the report."""


@dataclass
class BenchTarget:
    """The model under test.

    Attributes:
        folder: export folder holding model.onnx / model.fp16.onnx (/ model.engine).
        description: what was loaded, for the report.
        metadata: the artifact contract (input size, threshold, precision).
        deploy: the torch module the ``torch`` backend runs when a torch model is at hand, else
            None: the model's own modules as trained (timm's Swin blocks) and the reference
            scorer, with the same uint8 input as the graph (see :func:`torch_module`).
        no_torch: why ``deploy`` is None.
        temporary: ``folder`` was made by the benchmark (an engine may be built into it).
        export_seconds: export stage times when the benchmark exported the model.
    """

    folder: Path
    description: str
    metadata: ArtifactMetadata
    deploy: nn.Module | None = None
    no_torch: str = ""
    temporary: bool = False
    export_seconds: dict[str, float] = field(default_factory=dict)


def bench_metadata(
    cfg: GlcfConfig, stats: dict, threshold: float, rule: str, category: str = ""
) -> ArtifactMetadata:
    """Artifact metadata for a model the benchmark exports itself (``stats``: fusion μ, σ)."""
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
        branch_mode=s.branch_mode.value,
        score_rule=s.score_rule.value,
        threshold=threshold,
        threshold_rule=rule,
        map_range=(0.0, 1.0),
        fusion=fusion,
        category=category,
        config_hash=cfg.hash(),
        preset=cfg.preset,
        extra={"torch": str(torch.__version__), "onnx": onnx.__version__, "made_by": "glcf bench"},
    )


def export_deploy(
    deploy: nn.Module, meta: ArtifactMetadata, folder: Path, image_size: int, log: Log = print
) -> dict[str, float]:
    """Write model.onnx and model.fp16.onnx of ``deploy`` into ``folder``; seconds per stage."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    log(f"exporting the fused graph to {folder} …")
    fp32 = export_fp32(deploy, folder / "model.onnx", image_size)
    seconds["trace_and_simplify"] = _lap(start)
    start = time.perf_counter()
    set_metadata(fp32, meta)
    onnx.save(fp32, str(folder / "model.onnx"))
    seconds["save_fp32"] = _lap(start)
    start = time.perf_counter()
    mixed = to_mixed_fp16(fp32)
    set_metadata(mixed, ArtifactMetadata(**{**meta.__dict__, "precision": "fp16-mixed"}))
    seconds["mixed_fp16"] = _lap(start)
    start = time.perf_counter()
    onnx.save(mixed, str(folder / "model.fp16.onnx"))
    seconds["save_fp16"] = _lap(start)
    return seconds


def _lap(start: float) -> float:
    return time.perf_counter() - start


def torch_module(model: nn.Module, scorer: nn.Module) -> DeployModule:
    """What the ``torch`` backend times: the model as trained and evaluated, in eager mode.

    Not the graph's rewritten Swin blocks (``glcf_export.windowed``): the benchmark compares the
    deployed graph with the PyTorch model users trained. ``benchmarks/graph_optimizations.py``
    times every graph form in torch eager too.
    """
    return DeployModule(model, scorer, attention=None, fold=False)


def preset_deploy(name: str) -> tuple[DeployModule, DeployModule, GlcfConfig, ArtifactMetadata, float]:
    """A randomly initialised preset model fused with default scoring and identity statistics:
    the module to export, the module the torch backend runs, the config, metadata, and the
    seconds it took to build."""
    start = time.perf_counter()
    cfg = preset(name)
    model, _ = build_model(cfg, random_init=True)
    scorer = TorchScorer(cfg.scoring, cfg.model.image_size, FusionStats.identity())
    meta = bench_metadata(
        cfg, FusionStats.identity().to_dict(), 0.0, "placeholder: random weights, benchmark only"
    )
    model.eval()
    return DeployModule(model, scorer), torch_module(model, scorer), cfg, meta, _lap(start)


def prepare_target(
    target: Path | None, preset_name: str | None, workdir: Path, log: Log = print
) -> BenchTarget:
    """Resolve ``target`` (export or run folder, or a model file) or ``preset_name``.

    Raises:
        ConfigError: both or neither given, or a path that is neither an export nor a run.
    """
    if (target is None) == (preset_name is None):
        raise ConfigError(
            "give MODEL_OR_RUN (an export or run folder) or --preset, not both and not neither"
        )
    if preset_name is not None:
        deploy, eager, cfg, meta, build_s = preset_deploy(preset_name)
        seconds = {
            "build_model": build_s,
            **export_deploy(deploy, meta, workdir, cfg.model.image_size, log),
        }
        return BenchTarget(
            workdir,
            f"preset {preset_name} (random init, identity fusion stats)",
            meta,
            eager,
            temporary=True,
            export_seconds=seconds,
        )
    target = Path(target)  # type: ignore[arg-type]
    if target.is_file() and target.suffix in (".onnx", ".engine", ".plan"):
        target = target.parent
    if (target / CHECKPOINT_NAME).is_file():
        return _run_target(target, workdir, log)
    if target.is_dir() and any((target / name).is_file() for name in EXPORT_FILES):
        return BenchTarget(
            target,
            f"export {target}",
            folder_metadata(target),
            no_torch="an export folder holds no torch model; give the run folder or --preset",
        )
    raise ConfigError(
        f"{target} is neither an export folder ({', '.join(EXPORT_FILES)}) nor a "
        f"run folder ({CHECKPOINT_NAME}); give one, or use --preset paper"
    )


def run_scorer(run: Path, cfg: GlcfConfig) -> tuple[TorchScorer, dict]:
    """The run's calibrated scorer and calibration; for an uncalibrated run (a benchmark needs
    none) identity statistics and a placeholder threshold."""
    from glcf_train.calibrate import NotCalibrated, scorer_for

    try:
        return scorer_for(run, cfg)
    except NotCalibrated:
        scorer = TorchScorer(cfg.scoring, cfg.model.image_size, FusionStats.identity())
        return scorer, {
            "stats": FusionStats.identity().to_dict(),
            "threshold": {"threshold": 0.0, "rule": "placeholder: run not calibrated"},
        }


def _run_target(run: Path, workdir: Path, log: Log) -> BenchTarget:
    """A run: the torch model from its checkpoint, ONNX files from an export inside it or fresh."""
    model, cfg, ckpt = load_run(run, "cpu")
    scorer, calib = run_scorer(run, cfg)
    note = "calibrated" if "map_range" in calib else "uncalibrated: identity fusion stats"
    eager = torch_module(model, scorer)
    exports = sorted(p.parent for p in run.glob("*/model.onnx"))
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
    seconds = export_deploy(DeployModule(model, scorer), meta, workdir, cfg.model.image_size, log)
    return BenchTarget(
        workdir,
        f"run {run} ({note}), exported for the benchmark",
        meta,
        eager,
        temporary=True,
        export_seconds=seconds,
    )


def folder_metadata(folder: Path) -> ArtifactMetadata:
    """The contract of an export folder, from its first ONNX file or the engine's sidecar."""
    for name in ("model.onnx", "model.fp16.onnx"):
        if (folder / name).is_file():
            model = onnx.load(str(folder / name), load_external_data=False)
            return read_metadata(model, str(folder / name))
    engine = folder / "model.engine"
    return ArtifactMetadata.from_props(read_sidecar(engine), str(engine))


def open_backend(
    backend: BenchBackend,
    target: BenchTarget,
    threads: int,
    max_batch: int,
    cuda_graphs: bool = False,
    log: Log = print,
) -> Runner:
    """A runner for ``backend`` on ``target``.

    Raises:
        BackendUnavailable: the backend cannot run here; the message says why.
    """
    if backend is BenchBackend.TORCH:
        if target.deploy is None:
            raise BackendUnavailable(target.no_torch)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return TorchRunner(
            target.deploy, target.folder / "model.onnx", target.metadata, device, cuda_graphs
        )
    if backend is BenchBackend.TENSORRT:
        return _open_tensorrt(target, max_batch, log)
    name = "model.onnx" if backend is BenchBackend.ONNXRUNTIME else "model.fp16.onnx"
    if not (target.folder / name).is_file():
        raise BackendUnavailable(f"{target.folder} holds no {name}; export it with glcf export")
    return OnnxRuntimeRunner(target.folder / name, providers=["cpu"], threads=threads)


def _open_tensorrt(target: BenchTarget, max_batch: int, log: Log) -> Runner:
    """The engine of the export folder; built from model.fp16.onnx when the folder is ours."""
    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("tensorrt not installed")
    if not torch.cuda.is_available():
        missing.append("no GPU")
    if missing:
        raise BackendUnavailable(" / ".join(missing))
    engine = target.folder / "model.engine"
    if not engine.is_file():
        if not target.temporary:
            raise BackendUnavailable(
                f"{target.folder} holds no model.engine; build it on this "
                "GPU with glcf export RUN --out DIR --trt"
            )
        from glcf_runtime.backends.tensorrt.build import BuildOptions, build_engine

        props = ArtifactMetadata(**{**target.metadata.__dict__, "precision": "fp16-mixed"})
        options = BuildOptions(batch=(1, 1, max_batch), timing_cache=target.folder / "timing.cache")
        build_engine(target.folder / "model.fp16.onnx", engine, props.to_props(), options, log)
    return open_runner(engine, backend="tensorrt")


def runner_precision(runner: Runner) -> str:
    return getattr(runner, "precision", None) or runner.metadata.precision


def on_cuda(runner: Runner) -> bool:
    """Whether the runner's work runs on a CUDA device (timings then synchronise)."""
    if isinstance(runner, TorchRunner):
        return runner.device.type == "cuda"
    return runner.backend == "tensorrt"


def gpu_memory_mb(runner: Runner) -> float | None:
    """Torch: peak allocated since the last reset; other backends: device memory in use now."""
    if not torch.cuda.is_available():
        return None
    if isinstance(runner, TorchRunner):
        return torch.cuda.max_memory_allocated() / 2**20
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20
