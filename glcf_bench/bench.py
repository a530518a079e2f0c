"""`glcf bench`: every backend side by side on the same model, frames and machine.

For each backend × batch: warm-up, then timed batches for at least ``min_time`` seconds, each
split into capture (a frame from an in-memory source), pre-processing (``preprocess`` of a
1280×720 frame to the model size, into the batch), inference (``runner.infer``) and
post-processing (verdict and JSON record, no file writing). The graph's GFLOP (``flops.py``) and
an ONNX Runtime MatMul measured in the same run turn images/s into a fraction of the machine's
peak. The camera loop (``glcf_runtime.loop.inspect``) over a video file is compared with the
backend alone, on the runtime's backends (``glcf inspect`` never runs torch). Results are
written as JSON (everything) and CSV (one row per backend × batch) by ``bench_report``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from glcf_bench.flops import count_flops
from glcf_bench.frames import (
    SOURCE_NAME,
    MemorySource,
    synthetic_frame,
    write_video,
)
from glcf_bench.machine import (
    cuda_matmul_peak_gflops,
    machine_info,
    matmul_peak_gflops,
    matmul_peak_int8_gops,
    peak_rss_mb,
    physical_cores,
    reset_peak_rss,
    versions,
)
from glcf_bench.pairs import bench_pairs
from glcf_bench.reduced import check_images, fill_accuracy
from glcf_bench.report import BenchReport, BenchRow, LoopRow, add_ratios
from glcf_bench.settings import TORCH_ROW, BenchSettings
from glcf_bench.targets import (
    BenchTarget,
    Log,
    gpu_memory_mb,
    on_cuda,
    open_backend,
    prepare_target,
    runner_precision,
)
from glcf_runtime.artifacts import FP32_FILE
from glcf_runtime.backends import Runner
from glcf_runtime.compare import infer_all
from glcf_runtime.loop import inspect
from glcf_runtime.preprocess import preprocess
from glcf_runtime.sinks import JsonlSink, Result
from glcf_runtime.sources import VideoFileSource
from glcf_runtime.threshold import is_anomalous, resolve_threshold

MIN_RUNS = 3  # timed batches at least, however short min_time is


def time_backend(
    runner: Runner, batch: int, warmup: int, min_time: float, frames: list[np.ndarray],
    min_runs: int = MIN_RUNS,
) -> np.ndarray:
    """Time capture, pre-processing, inference and post-processing of ``batch``-frame batches:
    ``[runs, 4]`` seconds, at least ``min_runs`` batches and ``min_time`` seconds."""
    spec = runner.metadata.preprocess_spec
    threshold = resolve_threshold(runner).value
    buffer = np.empty((batch, spec.height, spec.width, 3), np.uint8)  # [B, H, W, 3]
    source = MemorySource(frames).iterate()

    def step() -> tuple[float, float, float, float]:
        t0 = time.perf_counter()
        got = [next(source) for _ in range(batch)]
        t1 = time.perf_counter()
        for i, frame in enumerate(got):
            buffer[i] = preprocess(frame.image, spec)
        t2 = time.perf_counter()
        maps, scores = runner.infer(buffer)  # host arrays: a GPU backend has synchronised
        t3 = time.perf_counter()
        for k, frame in enumerate(got):
            score = float(scores[k])
            result = Result(
                frame,
                SOURCE_NAME,
                score,
                is_anomalous(score, threshold),
                (time.time() - frame.timestamp) * 1e3,
                maps[k],
                threshold,
            )
            json.dumps(result.record(), allow_nan=False)
        return t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t3

    for _ in range(warmup):
        step()
    samples, start = [], time.perf_counter()
    while len(samples) < min_runs or time.perf_counter() - start < min_time:
        samples.append(step())
    return np.array(samples)


def summarise(samples: np.ndarray, batch: int) -> dict[str, float | int]:
    """``samples`` ``[runs, 4]`` seconds (capture, pre, infer, post) → the row's figures."""
    infer = samples[:, 2]
    p50, p95, p99 = np.percentile(infer * 1e3, [50, 95, 99])
    per_frame = samples.mean(axis=0) / batch * 1e3
    images = batch * len(samples)
    return {
        "runs": len(samples),
        "latency_p50_ms": float(p50),
        "latency_p95_ms": float(p95),
        "latency_p99_ms": float(p99),
        "images_per_s": images / float(infer.sum()),
        "pipeline_images_per_s": images / float(samples.sum()),
        "capture_ms": float(per_frame[0]),
        "preprocess_ms": float(per_frame[1]),
        "infer_ms": float(per_frame[2]),
        "postprocess_ms": float(per_frame[3]),
    }


