"""The inspection loop: capture → pre-process → batch → infer → verdict → sinks.

``inspect`` runs until the source ends, fails, ``stop_event`` is set, or SIGINT / SIGTERM
arrives (a second signal interrupts at once); every sink is closed (flushed) however it ends, and
a ``Summary`` is returned. The threshold and the verdict are ``glcf_runtime.threshold``'s.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from enum import IntEnum

import numpy as np

from glcf_runtime.backends.base import Runner
from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.health import HealthCheck, HealthConfig
from glcf_runtime.metadata import score_problem
from glcf_runtime.outbox import OutboxFull
from glcf_runtime.preprocess import preprocess
from glcf_runtime.sinks import OutputError, Result, Sink
from glcf_runtime.sources import Frame, FrameSource
from glcf_runtime.threshold import is_anomalous, is_count, resolve_threshold

LATENCY_WINDOW = 65_536  # latency percentiles are over the most recent frames


class ExitCode(IntEnum):
    """``glcf inspect``'s exit status (also in the summary JSON)."""

    SCORED = 0  # every frame scored (the source ended, or the user stopped it with q)
    SIGNAL = 1  # stopped by SIGINT / SIGTERM
    BAD_INPUT = 2  # bad arguments or input: nothing ran (raised as a GlcfError, not in a Summary)
    FRAME_ERRORS = 3  # finished, but with error records: unreadable, unhealthy or lost frames,
    #                   stream outages, a source that gave up, or no frame scored at all
    OUTPUT_FAILED = 4  # an output stopped accepting writes (disk full); what was written is intact
    OUTBOX_FULL = 5  # --publish: the outbox reached --outbox-max-mb (publishers down too long);
    #                  the run stopped, every verdict so far is in the outbox or delivered


@dataclass(frozen=True)
class Summary:
    """How a run went. Latencies are from a frame being available to its verdict."""

    frames: int  # frames scored
    anomalies: int
    errors: int  # error records: frames not read, pre-processed, healthy or given a usable score;
    #              gaps; outages
    seconds: float
    fps: float  # frames scored per second of wall time
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    completed: bool  # the source ended by itself with no frame lost; False otherwise
    reason: str
    threshold: float | None
    threshold_origin: str
    unhealthy: int = 0  # error records of frames that failed the health check (flat, clipped, frozen)
    lost: int = 0  # frames a damaged file lost (never decoded)
    exit_code: ExitCode = ExitCode.SCORED
    publish: dict | None = None  # --publish: outbox, pending at exit, delivered, failures, late

    def to_dict(self) -> dict:
        """The summary as JSON-ready values (``exit_code`` as its number)."""
        data = asdict(self)
        data["exit_code"] = int(self.exit_code)
        return data


