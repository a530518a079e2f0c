"""`glcf inspect`'s cameras: --source (repeatable, NAME=URI), --station FILE, --batch-wait-ms,
--streams.
Everything here is checked before the model loads. See docs/station.md."""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from glcf_runtime.backends.base import Runner
    from glcf_runtime.loop import Summary
    from glcf_runtime.station import Camera

Opt = typer.Option
SourceOpt = Annotated[
    list[str] | None,
    Opt("--source", metavar="[NAME=]URI",
        help="Camera index, video file, image folder, rtsp:// or http:// URL, or a GStreamer "
        "pipeline. Repeatable as NAME=URI (e.g. --source top=rtsp://cam1/live --source "
        "side=/dev/video2): several cameras on one model, batched across them."),
]
StationOpt = Annotated[
    Path | None,
    Opt(metavar="FILE",
        help="Instead of --source: a YAML or JSON file listing the cameras (name, source, "
        "optional roi and threshold), e.g. cameras: [{name: top, source: clips/top.avi}]."),
]
BatchWaitOpt = Annotated[
    float,
    Opt(help="Several cameras: how long (ms) a batch that is not full waits for more frames "
        "before it runs."),
]
StreamsOpt = Annotated[
    int,
    Opt(min=1, help="Several cameras, OpenVINO or ONNX Runtime: score up to N batches at once, "
        "each on its own CPU stream (the threads split between them): lower latency when the "
        "cameras' frames arrive together, e.g. --streams 2 with four cameras."),
]
NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)=(.+)$", re.DOTALL)
KEYS = ("name", "source", "roi", "threshold")


@dataclass(frozen=True)
class CameraSpec:
    """A camera as the options give it; ``name`` None: the source's own name (one camera)."""

    name: str | None
    uri: str
    roi: tuple[int, int, int, int] | None = None
    threshold: float | None = None


def _error(message: str) -> Exception:
    from glcf_runtime.errors import ConfigError

    return ConfigError(message)


def parse_source(text: str, several: bool) -> CameraSpec:
    """``NAME=URI``, or a bare URI (one camera only). A URI that exists as a path, or whose
    part before ``=`` is no name (``rtsp://h/x?a=b``, a pipeline's ``sensor-id=0``), is bare."""
    match = NAMED.match(text)
    if match and not Path(text).expanduser().exists():
        return CameraSpec(match.group(1), match.group(2))
    if text.startswith("=") and not Path(text).exists():
        raise _error(f"--source {text!r}: the camera's name before '=' is empty; give "
                     "--source NAME=URI")
    if several:
        raise _error(f"--source {text!r}: with several --source, name each camera: "
                     f"--source NAME={text}")
    return CameraSpec(None, text)


def _station_source(value: Any, folder: Path, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a camera index
    if not isinstance(value, str) or not value.strip():
        raise _error(f"{where}: 'source' must be a camera index, file, folder, URL or pipeline")
    text = value.strip()
    if text.isdigit() or "!" in text or "://" in text or Path(text).expanduser().is_absolute():
        return text
    return str(folder / text)  # relative to the station file, not to where glcf runs


def _station_camera(entry: Any, number: int, path: Path) -> CameraSpec:
    from glcf_runtime.preprocess import parse_roi

    where = f"--station {path}: camera {number}"
    if not isinstance(entry, dict):
        raise _error(f"{where} is not a mapping; give name: and source: for every camera")
    name = entry.get("name")
    if not isinstance(name, str | int) or isinstance(name, bool) or not str(name).strip():
        raise _error(f"{where} has an empty name; give every camera a name: NAME")
    name = str(name).strip()
    where = f"--station {path}: camera {name!r}"
    unknown = sorted(set(map(str, entry)) - set(KEYS))
    if unknown:
        raise _error(f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(KEYS)}")
    if "source" not in entry:
        raise _error(f"{where} has no source; add source: URI")
    source = _station_source(entry["source"], path.parent, where)
    roi = entry.get("roi")
    if roi is not None:
        text = ",".join(map(str, roi)) if isinstance(roi, list) else str(roi)
        try:
            roi = parse_roi(text)
        except Exception as exc:
            raise _error(f"{where}: {exc}") from None
    threshold = entry.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(
            threshold, int | float) or not math.isfinite(threshold)):
        raise _error(f"{where}: threshold {threshold!r} is not a number; give e.g. 0.5")
    return CameraSpec(name, source, roi, None if threshold is None else float(threshold))


