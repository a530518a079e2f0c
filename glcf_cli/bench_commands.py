"""`glcf bench` (needs the `export` extra: torch, onnx, onnxslim, onnxruntime)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glcf_cli.common import console
from glcf_cli.preflight import parse_batches

Opt = typer.Option
ALL_BACKENDS = ("torch,onnxruntime,onnxruntime-fp16,tensorrt,openvino,openvino-bf16,openvino-int8,"
                "openvino-int8-bf16,onnxruntime-int8,tensorrt-int8")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    model_or_run: Annotated[
        Path | None,
        typer.Argument(
            help="Export folder (model.onnx, model.fp16.onnx, model.engine) or run folder; "
            "omit it with --preset."
        ),
    ] = None,
    preset: Annotated[
        str | None,
        Opt(
            help="Benchmark a randomly initialised model of this "
            "preset (paper, edge, small, tiny); no training needed. Several, comma-separated "
            "(edge,paper): each in turn, then each one's fastest path and their ratio."
        ),
    ] = None,
    backends: Annotated[str, Opt(help="Comma-separated backends to run.")] = ALL_BACKENDS,
    batch: Annotated[str, Opt(help="Comma-separated batch sizes.")] = "1,8",
    warmup: Annotated[int, Opt(help="Untimed batches per backend, batch size and round.")] = 3,
    min_time: Annotated[
        float, Opt(help="Seconds of timed batches per backend and batch size.")
    ] = 5.0,
    threads: Annotated[int | None, Opt(help="CPU threads (default: the physical cores).")] = None,
    json_path: Annotated[
        Path | None,
        Opt("--json", help="JSON result file (default: named by machine, versions and date)."),
    ] = None,
    csv_path: Annotated[
        Path | None, Opt("--csv", help="CSV result file (default: as --json).")
    ] = None,
    out_dir: Annotated[
        Path, Opt(help="Folder for the result files without --json / --csv.")
    ] = Path("."),
    loop: Annotated[
        bool, Opt("--loop/--no-loop", help="Also time the camera loop over a video.")
    ] = True,
    loop_frames: Annotated[int, Opt(help="Frames of the 1280x720 test video for --loop.")] = 300,
    cuda_graphs: Annotated[bool, Opt(help="torch on CUDA: replay CUDA graphs.")] = False,
    rounds: Annotated[
        int, Opt(help="Rounds in which the backends take turns (--min-time is shared among them).")
    ] = 3,
    pairs: Annotated[
        int,
        Opt(help="Then time this many batches per backend alternating one by one with torch: "
            "their median ratio holds on a machine whose speed changes (0: skip)."),
    ] = 10,
) -> None:
    """Time every backend side by side: latency, images/s, memory, FLOP/s vs peak, loop overhead."""
    from glcf_bench.bench import run_bench
    from glcf_bench.report import render, write_report

    batches = parse_batches(batch, "--batch", model_or_run)  # before torch or a model loads
    presets = [p.strip() for p in preset.split(",")] if preset else [None]
    if len(presets) > 1 and (json_path or csv_path):
        raise typer.BadParameter("with several presets, give --out-dir (one result file each), "
                                 "not --json / --csv")
    reports = {}
    for name in presets:  # one after the other, in one process, on the same machine state
        report = run_bench(
            model_or_run,
            name,
            backends,
            list(batches),
            warmup,
            min_time,
            threads,
            loop,
            loop_frames,
            cuda_graphs,
            log=console.print,
            rounds=rounds,
            pairs=pairs,
        )
        for item in render(report):
            console.print(item)
        json_file, csv_file = write_report(report, json_path, csv_path, out_dir)
        console.print(f"results: {json_file}\n         {csv_file}")
        reports[name] = report
    if len(reports) > 1:
        from glcf_bench.presets import comparison_lines

        for line in comparison_lines(reports):
            console.print(line, highlight=False)