class _Batcher:
    """Collects frames into a pre-allocated batch, runs it, and hands results to the sinks."""

    def __init__(
        self,
        runner: Runner,
        batch: int,
        threshold: float | None,
        source: str,
        sinks: Sequence[Sink],
        health: HealthCheck,
    ) -> None:
        meta = runner.metadata
        self.runner, self.batch, self.threshold, self.source = runner, batch, threshold, source
        self.health = health
        self.spec, self.sinks, self.map_range = meta.preprocess_spec, sinks, meta.map_range
        self.score_rule, self.score_range = meta.score_rule, meta.score_range
        self.buffer = np.empty((batch, meta.height, meta.width, 3), np.uint8)  # [B, H, W, 3]
        self.pending: list[Frame] = []  # arrival order, error frames included
        self.slots = 0  # frames in ``buffer``
        self.latencies = np.zeros(LATENCY_WINDOW, np.float64)
        self.frames = self.anomalies = self.errors = self.unhealthy = self.lost = 0

    def add(self, frame: Frame) -> None:
        if frame.error is None:
            try:
                slot = self.buffer[self.slots]
                slot[...] = preprocess(frame.image, self.spec)
            except GlcfError as exc:
                frame = replace(frame, image=None, error=f"frame {frame.index}: {exc}")
            else:
                problem = self.health.check(slot)
                if problem is None:
                    self.slots += 1
                else:
                    frame = replace(frame, image=None, health=problem[0].value,
                                    error=f"frame {frame.index}: {problem[1]}")
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
            score, anomaly_map = float(scores[k]), maps[k]
            k += 1
            problem = score_problem(score, self.score_rule, self.score_range)
            if problem is not None:  # never "scored" without a verdict, never good
                self._emit(Result(replace(frame, image=None, error=(
                    f"frame {frame.index}: the model's score is {problem}: no verdict; check the "
                    "artifact and the backend (e.g. --backend onnxruntime)")), self.source))
                continue
            latency = (time.time() - frame.timestamp) * 1000.0
            self.latencies[self.frames % LATENCY_WINDOW] = latency
            self._emit(
                Result(
                    frame,
                    self.source,
                    score,
                    is_anomalous(score, self.threshold),
                    latency,
                    anomaly_map,
                    self.threshold,
                    self.map_range,
                    self.spec.roi,
                )
            )
        self.pending.clear()
        self.slots = 0

    def _emit(self, result: Result) -> None:
        if result.frame.error is not None:
            self.errors += 1
            self.unhealthy += result.frame.health is not None
            self.lost += result.frame.lost
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
    health: HealthConfig | None = None,
) -> Summary:
    """Inspect every frame of ``source`` with ``runner`` and send the results to ``sinks``.

    Args:
        runner: an open runner; not closed here.
        source: an open source; not closed here.
        threshold: the explicit threshold, else ``threshold.json``, then the metadata's
            (``resolve_threshold``).
        batch: frames per inference; a partial batch runs when the source ends or stops.
        sinks: receive every result in frame order; closed here. A sink that stops accepting
            writes (``OutputError``) ends the run; what it wrote before stays intact. A full
            outbox (``OutboxFull``, ``--publish``) ends it with ``ExitCode.OUTBOX_FULL``.
        stop_event: set it (from any thread) to stop after the current batch.
        health: the frame-health check (default: on, ``HealthConfig()``).

    Returns:
        The run's summary; ``completed`` is False when stopped, interrupted, an output failed,
        the source failed or a damaged file lost frames.
    """
    if not is_count(batch) or (runner.max_batch is not None and batch > runner.max_batch):
        _close_all(sinks)
        raise ConfigError(
            f"--batch {batch}: {runner.path.name} takes 1 to "
            f"{runner.max_batch or 'any number of'} frames"
        )
    choice = resolve_threshold(runner, threshold)
    stop = stop_event or threading.Event()
    check = HealthCheck(health or HealthConfig(), live=source.live)
    state = _Batcher(runner, batch, choice.value, source.name, sinks, check)
    start = time.perf_counter()
    output_failed: str | None = None
    outbox_full = False
    with _stop_on_signals(stop) as caught:
        try:
            for frame in source.iterate(stop):
                state.add(frame)
                if stop.is_set():
                    break
            state.flush()
        except OutputError as exc:
            output_failed, outbox_full = str(exc), isinstance(exc, OutboxFull)
        finally:
            try:
                _close_all(sinks)
            except OutputError as exc:
                output_failed = output_failed or str(exc)
    seconds = time.perf_counter() - start
    p50, p95 = state.percentiles()
    reason, code = _ending(caught, stop, source, state, output_failed)
    if outbox_full and not caught:
        code = ExitCode.OUTBOX_FULL
    reports = [r for r in (sink.report() for sink in sinks) if r is not None]
    return Summary(
        frames=state.frames,
        anomalies=state.anomalies,
        errors=state.errors,
        seconds=seconds,
        fps=state.frames / seconds if seconds > 0 else 0.0,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        completed=not stop.is_set() and source.failed is None and output_failed is None
        and state.lost == 0,
        reason=reason,
        threshold=choice.value,
        threshold_origin=choice.origin,
        unhealthy=state.unhealthy,
        lost=state.lost,
        exit_code=code,
        publish=reports[0] if reports else None,
    )


def _ending(caught: list[str], stop: threading.Event, source: FrameSource, state: _Batcher,
            output_failed: str | None) -> tuple[str, ExitCode]:
    """Why the run ended, and its exit code."""
    if caught:
        return f"stopped by {caught[0]}", ExitCode.SIGNAL
    if output_failed is not None:
        return output_failed, ExitCode.OUTPUT_FAILED
    if stop.is_set():
        reason = "stopped"
    elif source.failed:
        reason = source.failed
    elif state.lost:
        reason = f"source ended; {state.lost} frame(s) lost (damaged file)"
    else:
        reason = "source ended"
    if state.errors or source.failed or state.frames == 0:
        return reason, ExitCode.FRAME_ERRORS
    return reason, ExitCode.SCORED


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