def read_station(path: Path) -> list[CameraSpec]:
    """The cameras of a station file: YAML or JSON, a list of cameras or ``cameras:`` one."""
    if not path.is_file():
        raise _error(f"--station {path}: no such file; give a YAML or JSON file listing the "
                     "cameras (docs/station.md)")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml  # a dependency of the bare install

            data = yaml.safe_load(text)
    except Exception as exc:
        raise _error(f"--station {path} cannot be read as {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                     f"{str(exc).splitlines()[0]}; fix the file") from None
    cameras = data.get("cameras") if isinstance(data, dict) else data
    if not isinstance(cameras, list) or not cameras:
        raise _error(f"--station {path}: no cameras; give a list 'cameras:' of entries with "
                     "name: and source:")
    return [_station_camera(entry, i, path) for i, entry in enumerate(cameras, 1)]


def plan(sources: list[str] | None, station: Path | None, save_video: Path | None,
         batch_wait_ms: float, streams: int = 1) -> list[CameraSpec]:
    """The cameras the options give, checked (ConfigError, exit 2)."""
    if sources and station is not None:
        raise _error(f"--station {station} and --source both name cameras; give the cameras "
                     "in one of them (add them to the station file, or drop --station)")
    if not sources and station is None:
        raise _error("no camera: give --source URI (or NAME=URI, repeatable) or --station FILE")
    specs = read_station(station) if station is not None else [
        parse_source(s, len(sources) > 1) for s in sources]
    names = [s.name for s in specs]
    for name in names:
        if names.count(name) > 1:
            where = f"--station {station}" if station is not None else "--source"
            raise _error(f"{where}: two cameras are named {name!r}; give each camera its own name")
    if not (0 <= batch_wait_ms < float("inf")):
        raise _error(f"--batch-wait-ms {batch_wait_ms}: give milliseconds >= 0, e.g. 5")
    if streams > 1 and len(specs) == 1:
        raise _error(f"--streams {streams} scores several cameras' frames at once; one camera's "
                     "frames are scored in order, one batch at a time: drop --streams, or raise "
                     "--batch")
    if len(specs) > 1 and save_video is not None:
        raise _error("--save-video writes one camera's frames; with several cameras use "
                     "--save-anomalies, --jsonl or --serve")
    return specs


def open_cameras(stack: contextlib.ExitStack, specs: list[CameraSpec], retries: int | None,
                 backoff: tuple[float, float], max_pixels: int) -> list[Camera]:
    """Open every camera's source (closed by ``stack``); a camera without a name takes its
    source's."""
    from glcf_runtime.sources import open_source
    from glcf_runtime.station import Camera

    cameras = []
    for spec in specs:
        source = stack.enter_context(open_source(spec.uri, retries, backoff,
                                                 max_pixels=max_pixels))
        cameras.append(Camera(spec.name or source.name, source, spec.threshold, spec.roi))
    return cameras


def describe(cameras: list[Camera]) -> str:
    """The cameras line printed before the run."""
    if len(cameras) == 1:
        camera = cameras[0]
        named = "" if camera.name == camera.source.name else f"camera {camera.name}: "
        return f"source {named}{camera.source.name}"
    listed = ", ".join(f"{c.name} ({c.source.name}"
                       + ("" if c.roi is None else f", cropped to {c.roi}")
                       + ("" if c.threshold is None else f", threshold {c.threshold}") + ")"
                       for c in cameras)
    return f"{len(cameras)} cameras on one runner: {listed}"


def streams_hint(runner: Runner, cameras: int, batch: int) -> str | None:
    """After a run of several cameras on one CPU stream: how to score on two at once."""
    from glcf_runtime.backends.base import cpu_cores

    if runner.streams > 1 or runner.backend not in ("openvino", "onnxruntime") or cpu_cores() < 2:
        return None
    if runner.backend == "onnxruntime" and runner.providers[0] != "CPUExecutionProvider":
        return None  # a GPU: raise --batch instead
    pair = max(1, min(batch, cameras // 2))
    return (f"next: --streams 2 --batch {pair} scores two batches at once on this CPU's cores: "
            "more frames per second; its latency against one stream or one process per camera: "
            "docs/station.md#several-streams-batches-scored-at-once")


def camera_rows(summary: Summary) -> list[tuple[str, str]]:
    """The summary table's rows for several cameras (none for one)."""
    from rich.markup import escape

    if summary.cameras is None or len(summary.cameras) < 2:
        return []
    rows = [("mean batch", "–" if summary.mean_batch is None else f"{summary.mean_batch:.2f}"),
            ("streams", str(summary.streams or 1))]
    for name, c in summary.cameras.items():
        rows.append((escape(f"camera {name}"), escape(
            f"{c['frames']} frames, {c['anomalies']} anomalies, {c['errors']} errors, "
            f"exit {c['exit_code']}: {c['reason']}")))
    return rows
