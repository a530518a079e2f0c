"""`glcf export`: fused ONNX (FP32 + mixed FP16), self-checked before anything is published."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from glcf_export.checks import CheckReport, check_runner, check_samples
from glcf_export.deploy import DeployModule
from glcf_export.gates import FP16_GATE, CheckSet, gate_inputs, reduced_precision
from glcf_export.onnx_export import ExportError, mark_checked
from glcf_export.pipeline import check_graphs, write_graphs
from glcf_export.quantize import CalibrationMethod
from glcf_export.triton import check_triton_device, write_triton_repository
from glcf_runtime.artifacts import (
    ENGINE_FILE,
    EXPORT_REPORT,
    FP16_FILE,
    FP32_FILE,
    GATES_FILE,
    ONNX_FILES,
    TIMING_CACHE,
)
from glcf_runtime.backends.tensorrt.build import BuildOptions
from glcf_runtime.backends.tensorrt.engines import build_for
from glcf_runtime.backends.tensorrt.probe import require_tensorrt
from glcf_runtime.backends.tensorrt.sidecar import sidecar_path
from glcf_runtime.files import atomic_write_json
from glcf_runtime.metadata import ArtifactMetadata
from glcf_runtime.preprocess import PreprocessSpec
from glcf_runtime.sinks import check_writable
from glcf_train.builder import load_run
from glcf_train.calibrate import scorer_for
from glcf_train.config import BranchMode, GlcfConfig, ScoringConfig
from glcf_train.data.datasets import load_images


@dataclass(frozen=True)
class ExportOptions:
    out: Path
    batch: int = 8  # largest batch the artifacts are checked and profiled for
    fp16: bool = True
    overwrite: bool = False
    branch_mode: BranchMode | None = None  # None: the run's (``both`` unless configured)
    trt: bool = False  # also build model.engine (needs tensorrt and a GPU)
    workspace_mb: int | None = None
    dla_core: int | None = None
    triton: Path | None = None  # also write a Triton model repository here
    triton_device: str = "gpu"  # gpu or cpu: where Triton runs the model (instance_group kind)
    # model.int8.onnx (static QDQ INT8), gated against FP32. None (default): made from the run's
    # training images (or calib_dir) and published only if its gate passes (gates.json records a
    # failure, the export goes on); True: required, a failed gate fails the export; False: none.
    int8: bool | None = None
    calib_images: int = 256  # good images the INT8 activation ranges are calibrated on
    calib_dir: Path | None = None  # those images from this folder, not the run's training images
    calib_method: CalibrationMethod = CalibrationMethod.MINMAX


@dataclass
class ExportResult:
    out: Path
    files: dict[str, int] = field(default_factory=dict)  # name → bytes
    checks: CheckReport = field(default_factory=CheckReport)
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)  # seconds per pipeline stage
    gates: dict[str, dict] = field(default_factory=dict)  # gates.json's content


def export_run(run: Path, opts: ExportOptions, log=print) -> ExportResult:
    """Export a calibrated run to ``opts.out``; nothing lands there unless every check passes."""
    start = time.perf_counter()
    out = Path(opts.out)
    _check_out(out, opts.overwrite, opts.triton)
    remove_stale_staging(out, log)
    if opts.triton is not None:  # a device Triton cannot use fails now, not after the export
        check_triton_device(opts.triton_device, opts.trt)
    if opts.trt:  # fail at once, before minutes of export, where no engine can be built
        # options that cannot build (a DLA engine over a batch range) fail before TensorRT is sought
        BuildOptions(batch=(1, 1, opts.batch), workspace_mb=opts.workspace_mb,
                     dla_core=opts.dla_core)
        require_tensorrt()
    model, cfg, ckpt = load_run(run, "cpu")
    scorer, calib = scorer_for(run, cfg, opts.branch_mode)
    meta = _metadata(scorer.cfg, cfg, ckpt, calib)
    images = _check_images(run, cfg, ckpt, log)
    gated = gate_inputs(Path(ckpt["data"]["root"]), ckpt["data"]["category"], cfg.model.image_size,
                        images, None if opts.int8 is False else opts.calib_images, opts.calib_dir,
                        required=opts.int8 is True, log=log)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _sigterm_interrupts():  # SIGTERM as Ctrl-C: the staging folder goes, nothing is published
        staging = Path(tempfile.mkdtemp(prefix=staging_prefix(out), dir=out.parent))
        published = False
        try:
            result = _export_into(staging, model, scorer, meta, images, opts, cfg.model.image_size,
                                  log, gated)
            with _signals_held():  # a few renames, never cut in half
                _publish(staging, out, result)
                published = True
        except KeyboardInterrupt:
            if not published:
                log(f"interrupted: removing the staging folder {staging}; nothing was published")
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result.out = out
        if opts.trt:
            _build_engine(out, opts, log)
            result.files.update({p.name: p.stat().st_size for p in (out / ENGINE_FILE,)})
        if opts.triton is not None:
            engine = out / ENGINE_FILE if opts.trt else None
            write_triton_repository(opts.triton, out / FP32_FILE, engine, opts.batch,
                                    overwrite=opts.overwrite, device=opts.triton_device)
    result.seconds = time.perf_counter() - start
    atomic_write_json(out / EXPORT_REPORT, {
        "batch": opts.batch,  # the largest batch checked: inspect, threshold and bench refuse more
        "seconds": result.seconds, "stages": result.stages, "files": result.files,
        "figures": result.checks.figures, "ops": result.checks.ops})
    return result


def _check_out(out: Path, overwrite: bool, triton: Path | None) -> None:
    """Refuse, before the run loads, an --out (or --triton) that cannot take the export."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} already holds files; pass --overwrite to replace the exported "
                          "models, or choose another --out")
    check_writable(out, "--out", folder=True)  # a read-only or full disk
    if out.is_dir():  # the staging folder is made beside it
        check_writable(out.parent, "--out's parent folder", folder=True)
    if triton is not None:
        check_writable(triton, "--triton", folder=True)


