"""Where the inspection loop's results go: JSON lines, annotated video, anomaly panels, a window.

Every sink has ``write(result)`` and ``close()``; the loop closes all of them however it ends.
The heat-map overlay of a frame is drawn once and shared by the sinks that show it.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.files import atomic_write_json
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
        camera: the camera's name (the record's ``camera``); None: not recorded.
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
    camera: str | None = None
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
        if self.camera is not None:
            rec["camera"] = self.camera
        if frame.error is not None:
            rec["path"] = None if frame.path is None else str(frame.path)
            rec["error"] = frame.error
            extra = {"health": frame.health, "lost": frame.lost or None, "outage_s": frame.outage_s}
            rec.update((k, round(v, 3) if isinstance(v, float) else v)
                       for k, v in extra.items() if v is not None)
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

    def report(self) -> dict | None:
        """What this sink adds to the run summary, read after ``close`` (None: nothing)."""
        return None


class OutputError(GlcfError):
    """An output that stopped accepting writes mid-run (disk full, device gone)."""


def check_writable(path: Path, option: str, folder: bool = False) -> None:
    """Raise ConfigError unless ``path`` (a file, or a folder when ``folder``) can be written.

    Tries to create a file where the output would go, so read-only mounts and full disks are
    caught before a model loads (``os.access`` says yes to root everywhere). An existing
    character device (``/dev/stdout``) is left to the run.
    """
    if path.exists():
        if folder and not path.is_dir():
            raise ConfigError(f"{option} {path} is a file; give a folder (it is created if missing)")
        if not folder and path.is_dir():
            raise ConfigError(f"{option} {path} is a folder; give a file name inside it")
        if not folder and path.is_char_device():
            return
    where = path if folder else path.parent
    probe = where
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{option} {path}: {probe} is a file, not a folder; choose another place")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".glcf-write-test-")
        try:
            os.write(fd, b"\n")  # an empty file can still be made on a full disk; a byte cannot
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write into {probe} ({exc.strerror or exc}); "
                          "choose a writable folder") from None


def start_summary(path: Path, command: str = "glcf inspect") -> None:
    """Replace a summary file (an earlier run's) with a record that this run has not finished.

    Written atomically, as the final summary is at the end: a run killed where no handler runs
    (SIGKILL, power loss) leaves a file with ``exit_code`` null and ``in_progress`` true, never
    an earlier run's summary that looks like its own.
    """
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record = {
        "in_progress": True, "completed": False, "exit_code": None, "pid": os.getpid(),
        "started": started,
        "reason": f"{command} (pid {os.getpid()}) started at {started} and has not finished: it "
                  "is still running, or it was killed or refused its input before its summary",
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, record)
    except OSError as exc:
        raise ConfigError(f"--summary-json {path}: cannot write it ({exc.strerror or exc}); "
                          "choose a writable file") from None


class JsonlSink(Sink):
    """One JSON object per line, written unbuffered per line; appends to an existing file.

    If the file's last line lacks its newline (a run cut off mid-write), a newline is written
    first, so two records are never glued into one line. A write that fails (disk full) is cut
    back to the last whole record and raises OutputError.
    """

    def __init__(self, target: Path | TextIO) -> None:
        self.name = str(target) if isinstance(target, Path) else "the JSON lines stream"
        self._lock = threading.Lock()  # event records come from other threads (publishing)
        self._raw: io.FileIO | None = None
        self._text: TextIO | None = None
        self._good: int | None = None  # end of the last whole record, for a regular file
        if isinstance(target, Path):
            check_writable(target, "--jsonl")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._raw = open(target, "ab+", buffering=0)  # noqa: SIM115
            size = self._raw.seek(0, os.SEEK_END)
            if target.is_file():
                self._good = size
                if size > 0:
                    self._raw.seek(size - 1)
                    if self._raw.read(1) != b"\n":
                        self._write(b"\n")
        else:
            self._text = target

    def write(self, result: Result) -> None:
        self.write_record(result.record())

    def write_record(self, record: dict) -> None:
        """Append one record (a frame's, or an event such as a publishing outage); thread-safe.
        A record that arrives after ``close`` is dropped here (the caller logs every event)."""
        line = json.dumps(record, allow_nan=False) + "\n"
        with self._lock:
            if self._raw is not None:
                self._write(line.encode("utf-8"))
                return
            if self._text is None:
                return
            try:
                self._text.write(line)
                self._text.flush()
            except OSError as exc:
                raise OutputError(f"cannot write {self.name} ({exc.strerror or exc})") from None

    def _write(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[self._raw.write(view) :]
        except OSError as exc:
            if self._good is not None:
                with contextlib.suppress(OSError):
                    os.truncate(self._raw.fileno(), self._good)  # no half record left behind
            raise OutputError(f"cannot write {self.name} ({exc.strerror or exc}); the records "
                              "before this frame are intact; free space or choose another --jsonl") from None
        if self._good is not None:
            self._good += len(data)

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                self._raw.close()
            self._raw = self._text = None


VIDEO_RESERVE = 1 << 20  # bytes kept free for the container's index written at close


class VideoSink(Sink):
    """Annotated frames into a video (``.avi``: MJPG, ``.mp4``: mp4v); error frames are skipped.

    The writer opens at the first frame with its size; later frames of another size are resized.
    OpenCV's writer reports no write errors, so before each frame the sink checks the free space
    of the video's file system and stops the run (OutputError) while an uncompressed frame and
    the index still fit: the video closes whole and plays up to that frame.
    """

    def __init__(self, path: Path, fps: float | None) -> None:
        if path.exists():
            raise ConfigError(f"{path} exists; remove it or choose another --save-video file")
        if path.suffix.lower() not in VIDEO_CODECS:
            raise ConfigError(f"--save-video {path}: use one of {', '.join(VIDEO_CODECS)}")
        check_writable(path, "--save-video")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.fps = path, fps if fps and fps > 0 else 10.0
        self.frames = 0  # frames written so far
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
                raise OutputError(f"OpenCV cannot write the video {self.path} (is {self.path.parent} "
                                  "writable, with free space?); try a .avi file")
            self._size = size
        if size != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._check_space(image.nbytes)
        self._writer.write(image)
        self.frames += 1

    def _check_space(self, frame_bytes: int) -> None:
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return  # no statistics for this file system: nothing to check against
        free = st.f_bavail * st.f_frsize
        if free < frame_bytes + VIDEO_RESERVE:
            self.close()
            raise OutputError(f"--save-video {self.path}: the disk is nearly full ({free // 1024} KiB "
                              f"left), so the video was closed after {self.frames} frames and plays "
                              "up to there; free space or choose another --save-video")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class AnomalySink(Sink):
    """A side-by-side panel PNG (frame | heat map, verdict banner) per anomalous frame.

    Files are named ``<run start>_<frame index>[_<image name>].png``, so runs never overwrite
    each other's panels; with ``by_camera`` (several cameras, each numbering its own frames)
    ``<run start>_<camera>_<frame index>[_<image name>].png``.
    """

    def __init__(self, folder: Path, by_camera: bool = False) -> None:
        check_writable(folder, "--save-anomalies", folder=True)
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._prefix = time.strftime("%Y%m%d-%H%M%S")
        self.by_camera = by_camera
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
        camera = f"_{safe_name(result.camera)}" if self.by_camera and result.camera else ""
        file = self.folder / f"{self._prefix}{camera}_{result.frame.index:06d}{stem}.png"
        try:
            written = cv2.imwrite(str(file), image)
        except cv2.error:
            written = False
        if not written:
            raise OutputError(f"cannot write {file}; check the folder and free space")
        self.written.append(file)


def safe_name(name: str) -> str:
    """``name`` with every character but letters, digits, ``.``, ``-`` and ``_`` as ``_`` (for
    file names)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


class WindowSink(Sink):
    """Shows annotated frames in an OpenCV window (one per camera with ``by_camera``); ``q`` or
    Esc sets ``stop``."""

    def __init__(self, stop: threading.Event, title: str = "glcf inspect",
                 by_camera: bool = False) -> None:
        self.stop, self.title, self.by_camera = stop, title, by_camera
        self._windows: set[str] = set()

    def write(self, result: Result) -> None:
        if result.frame.error is not None:
            return
        title = f"{self.title}: {result.camera}" if self.by_camera and result.camera else self.title
        try:
            cv2.imshow(title, result.annotated())
        except cv2.error as exc:
            raise GlcfError(
                "this OpenCV cannot open windows (opencv-python-headless?); drop "
                f"--show or install opencv-python ({exc})"
            ) from None
        self._windows.add(title)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop.set()

    def close(self) -> None:
        for title in self._windows:
            cv2.destroyWindow(title)
        self._windows.clear()
