"""What `glcf bench` measures: the model under test and the backends that run it.

The model comes from an export folder, a run folder (torch model from the checkpoint; ONNX files
from an export inside the run, else exported into a temporary folder), or a preset (randomly
initialised, identity fusion statistics, exported into a temporary folder). Every backend is
opened through :func:`open_backend`, which either returns a ``glcf_runtime`` ``Runner`` or
raises :class:`BackendUnavailable` with the reason, so no backend is ever silently dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glcf_bench.settings import TORCH_ROW
from glcf_bench.target import BenchTarget, Log, folder_metadata
from glcf_runtime.artifacts import ENGINE_FILE, FP16_FILE, FP32_FILE, INT8_FILE, RUN_MODES, Backend
from glcf_runtime.backends import OnnxRuntimeRunner, Runner, open_runner
from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.requires import require

EXPORT_FILES = (FP32_FILE, FP16_FILE, ENGINE_FILE)
CHECKPOINT_NAME = "checkpoint.pt"  # what makes a folder a run folder (glcf_train.checkpoint)
TORCH_SIDE = ("torch", "timm", "onnxslim", "glcf_train", "glcf_export")  # what the torch rows import
# Opened by glcf_bench.reduced: OpenVINO, and the INT8 file on ONNX Runtime or TensorRT.
REDUCED_ROWS = tuple(name for name, mode in RUN_MODES.items()
                     if mode.backend is Backend.OPENVINO or mode.file == INT8_FILE)


class BackendUnavailable(GlcfError):
    """A backend that cannot run here; the message is the reason recorded in the report."""


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
        return _torch_targets(f"--preset {preset_name}").preset_target(preset_name, workdir, log)
    target = Path(target)  # type: ignore[arg-type]
    if target.is_file() and target.suffix in (".onnx", ".engine", ".plan"):
        target = target.parent
    if (target / CHECKPOINT_NAME).is_file():
        return _torch_targets(f"the run folder {target}").run_target(target, workdir, log)
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


def _torch_targets(what: str) -> Any:
    """``glcf_bench.torch_targets``, or a one-line error (``MissingPackage``) naming the extras
    ``what`` needs."""
    for name in TORCH_SIDE:
        require(name, "train,export", who=what,
                note=" (an export folder benchmarks with the runtime alone)")
    from glcf_bench import torch_targets

    return torch_targets


def open_backend(
    backend: str,
    target: BenchTarget,
    threads: int,
    max_batch: int,
    cuda_graphs: bool = False,
    log: Log = print,
) -> Runner:
    """A runner for the row ``backend`` (``glcf_bench.settings.BENCH_ROWS``) on ``target``.

    Raises:
        BackendUnavailable: the backend cannot run here; the message says why.
    """
    if backend == TORCH_ROW:
        if target.deploy is None:
            raise BackendUnavailable(target.no_torch)
        return _torch_targets("the torch backend").open_torch(target, cuda_graphs)
    if backend == Backend.TENSORRT.value:
        return _open_tensorrt(target, max_batch, log)
    if backend in REDUCED_ROWS:
        from glcf_bench.reduced import open_reduced

        try:
            return open_reduced(backend, target.folder, target.temporary, threads, max_batch, log)
        except GlcfError as exc:
            raise BackendUnavailable(str(exc)) from None
    name = RUN_MODES[backend].file  # onnxruntime, onnxruntime-fp16
    if not (target.folder / name).is_file():
        raise BackendUnavailable(f"{target.folder} holds no {name}; export it with glcf export")
    return OnnxRuntimeRunner(target.folder / name, providers=["cpu"], threads=threads)


def _open_tensorrt(target: BenchTarget, max_batch: int, log: Log) -> Runner:
    """The folder's engine for this device; built from model.fp16.onnx when there is none (into
    ``model.engine`` of a temporary folder, else beside the model as ``glcf inspect`` does)."""
    from glcf_runtime.backends.tensorrt.build import BuildOptions
    from glcf_runtime.backends.tensorrt.engines import build_for, engine_for_folder
    from glcf_runtime.backends.tensorrt.probe import require_tensorrt

    try:
        require_tensorrt()
    except GlcfError as exc:
        raise BackendUnavailable(f"tensorrt not installed / no GPU: {exc}") from None
    engine = target.folder / ENGINE_FILE
    if target.temporary and not engine.is_file():
        build_for(target.folder, engine, BuildOptions(batch=(1, 1, max_batch)), log=log)
    elif not target.temporary:
        engine = engine_for_folder(target.folder, log, max_batch)
    return open_runner(engine, Backend.TENSORRT)


def runner_precision(runner: Runner) -> str:
    return getattr(runner, "precision", None) or runner.metadata.precision


def on_cuda(runner: Runner) -> bool:
    """Whether the runner's work runs on a CUDA device (the torch runner says; engines do)."""
    return bool(getattr(runner, "on_cuda", runner.backend == "tensorrt"))


def gpu_memory_mb(runner: Runner) -> float | None:
    """GPU memory of the runner (the torch runner's peak since the last reset), where it says."""
    measure = getattr(runner, "gpu_memory_mb", None)
    return measure() if measure is not None else None