def loop_throughput(
    runner: Runner, video: Path, batch: int, backend_images_per_s: float, backend: str
) -> LoopRow:
    """The inspection loop over ``video`` (JSON records to memory) vs backend-only images/s."""
    with VideoFileSource(video) as source:
        start, decoded = time.perf_counter(), sum(1 for _ in source.iterate())
        decode_fps = decoded / (time.perf_counter() - start)
    with VideoFileSource(video) as source:
        summary = inspect(runner, source, batch=batch, sinks=[JsonlSink(io.StringIO())])
    return LoopRow(
        backend,
        batch,
        summary.frames,
        summary.fps,
        backend_images_per_s,
        summary.fps / backend_images_per_s,
        decode_fps,
    )


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` for the block, where torch is loaded (a
    runtime-only benchmark never imports it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_bench(target: Path | None, settings: BenchSettings, log: Log = print) -> BenchReport:
    """Benchmark ``settings.backends`` × ``settings.batches`` on ``target`` (an export or run
    folder, or a model file in one) or, without a target, on ``settings.preset``.

    The backends take turns: in each of ``settings.rounds`` rounds every backend is opened, timed
    at every batch size for ``min_time / rounds`` seconds and closed, so a machine whose speed
    drifts (shared cores, clocks, heat) affects every backend alike and their ratios stay
    meaningful.

    Raises:
        ConfigError: a bad target (both or neither of a folder and a preset); a backend that
            cannot run is reported, not raised.
    """
    settings = replace(settings, threads=settings.threads or physical_cores())
    with tempfile.TemporaryDirectory(prefix="glcf-bench-") as tmp:
        bench = prepare_target(target, settings.preset, Path(tmp), log)  # loads torch if needed
        with torch_threads(settings.threads):
            return _run_rounds(bench, settings, Path(tmp), log)


def _run_rounds(bench: BenchTarget, settings: BenchSettings, tmp: Path, log: Log) -> BenchReport:
    """The rounds (backends taking turns), then the back-to-back pairs; ratios filled in."""
    report = _new_report(bench, settings, log)
    video = write_video(tmp / "loop.avi", settings.loop_frames) if settings.loop else None
    frames = [synthetic_frame(i) for i in range(4)]
    samples: dict[tuple[str, int], list[np.ndarray]] = {}
    scores: dict[str, np.ndarray] = {}  # backend → scores of the accuracy frames (first round)
    for turn in range(settings.rounds):
        last = turn == settings.rounds - 1
        for backend in settings.backends:
            if backend not in report.skipped:
                _bench_backend(report, samples, backend, bench, settings, frames,
                               video if last else None, turn, log, scores)
    if settings.pairs:
        bench_pairs(report, bench, settings, frames, log)
    if settings.profile:
        from glcf_bench.profile import profile_report

        profile_report(report, bench, settings, log)
    fill_accuracy(report.rows, scores, bench.folder)
    add_ratios(report)
    return report


def _new_report(bench: BenchTarget, settings: BenchSettings, log: Log) -> BenchReport:
    """The report's header: machine, versions, target, the graph's FLOPs, the MatMul peak."""
    flops = None
    if (bench.folder / FP32_FILE).is_file():
        import onnx

        flops = count_flops(onnx.load(str(bench.folder / FP32_FILE)), batch=1).to_dict()
    log(f"measuring the FP32 MatMul peak with {settings.threads} threads …")
    peak = {
        "cpu_fp32": matmul_peak_gflops(settings.threads),
        "cpu_int8": matmul_peak_int8_gops(settings.threads),
        "cuda_fp16": cuda_matmul_peak_gflops(),
    }
    target = {
        "description": bench.description,
        "folder": str(bench.folder),
        "temporary": bench.temporary,
        "preset": bench.metadata.preset,
        "export_seconds": bench.export_seconds,
    }
    return BenchReport(
        time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        machine_info(),
        versions(),
        settings.to_dict(),
        target,
        flops,
        peak,
    )


def _bench_backend(
    report: BenchReport,
    samples: dict[tuple[str, int], list[np.ndarray]],
    backend: str,
    bench: BenchTarget,
    settings: BenchSettings,
    frames: list[np.ndarray],
    video: Path | None,
    turn: int,
    log: Log,
    scores: dict[str, np.ndarray] | None = None,
) -> None:
    """One round of one backend: open it, time every batch size (and, in the last round, the
    camera loop), close it; a backend that cannot open is recorded with its reason."""
    name, batches = backend, settings.batches
    reset_peak_rss()
    rss_before = peak_rss_mb()  # right after the reset: the current RSS
    start = time.perf_counter()
    try:
        runner = open_backend(
            backend, bench, settings.threads, max(batches), settings.cuda_graphs, log
        )
    except Exception as exc:  # any backend that fails to start is recorded with its reason
        report.skipped[name] = str(exc) or type(exc).__name__
        report.rows = [r for r in report.rows if r.backend != name]
        report.rows.extend(BenchRow(name, b, False, report.skipped[name]) for b in batches)
        log(f"{name}: not runnable — {report.skipped[name]}")
        return
    load_s = time.perf_counter() - start
    getattr(runner, "reset_peak_memory", lambda: None)()
    with runner:
        if turn == 0 and scores is not None:
            scores[name] = infer_all(runner, check_images(runner.metadata.preprocess_spec)).scores
        rows = [_bench_batch(report, samples, runner, name, b, settings, frames, turn, log)
                for b in batches]
        for row in rows:
            row.load_s = row.load_s if row.load_s is not None else load_s
            row.rss_before_mb = row.rss_before_mb if row.rss_before_mb is not None else rss_before
        timed = [r for r in rows if r.runnable]
        if video is not None and timed and backend != TORCH_ROW:
            log(f"{name}: camera loop over {video.name} at batch {timed[0].batch} …")
            report.loop.append(
                loop_throughput(runner, video, timed[0].batch, timed[0].images_per_s or 0.0, name)
            )


def _bench_batch(
    report: BenchReport,
    samples: dict[tuple[str, int], list[np.ndarray]],
    runner: Runner,
    name: str,
    batch: int,
    settings: BenchSettings,
    frames: list[np.ndarray],
    turn: int,
    log: Log,
) -> BenchRow:
    """Time one batch size for this round and refresh its row from every round so far."""
    row = next((r for r in report.rows if r.backend == name and r.batch == batch), None)
    if row is None:
        row = BenchRow(name, batch, precision=runner_precision(runner),
                       device=runner.describe() if on_cuda(runner) else f"cpu x{settings.threads}")
        report.rows.append(row)
    if not row.runnable:
        return row
    log(f"{name}: batch {batch}, round {turn + 1}/{settings.rounds} …")
    try:
        got = time_backend(runner, batch, settings.warmup, settings.min_time / settings.rounds,
                           frames, min_runs=-(-MIN_RUNS // settings.rounds))
    except Exception as exc:  # e.g. a batch above an engine's profile: recorded, not raised
        row.runnable, row.reason = False, f"{type(exc).__name__}: {exc}"
        return row
    samples.setdefault((name, batch), []).append(got)
    for key, value in summarise(np.concatenate(samples[(name, batch)]), batch).items():
        setattr(row, key, value)
    row.peak_rss_mb = max(row.peak_rss_mb or 0.0, peak_rss_mb())
    gpu = gpu_memory_mb(runner)
    row.gpu_mem_mb = gpu if row.gpu_mem_mb is None or gpu is None else max(row.gpu_mem_mb, gpu)
    if report.flops is not None:
        row.achieved_gflops = report.flops["gflop_per_image"] * row.images_per_s
        peak = report.peak_gflops["cuda_fp16" if on_cuda(runner) else "cpu_fp32"]
        row.fraction_of_peak = row.achieved_gflops / peak if peak else None
    return row
