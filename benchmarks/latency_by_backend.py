"""Latency and throughput of every backend at batch 1 and 8 → JSON and CSV in benchmarks/results/.

python benchmarks/latency_by_backend.py --preset paper
python benchmarks/latency_by_backend.py path/to/export --backends onnxruntime,tensorrt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from glcf_bench.bench import run_bench
from glcf_bench.report import render, write_report
from glcf_bench.settings import BenchSettings
from glcf_cli.common import console

RESULTS = Path(__file__).resolve().parent / "results"
ALL_BACKENDS = "torch,onnxruntime,onnxruntime-fp16,tensorrt"
DEFAULTS = BenchSettings()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", type=Path, help="export or run folder")
    parser.add_argument("--preset", help="random-init preset instead of a folder (default: paper)")
    parser.add_argument("--backends", default=ALL_BACKENDS)
    parser.add_argument("--batch", default=",".join(map(str, DEFAULTS.batches)))
    parser.add_argument("--warmup", type=int, default=DEFAULTS.warmup)
    parser.add_argument("--min-time", type=float, default=10.0, help="seconds per backend × batch")
    parser.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    parser.add_argument("--rounds", type=int, default=DEFAULTS.rounds,
                        help="rounds in which the backends take turns")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the result files")
    args = parser.parse_args(argv)
    settings = BenchSettings(
        args.backends,
        args.batch,
        preset=args.preset or (None if args.target else "paper"),
        warmup=args.warmup,
        min_time=args.min_time,
        rounds=args.rounds,
        threads=args.threads,
        loop=False,
    )
    report = run_bench(args.target, settings, console.print)
    for item in render(report):
        console.print(item)
    json_file, csv_file = write_report(report, out_dir=args.out)
    print(f"wrote {json_file}\n      {csv_file}")


if __name__ == "__main__":
    main()
