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

A runner opened with several streams (``Runner.lanes``) scores that many batches at once, one
lane thread each: a camera with a frame in flight is skipped until its verdict is out, so each
camera's verdicts still leave in its frame order, and the sinks are written by one lane at a time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

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
        self.busy = False  # a frame of this camera is being scored (by any lane)
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
        return any(f.queue and not f.busy for f in self.feeds)

    def finished(self) -> bool:
        return all(f.done and not f.queue for f in self.feeds)

    def take(self, taken: list[tuple[_Feed, _Item]], images: int) -> int:
        """Move ready items into ``taken``, one per camera per round, until the batch holds
        ``batch`` images or nothing is ready; a camera another lane is scoring is skipped;
        returns the images now taken (call under cond)."""
        mine = {id(feed) for feed, _ in taken}
        moved = True
        while moved and images < self.batch:
            moved = False
            for k in range(len(self.feeds)):
                feed = self.feeds[(self.turn + k) % len(self.feeds)]
                if feed.queue and images < self.batch and (not feed.busy or id(feed) in mine):
                    item = feed.queue.popleft()
                    taken.append((feed, item))
                    feed.busy = True
                    mine.add(id(feed))
                    images += item.image is not None
                    moved = True
        self.cond.notify_all()  # room in the queues
        return images

    def next_batch(self, halted: Callable[[], bool], wait_s: float) -> list[tuple[_Feed, _Item]]:
        """The next batch (error records included): empty when every feed has ended or
        ``halted()``. Its cameras stay busy until ``release``."""
        taken: list[tuple[_Feed, _Item]] = []
        with self.cond:
            while not self.ready():
                if self.finished() or halted():
                    return taken
                self.cond.wait(WAKE_S)
            images = self.take(taken, 0)
            deadline = time.monotonic() + wait_s
            while images < self.batch and not halted() and not self.finished():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait_for(self.ready, left)
                images = self.take(taken, images)
            self.turn = (self.turn + 1) % len(self.feeds)
        return taken

    def release(self, taken: list[tuple[_Feed, _Item]]) -> None:
        """The batch's verdicts are out: its cameras may be taken again."""
        with self.cond:
            for feed, _ in taken:
                feed.busy = False
            self.cond.notify_all()


@dataclass
class _Lanes:
    """What the lanes share: the counters, the sinks' lock, and how the run ended early."""

    scheduler: _Scheduler
    verdicts: list[Verdicts]
    stop: threading.Event
    wait_s: float
    emit: threading.Lock = field(default_factory=threading.Lock)
    quit: threading.Event = field(default_factory=threading.Event)  # a lane failed: all stop
    inferences: int = 0
    inferred: int = 0
    output_failed: str | None = None
    outbox_full: bool = False
    error: BaseException | None = None  # not an output's: raised again after the lanes end

    def halted(self) -> bool:
        return self.stop.is_set() or self.quit.is_set()

    def run(self, infer: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
            buffer: np.ndarray) -> None:
        """One lane: take a batch, score it, hand its verdicts to the sinks; until the cameras
        end, ``stop`` is set or another lane failed."""
        try:
            while not self.halted():
                taken = self.scheduler.next_batch(self.halted, self.wait_s)
                if not taken:
                    break
                try:
                    self._score(infer, buffer, taken)
                finally:
                    self.scheduler.release(taken)
        except OutputError as exc:
            with self.emit:
                if self.output_failed is None:
                    self.output_failed, self.outbox_full = str(exc), isinstance(exc, OutboxFull)
            self._fail()
        except BaseException as exc:
            self.error = self.error or exc
            self._fail()

    def _fail(self) -> None:
        self.quit.set()
        with self.scheduler.cond:
            self.scheduler.cond.notify_all()

    def _score(self, infer: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
               buffer: np.ndarray, taken: list[tuple[_Feed, _Item]]) -> None:
        slots = [item.image for _, item in taken if item.image is not None]
        maps = scores = None
        if slots:
            for k, image in enumerate(slots):
                buffer[k] = image
            maps, scores = infer(buffer[: len(slots)])
        with self.emit:
            if slots:
                self.inferences, self.inferred = self.inferences + 1, self.inferred + len(slots)
            k = 0
            for feed, item in taken:
                if item.image is None:
                    self.verdicts[feed.index].error(item.frame)
                    continue
                self.verdicts[feed.index].scored(item.frame, float(scores[k]), maps[k])
                k += 1


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
        runner: an open runner; not closed here. Opened with several streams, it scores that
            many batches at once (``Runner.lanes``).
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
    lanes = _Lanes(scheduler, verdicts, stop, batch_wait_ms / 1000.0)
    infers = runner.lanes()
    buffers = [np.empty((batch, meta.height, meta.width, 3), np.uint8) for _ in infers]
    start = time.perf_counter()
    for feed in feeds:
        feed.thread.start()
    with stop_on_signals(stop) as caught:
        try:
            if len(infers) == 1:
                lanes.run(infers[0], buffers[0])
            else:
                threads = [threading.Thread(target=lanes.run, args=(infer, buf), daemon=True,
                                            name=f"glcf-lane-{k}")
                           for k, (infer, buf) in enumerate(zip(infers, buffers, strict=True))]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    while thread.is_alive():  # short joins: signals reach the main thread
                        thread.join(WAKE_S)
        finally:
            halt.set()
            with cond:
                cond.notify_all()
            for feed in feeds:
                feed.thread.join(timeout=5.0)
            output_failed = lanes.output_failed
            try:
                close_all(sinks)
            except OutputError as exc:
                output_failed = output_failed or str(exc)
    if lanes.error is not None:
        raise lanes.error
    outbox_full = lanes.outbox_full
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
        mean_batch=lanes.inferred / lanes.inferences if lanes.inferences else None,
        cameras=entries,
        streams=len(infers),
    )
