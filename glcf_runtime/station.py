"""Several cameras on one runner: each camera's source is read (decoded, pre-processed and checked
for health) on its own thread into a small bounded queue, and one scheduler forms batches across
the cameras for the one runner.

A reader reads its next frame only when its queue has room (``batch / cameras`` frames, at least
one), so a file's frames are never dropped and never wait long in the queue, and a live source,
which keeps only its newest frame itself (``glcf_runtime.live``), is read when its frame is
wanted. The scheduler takes frames round-robin,
one per camera with a frame ready per turn, starting each batch one camera further on, so no
camera waits behind another; it waits at most ``batch_wait_ms`` for more frames before it runs a
partial batch. Each camera keeps its own frame numbers, health check, reconnect policy, threshold
and crop, and its own ending: a camera whose source ends or gives up never stalls the others.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from glcf_runtime.backends.base import Runner
from glcf_runtime.errors import ConfigError
from glcf_runtime.health import HealthCheck, HealthConfig
from glcf_runtime.loop import (
    ExitCode,
    Summary,
    Verdicts,
    camera_entry,
    check_batch_size,
    close_all,
    ending,
    percentiles,
    prepare,
    stop_on_signals,
)
from glcf_runtime.outbox import OutboxFull
from glcf_runtime.sinks import OutputError, Sink
from glcf_runtime.sources import Frame, FrameSource
from glcf_runtime.threshold import ThresholdChoice, load_threshold, resolve_threshold

WAKE_S = 0.1  # the scheduler looks at ``stop`` at least this often while no frame is ready


@dataclass
class Camera:
    """One camera of a station.

    Attributes:
        name: the camera's name (records' ``camera``, the summary's ``cameras`` key); unique.
        source: an open source; not closed here.
        threshold: this camera's threshold; None: the run's.
        roi: this camera's crop ``(x, y, w, h)``; None: the runner's.
    """

    name: str
    source: FrameSource
    threshold: float | None = None
    roi: tuple[int, int, int, int] | None = None


@dataclass
class _Item:
    frame: Frame
    image: np.ndarray | None  # the pre-processed input; None for an error record


class _Feed:
    """One camera's reader thread and its bounded queue (guarded by the station's ``cond``)."""

    def __init__(self, index: int, camera: Camera, runner: Runner, health: HealthCheck,
                 cond: threading.Condition, halt: threading.Event, capacity: int) -> None:
        meta = runner.metadata
        self.index, self.camera, self.health, self.cond, self.halt = index, camera, health, cond, halt
        self.spec = replace(meta.preprocess_spec, roi=camera.roi or meta.roi)
        self.shape = (meta.height, meta.width, 3)
        self.capacity = capacity
        self.queue: deque[_Item] = deque()
        self.done = False
        self.failed: str | None = None  # why the reader stopped with an exception
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"glcf-camera-{camera.name}")

    def _run(self) -> None:
        frames = self.camera.source.iterate(self.halt)
        try:
            while True:
                with self.cond:  # read the next frame only once there is room for it
                    self.cond.wait_for(
                        lambda: len(self.queue) < self.capacity or self.halt.is_set())
                if self.halt.is_set():
                    return
                frame = next(frames, None)
                if frame is None:
                    return
                image = np.empty(self.shape, np.uint8)
                frame = prepare(frame, self.spec, self.health, image)
                with self.cond:
                    self.queue.append(_Item(frame, image if frame.error is None else None))
                    self.cond.notify_all()
        except Exception as exc:  # one camera's failure must not end the others
            self.failed = f"{self.camera.name}: the source failed: {exc}"
        finally:
            with self.cond:
                self.done = True
                self.cond.notify_all()


class _Scheduler:
    """Round-robin batches across the feeds."""

    def __init__(self, feeds: list[_Feed], cond: threading.Condition, batch: int) -> None:
        self.feeds, self.cond, self.batch = feeds, cond, batch
        self.turn = 0  # the camera the next batch starts with

    def ready(self) -> bool:
        return any(f.queue for f in self.feeds)

    def finished(self) -> bool:
        return all(f.done and not f.queue for f in self.feeds)

    def take(self, taken: list[tuple[_Feed, _Item]], images: int) -> int:
        """Move ready items into ``taken``, one per camera per round, until the batch holds
        ``batch`` images or nothing is ready; returns the images now taken (call under cond)."""
        moved = True
        while moved and images < self.batch:
            moved = False
            for k in range(len(self.feeds)):
                feed = self.feeds[(self.turn + k) % len(self.feeds)]
                if feed.queue and images < self.batch:
                    item = feed.queue.popleft()
                    taken.append((feed, item))
                    images += item.image is not None
                    moved = True
        self.cond.notify_all()  # room in the queues
        return images

    def next_batch(self, stop: threading.Event, wait_s: float) -> list[tuple[_Feed, _Item]]:
        """The next batch (error records included): empty when every feed has ended or
        ``stop`` is set."""
        taken: list[tuple[_Feed, _Item]] = []
        with self.cond:
            while not self.ready():
                if self.finished() or stop.is_set():
                    return taken
                self.cond.wait(WAKE_S)
            images = self.take(taken, 0)
            deadline = time.monotonic() + wait_s
            while images < self.batch and not stop.is_set() and not self.finished():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait_for(self.ready, left)
                images = self.take(taken, images)
        self.turn = (self.turn + 1) % len(self.feeds)
        return taken


def camera_threshold(runner: Runner, camera: Camera, threshold: float | None) -> ThresholdChoice:
    """A camera's threshold: its own, else the run's ``threshold``, else ``threshold.json`` (when
    measured with this camera's crop) or the metadata's."""
    own = camera.threshold if camera.threshold is not None else threshold
    if own is not None or camera.roi is None or camera.roi == runner.metadata.roi:
        choice = resolve_threshold(runner, own)
        if camera.threshold is not None:
            return ThresholdChoice(choice.value, f"{camera.name}'s threshold")
        return choice
    return load_threshold(runner.path, replace(runner.metadata, roi=camera.roi))


def check_cameras(cameras: Sequence[Camera]) -> None:
    """ConfigError for no camera, an empty name or a name given twice."""
    if not cameras:
        raise ConfigError("no camera: give --source NAME=URI (repeatable) or --station FILE")
    seen: set[str] = set()
    for camera in cameras:
        if not camera.name.strip():
            raise ConfigError(f"the camera of {camera.source.name} has an empty name; "
                              "give every camera a name")
        if camera.name in seen:
            raise ConfigError(f"two cameras are named {camera.name!r}; give each camera its "
                              "own name")
        seen.add(camera.name)


def inspect_station(
    runner: Runner,
    cameras: Sequence[Camera],
    threshold: float | None = None,
    batch: int = 1,
    sinks: Sequence[Sink] = (),
    stop_event: threading.Event | None = None,
    health: HealthConfig | None = None,
    batch_wait_ms: float = 5.0,
) -> Summary:
    """Inspect every frame of every camera with one ``runner``; results go to ``sinks``.

    Args:
        runner: an open runner; not closed here.
        cameras: the cameras, their sources open (not closed here).
        threshold: the run's threshold (a camera's own ``threshold`` wins), else
            ``threshold.json``, then the metadata's.
        batch: at most this many frames per inference, of any cameras.
        sinks: receive every result, each camera's in its frame order; closed here.
        stop_event: set it (from any thread) to stop after the current batch.
        health: the frame-health check's limits (each camera checks its own frames).
        batch_wait_ms: how long a batch that is not full waits for more frames.

    Returns:
        The run's summary, with ``cameras`` (each camera's counts, ending and exit code) and
        ``mean_batch``; the exit code is the worst camera's.
    """
    check_cameras(cameras)
    if not (0 <= batch_wait_ms < float("inf")):
        close_all(sinks)
        raise ConfigError(f"--batch-wait-ms {batch_wait_ms}: give milliseconds >= 0, e.g. 5")
    check_batch_size(runner, batch, sinks)
    try:
        choices = [camera_threshold(runner, c, threshold) for c in cameras]
    except ConfigError:
        close_all(sinks)
        raise
    stop = stop_event or threading.Event()
    halt = threading.Event()  # ends the readers
    cond = threading.Condition()
    capacity = -(-batch // len(cameras))  # room for a full batch of ready frames
    feeds = [_Feed(i, c, runner, HealthCheck(health or HealthConfig(), live=c.source.live),
                   cond, halt, capacity) for i, c in enumerate(cameras)]
    verdicts = [Verdicts(runner, choice.value, c.source.name, sinks, c.name, feed.spec.roi)
                for c, choice, feed in zip(cameras, choices, feeds, strict=True)]
    scheduler = _Scheduler(feeds, cond, batch)
    meta = runner.metadata
    buffer = np.empty((batch, meta.height, meta.width, 3), np.uint8)
    inferences = inferred = 0
    start = time.perf_counter()
    output_failed: str | None = None
    outbox_full = False
    for feed in feeds:
        feed.thread.start()
    with stop_on_signals(stop) as caught:
        try:
            while not stop.is_set():
                taken = scheduler.next_batch(stop, batch_wait_ms / 1000.0)
                if not taken:
                    break
                slots = [item.image for _, item in taken if item.image is not None]
                if slots:
                    for k, image in enumerate(slots):
                        buffer[k] = image
                    maps, scores = runner.infer(buffer[: len(slots)])
                    inferences, inferred = inferences + 1, inferred + len(slots)
                k = 0
                for feed, item in taken:
                    if item.image is None:
                        verdicts[feed.index].error(item.frame)
                        continue
                    verdicts[feed.index].scored(item.frame, float(scores[k]), maps[k])
                    k += 1
        except OutputError as exc:
            output_failed, outbox_full = str(exc), isinstance(exc, OutboxFull)
        finally:
            halt.set()
            with cond:
                cond.notify_all()
            for feed in feeds:
                feed.thread.join(timeout=5.0)
            try:
                close_all(sinks)
            except OutputError as exc:
                output_failed = output_failed or str(exc)
    seconds = time.perf_counter() - start
    entries: dict[str, dict] = {}
    codes: list[ExitCode] = []
    for camera, feed, v in zip(cameras, feeds, verdicts, strict=True):
        reason, code = ending(caught, stop, camera.source, v, output_failed, feed.failed)
        if outbox_full and not caught:
            code = ExitCode.OUTBOX_FULL
        completed = (not stop.is_set() and camera.source.failed is None and feed.failed is None
                     and output_failed is None and v.lost == 0)
        entries[camera.name] = camera_entry(v, completed, reason, code)
        codes.append(code)
    p50, p95 = percentiles(np.concatenate([v.window() for v in verdicts]))
    frames = sum(v.frames for v in verdicts)
    reasons = {e["reason"] for e in entries.values()}
    values = {c.value for c in choices}
    reports = [r for r in (sink.report() for sink in sinks) if r is not None]
    return Summary(
        frames=frames,
        anomalies=sum(v.anomalies for v in verdicts),
        errors=sum(v.errors for v in verdicts),
        seconds=seconds,
        fps=frames / seconds if seconds > 0 else 0.0,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        completed=all(e["completed"] for e in entries.values()),
        reason=reasons.pop() if len(reasons) == 1 else "; ".join(
            f"{name}: {e['reason']}" for name, e in entries.items()),
        threshold=values.pop() if len(values) == 1 else None,
        threshold_origin=choices[0].origin if len({(c.value, c.origin) for c in choices}) == 1
        else "per camera (see cameras)",
        unhealthy=sum(v.unhealthy for v in verdicts),
        lost=sum(v.lost for v in verdicts),
        exit_code=max(codes),
        publish=reports[0] if reports else None,
        mean_batch=inferred / inferences if inferences else None,
        cameras=entries,
    )