def staging_prefix(out: Path, pid: int | None = None) -> str:
    """``.OUT.staging-HOST-PID-``: the staging folder's name says which process on which machine
    writes it, so a later export can tell a dead one's leftovers from a running export."""
    return f".{out.name}.staging-{_host()}-{os.getpid() if pid is None else pid}-"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "localhost"


def remove_stale_staging(out: Path, log) -> None:
    """Remove the staging folders of ``out`` left by exports that were killed (SIGKILL, power
    loss): those of processes of this machine that no longer run. Each is named in the log; one
    whose owner cannot be told (another machine, an older glcf) is named and left."""
    head = f".{out.name}.staging-"
    for folder in sorted(out.parent.glob(f"{glob.escape(head)}*")):
        owner = re.fullmatch(r"(?P<host>[A-Za-z0-9._]+)-(?P<pid>\d+)-[^-]*", folder.name[len(head):])
        if owner is None or owner["host"] != _host():
            log(f"left {folder}: unchecked files of an export by an older glcf or another machine; "
                "delete it if no export is writing there")
        elif _running(int(owner["pid"])):
            log(f"left {folder}: process {owner['pid']} is still running (an export in progress?)")
        else:
            shutil.rmtree(folder, ignore_errors=True)
            log(f"removed {folder}: the unchecked files of an export by process {owner['pid']}, "
                "which no longer runs")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done (they are delivered right after it)."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt("by SIGTERM") once, as Ctrl-C does, so ``finally``
    blocks clean up (``glcf export`` then exits 130, as ``glcf train``); main thread only."""
    caught: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if not caught:  # a second SIGTERM does not cut the clean-up short
            caught.append(signum)
            raise KeyboardInterrupt("by SIGTERM")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _metadata(s: ScoringConfig, cfg: GlcfConfig, ckpt: dict, calib: dict) -> ArtifactMetadata:
    # Position statistics (thousands of numbers) live in the graph as constants; the metadata
    # names the normalisation and keeps the scalar statistics.
    stats = {k: v for k, v in calib["stats"].items() if k != "position"}
    fusion = {"w_local": s.w_local, "w_global": s.w_global, "scale_weights": list(s.scale_weights),
              "smoothing_sigma": s.smoothing_sigma, "normalisation": s.normalisation.value,
              "stats": stats}
    normal = [float(v) for v in calib.get("validation_scores", [])]  # the threshold's range check
    return ArtifactMetadata(
        height=cfg.model.image_size, width=cfg.model.image_size, branch_mode=s.branch_mode,
        score_rule=s.score_rule, threshold=float(calib["threshold"]["threshold"]),
        threshold_rule=str(calib["threshold"]["rule"]), map_range=tuple(calib["map_range"]),
        fusion=fusion, category=str(ckpt["data"]["category"] or ""), config_hash=cfg.hash(),
        preset=cfg.preset, extra={"torch": str(torch.__version__), "onnx": onnx.__version__,
               "backbone": cfg.model.backbone.kind.value, "weights": str(ckpt.get("backbone")),
               "weights_sha256": str(ckpt.get("backbone_sha256") or "")},
        score_range=(min(normal), max(normal)) if normal else None,
    )


def _check_images(run: Path, cfg, ckpt: dict, log) -> np.ndarray:
    """Real images to check on (``checks.check_samples``: validation, test, training to top up)."""
    samples = check_samples(Path(ckpt["data"]["root"]), ckpt["data"]["category"], log)
    return load_images(samples, PreprocessSpec(cfg.model.image_size, cfg.model.image_size))


def _export_into(folder: Path, model, scorer, meta: ArtifactMetadata, images: np.ndarray,
                 opts: ExportOptions, size: int, log,
                 gated: tuple[CheckSet, np.ndarray | None]) -> ExportResult:
    graphs = write_graphs(DeployModule(model, scorer), meta, folder, size, opts.fp16, log)
    report = check_graphs(graphs, model, scorer, images, opts.batch, log)
    if not report.ok:
        figures = ", ".join(f"{k}={v:.3g}" for k, v in report.figures.items())
        raise ExportError("export checks failed — nothing was written:\n  - " +
                          "\n  - ".join(report.failures) + f"\n  figures: {figures}")
    checks, calib = gated
    int8 = None if calib is None else (calib, meta, opts.calib_method)
    with check_runner(folder / FP32_FILE) as fp32:
        gates, failures = reduced_precision(folder, fp32, checks, opts.batch, int8, log,
                                            required=opts.int8 is True)
    report.figures.update({f"{name}_{k}": v for name, g in gates.items() for k, v in g["figures"].items()})
    if failures:
        failed = next(name for name, g in gates.items() if g["failures"])
        what = ("FP16 checks failed — nothing was written (export with --no-fp16 to publish the "
                "FP32 file alone)" if failed == FP16_GATE else
                "INT8 checks failed — nothing was written (calibrate on more or other good images: "
                "--calib-images, --calib-dir)")
        figures = ", ".join(f"{k}={v:.4g}" for k, v in gates[failed]["figures"].items())
        raise ExportError(f"{what}:\n  - " + "\n  - ".join(failures) + f"\n  figures: {figures}")
    for graph in folder.glob("*.onnx"):  # every check passed: only now do the files say so
        mark_checked(graph)
    atomic_write_json(folder / GATES_FILE, gates)
    files = {p.name: p.stat().st_size for p in sorted([*folder.glob("*.onnx"), folder / GATES_FILE])}
    return ExportResult(out=folder, files=files, checks=report, stages=graphs.seconds, gates=gates)


def _build_engine(out: Path, opts: ExportOptions, log) -> None:
    """TensorRT engine from the mixed FP16 file (strongly typed), or the FP32 one with --no-fp16:
    the same code as ``glcf engine build``."""
    source = out / (FP16_FILE if opts.fp16 else FP32_FILE)
    build = BuildOptions(batch=(1, 1, opts.batch), workspace_mb=opts.workspace_mb,
                         dla_core=opts.dla_core, timing_cache=out / TIMING_CACHE)
    log(f"building the TensorRT engine from {source.name} (strongly typed) …")
    build_for(source, out / ENGINE_FILE, build, overwrite=True, log=log)


ARTIFACTS = (*ONNX_FILES, GATES_FILE, ENGINE_FILE, sidecar_path(Path(ENGINE_FILE)).name,
             EXPORT_REPORT)


def _publish(staging: Path, out: Path, result: ExportResult) -> None:
    """Move the checked files into ``out`` with atomic renames; artifacts of an earlier export
    that this one did not make (e.g. an FP16 file or an engine) are removed, so none is stale;
    the export report (its checked batch included) is written again afterwards."""
    out.mkdir(parents=True, exist_ok=True)
    for name in result.files:
        os.replace(staging / name, out / name)
    for name in ARTIFACTS:
        if name not in result.files:
            (out / name).unlink(missing_ok=True)
