"""A benchmark's report: its rows, the machine and versions it ran on (with the machine's
measured MatMul peak and memory), the JSON / CSV files named after them, and the rich tables."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from rich.markup import escape
from rich.table import Table

from glcf_bench.machine import slug
from glcf_runtime.files import atomic_write_json, atomic_write_text

NAME_VERSIONS = (("torch", "torch"), ("ort", "onnxruntime"), ("onnx", "onnx"), ("glcf", "glcf"))


@dataclass
class BenchRow:
    """One backend at one batch size; times in ms, per batch (latency) or per frame (split)."""

    backend: str
    batch: int
    runnable: bool = True
    reason: str = ""  # why the backend did not run
    precision: str = ""
    device: str = ""
    runs: int = 0
    load_s: float | None = None  # opening the backend (session / engine load)
    latency_p50_ms: float | None = None  # runner.infer per batch
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    images_per_s: float | None = None  # backend only: batch / inference time
    pipeline_images_per_s: float | None = None  # capture + pre + inference + post, one thread
    capture_ms: float | None = None
    preprocess_ms: float | None = None
    infer_ms: float | None = None
    postprocess_ms: float | None = None
    rss_before_mb: float | None = None  # process RSS just before the backend was opened
    peak_rss_mb: float | None = None  # process peak RSS since then (VmHWM reset)
    gpu_mem_mb: float | None = None
    achieved_gflops: float | None = None
    fraction_of_peak: float | None = None
    vs_torch: float | None = None  # p50 latency ÷ torch's p50 at the same batch, in this run
    pairs: int = 0  # batches timed alternating one by one with torch (run_bench's ``pairs``)
    paired_vs_torch: float | None = None  # median of those back-to-back latency ratios
    paired_vs_torch_p25: float | None = None
    paired_vs_torch_p75: float | None = None
    outside_graph: float | None = None  # (capture + pre + post) ÷ the whole frame, per frame
    vs_onnxruntime: float | None = None  # p50 latency ÷ ONNX Runtime FP32's p50, same batch and run
    spearman_vs_fp32: float | None = None  # scores vs ONNX Runtime FP32 on the same frames
    auroc_change: float | None = None  # largest AUROC change per defect kind (export's gates)


@dataclass
class LoopRow:
    """The camera loop (``glcf_runtime.loop.inspect``) over a video file vs the backend alone."""

    backend: str
    batch: int
    frames: int
    loop_fps: float
    backend_images_per_s: float
    ratio: float  # loop_fps / backend_images_per_s
    decode_fps: float  # reading the video alone


@dataclass
class BenchReport:
    created: str
    machine: dict
    versions: dict
    settings: dict
    target: dict
    flops: dict | None  # FlopReport.to_dict() at batch 1
    peak_gflops: dict  # {"cpu_fp32": …, "cuda_fp16": …} measured in this run
    rows: list[BenchRow] = field(default_factory=list)
    loop: list[LoopRow] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # backend → reason
    profile: list[dict] = field(default_factory=list)  # StageProfile.to_dict() per CPU run mode

    @property
    def precision(self) -> str:
        """Precisions that ran, e.g. ``fp32+fp16-mixed``."""
        names = dict.fromkeys(r.precision for r in self.rows if r.runnable and r.precision)
        return "+".join(names) or "none"

    def to_dict(self) -> dict:
        return {**asdict(self), "precision": self.precision}


def add_ratios(report: BenchReport) -> None:
    """Fill each row's ``vs_torch`` and ``outside_graph``: performance targets are such ratios,
    taken between rows of one run."""
    torch_p50 = {r.batch: r.latency_p50_ms for r in report.rows if r.runnable and r.backend == "torch"}
    ort_p50 = {r.batch: r.latency_p50_ms for r in report.rows
               if r.runnable and r.backend == "onnxruntime"}
    for r in report.rows:
        if not r.runnable or r.infer_ms is None:
            continue
        if r.backend != "torch" and torch_p50.get(r.batch):
            r.vs_torch = r.latency_p50_ms / torch_p50[r.batch]
        if ort_p50.get(r.batch):
            r.vs_onnxruntime = r.latency_p50_ms / ort_p50[r.batch]
        other = (r.capture_ms or 0.0) + (r.preprocess_ms or 0.0) + (r.postprocess_ms or 0.0)
        r.outside_graph = other / (other + r.infer_ms)


def result_stem(report: BenchReport) -> str:
    """``bench_<cpu>_<n>c[_<gpu>]_<precision>_torch…-ort…-onnx…-glcf…_<date>``."""
    m, v = report.machine, report.versions
    parts = ["bench", slug(m["cpu"]), f"{m['usable_cores']}c"]
    if m.get("gpu"):
        parts.append(slug(m["gpu"], 24))
    parts.append(slug(report.precision.replace("+", "-"), 32))
    parts.append(
        "-".join(f"{short}{slug(v.get(key) or 'none', 16)}" for short, key in NAME_VERSIONS)
    )
    parts.append(
        time.strftime("%Y%m%d-%H%M%S", time.strptime(report.created[:19], "%Y-%m-%dT%H:%M:%S"))
    )
    return "_".join(parts)


def write_report(
    report: BenchReport,
    json_path: Path | None = None,
    csv_path: Path | None = None,
    out_dir: Path = Path("."),
) -> tuple[Path, Path]:
    """Write the JSON (everything) and CSV (rows) files. A file not named goes beside the one
    that is (``--json F`` alone: ``F`` with ``.csv``); neither named: ``out_dir``, with names from
    ``result_stem``. Nothing is written anywhere else (not in the working directory)."""
    stem = result_stem(report)
    if json_path and not csv_path:
        csv_path = Path(json_path).with_suffix(".csv")
    elif csv_path and not json_path:
        json_path = Path(csv_path).with_suffix(".json")
    json_path = Path(json_path) if json_path else Path(out_dir) / f"{stem}.json"
    csv_path = Path(csv_path) if csv_path else Path(out_dir) / f"{stem}.csv"
    for folder in {json_path.parent, csv_path.parent}:
        folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(json_path, _finite(report.to_dict()))
    atomic_write_text(csv_path, rows_csv(report))
    return json_path, csv_path


def rows_csv(report: BenchReport) -> str:
    """One line per backend × batch, with the machine and versions on every line."""
    context = {
        "cpu": report.machine["cpu"],
        "cores": report.machine["usable_cores"],
        "gpu": report.machine.get("gpu") or "",
        "gflop_per_image": (report.flops or {}).get("gflop_per_image"),
        **{key: report.versions.get(key) for _, key in NAME_VERSIONS},
    }
    names = [f.name for f in fields(BenchRow)] + list(context)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow({**asdict(row), **context})
    return out.getvalue()


def _finite(value: object) -> object:
    """NaN / inf → None, so the JSON is strict."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="left" if col in ("backend", "precision", "stage") else "right")
    return table


