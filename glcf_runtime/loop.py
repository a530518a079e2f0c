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
from glcf_runtime.preprocess import PreprocessSpec, preprocess
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
    mean_batch: float | None = None  # frames per inference (None: no inference ran)
    cameras: dict | None = None  # per camera: frames, anomalies, errors, completed, reason, …
    streams: int | None = None  # several cameras: batches scored at once (--streams)

    def to_dict(self) -> dict:
        """The summary as JSON-ready values (``exit_code`` as its number)."""
        data = asdict(self)
        data["exit_code"] = int(self.exit_code)
        return data


class Verdicts:
    """One camera's verdicts: the threshold applied to each score, the counters and the latency
    window, and every result handed to the sinks in the order given.

    Args:
        runner: the runner whose metadata says the score rule and range and the map's colours.
        threshold: the threshold (None: no verdict).
        source: the source's name, for records.
        sinks: receive every result.
        camera: the camera's name, for records (``camera``) and the summary; None: not recorded.
        roi: the crop the maps cover (default: the runner's).
    """

    def __init__(self, runner: Runner, threshold: float | None, source: str,
                 sinks: Sequence[Sink], camera: str | None = None,
                 roi: tuple[int, int, int, int] | None = None) -> None:
        meta = runner.metadata
        self.threshold, self.source, self.sinks, self.camera = threshold, source, sinks, camera
        self.map_range, self.score_rule, self.score_range = meta.map_range, meta.score_rule, meta.score_range
        self.roi = meta.roi if roi is None else roi
        self.latencies = np.zeros(LATENCY_WINDOW, np.float64)
        self.frames = self.anomalies = self.errors = self.unhealthy = self.lost = 0

    def error(self, frame: Frame) -> None:
        """The record of a frame that was not scored."""
        self._emit(Result(frame, self.source, camera=self.camera))

    def scored(self, frame: Frame, score: float, anomaly_map: np.ndarray) -> None:
        """A frame's score and map: its verdict, or an error record for an unusable score."""
        problem = score_problem(score, self.score_rule, self.score_range)
        if problem is not None:  # never "scored" without a verdict, never good
            self.error(replace(frame, image=None, error=(
                f"frame {frame.index}: the model's score is {problem}: no verdict; check the "
                "artifact and the backend (e.g. --backend onnxruntime)")))
            return
        latency = (time.time() - frame.timestamp) * 1000.0
        self.latencies[self.frames % LATENCY_WINDOW] = latency
        self._emit(Result(frame, self.source, score, is_anomalous(score, self.threshold), latency,
                          anomaly_map, self.threshold, self.map_range, self.roi,
                          camera=self.camera))

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

    def window(self) -> np.ndarray:
        """The latencies kept (the most recent ``LATENCY_WINDOW``), ms."""
        return self.latencies[: min(self.frames, LATENCY_WINDOW)]


def percentiles(latencies: np.ndarray) -> tuple[float | None, float | None]:
    """p50 and p95 of ``latencies`` (None, None when there are none)."""
    if latencies.size == 0:
        return None, None
    p50, p95 = np.percentile(latencies, [50, 95])
    return float(p50), float(p95)


def prepare(frame: Frame, spec: PreprocessSpec, health: HealthCheck, out: np.ndarray) -> Frame:
    """Pre-process ``frame`` into ``out`` (uint8 ``[H, W, 3]``) and check its health; the frame,
    or its error record when it cannot be pre-processed or is unusable."""
    if frame.error is not None:
        return frame
    try:
        out[...] = preprocess(frame.image, spec)
    except GlcfError as exc:
        return replace(frame, image=None, error=f"frame {frame.index}: {exc}")
    problem = health.check(out)
    if problem is None:
        return frame
    return replace(frame, image=None, health=problem[0].value,
                   error=f"frame {frame.index}: {problem[1]}")


class _Batcher:
    """Collects one source's frames into a pre-allocated batch, runs it, and hands the results
    to its ``Verdicts``."""

    def __init__(self, runner: Runner, batch: int, verdicts: Verdicts, health: HealthCheck) -> None:
        meta = runner.metadata
        self.runner, self.batch, self.verdicts, self.health = runner, batch, verdicts, health
        self.spec = meta.preprocess_spec
        self.buffer = np.empty((batch, meta.height, meta.width, 3), np.uint8)  # [B, H, W, 3]
        self.pending: list[Frame] = []  # arrival order, error frames included
        self.slots = 0  # frames in ``buffer``
        self.inferences = self.inferred = 0  # runner calls, frames they held

    def add(self, frame: Frame) -> None:
        frame = prepare(frame, self.spec, self.health, self.buffer[self.slots])
        if frame.error is not None and not self.pending:
            self.verdicts.error(frame)
            return
        self.slots += frame.error is None
        self.pending.append(frame)
        if self.slots == self.batch:
            self.flush()

    def flush(self) -> None:
        """Infer the collected frames and write every pending result in order."""
        if not self.pending:
            return
        if self.slots:
            maps, scores = self.runner.infer(self.buffer[: self.slots])
            self.inferences += 1
            self.inferred += self.slots
        k = 0
        for frame in self.pending:
            if frame.error is not None:
                self.verdicts.error(frame)
                continue
            self.verdicts.scored(frame, float(scores[k]), maps[k])
            k += 1
        self.pending.clear()
        self.slots = 0


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[str]]:
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


