"""Where the inspection loop's results go: JSON lines, annotated video, anomaly panels, a window.

Every sink has ``write(result)`` and ``close()``; the loop closes all of them however it ends.
The heat-map overlay of a frame is drawn once and shared by the sinks that show it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.overlay import annotate, overlay, panel
from glcf_runtime.sources import Frame

VIDEO_CODECS = {".avi": "MJPG", ".mp4": "mp4v", ".mkv": "MJPG"}


@dataclass
class Result:
    """One frame's outcome, as the sinks see it.

    Attributes:
        frame: the frame (``frame.error`` set: it could not be read or pre-processed).
        source: the source's name.
        score: the image score; None for an error frame.
        anomalous: ``score >= threshold``; None for an error frame or without a threshold.
        latency_ms: from the frame being available to its verdict.
        anomaly_map: float32 ``[h, w]`` at model resolution; valid only during ``write``.
        threshold: the threshold used.
        map_range: ``(vmin, vmax)`` of the heat-map colours (the metadata's).
        roi: the region of interest ``(x, y, w, h)`` the map covers, None for the whole frame.
    """

    frame: Frame
    source: str
    score: float | None = None
    anomalous: bool | None = None
    latency_ms: float | None = None
    anomaly_map: np.ndarray | None = None
    threshold: float | None = None
    map_range: tuple[float, float] = (0.0, 1.0)
    roi: tuple[int, int, int, int] | None = None
    _view: np.ndarray | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        name = self.frame.path.name if self.frame.path is not None else self.source
        return f"{name} #{self.frame.index}"

    def display(self) -> np.ndarray:
        """The part of the frame the map covers: uint8 BGR ``[H, W, 3]`` (a view, not a copy)."""
        image = self.frame.image
        if self.roi is None:
            return image
        x, y, w, h = self.roi
        return image[y : y + h, x : x + w]

    def annotated(self) -> np.ndarray:
        """Heat-map overlay with the verdict banner, uint8 BGR like ``display()``; drawn once."""
        if self._view is None:
            vmin, vmax = self.map_range
            blended = overlay(self.display(), self.anomaly_map, vmin, vmax)
            self._view = annotate(blended, self.score, self.threshold, self.label)
        return self._view

    def record(self) -> dict:
        """The JSON-lines record of this frame."""
        frame = self.frame
        rec: dict = {"frame": frame.index, "source": self.source}
        if frame.error is not None:
            rec["path"] = None if frame.path is None else str(frame.path)
            rec["error"] = frame.error
            return rec
        if frame.path is not None:
            rec["path"] = str(frame.path)
        score = self.score if self.score is not None and math.isfinite(self.score) else None
        rec.update(
            timestamp=round(frame.timestamp, 3),
            score=score,
            anomalous=self.anomalous,
            latency_ms=None if self.latency_ms is None else round(self.latency_ms, 3),
        )
        return rec


class Sink(ABC):
    """Receives every result in frame order."""

    @abstractmethod
    def write(self, result: Result) -> None: ...

    def close(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Flush and release (idempotent)."""


class JsonlSink(Sink):
    """One JSON object per line, flushed per line; appends to an existing file."""

    def __init__(self, target: Path | TextIO) -> None:
        if isinstance(target, Path):
            target.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO | None = open(target, "a", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        else:
            self._file, self._owned = target, False

    def write(self, result: Result) -> None:
        self._file.write(json.dumps(result.record(), allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None and self._owned:
            self._file.close()
        self._file = None


class VideoSink(Sink):
    """Annotated frames into a video (``.avi``: MJPG, ``.mp4``: mp4v); error frames are skipped.

    The writer opens at the first frame with its size; later frames of another size are resized.
    """

    def __init__(self, path: Path, fps: float | None) -> None:
        if path.exists():
            raise ConfigError(f"{path} exists; remove it or choose another --save-video file")
        if path.suffix.lower() not in VIDEO_CODECS:
            raise ConfigError(f"--save-video {path}: use one of {', '.join(VIDEO_CODECS)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.fps = path, fps if fps and fps > 0 else 10.0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, result: Result) -> None:
        if result.frame.error is not None:
            return
        image = result.annotated()
        size = (image.shape[1], image.shape[0])
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, size)
            if not self._writer.isOpened():
                raise GlcfError(f"OpenCV cannot write the video {self.path}; try a .avi file")
            self._size = size
        if size != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class AnomalySink(Sink):
    """A side-by-side panel PNG (frame | heat map, verdict banner) per anomalous frame.

    Files are named ``<run start>_<frame index>[_<image name>].png``, so runs never overwrite
    each other's panels.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._prefix = time.strftime("%Y%m%d-%H%M%S")
        self.written: list[Path] = []

    def write(self, result: Result) -> None:
        if not result.anomalous:
            return
        vmin, vmax = result.map_range
        image = panel(
            result.display(),
            result.anomaly_map,
            result.score,
            result.threshold,
            vmin,
            vmax,
            result.label,
        )
        stem = "" if result.frame.path is None else f"_{result.frame.path.stem}"
        file = self.folder / f"{self._prefix}_{result.frame.index:06d}{stem}.png"
        if not cv2.imwrite(str(file), image):
            raise GlcfError(f"cannot write {file}; check the folder and free space")
        self.written.append(file)


class WindowSink(Sink):
    """Shows annotated frames in an OpenCV window; ``q`` or Esc sets ``stop``."""

    def __init__(self, stop: threading.Event, title: str = "glcf inspect") -> None:
        self.stop, self.title = stop, title
        self._open = False

    def write(self, result: Result) -> None:
        if result.frame.error is not None:
            return
        try:
            cv2.imshow(self.title, result.annotated())
        except cv2.error as exc:
            raise GlcfError(
                "this OpenCV cannot open windows (opencv-python-headless?); drop "
                f"--show or install opencv-python ({exc})"
            ) from None
        self._open = True
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop.set()

    def close(self) -> None:
        if self._open:
            cv2.destroyWindow(self.title)
            self._open = False
