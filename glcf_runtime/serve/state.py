"""What the live page shows: a sink that keeps the latest frame, recent records and counters,
in all and per camera (``cameras``: results are grouped by ``Result.source``, the camera's name).

``LiveState.write`` runs in the inspection loop, so it only stores references, copies the
anomaly map (the backend may overwrite its buffer) and counts: no drawing, no encoding. The HTTP
threads read snapshots under the same lock; JPEGs are drawn and encoded only when a viewer asks,
on one long-lived render thread (OpenCV spends far more CPU on its first call in a new thread
than on the drawing itself, and the server starts a thread per request), and the last encoding
is cached so viewers share it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from glcf_runtime.backends.base import Runner
from glcf_runtime.serve.cameras import Camera, Tally, camera_sources, combined_source, finite
from glcf_runtime.sinks import Result, Sink
from glcf_runtime.sources import FrameSource
from glcf_runtime.threshold import ThresholdChoice

KEEP_RECORDS = 10_000  # records /api/results can return (about 2 MB)
GALLERY = 12  # flagged frames the page's gallery lists, newest first
KEEP_FLAGGED = 2 * GALLERY  # kept (full size) so a listed frame can still be fetched after
#                             it left the list: a page loads its thumbnails a moment later
VIEW_WIDTH = 640  # the live frame is drawn at most this wide (flagged frames: full size)
JPEG_QUALITY = 80


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
                "score": self.result.score, "label": self.result.label,
                "camera": self.result.source}


class LiveState(Sink):
    """A sink for the live page and the metrics; thread-safe.

    Args:
        card: ``model_card(runner, threshold)``.
        sources: the running source, or ``{camera name: source}`` for several cameras; read for
            their state (``failed``, and ``connected`` / ``reconnects`` where a live source has
            them). A result whose ``source`` names no camera of the mapping gets a camera of its
            own; one source is one camera, named as its first result names it.
    """

    def __init__(
        self, card: dict[str, Any], sources: FrameSource | Mapping[str, FrameSource] | None = None
    ) -> None:
        self.card = card
        self.threshold: float | None = card.get("threshold")
        self.changed = threading.Condition(threading.RLock())  # notified on writes and on close
        self.seq = 0  # results written, errors included
        self.total = Tally()  # every camera's results
        self.cameras = {name: Camera(name, s) for name, s in camera_sources(sources).items()}
        self._one_source = isinstance(sources, FrameSource)
        self.records: deque[tuple[int, dict]] = deque(maxlen=KEEP_RECORDS)  # (seq, record)
        self.flagged: deque[Flagged] = deque(maxlen=KEEP_FLAGGED)
        self.closed = False
        self.started = time.time()
        self._jpegs: dict[tuple[str, int, int | None], bytes] = {}  # (kind, id, width)
        self._jpeg_lock = threading.Lock()
        self._render = ThreadPoolExecutor(1, thread_name_prefix="glcf-render")

    def write(self, result: Result) -> None:
        record = result.record()
        kept = result
        if result.anomaly_map is not None and result._view is None:
            kept = replace(result, anomaly_map=result.anomaly_map.copy())
        now = time.monotonic()
        with self.changed:
            self.seq += 1
            self.records.append((self.seq, record))
            camera = self.cameras.get(result.source) or self._new_camera(result.source)
            for tally in (self.total, camera):
                tally.count(kept, record, self.seq, now)
            if kept.frame.error is None and kept.anomalous:
                self.flagged.append(Flagged(self.total.anomalies, kept))
            self.changed.notify_all()

    def _new_camera(self, name: str) -> Camera:
        """A camera for results named ``name``; one source: its camera, renamed on its first."""
        if not self._one_source:
            camera = self.cameras[name] = Camera(name)
            return camera
        (camera,) = self.cameras.values()
        if camera.seen == 0:
            camera.name, self.cameras = name, {name: camera}
        return camera

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

    def camera(self, name: str | None) -> Camera | None:
        """The camera called ``name``; None: the first camera (None before any is known)."""
        with self.changed:
            if name is None:
                return next(iter(self.cameras.values()), None)
            return self.cameras.get(name)

    def camera_names(self) -> list[str]:
        with self.changed:
            return list(self.cameras)

    def source_state(self) -> dict[str, Any]:
        """``up`` (bool), ``reconnects``, ``failed`` (why a live source gave up) and ``name``;
        with several cameras, their ``combined_source`` (up while every camera is up)."""
        with self.changed:
            cameras = list(self.cameras.values())
            if len(cameras) > 1:
                return combined_source(cameras, self.closed)
            return (cameras[0] if cameras else Camera("")).source_state(self.closed)

    def fps(self) -> float:
        """Frames scored per second over the last ``FPS_WINDOW_S`` seconds."""
        now = time.monotonic()
        with self.changed:
            return self.total.fps(now)

    def status(self) -> dict[str, Any]:
        """Counters, latest frame, source state, gallery and model card, for ``/api/status``;
        ``cameras``: each camera's counters and state."""
        now = time.monotonic()
        with self.changed:
            total = self.total
            p50, p95 = total.latency_ms()
            return {
                "seq": self.seq,
                "running": not self.closed,
                "frames": total.frames,
                "anomalies": total.anomalies,
                "errors": dict(total.errors),
                "errors_total": sum(total.errors.values()),
                "last_score": finite(total.last_score),
                "latest_frame": None if total.latest is None else total.latest.frame.index,
                "latest_seq": total.latest_seq if total.latest is not None else None,
                "flagged": [f.summary() for f in list(reversed(self.flagged))[:GALLERY]],
                "started": round(self.started, 3),
                "fps": round(total.fps(now), 3),
                "latency_p50_ms": p50,
                "latency_p95_ms": p95,
                "uptime_s": round(time.time() - self.started, 3),
                "source": self.source_state(),
                "model": self.card,
                "cameras": [c.summary(self.closed, now) for c in self.cameras.values()],
            }

    def timeline(self, camera: str | None = None) -> dict[str, Any]:
        """``{"seq": S, "cameras": {name: [[timestamp, score, anomalous], …]}}``: each camera's
        recent scores (score None: an error), oldest first, up to write ``S``; ``camera``: that
        one only."""
        with self.changed:
            chosen = [c for c in self.cameras.values() if camera in (None, c.name)]
            return {"seq": self.seq, "cameras": {c.name: [list(p) for p in c.timeline]
                                                 for c in chosen}}

    def results(self, since: int = -1, limit: int | None = None,
                camera: str | None = None) -> list[dict]:
        """Records of frames after frame index ``since``, in the order written (the last
        ``limit`` of them); ``camera``: that camera's only."""
        with self.changed:
            kept = list(self.records)
        found = [record for _, record in kept if record.get("frame", since + 1) > since
                 and camera in (None, record.get("source"))]
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

    def latest_jpeg(self, camera: str | None = None) -> tuple[int, dict, bytes] | None:
        """``(seq, record, JPEG)`` of the last scored frame of ``camera`` (None: the first
        camera), at most ``VIEW_WIDTH`` wide; None before its first."""
        with self.changed:
            found = self.camera(camera)
            result, seq = (None, 0) if found is None else (found.latest, found.latest_seq)
        if result is None:
            return None
        return seq, result.record(), self._jpeg((f"live {result.source}", seq, VIEW_WIDTH), result)

    def flagged_jpeg(self, flag_id: int, max_width: int | None = None) -> bytes | None:
        """JPEG of a flagged frame still in the gallery (full size, or at most ``max_width``
        wide for a thumbnail); None when it has left the gallery."""
        with self.changed:
            found = next((f.result for f in self.flagged if f.id == flag_id), None)
        if found is None:
            return None
        return self._jpeg(("flagged", flag_id, max_width), found)

    def _jpeg(self, key: tuple[str, int, int | None], result: Result) -> bytes:
        """Draw and encode once per key, on the render thread; keeps the newest live frame of
        each camera and the recent flagged ones."""
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
            for old in [k for k in self._jpegs if k[0] == key[0] != "flagged"]:
                del self._jpegs[old]
            while sum(k[0] == "flagged" for k in self._jpegs) > 2 * KEEP_FLAGGED:
                self._jpegs.pop(next(k for k in self._jpegs if k[0] == "flagged"))
            self._jpegs[key] = data
        return data

    def metrics(self) -> dict[str, Any]:
        """Everything ``/metrics`` exports, read at once: the totals, and ``cameras`` (the same
        values of each camera, its ``source`` included)."""
        now = time.monotonic()
        with self.changed:
            values = self.total.values(now)
            values.update(
                threshold=self.threshold,
                source=self.source_state(),
                cameras={n: c.values(now, self.closed) for n, c in self.cameras.items()},
            )
        return values
