"""Frame sources: camera index, video file, image folder, RTSP/HTTP URL, GStreamer pipeline.

Files and folders are read in order and never drop a frame; an unreadable file becomes a frame
with ``error`` set and the iteration goes on. Live sources (camera, URL, pipeline) are read on a
background thread that keeps only the newest frame, so a slow model sees the present rather than
a growing queue; when the stream drops, the thread reconnects with exponential back-off, and
each outage becomes an error record with its duration. A damaged video's lost frames become
error records at their indices (``VideoFileSource``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from glcf_runtime.errors import ConfigError, ImageReadError
from glcf_runtime.preprocess import IMAGE_SUFFIXES, read_image

log = logging.getLogger(__name__)
URL_SCHEMES = re.compile(r"^(rtsps?|https?|rtmp|udp|tcp)://", re.IGNORECASE)


@dataclass(frozen=True)
class Frame:
    """One frame, or the record of one that could not be read.

    Attributes:
        index: position in the file / folder; capture sequence number for live sources (gaps
            are frames dropped because the loop was busy).
        timestamp: Unix time in seconds when the frame was available (decoded).
        image: uint8 BGR ``[H, W, 3]``; None when ``error`` is set.
        path: the image file, for folder sources.
        error: why the frame could not be read (names the file).
        health: why a decoded frame is unusable (``glcf_runtime.health.Health`` value).
        lost: frames this record stands for that were never decoded (a damaged video's gap).
        outage_s: how long a live stream was lost, for a reconnection record.
    """

    index: int
    timestamp: float
    image: np.ndarray | None
    path: Path | None = None
    error: str | None = None
    health: str | None = None
    lost: int = 0
    outage_s: float | None = None


class FrameSource(ABC):
    """Iterable of frames and a context manager; ``iterate(stop)`` ends soon after ``stop`` is set.

    Attributes:
        name: the source as shown in records (URL credentials removed).
        live: True for camera, URL and pipeline sources (frames may be dropped).
        fps: nominal frame rate, when the source knows it.
        failed: why a live source gave up; None while it is fine.
        lost: frames a file source knows it could not deliver (a damaged video).
    """

    live = False

    def __init__(self, name: str, fps: float | None = None) -> None:
        self.name = name
        self.fps = fps
        self.failed: str | None = None
        self.lost = 0  # frames the source knows it could not deliver (a damaged file)

    @abstractmethod
    def iterate(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        """Frames in order until the source ends, fails or ``stop`` is set."""

    def __iter__(self) -> Iterator[Frame]:
        return self.iterate()

    def close(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Release the device or file (idempotent)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def folder_entries(folder: Path) -> list[Path]:
    """What a folder source reads, sorted by name: every entry but hidden ones and subfolders
    without an image suffix (so a folder named ``x.png``, a dangling link or a link loop each get
    an error record instead of vanishing)."""
    entries = []
    for entry in Path(folder).iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and entry.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        entries.append(entry)
    return sorted(entries)


class FolderSource(FrameSource):
    """Image files in the given order; non-image and corrupt files yield error frames."""

    def __init__(self, files: list[Path], name: str) -> None:
        super().__init__(name)
        self.files = files

    def iterate(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            if stop is not None and stop.is_set():
                return
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                yield Frame(
                    index,
                    time.time(),
                    None,
                    file,
                    f"{file} is not an image file (suffixes read: {', '.join(IMAGE_SUFFIXES)})",
                )
                continue
            try:
                image = read_image(file)
            except ImageReadError as exc:
                yield Frame(index, time.time(), None, file, str(exc))
                continue
            yield Frame(index, time.time(), image, file)


class VideoFileSource(FrameSource):
    """Every frame of a video file, in order; frames a damaged file loses are reported.

    Each frame's index comes from its timestamp, so a damaged middle that drops frames leaves an
    error record (``lost`` frames) at the first missing index and the frames after it keep their
    true numbers; a file that ends before the container's frame count (truncated, or frames lost
    where the timestamps do not show it) ends with one such record. ``lost`` counts them all.

    Args:
        path: the video file, or a URL of a finite video (HTTP).
        capture: an already opened capture of ``path``; opened here when None.
        name: for records (a URL without credentials); default ``path``.
    """

    def __init__(self, path: Path | str, capture: Any = None, name: str | None = None) -> None:
        self._capture = capture if capture is not None else cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise ConfigError(
                f"OpenCV cannot open the video {path}; check the file and that "
                "this OpenCV build has FFmpeg"
            )
        super().__init__(name or str(path), self._capture.get(cv2.CAP_PROP_FPS) or None)
        count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count and count > 0 else None

    def _index_of(self, expected: int) -> int:
        """The frame's index from its timestamp; ``expected`` unless the timestamp jumps ahead."""
        if not self.fps:
            return expected
        at = round(self._capture.get(cv2.CAP_PROP_POS_MSEC) * self.fps / 1000.0)
        return at if at > expected else expected

    def _gap(self, first: int, end: int, why: str) -> Frame:
        self.lost += end - first
        span = f"frame {first}" if end - first == 1 else f"frames {first}–{end - 1}"
        return Frame(first, time.time(), None, None,
                     f"{self.name}: {span} lost ({why}); the file is damaged", lost=end - first)

    def iterate(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        index = 0
        while stop is None or not stop.is_set():
            ok, image = self._capture.read()
            if not ok:
                break
            at = self._index_of(index)
            if at > index:
                yield self._gap(index, at, "the timestamps jump over them")
            yield Frame(at, time.time(), image)
            index = at + 1
        else:
            return
        if self.frame_count is not None and index < self.frame_count:
            yield self._gap(index, self.frame_count,
                            f"the file ends after {index} of its {self.frame_count} frames")

    def close(self) -> None:
        self._capture.release()


class LiveSource(FrameSource):
    """A capture read on a background thread that keeps only the newest frame.

    The first open happens here, so a wrong camera index or URL fails at once; after that,
    a dropped stream is reopened with back-off ``initial, 2·initial, …`` capped at ``maximum``.

    Args:
        name: for records and logs.
        open_capture: returns an opened ``cv2.VideoCapture`` (or anything with its
            ``isOpened``, ``read``, ``get`` and ``release``).
        backoff: ``(initial, maximum)`` delay in seconds between reconnection attempts.
        max_retries: give up (``failed`` is set, iteration ends) after this many failed
            attempts in a row; None retries forever. Each outage becomes an error record
            (``outage_s``: how long it lasted) when the stream comes back or the source gives up.
        on_event: called with each reconnection message; default: ``logging`` warning.
    """

    live = True

    def __init__(
        self,
        name: str,
        open_capture: Callable[[], Any],
        backoff: tuple[float, float] = (0.5, 30.0),
        max_retries: int | None = None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        capture = open_capture()
        if capture is None or not capture.isOpened():
            raise ConfigError(
                f"cannot open {name}; check the index, URL or pipeline, and that "
                "nothing else holds the camera"
            )
        super().__init__(name, capture.get(cv2.CAP_PROP_FPS) or None)
        self._open, self._backoff, self._max_retries = open_capture, backoff, max_retries
        self._event = on_event or (lambda message: log.warning("%s", message))
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._events: deque[Frame] = deque()  # outage records, yielded before newer frames
        self._lost_at: float | None = None  # when the stream was lost; None while it runs
        self._attempts = 0  # reconnection attempts since it was lost
        self.reconnects = 0  # times the stream came back after it was lost (read-only)
        self._done = False
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(capture,), daemon=True, name=f"glcf-source-{name}"
        )
        self._thread.start()

    def _read_until_lost(self, capture: Any, sequence: int) -> int:
        """Publish frames until the capture fails or the source closes; return the next index."""
        while not self._closed.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                break
            if self._lost_at is not None:
                sequence = self._outage(sequence, f"reconnected after {self._attempts} attempt(s)")
                self.reconnects += 1
            with self._cond:
                self._latest = Frame(sequence, time.time(), image)
                self._cond.notify_all()
            sequence += 1
        capture.release()
        if self._lost_at is None and not self._closed.is_set():
            self._lost_at = time.time()
        return sequence

    @property
    def connected(self) -> bool:
        """False from the moment the stream is lost until it comes back (or for good)."""
        return self._lost_at is None and not self._done

    def _outage(self, sequence: int, how: str) -> int:
        """Queue the record of the outage that began at ``_lost_at``; return the next index."""
        seconds = time.time() - (self._lost_at or time.time())
        record = Frame(sequence, time.time(), None, None,
                       f"{self.name}: stream lost for {seconds:.1f} s; {how}", outage_s=seconds)
        with self._cond:
            self._events.append(record)
            self._cond.notify_all()
        self._lost_at, self._attempts = None, 0
        return sequence + 1

    def _run(self, capture: Any) -> None:
        sequence = 0
        try:
            while not self._closed.is_set():
                if capture is not None and capture.isOpened():
                    sequence = self._read_until_lost(capture, sequence)
                elif capture is not None:
                    capture.release()
                if self._closed.is_set():
                    break
                self._attempts += 1
                if self._max_retries is not None and self._attempts > self._max_retries:
                    self.failed = (
                        f"{self.name} lost; gave up after {self._max_retries} reconnection attempts"
                    )
                    self._event(self.failed)
                    self._outage(sequence, f"gave up after {self._max_retries} attempt(s)")
                    break
                attempt = self._attempts
                delay = min(self._backoff[1], self._backoff[0] * 2 ** (attempt - 1))
                self._event(f"{self.name} lost; reconnecting in {delay:g} s (attempt {attempt})")
                if self._closed.wait(delay):
                    break
                capture = self._open()
        except Exception as exc:  # a backend error must not end the thread silently
            self.failed = f"{self.name} failed: {exc}"
            self._event(self.failed)
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def iterate(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        """The newest frame each time the loop asks, and each outage's record, in order."""
        last = -1
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda last=last: (
                        self._done
                        or bool(self._events)
                        or (self._latest is not None and self._latest.index > last)
                    ),
                    0.1,
                )
                event = self._events.popleft() if self._events else None
                frame = self._latest
                fresh = frame is not None and frame.index > last
                if event is None and self._done and not fresh:
                    return
            if stop is not None and stop.is_set():
                return
            if event is not None:
                last = max(last, event.index)
                yield event
            elif fresh:
                last = frame.index
                yield frame

    def close(self) -> None:
        """Stop the reader thread; it releases the capture after its current read returns."""
        self._closed.set()
        self._thread.join(timeout=2.0)


def csi_pipeline(
    sensor_id: int = 0, width: int = 1920, height: int = 1080, fps: int = 30, flip: int = 0
) -> str:
    """GStreamer pipeline for a Jetson CSI camera (nvarguscamerasrc), ending in BGR ``appsink``.

    ``flip`` is nvvidconv's flip-method (0: none, 2: rotate 180°). The appsink keeps one buffer
    and drops the rest, so OpenCV always reads the newest frame.
    """
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, "
        f"framerate=(fraction){fps}/1, format=(string)NV12 ! "
        f"nvvidconv flip-method={flip} ! video/x-raw, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=1 max-buffers=1"
    )


