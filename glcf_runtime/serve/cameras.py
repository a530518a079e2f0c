"""What the live page counts per camera: frames, anomalies, errors by kind, the last scored frame,
latencies, fps, the source's state and a timeline of recent scores.

``LiveState`` keeps one ``Tally`` for the whole run (the totals) and one ``Camera`` per camera,
grouped by ``Result.source`` (the camera's name). Nothing here locks: ``LiveState`` calls every
method under its own lock.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from glcf_runtime.errors import ConfigError
from glcf_runtime.sinks import Result
from glcf_runtime.sources import FrameSource

KEEP_LATENCIES = 1_000  # latency percentiles on the page are over the most recent frames
FPS_WINDOW_S = 5.0  # fps on the page: frames scored in the last seconds
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TIMELINE_S = 300.0  # a camera's score timeline covers the last 5 minutes (the page's window)
KEEP_POINTS = 3_000  # points per camera at most (10 per second over 5 minutes)
UNREADABLE = "unreadable"  # error kind of records without a "health" field


def error_kind(record: dict) -> str:
    """What an error record is about: the frame-health verdict (``"flat"``, ``"frozen"``…),
    ``"outage"`` (a live stream lost), ``"lost"`` (frames a damaged video lacks) or
    ``"unreadable"`` (a frame that could not be decoded or pre-processed)."""
    if record.get("health"):
        return str(record["health"])
    if record.get("outage_s") is not None:
        return "outage"
    return "lost" if record.get("lost") else UNREADABLE


def camera_sources(
    sources: FrameSource | Mapping[str, FrameSource] | None,
) -> dict[str, FrameSource]:
    """``{camera name: source}``: one source is the camera of its own name.

    Raises:
        ConfigError: an empty mapping, or a name that is not a non-empty string.
    """
    if sources is None:
        return {}
    if isinstance(sources, FrameSource):
        return {sources.name: sources}
    if not sources:
        raise ConfigError("the live page needs at least one camera: give {name: source}")
    for name in sources:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"camera name {name!r}: give each camera a non-empty name")
    return dict(sources)


class Tally:
    """Counters of a stream of results (a camera's, or every camera's)."""

    def __init__(self) -> None:
        self.frames = self.anomalies = 0
        self.seen = 0  # results counted, errors included
        self.errors: Counter[str] = Counter()
        self.latest: Result | None = None  # the last scored frame
        self.latest_seq = 0  # its seq
        self.last_score: float | None = None
        self.bucket_counts = [0] * (len(LATENCY_BUCKETS_S) + 1)  # last: above every bound
        self.latency_sum_s = 0.0
        self._latencies: deque[float] = deque(maxlen=KEEP_LATENCIES)
        self._times: deque[float] = deque(maxlen=4096)  # monotonic time of each scored frame

    def count(self, result: Result, record: dict, seq: int, now: float) -> None:
        """Count one result; ``now`` is ``time.monotonic()``."""
        self.seen += 1
        if result.frame.error is not None:
            self.errors[error_kind(record)] += 1
            return
        self.frames += 1
        self.latest, self.latest_seq = result, seq
        self.last_score = result.score
        self._times.append(now)
        if result.latency_ms is not None:
            seconds = result.latency_ms / 1000.0
            self._latencies.append(result.latency_ms)
            self.bucket_counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
            self.latency_sum_s += seconds
        if result.anomalous:
            self.anomalies += 1

    def fps(self, now: float) -> float:
        """Frames scored per second over the last ``FPS_WINDOW_S`` seconds before ``now``."""
        recent = [t for t in self._times if now - t <= FPS_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        span = max(now - recent[0], recent[-1] - recent[0])
        return (len(recent) - 1) / span if span > 0 else 0.0

    def latency_ms(self) -> tuple[float | None, float | None]:
        """``(p50, p95)`` of the recent latencies in ms; None before the first."""
        if not self._latencies:
            return None, None
        p50, p95 = np.percentile(np.fromiter(self._latencies, np.float64), [50, 95]).tolist()
        return p50, p95

    def values(self, now: float) -> dict[str, Any]:
        """What ``/metrics`` exports of this tally."""
        return {
            "frames": self.frames,
            "anomalies": self.anomalies,
            "errors": dict(self.errors),
            "buckets": list(self.bucket_counts),
            "latency_sum_s": self.latency_sum_s,
            "last_score": self.last_score,
            "fps": self.fps(now),
        }


class Camera(Tally):
    """One camera's tally, its source (None: a camera only known from its results) and the
    timeline of its recent scores."""

    def __init__(self, name: str, source: FrameSource | None = None) -> None:
        super().__init__()
        self.name, self.source = name, source
        self.timeline: deque[tuple[float, float | None, bool | None]] = deque(maxlen=KEEP_POINTS)

    def count(self, result: Result, record: dict, seq: int, now: float) -> None:
        super().count(result, record, seq, now)
        stamp = record.get("timestamp")
        stamp = float(stamp) if isinstance(stamp, (int, float)) else result.frame.timestamp
        score = None if result.frame.error is not None else finite(result.score)
        self.timeline.append((round(stamp, 3), score, result.anomalous))  # score None: an error
        while self.timeline and self.timeline[0][0] < stamp - TIMELINE_S:
            self.timeline.popleft()

    def source_state(self, closed: bool) -> dict[str, Any]:
        """``up`` (bool), ``reconnects``, ``failed`` (why a live source gave up) and ``name``."""
        source = self.source
        if source is None:
            return {"name": None, "up": not closed, "reconnects": 0, "failed": None}
        failed = getattr(source, "failed", None)
        connected = bool(getattr(source, "connected", True))
        return {
            "name": source.name,
            "up": failed is None and connected and not closed,
            "reconnects": int(getattr(source, "reconnects", 0) or 0),
            "failed": failed,
        }

    def summary(self, closed: bool, now: float) -> dict[str, Any]:
        """The camera's entry in ``/api/status``'s ``cameras``."""
        source = self.source_state(closed)
        p50, p95 = self.latency_ms()
        latest = self.latest
        return {
            "name": self.name,
            "source": source["name"],
            "up": source["up"],
            "frames": self.frames,
            "anomalies": self.anomalies,
            "errors": dict(self.errors),
            "errors_total": sum(self.errors.values()),
            "fps": round(self.fps(now), 3),
            "last_score": finite(self.last_score),
            "anomalous": None if latest is None else latest.anomalous,
            "latest_frame": None if latest is None else latest.frame.index,
            "latest_seq": None if latest is None else self.latest_seq,
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
            "reconnects": source["reconnects"],
            "failed": source["failed"],
        }

    def values(self, now: float, closed: bool = False) -> dict[str, Any]:
        return {**super().values(now), "source": self.source_state(closed)}


def combined_source(cameras: list[Camera], closed: bool) -> dict[str, Any]:
    """The source state of several cameras: up while every camera is up; reconnects summed;
    ``failed`` names each camera that gave up; ``down`` lists the cameras not up."""
    states = {camera.name: camera.source_state(closed) for camera in cameras}
    failed = "; ".join(f"{name}: {s['failed']}" for name, s in states.items() if s["failed"])
    return {
        "name": ", ".join(states),
        "up": all(s["up"] for s in states.values()),
        "reconnects": sum(s["reconnects"] for s in states.values()),
        "failed": failed or None,
        "down": [name for name, s in states.items() if not s["up"]],
    }


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
