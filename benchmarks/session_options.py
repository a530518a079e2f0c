"""ONNX Runtime session options side by side on one exported model: graph optimisation level,
intra-op threads and thread spinning (batch 1, p50 latency). Writes JSON next to the other results.

    python benchmarks/session_options.py runs/cat/export/model.onnx
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from glcf_runtime.backends.onnxruntime import OnnxRuntimeRunner


def p50_ms(path: Path, optimization: str, threads: int, runs: int, spinning: bool = False) -> float:
    with OnnxRuntimeRunner(path, providers=["CPUExecutionProvider"], threads=threads,
                           optimization=optimization, spinning=spinning) as runner:
        m = runner.metadata
        batch = np.random.default_rng(0).integers(0, 256, (1, m.height, m.width, 3), dtype=np.uint8)
        for _ in range(2):
            runner.infer(batch)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            runner.infer(batch)
            times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rows = []
    for repeat in range(2):  # twice: run-to-run variation is part of the answer
        for optimization in ("disable", "basic", "extended", "all"):
            for threads in sorted({1, cores}):
                for spinning in (False, True):
                    ms = p50_ms(args.model, optimization, threads, args.runs, spinning)
                    rows.append({"repeat": repeat, "optimization": optimization, "threads": threads,
                                 "spinning": spinning, "p50_ms": round(ms, 1)})
                    print(f"{optimization:9s} threads {threads} spinning {spinning!s:5s}: "
                          f"p50 {ms:8.1f} ms")
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"session-options_{args.model.stem}_{cores}c_{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.write_text(json.dumps({"model": str(args.model), "rows": rows}, indent=2))
    print(f"results: {target}")


if __name__ == "__main__":
    main()
