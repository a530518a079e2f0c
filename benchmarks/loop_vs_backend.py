"""The camera loop (video file → glcf_runtime.loop.inspect) against the backend alone.

A 1280x720 MJPG video is written to a temporary folder and inspected frame by frame; the ratio
loop fps / backend images/s shows what decoding, resizing, batching and the verdicts cost.

    python benchmarks/loop_vs_backend.py --preset paper --frames 100
"""

from __future__ import annotations

import argparse
from pathlib import Path

from glcf_bench.bench import run_bench
from glcf_bench.report import render, result_stem, write_report
from glcf_bench.settings import BenchSettings
from glcf_cli.common import console

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULTS = BenchSettings()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", type=Path, help="export or run folder")
    parser.add_argument("--preset", help="random-init preset instead of a folder (default: paper)")
    parser.add_argument("--backends", default="onnxruntime", help="runtime backends to loop")
    parser.add_argument("--batch", type=int, default=1, help="frames per inference in the loop")
    parser.add_argument("--frames", type=int, default=DEFAULTS.loop_frames,
                        help="frames of the test video")
    parser.add_argument("--warmup", type=int, default=DEFAULTS.warmup)
    parser.add_argument("--min-time", type=float, default=DEFAULTS.min_time,
                        help="backend-only seconds")
    parser.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the result files")
    args = parser.parse_args(argv)
    settings = BenchSettings(
        args.backends,
        (args.batch,),
        preset=args.preset or (None if args.target else "paper"),
        warmup=args.warmup,
        min_time=args.min_time,
        threads=args.threads,
        loop=True,
        loop_frames=args.frames,
    )
    report = run_bench(args.target, settings, console.print)
    for item in render(report):
        console.print(item)
    stem = "loop-vs-backend_" + result_stem(report).removeprefix("bench_")
    json_file, csv_file = write_report(report, args.out / f"{stem}.json", args.out / f"{stem}.csv")
    for row in report.loop:
        print(
            f"{row.backend} batch {row.batch}: loop {row.loop_fps:.2f} fps = {row.ratio:.0%} "
            f"of the backend's {row.backend_images_per_s:.2f} images/s"
        )
    print(f"wrote {json_file}\n      {csv_file}")


if __name__ == "__main__":
    main()
