"""`glcf bench` (needs the `export` extra: torch, onnx, onnxslim, onnxruntime)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from glcf_bench.settings import BenchSettings
from glcf_cli.common import console, log_line
from glcf_cli.preflight import check_batches

Opt = typer.Option
DEFAULTS = BenchSettings()  # the options' defaults are the library's
ALL_BACKENDS = ",".join(DEFAULTS.backends)  # the trained model, every run mode


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
    ] = DEFAULTS.preset,
    backends: Annotated[str, Opt(help="Comma-separated backends to run: torch and the export "
                                 "folder's run modes (glcf inspect --backend takes the same "
                                 "names).")] = ALL_BACKENDS,
    batch: Annotated[str, Opt(help="Comma-separated batch sizes.")] = ",".join(
        map(str, DEFAULTS.batches)),
    warmup: Annotated[
        int, Opt(help="Untimed batches per backend, batch size and round.")
    ] = DEFAULTS.warmup,
    min_time: Annotated[
        float, Opt(help="Seconds of timed batches per backend and batch size.")
    ] = DEFAULTS.min_time,
    threads: Annotated[
        int | None, Opt(help="CPU threads (default: the physical cores).")
    ] = DEFAULTS.threads,
    json_path: Annotated[
        Path | None,
        Opt("--json", help="JSON result file (default: beside --csv, or in --out-dir named by "
                        "machine, versions and date)."),
    ] = None,
    csv_path: Annotated[
        Path | None, Opt("--csv", help="CSV result file (default: beside --json, same name).")
    ] = None,
    out_dir: Annotated[
        Path, Opt(help="Folder for the result files without --json / --csv.")
    ] = Path("."),
    loop: Annotated[
        bool, Opt("--loop/--no-loop", help="Also time the camera loop over a video.")
    ] = DEFAULTS.loop,
    loop_frames: Annotated[
        int, Opt(help="Frames of the 1280x720 test video for --loop.")
    ] = DEFAULTS.loop_frames,
    cuda_graphs: Annotated[
        bool, Opt(help="torch on CUDA: replay CUDA graphs.")
    ] = DEFAULTS.cuda_graphs,
    rounds: Annotated[
        int, Opt(help="Rounds in which the backends take turns (--min-time is shared among them).")
    ] = DEFAULTS.rounds,
    pairs: Annotated[
        int,
        Opt(help="Then time this many batches per backend alternating one by one with torch: "
            "their median ratio holds on a machine whose speed changes (0: skip)."),
    ] = DEFAULTS.pairs,
    profile: Annotated[
        bool,
        Opt("--profile", help="Also profile every CPU run mode node by node: time per stage "
            "(pre-processing, Φ_L, bottleneck, each decoder, scoring) beside its FLOPs and the "
            "share of the MatMul peak of its precision, measured in the same run."),
    ] = DEFAULTS.profile,
) -> None:
    """Time every backend side by side: latency, images/s, memory, FLOP/s vs peak, loop overhead."""
    from glcf_bench.bench import run_bench
    from glcf_bench.report import render, write_report

    settings = BenchSettings(
        backends,
        check_batches(batch, "--batch", model_or_run),  # before torch or a model loads
        warmup=warmup,
        min_time=min_time,
        rounds=rounds,
        threads=threads,
        loop=loop,
        loop_frames=loop_frames,
        cuda_graphs=cuda_graphs,
        pairs=pairs,
        profile=profile,
    )
    presets = [p.strip() for p in preset.split(",")] if preset else [None]
    if len(presets) > 1 and (json_path or csv_path):
        raise typer.BadParameter("with several presets, give --out-dir (one result file each), "
                                 "not --json / --csv")
    reports = {}
    for name in presets:  # one after the other, in one process, on the same machine state
        report = run_bench(model_or_run, replace(settings, preset=name), log_line)
        for item in render(report):
            console.print(item)
        json_file, csv_file = write_report(report, json_path, csv_path, out_dir)
        log_line(f"results: {json_file}\n         {csv_file}")
        reports[name] = report
    if len(reports) > 1:
        from glcf_bench.presets import comparison_lines

        for line in comparison_lines(reports):
            console.print(line, highlight=False)
