"""`glcf inspect`'s failure-mode options: reconnect policy, frame health, outputs, exit status."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from glcf_runtime.health import HealthConfig
    from glcf_runtime.loop import Summary

Opt = typer.Option
ReconnectOpt = Annotated[
    str,
    Opt(help="Live sources: reconnection attempts in a row before giving up (0: none), or "
        "'forever'. Each outage becomes a JSON record with its duration."),
]
ReconnectWaitOpt = Annotated[
    float, Opt(help="Live sources: longest wait in seconds between reconnection attempts "
               "(the wait doubles from 0.5 s up to this).")
]
HealthOpt = Annotated[
    bool, Opt("--health/--no-health", help="Report blank, clipped and frozen frames as unusable "
              "(error records with a 'health' field) instead of scoring them.")
]
MinStdOpt = Annotated[
    float, Opt(help="Frame health: a frame whose pixel std (8-bit levels, at model size) is below "
               "this is 'flat' (covered lens, dead camera).")
]
MaxClippedOpt = Annotated[
    float, Opt(help="Frame health: a frame with more than this fraction of black- or white-clipped "
               "pixels is 'clipped'.")
]
FrozenOpt = Annotated[
    int, Opt(help="Frame health, live sources: this many identical frames in a row are 'frozen' "
             "(0: off).")
]
MaxPixelsOpt = Annotated[
    int | None,
    Opt(help="Image files: refuse one of more pixels (width × height) than this, from its header "
        "before decoding (an error record naming it). Default 50000000 (50 megapixels)."),
]
SummaryJsonOpt = Annotated[
    Path | None, Opt(help="Write the run summary (with its exit_code) to this JSON file.")
]
AllowHostOpt = Annotated[
    list[str] | None,
    Opt("--allow-host", metavar="NAME",
        help="With --serve: also answer requests whose Host header is NAME (repeatable), e.g. the "
        "box's DNS name or a reverse proxy's. IP addresses, localhost (loopback binds) and this "
        "machine's host name (other binds) are always accepted; other names get 403, so no web "
        "site can reach the page by re-pointing its own name here (DNS rebinding)."),
]


def backoff(max_wait: float) -> tuple[float, float]:
    """``(first, longest)`` wait between reconnection attempts; ConfigError for a bad maximum."""
    from glcf_runtime.errors import ConfigError

    if not (max_wait >= 0.5 and max_wait < float("inf")):
        raise ConfigError(f"--reconnect-max-wait {max_wait}: give seconds >= 0.5, e.g. 30")
    return 0.5, max_wait


def health_config(enabled: bool, min_std: float, max_clipped: float, frozen: int) -> HealthConfig:
    from glcf_runtime.health import HealthConfig

    return HealthConfig(enabled, min_std, max_clipped, frozen)


def check_outputs(jsonl: Path | None, save_video: Path | None, save_anomalies: Path | None,
                  summary_json: Path | None) -> None:
    """Fail before the model loads when an output cannot be written (ConfigError, exit 2)."""
    from glcf_runtime.errors import ConfigError
    from glcf_runtime.sinks import VIDEO_CODECS, check_writable

    for path, option in ((jsonl, "--jsonl"), (save_video, "--save-video"),
                         (summary_json, "--summary-json")):
        if path is not None:
            check_writable(path, option)
    if save_video is not None:
        if save_video.exists():
            raise ConfigError(f"{save_video} exists; remove it or choose another --save-video file")
        if save_video.suffix.lower() not in VIDEO_CODECS:
            raise ConfigError(f"--save-video {save_video}: use one of {', '.join(VIDEO_CODECS)}")
    if save_anomalies is not None:
        check_writable(save_anomalies, "--save-anomalies", folder=True)
    if summary_json is not None and summary_json.exists() and not summary_json.is_file():
        # written to a temporary name and renamed: a device or pipe there would be replaced
        raise ConfigError(f"--summary-json {summary_json} is not a regular file; give a file path")


def write_summary(summary: Summary, path: Path | None) -> int:
    """Write the summary as JSON (atomically) when asked for; return the exit code (4 when the
    summary itself cannot be written)."""
    from rich.markup import escape

    from glcf_cli.common import err_console
    from glcf_runtime.files import atomic_write_json

    if summary.exit_code == 4:  # the output's one-line reason, on stderr as for any other error
        err_console.print(f"[bold red]error:[/] {escape(summary.reason)}", highlight=False)
    if path is None:
        return int(summary.exit_code)

    try:
        atomic_write_json(path, {**summary.to_dict(), "exit_codes": EXIT_CODES})
    except OSError as exc:
        err_console.print(f"[bold red]error:[/] cannot write {escape(str(path))} "
                          f"({escape(exc.strerror or str(exc))})", highlight=False)
        return 4
    return int(summary.exit_code)


EXIT_CODES = {
    0: "every frame scored",
    1: "stopped by a signal (SIGINT, SIGTERM)",
    2: "bad input or arguments: nothing ran",
    3: "finished with error records (unreadable, unhealthy or lost frames, stream outages) "
       "or no frame scored",
    4: "an output stopped accepting writes (disk full); what was written is intact",
    5: "the --publish outbox is full (--outbox-max-mb): the run stopped; every verdict so far "
       "is delivered or in the outbox",
}
