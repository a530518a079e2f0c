"""What the live page shows: a sink that keeps the latest frame, recent records and counters.

``LiveState.write`` runs in the inspection loop, so it only stores references, copies the
anomaly map (the backend may overwrite its buffer) and counts: no drawing, no encoding. The HTTP
threads read snapshots under the same lock; JPEGs are drawn and encoded only when a viewer asks,
on one long-lived render thread (OpenCV spends far more CPU on its first call in a new thread
than on the drawing itself, and the server starts a thread per request), and the last encoding
is cached so viewers share it.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import Counter, deque
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from glcf_runtime.backends.base import Runner
from glcf_runtime.sinks import Result, Sink
from glcf_runtime.sources import FrameSource
from glcf_runtime.threshold import ThresholdChoice

KEEP_RECORDS = 10_000  # records /api/results can return (about 2 MB)
GALLERY = 12  # flagged frames the page's gallery lists, newest first
KEEP_FLAGGED = 2 * GALLERY  # kept (full size) so a listed frame can still be fetched after
#                             it left the list: a page loads its thumbnails a moment later
KEEP_LATENCIES = 1_000  # latency percentiles on the page are over the most recent frames
FPS_WINDOW_S = 5.0  # fps on the page: frames scored in the last seconds
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
VIEW_WIDTH = 640  # the live frame is drawn at most this wide (flagged frames: full size)
JPEG_QUALITY = 80
UNREADABLE = "unreadable"  # error kind of records without a "health" field


def model_card(runner: Runner, threshold: ThresholdChoice) -> dict[str, Any]:
    """The model facts the page and ``/api/status`` show (the threshold the loop uses)."""
    meta = runner.metadata
    return {
        "category": meta.category,
        "model": runner.path.name,
        "backend": runner.backend,
        "runtime": runner.describe(),
        "precision": meta.precision,
        "input": f"{meta.width}x{meta.height}",
        "score_rule": meta.score_rule,
        "branch_mode": meta.branch_mode,
        "normalisation": str(meta.fusion.get("normalisation", "image")),
        "backbone": str(meta.extra.get("backbone", "swin")),
        "weights": str(meta.extra.get("weights", "not recorded")),
        "weights_sha256": str(meta.extra.get("weights_sha256", "")),
        "roi": None if meta.roi is None else list(meta.roi),
        "threshold": threshold.value,
        "threshold_origin": threshold.origin,
    }


def error_kind(record: dict) -> str:
    """What an error record is about: the frame-health verdict (``"flat"``, ``"frozen"``…),
    ``"outage"`` (a live stream lost), ``"lost"`` (frames a damaged video lacks) or
    ``"unreadable"`` (a frame that could not be decoded or pre-processed)."""
    if record.get("health"):
        return str(record["health"])
    if record.get("outage_s") is not None:
        return "outage"
    return "lost" if record.get("lost") else UNREADABLE


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} frame as JPEG")
    return data.tobytes()


def _shrink(image: np.ndarray, max_width: int | None) -> np.ndarray:
    """At most ``max_width`` wide, with INTER_LINEAR: good enough for a view, and INTER_AREA is
    many times slower at scale factors that are not whole numbers (1280 → 800)."""
    if max_width is None or image.shape[1] <= max_width:
        return image
    height = max(1, round(image.shape[0] * max_width / image.shape[1]))
    return cv2.resize(image, (max_width, height), interpolation=cv2.INTER_LINEAR)


def draw(result: Result, max_width: int | None = None) -> np.ndarray:
    """The annotated frame (heat map, verdict banner) at most ``max_width`` wide; a frame no
    other sink has drawn yet is shrunk before drawing (cheaper, and a readable banner)."""
    image = result.display()
    if result._view is not None or max_width is None or image.shape[1] <= max_width:
        return _shrink(result.annotated(), max_width)
    small = replace(result.frame, image=_shrink(image, max_width))
    return replace(result, frame=small, roi=None, _view=None).annotated()


@dataclass(frozen=True)
class Flagged:
    """An anomalous frame kept for the gallery."""

    id: int  # 1, 2, … in the order they were flagged
    result: Result

    def summary(self) -> dict:
        frame = self.result.frame
        return {"id": self.id, "frame": frame.index, "timestamp": round(frame.timestamp, 3),
                "score": self.result.score, "label": self.result.label}


class LiveState(Sink):
    """A sink for the live page and the metrics; thread-safe.

    Args:
        card: ``model_card(runner, threshold)``.
        source: the running source, read for its state (``failed``, and ``connected`` /
            ``reconnects`` where a live source has them).
    """

    def __init__(self, card: dict[str, Any], source: FrameSource | None = None) -> None:
        self.card, self.source = card, source
        self.threshold: float | None = card.get("threshold")
        self.changed = threading.Condition(threading.RLock())  # notified on writes and on close
        self.seq = 0  # results written, errors included
        self.frames = self.anomalies = 0
        self.errors: Counter[str] = Counter()
        self.records: deque[tuple[int, dict]] = deque(maxlen=KEEP_RECORDS)  # (seq, record)
        self.flagged: deque[Flagged] = deque(maxlen=KEEP_FLAGGED)
        self.latest: Result | None = None  # the last scored frame
        self.latest_seq = 0  # its seq
        self.last_score: float | None = None
        self.closed = False
        self.started = time.time()
        self.bucket_counts = [0] * (len(LATENCY_BUCKETS_S) + 1)  # last: above every bound
        self.latency_sum_s = 0.0
        self._latencies: deque[float] = deque(maxlen=KEEP_LATENCIES)
        self._times: deque[float] = deque(maxlen=4096)  # monotonic time of each scored frame
        self._jpegs: dict[tuple[str, int, int | None], bytes] = {}  # (kind, id, width)
        self._jpeg_lock = threading.Lock()
        self._render = ThreadPoolExecutor(1, thread_name_prefix="glcf-render")

    def write(self, result: Result) -> None:
        record = result.record()
        kept = result
        if result.anomaly_map is not None and result._view is None:
            kept = replace(result, anomaly_map=result.anomaly_map.copy())
        with self.changed:
            self.seq += 1
            self.records.append((self.seq, record))
            if result.frame.error is not None:
                self.errors[error_kind(record)] += 1
            else:
                self._count_scored(kept, self.seq)
            self.changed.notify_all()

    def _count_scored(self, result: Result, seq: int) -> None:
        self.frames += 1
        self.latest, self.latest_seq = result, seq
        self.last_score = result.score
        self._times.append(time.monotonic())
        if result.latency_ms is not None:
            seconds = result.latency_ms / 1000.0
            self._latencies.append(result.latency_ms)
            self.bucket_counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
            self.latency_sum_s += seconds
        if result.anomalous:
            self.anomalies += 1
            self.flagged.append(Flagged(self.anomalies, result))

    def close(self) -> None:
        """The loop ended: streams finish; images stay available until ``release``."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def release(self) -> None:
        """Stop the render thread (the server has stopped; idempotent)."""
        self._render.shutdown(wait=False, cancel_futures=True)

    def wait(self, seen: int, timeout: float) -> int:
        """Block until a result after ``seen`` arrives, the state closes, or ``timeout``; the seq."""
        with self.changed:
            self.changed.wait_for(lambda: self.seq > seen or self.closed, timeout)
            return self.seq

    def source_state(self) -> dict[str, Any]:
        """``up`` (bool), ``reconnects``, ``failed`` (why a live source gave up) and ``name``."""
        source = self.source
        if source is None:
            return {"name": None, "up": not self.closed, "reconnects": 0, "failed": None}
        failed = getattr(source, "failed", None)
        connected = bool(getattr(source, "connected", True))
        return {
            "name": source.name,
            "up": failed is None and connected and not self.closed,
            "reconnects": int(getattr(source, "reconnects", 0) or 0),
            "failed": failed,
        }

    def fps(self) -> float:
        """Frames scored per second over the last ``FPS_WINDOW_S`` seconds."""
        now = time.monotonic()
        with self.changed:
            times = list(self._times)
        recent = [t for t in times if now - t <= FPS_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        span = max(now - recent[0], recent[-1] - recent[0])
        return (len(recent) - 1) / span if span > 0 else 0.0

    def status(self) -> dict[str, Any]:
        """Counters, latest frame, source state, gallery and model card, for ``/api/status``."""
        with self.changed:
            latencies = np.fromiter(self._latencies, np.float64)
            status = {
                "seq": self.seq,
                "running": not self.closed,
                "frames": self.frames,
                "anomalies": self.anomalies,
                "errors": dict(self.errors),
                "errors_total": sum(self.errors.values()),
                "last_score": _finite(self.last_score),
                "latest_frame": None if self.latest is None else self.latest.frame.index,
                "latest_seq": self.latest_seq if self.latest is not None else None,
                "flagged": [f.summary() for f in list(reversed(self.flagged))[:GALLERY]],
                "started": round(self.started, 3),
            }
        p50, p95 = (np.percentile(latencies, [50, 95]).tolist() if latencies.size else (None, None))
        status.update(
            fps=round(self.fps(), 3),
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            uptime_s=round(time.time() - self.started, 3),
            source=self.source_state(),
            model=self.card,
        )
        return status

    def results(self, since: int = -1, limit: int | None = None) -> list[dict]:
        """Records of frames after frame index ``since``, in the order written (the last
        ``limit`` of them)."""
        with self.changed:
            kept = list(self.records)
        found = [record for _, record in kept if record.get("frame", since + 1) > since]
        return found if limit is None else found[-limit:] if limit > 0 else []

    def updates(self, seen: int | None, since: int = -1) -> tuple[int, list[dict]]:
        """``(seq, records)`` for the event stream: the records written after write ``seen``
        (None: those of frames after frame index ``since``), and the current write count."""
        if seen is None:
            with self.changed:
                return self.seq, self.results(since)
        found = []
        with self.changed:
            for s, record in reversed(self.records):
                if s <= seen:
                    break
                found.append(record)
            return self.seq, found[::-1]

    def latest_jpeg(self) -> tuple[int, dict, bytes] | None:
        """``(seq, record, JPEG)`` of the last scored frame, at most ``VIEW_WIDTH`` wide."""
        with self.changed:
            result, seq = self.latest, self.latest_seq
        if result is None:
            return None
        return seq, result.record(), self._jpeg(("live", seq, VIEW_WIDTH), result)

    def flagged_jpeg(self, flag_id: int, max_width: int | None = None) -> bytes | None:
        """JPEG of a flagged frame still in the gallery (full size, or at most ``max_width``
        wide for a thumbnail); None when it has left the gallery."""
        with self.changed:
            found = next((f.result for f in self.flagged if f.id == flag_id), None)
        if found is None:
            return None
        return self._jpeg(("flagged", flag_id, max_width), found)

    def _jpeg(self, key: tuple[str, int, int | None], result: Result) -> bytes:
        """Draw and encode once per key, on the render thread; keeps the newest live frame and
        the recent flagged ones."""
        with self._jpeg_lock:
            cached = self._jpegs.get(key)
        if cached is not None:
            return cached
        try:
            job = self._render.submit(self._encode, key, result)
        except RuntimeError:  # released: the server is stopping
            raise CancelledError from None
        return job.result()

    def _encode(self, key: tuple[str, int, int | None], result: Result) -> bytes:
        with self._jpeg_lock:
            cached = self._jpegs.get(key)  # another viewer asked first
        if cached is not None:
            return cached
        data = encode_jpeg(draw(result, key[2]))
        with self._jpeg_lock:
            for old in [k for k in self._jpegs if k[0] == key[0] == "live"]:
                del self._jpegs[old]
            while len(self._jpegs) > 2 * KEEP_FLAGGED:
                self._jpegs.pop(next(k for k in self._jpegs if k[0] == "flagged"))
            self._jpegs[key] = data
        return data

    def metrics(self) -> dict[str, Any]:
        """Everything ``/metrics`` exports, read at once."""
        with self.changed:
            values = {
                "frames": self.frames,
                "anomalies": self.anomalies,
                "errors": dict(self.errors),
                "buckets": list(self.bucket_counts),
                "latency_sum_s": self.latency_sum_s,
                "last_score": self.last_score,
            }
        values.update(fps=self.fps(), threshold=self.threshold, source=self.source_state())
        return values


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