SPEED_COLUMNS = (
    "backend",
    "precision",
    "batch",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "img/s",
    "e2e img/s",
    "GFLOP/s",
    "% peak",
    "× ORT",
    "Spearman",
    "ΔAUROC",
)
SPLIT_COLUMNS = (
    "backend",
    "batch",
    "capture",
    "preproc",
    "infer",
    "postproc",
    "RSS before",
    "peak RSS",
    "GPU mem",
)
LOOP_COLUMNS = ("backend", "batch", "frames", "loop fps", "backend img/s", "ratio", "decode fps")


def render(report: BenchReport) -> list:
    """Rich renderables: speed, per-frame split and memory, the camera loop, then notes
    (skipped backends with their reasons, machine, GFLOP and peak)."""
    speed = _table(f"glcf bench — {report.target['description']}", SPEED_COLUMNS)
    split = _table("per frame (ms) and memory (MiB)", SPLIT_COLUMNS)
    notes = []
    said: dict[str, str] = {}  # reason → the first row it was given for: given once, then referred to
    for r in report.rows:
        if not r.runnable:
            speed.add_row(r.backend, "not run", str(r.batch))
            row = f"{r.backend} (batch {r.batch})"
            why = (f"as {said[r.reason or '']}" if (r.reason or "") in said else escape(r.reason or ""))
            said.setdefault(r.reason or "", row)
            notes.append(f"[yellow]{row} not run:[/] {why}")
            continue
        pct = None if r.fraction_of_peak is None else 100 * r.fraction_of_peak
        speed.add_row(
            r.backend,
            r.precision,
            str(r.batch),
            _num(r.latency_p50_ms),
            _num(r.latency_p95_ms),
            _num(r.latency_p99_ms),
            _num(r.images_per_s, 2),
            _num(r.pipeline_images_per_s, 2),
            _num(r.achieved_gflops),
            _num(pct),
            _num(r.vs_onnxruntime, 2),
            _num(r.spearman_vs_fp32, 4),
            _num(r.auroc_change, 3),
        )
        split_ms = (r.capture_ms, r.preprocess_ms, r.infer_ms, r.postprocess_ms)
        split.add_row(
            r.backend,
            str(r.batch),
            *(_num(x, 2) for x in split_ms),
            _num(r.rss_before_mb, 0),
            _num(r.peak_rss_mb, 0),
            _num(r.gpu_mem_mb, 0),
        )
    out: list = [speed, split]
    if report.loop:
        loop = _table("camera loop (video file → inspect) vs backend only", LOOP_COLUMNS)
        for r in report.loop:
            loop.add_row(
                r.backend,
                str(r.batch),
                str(r.frames),
                _num(r.loop_fps, 2),
                _num(r.backend_images_per_s, 2),
                _num(r.ratio, 2),
                _num(r.decode_fps),
            )
        out.append(loop)
    out += [_profile_table(p) for p in report.profile]
    return out + notes + _summary(report) + _ratio_lines(report)