def _has_gstreamer() -> bool:
    match = re.search(r"GStreamer:\s*(\w+)", cv2.getBuildInformation())
    return bool(match) and match.group(1).upper() == "YES"


def redact(url: str) -> str:
    """``rtsp://user:pass@host/x`` → ``rtsp://***@host/x`` (for records and logs)."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def parse_reconnect(text: str) -> int | None:
    """``--reconnect``: ``forever`` → None, else a number of attempts >= 0.

    Raises:
        ConfigError: anything else.
    """
    if text.strip().lower() == "forever":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"--reconnect {text!r}: give a number of attempts (0: never) or 'forever'")
    return value


def open_source(
    spec: str,
    max_retries: int | None = None,
    backoff: tuple[float, float] = (0.5, 30.0),
    on_event: Callable[[str], None] | None = None,
) -> FrameSource:
    """A frame source from a command-line string.

    Args:
        spec: camera index (``"0"``), GStreamer pipeline (contains ``!``), ``rtsp://`` /
            ``http(s)://`` URL, image folder, image file or video file. An HTTP URL of a video
            with a frame count is a finite file: read once, in order, like a file.
        max_retries: live sources only, see ``LiveSource``.
        backoff: live sources only, see ``LiveSource``.
        on_event: live sources only, see ``LiveSource``.

    Raises:
        ConfigError: nothing at that path, an empty folder, or a source that cannot be opened.
    """
    live = {"max_retries": max_retries, "backoff": backoff, "on_event": on_event}
    text = spec.strip()
    if text.isdigit():
        return LiveSource(f"camera {text}", lambda: cv2.VideoCapture(int(text)), **live)
    if "!" in text:
        if not _has_gstreamer():
            raise ConfigError(
                "this OpenCV build has no GStreamer (the pip wheels have none); on "
                "Jetson use JetPack's OpenCV (python3-opencv), or give a camera index"
            )
        return LiveSource(
            "gstreamer pipeline", lambda: cv2.VideoCapture(text, cv2.CAP_GSTREAMER), **live
        )
    if URL_SCHEMES.match(text):
        if text.lower().startswith(("http://", "https://")):
            capture = cv2.VideoCapture(text)
            if capture.isOpened() and capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0:
                return VideoFileSource(text, capture, redact(text))  # a finite file: once, in order
            capture.release()
        return LiveSource(redact(text), lambda: cv2.VideoCapture(text), **live)
    path = Path(text).expanduser()
    if path.is_dir():
        files = folder_entries(path)
        if not files:
            raise ConfigError(f"the folder {path} holds no files; give a folder of images")
        return FolderSource(files, str(path))
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return FolderSource([path], str(path))
        return VideoFileSource(path)
    raise ConfigError(
        f"--source {spec!r}: no such file or folder; give a camera index (0), a video "
        "file, an image folder, an rtsp:// or http:// URL, or a GStreamer pipeline"
    )
