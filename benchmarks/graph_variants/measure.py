"""Before/after figures for each graph optimisation (``benchmarks/graph_optimizations.py``).

Every variant of :mod:`.forms` is exported, checked against the torch reference,
counted (nodes, GFLOP) and timed: ONNX Runtime FP32 and, optionally, the same module in torch
eager. Timings are interleaved — each round times every variant in turn — so that a machine
that changes speed during the run (shared cores, clock changes) slows all variants alike.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from glcf_bench.bench import torch_threads
from glcf_bench.flops import count_flops
from glcf_bench.machine import machine_info, matmul_peak_gflops, physical_cores, versions
from glcf_bench.torch_targets import bench_metadata, run_scorer
from glcf_export.onnx_export import export_fp32, set_metadata
from glcf_runtime.backends.onnxruntime import OnnxRuntimeRunner
from glcf_train.builder import build_model, load_run
from glcf_train.config import GlcfConfig, preset
from glcf_train.model import GLCF
from glcf_train.scoring import FusionStats, TorchScorer

from .forms import VARIANTS, GraphVariant, build_variant

Log = Callable[[str], None]


@dataclass
class VariantResult:
    name: str
    change: str
    nodes: int
    gflop: float
    export_s: float
    map_err: float  # ONNX Runtime vs the torch reference, relative to the map's range
    score_err: float  # relative
    ort_ms: dict[int, list[float]] = field(default_factory=dict)  # batch → latencies
    torch_ms: list[float] = field(default_factory=list)  # batch 1

    def summary(self, peak: float) -> dict:
        row = {k: v for k, v in asdict(self).items() if k not in ("ort_ms", "torch_ms")}
        for batch, samples in self.ort_ms.items():
            p50 = float(np.median(samples))
            row[f"ort_b{batch}_p50_ms"] = p50
            row[f"ort_b{batch}_pct_peak"] = 100.0 * self.gflop * batch / (p50 / 1000.0) / peak
        if self.torch_ms:
            row["torch_b1_p50_ms"] = float(np.median(self.torch_ms))
            row["ort_over_torch_b1"] = row["ort_b1_p50_ms"] / row["torch_b1_p50_ms"]
        return row


def load_model(run: Path | None, preset_name: str | None) -> tuple[GLCF, GlcfConfig, TorchScorer, FusionStats, str]:
    """A run's model and calibrated scorer, or a random-init preset with identity statistics."""
    if run is not None:
        model, cfg, _ = load_run(run, "cpu")
        scorer, calib = run_scorer(run, cfg)
        return model.eval(), cfg, scorer, FusionStats.from_dict(calib["stats"]), f"run {run}"
    torch.manual_seed(0)
    cfg = preset(preset_name or "paper")
    model, _ = build_model(cfg, random_init=True)
    stats = FusionStats.identity()
    scorer = TorchScorer(cfg.scoring, cfg.model.image_size, stats)
    return model.eval(), cfg, scorer, stats, f"preset {cfg.preset} (random init)"


def _time(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def measure_variants(
    run: Path | None = None, preset_name: str | None = None, names: list[str] | None = None,
    batches: tuple[int, ...] = (1,), rounds: int = 5, per_round: int = 3, with_torch: bool = True,
    threads: int | None = None, log: Log = print,
) -> dict:
    """Export, check, count and time the variants; a JSON-ready report."""
    chosen = [v for v in VARIANTS if names is None or v.name in names]
    unknown = set(names or ()) - {v.name for v in VARIANTS}
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; choose from {[v.name for v in VARIANTS]}")
    threads = threads or physical_cores()
    with torch_threads(threads):
        return _measure(chosen, run, preset_name, batches, rounds, per_round, with_torch, threads, log)


def _measure(chosen: list[GraphVariant], run: Path | None, preset_name: str | None,
             batches: tuple[int, ...], rounds: int, per_round: int, with_torch: bool, threads: int,
             log: Log) -> dict:
    model, cfg, scorer, stats, described = load_model(run, preset_name)
    size = cfg.model.image_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (max(batches), size, size, 3), dtype=np.uint8)
    with torch.inference_mode():
        ref_map, ref_score = (t.numpy() for t in scorer(model(torch.from_numpy(images[:2]))))
    span = float(ref_map.max() - ref_map.min()) or 1.0
    meta = bench_metadata(cfg, stats.to_dict(), 0.0, "placeholder: graph benchmark")
    results: list[VariantResult] = []
    runners: list[OnnxRuntimeRunner] = []
    modules = []
    with tempfile.TemporaryDirectory(prefix="glcf-graph-") as tmp:
        for v in chosen:
            log(f"exporting variant {v.name} …")
            deploy = build_variant(v, model, scorer, stats)
            start = time.perf_counter()
            graph = export_fp32(deploy, Path(tmp) / f"{v.name}.onnx", size, slim=v.slim)
            set_metadata(graph, meta)
            path = Path(tmp) / f"{v.name}.onnx"
            onnx.save(graph, str(path))
            export_s = time.perf_counter() - start
            runner = OnnxRuntimeRunner(path, providers=["cpu"], threads=threads)
            maps, scores = runner.infer(images[:2])
            results.append(VariantResult(
                v.name, v.change, len(graph.graph.node), count_flops(graph).total / 1e9, export_s,
                float(np.abs(maps - ref_map).max()) / span,
                float((np.abs(scores - ref_score) / np.maximum(np.abs(ref_score), 1e-12)).max()),
            ))
            runners.append(runner)
            modules.append(deploy)
        peak = _rounds(results, runners, modules, images, batches, rounds, per_round, with_torch, threads, log)
        for runner in runners:
            runner.close()
    return {
        "model": described, "machine": machine_info(), "versions": versions(), "threads": threads,
        "matmul_peak_gflops": peak, "batches": list(batches), "rounds": rounds, "per_round": per_round,
        "variants": [r.summary(peak) for r in results],
    }


def _rounds(results: list[VariantResult], runners: list, modules: list, images: np.ndarray,
            batches: tuple[int, ...], rounds: int, per_round: int, with_torch: bool, threads: int,
            log: Log) -> float:
    """Interleaved timing; returns the MatMul peak (best of before and after the timings)."""
    peak = matmul_peak_gflops(threads)
    for runner, module in zip(runners, modules, strict=True):  # warm-up
        for batch in batches:
            runner.infer(images[:batch])
        if with_torch:
            with torch.inference_mode():
                module(torch.from_numpy(images[:1]))
    for r in range(rounds):
        log(f"timing round {r + 1}/{rounds} …")
        for result, runner, module in zip(results, runners, modules, strict=True):
            for batch in batches:
                result.ort_ms.setdefault(batch, []).extend(
                    _time(lambda b=batch, rn=runner: rn.infer(images[:b]), per_round))
            if with_torch:
                x = torch.from_numpy(images[:1])
                with torch.inference_mode():
                    result.torch_ms.extend(_time(lambda m=module, xb=x: m(xb), per_round))
    return max(peak, matmul_peak_gflops(threads))


def variant_names(text: str | None) -> list[str] | None:
    return None if not text else [t.strip() for t in text.split(",") if t.strip()]