def check_batch_size(runner: Runner, batch: int, sinks: Sequence[Sink]) -> None:
    """ConfigError (the sinks closed) unless ``runner`` takes batches of ``batch`` frames."""
    if not is_count(batch) or (runner.max_batch is not None and batch > runner.max_batch):
        close_all(sinks)
        raise ConfigError(
            f"--batch {batch}: {runner.path.name} takes 1 to "
            f"{runner.max_batch or 'any number of'} frames"
        )


def inspect(
    runner: Runner,
    source: FrameSource,
    threshold: float | None = None,
    batch: int = 1,
    sinks: Sequence[Sink] = (),
    stop_event: threading.Event | None = None,
    health: HealthConfig | None = None,
    camera: str | None = None,
) -> Summary:
    """Inspect every frame of ``source`` with ``runner`` and send the results to ``sinks``.

    Several cameras on one runner: ``glcf_runtime.station.inspect_station``.

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
        camera: the camera's name: records carry it (``camera``) and the summary has its entry
            in ``cameras``; None leaves both out.

    Returns:
        The run's summary; ``completed`` is False when stopped, interrupted, an output failed,
        the source failed or a damaged file lost frames.
    """
    check_batch_size(runner, batch, sinks)
    choice = resolve_threshold(runner, threshold)
    stop = stop_event or threading.Event()
    check = HealthCheck(health or HealthConfig(), live=source.live)
    verdicts = Verdicts(runner, choice.value, source.name, sinks, camera)
    state = _Batcher(runner, batch, verdicts, check)
    start = time.perf_counter()
    output_failed: str | None = None
    outbox_full = False
    with stop_on_signals(stop) as caught:
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
                close_all(sinks)
            except OutputError as exc:
                output_failed = output_failed or str(exc)
    seconds = time.perf_counter() - start
    p50, p95 = percentiles(verdicts.window())
    reason, code = ending(caught, stop, source, verdicts, output_failed)
    if outbox_full and not caught:
        code = ExitCode.OUTBOX_FULL
    completed = (not stop.is_set() and source.failed is None and output_failed is None
                 and verdicts.lost == 0)
    reports = [r for r in (sink.report() for sink in sinks) if r is not None]
    return Summary(
        frames=verdicts.frames,
        anomalies=verdicts.anomalies,
        errors=verdicts.errors,
        seconds=seconds,
        fps=verdicts.frames / seconds if seconds > 0 else 0.0,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        completed=completed,
        reason=reason,
        threshold=choice.value,
        threshold_origin=choice.origin,
        unhealthy=verdicts.unhealthy,
        lost=verdicts.lost,
        exit_code=code,
        publish=reports[0] if reports else None,
        mean_batch=state.inferred / state.inferences if state.inferences else None,
        cameras=None if camera is None else {
            camera: camera_entry(verdicts, completed, reason, code)},
    )


def camera_entry(verdicts: Verdicts, completed: bool, reason: str, code: ExitCode) -> dict:
    """A camera's entry in the summary's ``cameras``."""
    return {"frames": verdicts.frames, "anomalies": verdicts.anomalies, "errors": verdicts.errors,
            "unhealthy": verdicts.unhealthy, "lost": verdicts.lost, "completed": completed,
            "reason": reason, "exit_code": int(code), "threshold": verdicts.threshold,
            "latency_p95_ms": percentiles(verdicts.window())[1]}


def ending(caught: list[str], stop: threading.Event, source: FrameSource, state: Verdicts,
           output_failed: str | None, failed: str | None = None) -> tuple[str, ExitCode]:
    """Why a camera's run ended, and its exit code (``failed``: why its reader gave up)."""
    if caught:
        return f"stopped by {caught[0]}", ExitCode.SIGNAL
    if output_failed is not None:
        return output_failed, ExitCode.OUTPUT_FAILED
    failed = failed or source.failed
    if stop.is_set():
        reason = "stopped"
    elif failed:
        reason = failed
    elif state.lost:
        reason = f"source ended; {state.lost} frame(s) lost (damaged file)"
    else:
        reason = "source ended"
    if state.errors or failed or state.frames == 0:
        return reason, ExitCode.FRAME_ERRORS
    return reason, ExitCode.SCORED


def close_all(sinks: Sequence[Sink]) -> None:
    """Close every sink even if one fails; re-raise the first failure."""
    failure: BaseException | None = None
    for sink in sinks:
        try:
            sink.close()
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
