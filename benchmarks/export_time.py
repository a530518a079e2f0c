"""Seconds per stage of `glcf export` for a preset (random weights, random check images).

The stages are those of ``glcf export`` (``glcf_export.pipeline``, the same code): trace +
onnxslim, the torch reference on four images, the FP32 parity check on ONNX Runtime, the TensorRT
operator check, the mixed FP16 file and its check; then the FLOP count. Written as JSON to benchmarks/results/.

    python benchmarks/export_time.py --preset paper
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from glcf_bench.flops import count_flops
from glcf_bench.machine import machine_info, slug, versions
from glcf_bench.torch_targets import bench_metadata
from glcf_export.deploy import DeployModule
from glcf_export.pipeline import check_graphs, write_graphs
from glcf_train.builder import build_model
from glcf_train.config import preset
from glcf_train.scoring import FusionStats, TorchScorer

RESULTS = Path(__file__).resolve().parent / "results"


def time_export(name: str, folder: Path, batch: int = 4) -> tuple[dict[str, float], dict]:
    """Run the export pipeline for preset ``name`` into ``folder``; seconds per stage, figures."""
    start = time.perf_counter()
    cfg = preset(name)
    model, _ = build_model(cfg, random_init=True)
    stages = {"build_model": time.perf_counter() - start}
    scorer = TorchScorer(cfg.scoring, cfg.model.image_size, FusionStats.identity())
    meta = bench_metadata(cfg, FusionStats.identity().to_dict(), 0.0, "placeholder")
    size = cfg.model.image_size
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    graphs = write_graphs(DeployModule(model, scorer), meta, folder, size, log=_quiet)
    report = check_graphs(graphs, model, scorer, images, batch, log=_quiet)
    flops = graphs.timed("count_flops", lambda: count_flops(graphs.fp32, batch=1))
    stages.update(graphs.seconds)
    for stage, seconds in stages.items():
        print(f"  {stage:22s} {seconds:7.2f} s", flush=True)
    return stages, {**report.figures, "gflop_per_image": flops.gflop_per_image}


def _quiet(_: str) -> None:
    pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", help="paper, small or tiny")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the result file")
    args = parser.parse_args(argv)
    print(f"export stages of preset {args.preset}:")
    with tempfile.TemporaryDirectory(prefix="glcf-export-time-") as tmp:
        stages, figures = time_export(args.preset, Path(tmp))
        sizes = {p.name: p.stat().st_size for p in Path(tmp).glob("*.onnx")}
    machine = machine_info()
    print(f"  {'total':22s} {sum(stages.values()):7.2f} s")
    record = {
        "preset": args.preset,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "versions": versions(),
        "seconds": stages,
        "total_seconds": sum(stages.values()),
        "files_bytes": sizes,
        "figures": figures,
    }
    name = (
        f"export-time_{args.preset}_{slug(machine['cpu'])}_{machine['usable_cores']}c_"
        f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / name).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