PROFILE_COLUMNS = ("stage", "ms", "share %", "GFLOP", "GFLOP/s", "% of peak")


def _profile_table(profile: dict) -> Table:
    """One run mode's stage table (``glcf_bench.profile.StageProfile``)."""
    table = _table(f"{profile['backend']} ({profile['precision']}), batch {profile['batch']}: "
                   f"time per stage over {profile['runs']} runs; peak: {profile['peak_key']}",
                   PROFILE_COLUMNS)
    for s in profile["stages"]:
        pct = None if s["of_peak"] is None else 100 * s["of_peak"]
        table.add_row(s["stage"], _num(s["ms"], 2), _num(100 * s["share"]), _num(s["gflop"], 3),
                      _num(s["gflops"]), _num(pct))
    return table


def _summary(report: BenchReport) -> list[str]:
    m, peak, flops = report.machine, report.peak_gflops, report.flops or {}
    gpu = f", {m['gpu']}" if m.get("gpu") else ""
    cuda = f", CUDA FP16 {_num(peak['cuda_fp16'])}" if peak.get("cuda_fp16") else ""
    return [
        f"machine: {m['cpu']}, {m['usable_cores']} cores{gpu}; {report.settings['threads']} threads",
        f"graph: {_num(flops.get('gflop_per_image'), 2)} GFLOP per image (MatMul, Gemm, Conv; "
        f"2 per multiply-add); FP32 MatMul peak {_num(peak.get('cpu_fp32'))} GFLOP/s, INT8 "
        f"MatMulInteger peak {_num(peak.get('cpu_int8'))} GOP/s{cuda}",
    ]


def _ratio_lines(report: BenchReport) -> list[str]:
    """One line per backend and batch: latency vs torch and the share outside the graph."""
    lines = []
    for r in report.rows:
        if r.outside_graph is None:
            continue
        vs = f"p50 {r.vs_torch:.2f} × torch eager, " if r.vs_torch is not None else ""
        if r.paired_vs_torch is not None:
            vs += (f"back to back {r.paired_vs_torch:.2f} × (median of {r.pairs}, quartiles "
                   f"{r.paired_vs_torch_p25:.2f}–{r.paired_vs_torch_p75:.2f}), ")
        lines.append(f"{r.backend} batch {r.batch}: {vs}{100 * r.outside_graph:.1f} % of a frame "
                     "outside the graph (capture, resize, verdict)")
    return lines
