"""The inspection loop: capture → pre-process → batch → infer → verdict → sinks.

``inspect`` runs until the source ends, fails, ``stop_event`` is set, or SIGINT / SIGTERM
arrives (a second signal interrupts at once); every sink is closed (flushed) however it ends, and
a ``Summary`` is returned. ``calibrate_threshold`` scores folders on the deployed backend and
writes ``threshold.json`` next to the artifact (see ``glcf_runtime.backends.base``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from glcf_runtime.backends.base import Runner, ThresholdChoice, save_threshold
from glcf_runtime.errors import ConfigError, DataError, GlcfError
from glcf_runtime.overlay import verdict
from glcf_runtime.preprocess import IMAGE_SUFFIXES, list_images, load_preprocessed, preprocess
from glcf_runtime.sinks import Result, Sink
from glcf_runtime.sources import Frame, FrameSource

LATENCY_WINDOW = 65_536  # latency percentiles are over the most recent frames


@dataclass(frozen=True)
class Summary:
    """How a run went. Latencies are from a frame being available to its verdict."""

    frames: int  # frames scored
    anomalies: int
    errors: int  # frames that could not be read or pre-processed
    seconds: float
    fps: float  # frames scored per second of wall time
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    completed: bool  # the source ended by itself; False: stopped, interrupted or source failed
    reason: str
    threshold: float | None
    threshold_origin: str


class _Batcher:
    """Collects frames into a pre-allocated batch, runs it, and hands results to the sinks."""

    def __init__(
        self,
        runner: Runner,
        batch: int,
        threshold: float | None,
        source: str,
        sinks: Sequence[Sink],
    ) -> None:
        meta = runner.metadata
        self.runner, self.batch, self.threshold, self.source = runner, batch, threshold, source
        self.spec, self.sinks, self.map_range = meta.preprocess_spec, sinks, meta.map_range
        self.buffer = np.empty((batch, meta.height, meta.width, 3), np.uint8)  # [B, H, W, 3]
        self.pending: list[Frame] = []  # arrival order, error frames included
        self.slots = 0  # frames in ``buffer``
        self.latencies = np.zeros(LATENCY_WINDOW, np.float64)
        self.frames = self.anomalies = self.errors = 0

    def add(self, frame: Frame) -> None:
        if frame.error is None:
            try:
                self.buffer[self.slots] = preprocess(frame.image, self.spec)
                self.slots += 1
            except GlcfError as exc:
                frame = replace(frame, image=None, error=f"frame {frame.index}: {exc}")
        if frame.error is not None and not self.pending:
            self._emit(Result(frame, self.source))
            return
        self.pending.append(frame)
        if self.slots == self.batch:
            self.flush()

    def flush(self) -> None:
        """Infer the collected frames and write every pending result in order."""
        if not self.pending:
            return
        if self.slots:
            maps, scores = self.runner.infer(self.buffer[: self.slots])
        k = 0
        for frame in self.pending:
            if frame.error is not None:
                self._emit(Result(frame, self.source))
                continue
            score = float(scores[k])
            decided = verdict(score, self.threshold)
            latency = (time.time() - frame.timestamp) * 1000.0
            self.latencies[self.frames % LATENCY_WINDOW] = latency
            self._emit(
                Result(
                    frame,
                    self.source,
                    score,
                    None if decided is None else decided == "ANOMALOUS",
                    latency,
                    maps[k],
                    self.threshold,
                    self.map_range,
                    self.spec.roi,
                )
            )
            k += 1
        self.pending.clear()
        self.slots = 0

    def _emit(self, result: Result) -> None:
        if result.frame.error is not None:
            self.errors += 1
        else:
            self.frames += 1
            self.anomalies += bool(result.anomalous)
        for sink in self.sinks:
            sink.write(result)

    def percentiles(self) -> tuple[float | None, float | None]:
        count = min(self.frames, LATENCY_WINDOW)
        if count == 0:
            return None, None
        p50, p95 = np.percentile(self.latencies[:count], [50, 95])
        return float(p50), float(p95)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[list[str]]:
    """SIGINT / SIGTERM set ``stop`` (a second one raises KeyboardInterrupt); main thread only."""
    caught: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum: int, _frame: object) -> None:
        if caught:
            raise KeyboardInterrupt
        caught.append(signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def inspect(
    runner: Runner,
    source: FrameSource,
    threshold: float | None = None,
    batch: int = 1,
    sinks: Sequence[Sink] = (),
    stop_event: threading.Event | None = None,
) -> Summary:
    """Inspect every frame of ``source`` with ``runner`` and send the results to ``sinks``.

    Args:
        runner: an open runner; not closed here.
        source: an open source; not closed here.
        threshold: overrides ``runner.threshold`` (``threshold.json``, then the metadata).
        batch: frames per inference; a partial batch runs when the source ends or stops.
        sinks: receive every result in frame order; closed here.
        stop_event: set it (from any thread) to stop after the current batch.

    Returns:
        The run's summary; ``completed`` is False when stopped, interrupted or the source failed.
    """
    if batch < 1 or (runner.max_batch is not None and batch > runner.max_batch):
        _close_all(sinks)
        raise ConfigError(
            f"--batch {batch}: {runner.path.name} takes 1 to "
            f"{runner.max_batch or 'any number of'} frames"
        )
    choice = runner.threshold if threshold is None else ThresholdChoice(threshold, "--threshold")
    stop = stop_event or threading.Event()
    state = _Batcher(runner, batch, choice.value, source.name, sinks)
    start = time.perf_counter()
    with _stop_on_signals(stop) as caught:
        try:
            for frame in source.iterate(stop):
                state.add(frame)
                if stop.is_set():
                    break
            state.flush()
        finally:
            _close_all(sinks)
    seconds = time.perf_counter() - start
    if caught:
        reason = f"stopped by {caught[0]}"
    elif stop.is_set():
        reason = "stopped"
    else:
        reason = source.failed or "source ended"
    p50, p95 = state.percentiles()
    return Summary(
        frames=state.frames,
        anomalies=state.anomalies,
        errors=state.errors,
        seconds=seconds,
        fps=state.frames / seconds if seconds > 0 else 0.0,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        completed=not stop.is_set() and source.failed is None,
        reason=reason,
        threshold=choice.value,
        threshold_origin=choice.origin,
    )


def _close_all(sinks: Sequence[Sink]) -> None:
    """Close every sink even if one fails; re-raise the first failure."""
    failure: BaseException | None = None
    for sink in sinks:
        try:
            sink.close()
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure


def image_files(folder: Path) -> list[Path]:
    """Image files of a folder (by suffix), sorted; DataError if there are none."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; give a folder of images")
    files = [p for p in list_images(folder) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def score_images(runner: Runner, files: Sequence[Path], batch: int = 8) -> np.ndarray:
    """Image scores of files, in order: float64 ``[N]``.

    Raises:
        ImageReadError: a file that cannot be decoded (calibration data must be clean).
    """
    batch = min(batch, runner.max_batch or batch)
    scores = np.empty(len(files), np.float64)
    for start in range(0, len(files), batch):
        chunk = files[start : start + batch]
        frames = np.stack([load_preprocessed(f, runner.metadata.preprocess_spec) for f in chunk])
        scores[start : start + len(chunk)] = runner.infer(frames)[1]
    return scores


def calibrate_threshold(
    runner: Runner,
    good: Path,
    anomalous: Path | None = None,
    quantile: float = 0.99,
    margin: float = 0.1,
    batch: int = 8,
) -> tuple[dict, Path]:
    """Choose a threshold on the deployed backend and write ``threshold.json`` next to the model.

    Good images alone: ``q + margin·(q − median)`` of their scores; with anomalous images too:
    the F1-optimal cut (``calibration.threshold.select_threshold``).

    Returns:
        ``(ThresholdResult.to_dict(), written file)``.
    """
    from calibration.threshold import select_threshold

    folders = {"good": good} if anomalous is None else {"good": good, "anomalous": anomalous}
    scores = {
        name: score_images(runner, image_files(folder), batch) for name, folder in folders.items()
    }
    labels = None
    if anomalous is not None:
        labels = np.r_[np.zeros(scores["good"].size), np.ones(scores["anomalous"].size)]
    try:
        result = select_threshold(np.concatenate(list(scores.values())), labels, quantile, margin)
    except ValueError as exc:
        raise ConfigError(f"cannot choose a threshold: {exc}") from None
    stats = {
        name: {
            "n": int(s.size),
            "min": float(s.min()),
            "median": float(np.median(s)),
            "max": float(s.max()),
            "folder": str(folders[name]),
        }
        for name, s in scores.items()
    }
    data = result.to_dict()
    return data, save_threshold(runner, data, stats)
