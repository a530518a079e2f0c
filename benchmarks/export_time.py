"""Seconds per stage of `glcf export` for a preset (random weights, random check images).

The stages are those of ``glcf_export.export``: trace + onnxslim, the torch reference on four
images, the FP32 parity check on ONNX Runtime, the TensorRT operator check, the mixed FP16 file
and its check; then the FLOP count. Written as JSON to benchmarks/results/.

    python benchmarks/export_time.py --preset paper
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from glcf_bench.flops import count_flops
from glcf_bench.machine import machine_info, slug, versions
from glcf_bench.targets import bench_metadata
from glcf_export import checks
from glcf_export.deploy import DeployModule
from glcf_export.onnx_export import export_fp32, set_metadata, to_mixed_fp16
from glcf_train.builder import build_model
from glcf_train.config import preset
from glcf_train.scoring import FusionStats, TorchScorer

RESULTS = Path(__file__).resolve().parent / "results"


def time_export(name: str, folder: Path, batch: int = 4) -> tuple[dict[str, float], dict]:
    """Run the export stages for preset ``name`` into ``folder``; seconds per stage, figures."""
    stages: dict[str, float] = {}

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        stages[stage] = time.perf_counter() - start
        print(f"  {stage:22s} {stages[stage]:7.2f} s", flush=True)
        return value

    cfg = preset(name)
    model, _ = timed("build_model", lambda: build_model(cfg, random_init=True))
    scorer = TorchScorer(cfg.scoring, cfg.model.image_size, FusionStats.identity())
    meta = bench_metadata(cfg, FusionStats.identity().to_dict(), 0.0, "placeholder")
    size, path, path16 = cfg.model.image_size, folder / "model.onnx", folder / "model.fp16.onnx"
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    fp32 = timed("trace_and_simplify", lambda: export_fp32(DeployModule(model, scorer), path, size))
    set_metadata(fp32, meta)
    timed("save_fp32", lambda: onnx.save(fp32, str(path)))
    report = checks.CheckReport()
    reference = timed("torch_reference", lambda: checks.torch_reference(model, scorer, images))
    session = timed("ort_session_fp32", lambda: checks.ort_session(path))
    timed("check_fp32", lambda: checks.check_fp32(report, session, reference, images))
    timed("check_ops_fp32", lambda: checks.check_ops(report, "model.onnx", fp32))
    mixed = timed("mixed_fp16", lambda: to_mixed_fp16(fp32))
    timed("save_fp16", lambda: onnx.save(mixed, str(path16)))
    fp32_out = checks.run_ort(session, images, batch)
    timed(
        "check_fp16",
        lambda: checks.check_fp16(report, checks.ort_session(path16), fp32_out, images, batch),
    )
    timed("check_ops_fp16", lambda: checks.check_ops(report, "model.fp16.onnx", mixed))
    flops = timed("count_flops", lambda: count_flops(fp32, batch=1))
    return stages, {**report.figures, "gflop_per_image": flops.gflop_per_image}


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
