"""`glcf inspect` and `glcf threshold`: the runtime commands (numpy, OpenCV and a backend only)."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from calibration.threshold import DEFAULT_MARGIN, DEFAULT_QUANTILE, sample_size_note
from glcf_cli import inspect_cameras as icam
from glcf_cli import inspect_options as iopt
from glcf_cli import inspect_publish as ipub
from glcf_cli.common import console, err_console, shell
from glcf_cli.preflight import check_batch, check_threshold_rule
from glcf_runtime.artifacts import MODE_NAMES

if TYPE_CHECKING:
    from glcf_runtime.backends.base import Runner
    from glcf_runtime.loop import Summary
    from glcf_runtime.publish import PublishSink
    from glcf_runtime.sinks import Sink
    from glcf_runtime.sources import FrameSource

Opt = typer.Option
Model = Annotated[
    Path,
    typer.Argument(
        help="model.onnx, model.fp16.onnx, model.int8.onnx, model.engine, or an export folder "
        "(--backend auto picks its fastest checked file)."
    ),
]
BackendOpt = Annotated[
    str,
    Opt(
        help="auto: the fastest backend and precision here that the export's checks passed "
        "(TensorRT on an NVIDIA GPU, else OpenVINO INT8 / BF16 / FP32, else ONNX Runtime; the "
        "choice and why are printed), or onnxruntime, openvino, tensorrt, or a run mode of an "
        f"export folder as glcf bench names it ({', '.join(MODE_NAMES)}; openvino-bf16 is "
        "--backend openvino --precision bf16)."
    ),
]
PrecisionOpt = Annotated[
    str | None,
    Opt(help="OpenVINO inference precision: fp32 or bf16 (CPUs with native BF16); default: "
        "what --backend auto chose, else fp32."),
]
ProviderOpt = Annotated[
    list[str] | None,
    Opt(
        "--provider",
        help="ONNX Runtime provider, repeatable, best first: tensorrt, cuda, cpu "
        "(default: the best available).",
    ),
]
ThreadsOpt = Annotated[
    int | None, Opt(help="CPU inference threads, ONNX Runtime or OpenVINO (default: all cores).")
]
RoiOpt = Annotated[
    str | None,
    Opt(
        help="Crop every frame to x,y,w,h (pixels of the source frame) before resizing, e.g. to "
        "cut letterbox bars; calibrate glcf threshold with the same crop."
    ),
]

ServeOpt = Annotated[
    str | None,
    Opt(
        metavar="HOST:PORT",
        help="Serve a live page, a JSON API and Prometheus /metrics on PORT or HOST:PORT "
        "(default host 127.0.0.1; port 0 picks a free one). Any other host needs --token.",
    ),
]
TokenOpt = Annotated[
    str | None,
    Opt(
        envvar="GLCF_TOKEN",
        help="With --serve: every route but /healthz needs ?token=T or the header "
        "'Authorization: Bearer T'.",
    ),
]


def _progress(message: str) -> None:
    err_console.print(escape(message), highlight=False)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
    app.command("threshold")(threshold_command)


def inspect_command(
    model: Model,
    source: icam.SourceOpt = None,
    threshold: Annotated[
        float | None,
        Opt(
            help="Anomalous if score >= this (default: "
            "threshold.json next to the model, else the "
            "model's metadata)."
        ),
    ] = None,
    batch: Annotated[int, Opt(help="Frames per inference (of any cameras).")] = 1,
    station: icam.StationOpt = None,
    batch_wait_ms: icam.BatchWaitOpt = 5.0,
    streams: icam.StreamsOpt = 1,
    backend: BackendOpt = "auto",
    provider: ProviderOpt = None,
    threads: ThreadsOpt = None,
    precision: PrecisionOpt = None,
    show: Annotated[
        bool, Opt("--show", help="Show annotated frames in a window (q quits).")
    ] = False,
    save_video: Annotated[
        Path | None, Opt(help="Write annotated frames to this .avi / .mp4.")
    ] = None,
    jsonl: Annotated[
        Path | None, Opt(help="Append one JSON record per frame to this file.")
    ] = None,
    save_anomalies: Annotated[
        Path | None, Opt(help="Write a heat-map panel PNG per anomalous frame into this folder.")
    ] = None,
    roi: RoiOpt = None,
    reconnect: iopt.ReconnectOpt = "forever",
    reconnect_max_wait: iopt.ReconnectWaitOpt = 30.0,
    health: iopt.HealthOpt = True,
    health_min_std: iopt.MinStdOpt = 0.75,
    health_max_clipped: iopt.MaxClippedOpt = 0.95,
    health_frozen_frames: iopt.FrozenOpt = 25,
    summary_json: iopt.SummaryJsonOpt = None,
    max_pixels: iopt.MaxPixelsOpt = None,
    serve: ServeOpt = None,
    token: TokenOpt = None,
    allow_host: iopt.AllowHostOpt = None,
    publish: ipub.PublishOpt = None,
    mqtt_retain_last: ipub.RetainOpt = False,
    opcua_node: ipub.OpcNodeOpt = None,
    outbox: ipub.OutboxOpt = None,
    outbox_max_mb: ipub.OutboxMaxOpt = 256.0,
    drain_s: ipub.DrainOpt = 10.0,
    deadline_ms: ipub.DeadlineOpt = None,
    publish_secret_file: ipub.SecretFileOpt = None,
    publish_max_wait: ipub.PublishWaitOpt = 10.0,
    publish_ca: ipub.CaOpt = None,
    publish_client_cert: ipub.ClientCertOpt = None,
    publish_client_key: ipub.ClientKeyOpt = None,
    opcua_security: ipub.OpcSecurityOpt = None,
) -> None:
    """Inspect frames: verdict and heat map per frame. Exit status: 0 every frame scored, 1 stopped
    by a signal, 2 bad input or arguments, 3 error records (unreadable, unhealthy or lost frames,
    outages), 4 an output could not be written, 5 the --publish outbox is full."""
    from glcf_runtime.backends import open_runner
    from glcf_runtime.loop import inspect
    from glcf_runtime.preprocess import MAX_PIXELS, checked_max_pixels, parse_roi
    from glcf_runtime.sources import parse_reconnect
    from glcf_runtime.station import inspect_station
    from glcf_runtime.threshold import resolve_threshold

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    specs = icam.plan(source, station, save_video, batch_wait_ms, streams)
    check_batch(batch, "--batch", model)
    crop = parse_roi(roi) if roi is not None else None
    pixels = MAX_PIXELS if max_pixels is None else checked_max_pixels(max_pixels)
    if serve is not None:
        from glcf_runtime.serve import check_exposure, parse_allowed_hosts, parse_bind

        check_exposure(parse_bind(serve)[0], token)  # before the model loads
        parse_allowed_hosts(allow_host or ())
    elif allow_host:
        from glcf_runtime.errors import ConfigError

        raise ConfigError(
            f"--allow-host {allow_host[0]}: it names a host of the live page; add --serve"
        )
    retries = parse_reconnect(reconnect)
    checks = iopt.health_config(health, health_min_std, health_max_clipped, health_frozen_frames)
    iopt.check_outputs(jsonl, save_video, save_anomalies, summary_json)
    plant = ipub.plan(publish, mqtt_retain_last, opcua_node, jsonl, outbox, outbox_max_mb, drain_s,
                      deadline_ms, publish_secret_file, publish_max_wait, publish_ca,
                      publish_client_cert, publish_client_key, opcua_security)
    if summary_json is not None:  # a run killed before its end leaves no stale summary behind
        from glcf_runtime.sinks import start_summary

        start_summary(summary_json)
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        runner = stack.enter_context(
            open_runner(model, backend, log=_progress, providers=provider, threads=threads,
                        precision=precision, streams=streams if streams > 1 else None)
        )
        if crop is not None:
            runner.set_roi(crop)
        cameras = icam.open_cameras(stack, specs, retries, iopt.backoff(reconnect_max_wait),
                                    pixels)
        several = len(cameras) > 1
        hint = None  # several cameras: the post-run hint
        if not several and cameras[0].roi is not None:
            runner.set_roi(cameras[0].roi)
            roi = None
        if not several and cameras[0].threshold is not None:
            threshold = cameras[0].threshold
        outputs = _open_sinks(stack, stop, cameras[0].source.fps, jsonl, save_video,
                              save_anomalies, show, several)
        publishing = None if plant is None else ipub.open_publishing(stack, plant, outputs)
        runner.warmup()
        choice = resolve_threshold(runner, threshold)  # the loop and the live page ask it too
        region = "" if runner.metadata.roi is None else f", cropped to {roi or runner.metadata.roi}"
        console.print(
            f"{runner.describe()}\nthreshold {choice.value} ({choice.origin})\n"
            f"{icam.describe(cameras)}{region}",
            highlight=False,
            soft_wrap=True,
        )
        if serve is not None:
            frames = {c.name: c.source for c in cameras} if several else cameras[0].source
            outputs.append(_serve(stack, runner, frames, threshold, serve, token, allow_host,
                                  publishing))
        if several:
            summary = inspect_station(runner, cameras, threshold, batch, outputs, stop, checks,
                                      batch_wait_ms)
            hint = icam.streams_hint(runner, len(cameras), batch)
        else:
            summary = inspect(runner, cameras[0].source, threshold, batch, outputs, stop, checks,
                              camera=cameras[0].name)
    console.print(summary_table(summary))
    if hint:
        console.print(hint, highlight=False, soft_wrap=True)
    raise typer.Exit(iopt.write_summary(summary, summary_json))


def _serve(
    stack: contextlib.ExitStack,
    runner: Runner,
    frames: FrameSource | dict[str, FrameSource],
    threshold: float | None,
    serve: str,
    token: str | None,
    allow_host: list[str] | None = None,
    publishing: PublishSink | None = None,
) -> Sink:
    """Start the live page (closed by ``stack`` after the loop); print its URL; its sink."""
    from rich.markup import escape

    from glcf_runtime.serve import open_live_page

    server = stack.enter_context(
        open_live_page(runner, frames, threshold, serve, token, allow_host or ())
    )
    if publishing is not None:
        server.registry.register(server.metrics.PublishCollector(publishing))
    note = " (every route but /healthz needs ?token=T or Authorization: Bearer T)" if token else ""
    console.print(f"live page {escape(server.url)}{escape(note)}", highlight=False, soft_wrap=True)
    return server.state


def _open_sinks(
    stack: contextlib.ExitStack,
    stop: threading.Event,
    fps: float | None,
    jsonl: Path | None,
    save_video: Path | None,
    save_anomalies: Path | None,
    show: bool,
    by_camera: bool = False,
) -> list[Sink]:
    """The sinks asked for; ``stack`` closes them if anything fails before ``inspect`` runs."""
    from glcf_runtime import sinks as s

    outputs: list[Sink] = []
    if jsonl is not None:
        outputs.append(s.JsonlSink(jsonl))
        stack.callback(outputs[-1].close)
    if save_video is not None:
        outputs.append(s.VideoSink(save_video, fps))
        stack.callback(outputs[-1].close)
    if save_anomalies is not None:
        outputs.append(s.AnomalySink(save_anomalies, by_camera))
    if show:
        outputs.append(s.WindowSink(stop, by_camera=by_camera))
        stack.callback(outputs[-1].close)
    return outputs


def summary_table(summary: Summary) -> Table:
    """The run summary as a two-column table."""
    table = Table(title="inspection summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")

    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f} ms"

    rows = (
        ("frames", str(summary.frames)),
        ("anomalies", str(summary.anomalies)),
        ("errors", f"{summary.errors} ({summary.unhealthy} unhealthy, {summary.lost} lost)"),
        ("fps", f"{summary.fps:.1f}"),
        ("latency p50", ms(summary.latency_p50_ms)),
        ("latency p95", ms(summary.latency_p95_ms)),
        ("threshold", f"{summary.threshold}"),
        ("ended", escape(summary.reason)),
        ("completed", str(summary.completed)),
        ("exit code", f"{int(summary.exit_code)} ({summary.exit_code.name.lower()})"),
    )
    if summary.publish is not None:
        rows = (*rows[:-1], ("published", ipub.summary_row(summary.publish)), rows[-1])
    rows = (*rows[:-1], *icam.camera_rows(summary), rows[-1])
    for key, value in rows:
        table.add_row(key, value)
    return table


def threshold_command(
    model: Model,
    good: Annotated[Path, Opt("--good", help="Folder of good (normal) images.")],
    anomalous: Annotated[
        Path | None,
        Opt(help="Folder of anomalous images: F1-optimal threshold instead of the quantile rule."),
    ] = None,
    quantile: Annotated[
        float, Opt(help="Quantile of the good scores (quantile rule).")
    ] = DEFAULT_QUANTILE,
    margin: Annotated[
        float, Opt(help="threshold = q + margin × (q − median) (quantile rule).")
    ] = DEFAULT_MARGIN,
    target_fpr: Annotated[
        float | None,
        Opt(help="Instead of --quantile/--margin: the lowest threshold with at most this "
            "false-alarm rate on the good images, e.g. 0.01 (as glcf calibrate --target-fpr)."),
    ] = None,
    batch: Annotated[int, Opt(help="Images per inference.")] = 8,
    backend: BackendOpt = "auto",
    provider: ProviderOpt = None,
    threads: ThreadsOpt = None,
    precision: PrecisionOpt = None,
    roi: RoiOpt = None,
) -> None:
    """Re-calibrate the threshold on the deployed backend; writes threshold.json next to the model."""
    from glcf_runtime.backends import open_runner
    from glcf_runtime.preprocess import parse_roi
    from glcf_runtime.sinks import check_writable
    from glcf_runtime.threshold import calibrate_threshold, checked_target_fpr, threshold_file

    check_batch(batch, "--batch", model)
    check_threshold_rule(quantile, margin)
    checked_target_fpr(target_fpr)
    crop = parse_roi(roi) if roi is not None else None
    check_writable(threshold_file(model), "the threshold file")
    with open_runner(model, backend, log=_progress, providers=provider, threads=threads,
                     precision=precision) as runner:
        if crop is not None:
            runner.set_roi(crop)
        result, file = calibrate_threshold(runner, good, anomalous, quantile, margin, batch,
                                           target_fpr)
        err_console.print(f"scored with {runner.describe()}", highlight=False, soft_wrap=True)
    if result["f1"] is not None:
        detail = f"F1 {result['f1']:.3f}"
    elif result["fpr"] is not None:
        detail = f"target FPR {result['target_fpr']}, {result['fpr']:.1%} false alarms on them"
    else:
        detail = f"quantile {result['quantile']}, margin {result['margin']}"
    console.print(
        f"threshold {result['threshold']:.6g} ({result['rule']}, {detail}; "
        f"{result['n_normal']} good, {result['n_anomalous']} anomalous images) → {file}",
        highlight=False,
        soft_wrap=True,
    )
    note = sample_size_note(result)
    if note is not None:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False, soft_wrap=True)
    again = shell(["glcf", "inspect", model, "--source", "SRC", *(["--roi", roi] if roi else [])])
    console.print(
        f"next: {again} (uses {file.name}; --threshold overrides it)",
        highlight=False,
        soft_wrap=True,
    )
