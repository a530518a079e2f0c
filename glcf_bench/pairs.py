"""Back-to-back ratios for ``glcf bench --pairs``: each backend beside torch, batch by batch.

Medians taken seconds apart compare two machine states on a shared machine whose speed changes
within seconds; a pair of batches run one right after the other sees one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from glcf_bench.report import BenchReport
from glcf_bench.settings import TORCH_ROW, BenchSettings
from glcf_bench.targets import BenchTarget, open_backend
from glcf_runtime.backends import Runner
from glcf_runtime.preprocess import preprocess

Log = Callable[[str], None]


def paired_ratios(reference: Runner, runner: Runner, batch: np.ndarray, pairs: int) -> np.ndarray:
    """Inference latency of ``runner`` ÷ ``reference`` for ``pairs`` back-to-back batches.

    The two run one right after the other, the first of each pair alternating, so both see the
    same machine state: the ratios hold where a shared machine's speed changes within seconds.
    """
    def once(r: Runner) -> float:
        start = time.perf_counter()
        r.infer(batch)  # host arrays: a GPU backend has synchronised
        return time.perf_counter() - start

    once(reference), once(runner)  # warm-up
    ratios = []
    for i in range(pairs):
        if i % 2:
            ours = once(runner)
            ref = once(reference)
        else:
            ref = once(reference)
            ours = once(runner)
        ratios.append(ours / ref)
    return np.array(ratios)


def bench_pairs(
    report: BenchReport, bench: BenchTarget, settings: BenchSettings, frames: list[np.ndarray], log: Log
) -> None:
    """Fill ``paired_vs_torch`` of every row whose batch torch also ran."""
    timed = {(r.backend, r.batch) for r in report.rows if r.runnable and r.infer_ms is not None}
    torch_batches = {b for name, b in timed if name == TORCH_ROW}
    others = [b for b in settings.backends if b != TORCH_ROW and b not in report.skipped]
    if not torch_batches or not others:
        return
    max_batch = max(settings.batches)
    with open_backend(TORCH_ROW, bench, settings.threads, max_batch, settings.cuda_graphs, log) as ref:
        spec = ref.metadata.preprocess_spec
        for backend in others:
            try:
                runner = open_backend(backend, bench, settings.threads, max_batch, settings.cuda_graphs, log)
            except Exception as exc:  # it ran in the rounds; say why it cannot now, and go on
                log(f"{backend}: no paired timing — {exc}")
                continue
            with runner:
                for row in report.rows:
                    if row.backend != backend or (row.backend, row.batch) not in timed \
                            or row.batch not in torch_batches:
                        continue
                    log(f"{row.backend}: batch {row.batch}, {settings.pairs} batches alternating with torch …")
                    batch = np.stack([preprocess(frames[i % len(frames)], spec) for i in range(row.batch)])
                    ratios = paired_ratios(ref, runner, batch, settings.pairs)
                    row.pairs = len(ratios)
                    row.paired_vs_torch = float(np.median(ratios))
                    row.paired_vs_torch_p25, row.paired_vs_torch_p75 = (
                        float(v) for v in np.percentile(ratios, [25, 75]))
