"""Frame sources: camera index, video file, image folder, RTSP/HTTP URL, GStreamer pipeline.

Files and folders are read in order and never drop a frame; an unreadable file becomes a frame
with ``error`` set and the iteration goes on. Live sources (camera, URL, pipeline) are read on a
background thread that keeps only the newest frame (``glcf_runtime.live``). A damaged video's
lost frames become error records at their true indices (``VideoFileSource``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from glcf_runtime.avi import AviIndex, read_avi_index
from glcf_runtime.errors import ConfigError, DataError, ImageReadError
from glcf_runtime.frames import Frame, FrameSource
from glcf_runtime.live import LiveSource, parse_reconnect
from glcf_runtime.preprocess import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    check_readable,
    checked_max_pixels,
    list_images,
    read_image,
)

__all__ = [
    "FolderSource",
    "Frame",
    "FrameSource",
    "LiveSource",
    "VideoFileSource",
    "csi_pipeline",
    "image_files",
    "open_source",
    "parse_reconnect",
    "redact",
]
URL_SCHEMES = re.compile(r"^(rtsps?|https?|rtmp|udp|tcp)://", re.IGNORECASE)


class FolderSource(FrameSource):
    """Image files in the given order; non-image and corrupt files yield error frames."""

    def __init__(self, files: list[Path], name: str, max_pixels: int = MAX_PIXELS) -> None:
        super().__init__(name)
        self.files = files
        self.max_pixels = checked_max_pixels(max_pixels)

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
                image = read_image(file, self.max_pixels)
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

    An AVI file's own index (``glcf_runtime.avi``) says where every frame's chunk lies, so the
    demuxer reads only up to the first chunk the index shows damaged: past it, a demuxer that
    resyncs may count on as if the lost frames never existed. MJPG frames from there on, and
    those after a frame the decoder rejects, are decoded from their chunks by the index; another
    codec's frames past the damage are reported lost.

    Args:
        path: the video file, or a URL of a finite video (HTTP).
        capture: an already opened capture of ``path``; opened here when None.
        name: for records (a URL without credentials); default ``path``.
    """

    def __init__(self, path: Path | str, capture: Any = None, name: str | None = None) -> None:
        self._index = read_avi_index(path) if capture is None else None
        self._capture = capture if capture is not None else cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise ConfigError(
                f"OpenCV cannot open the video {path}; check the file and that "
                "this OpenCV build has FFmpeg"
            )
        super().__init__(name or str(path), self._capture.get(cv2.CAP_PROP_FPS) or None)
        self.path = path
        count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count and count > 0 else None
        if self._index is not None:
            self.frame_count = len(self._index.chunks)
        self._t0: float | None = None  # the first frame's timestamp, ms
        self._timestamps_ok: bool | None = None  # False once they contradict the frame count

    def _index_of(self, expected: int) -> int:
        """The frame's index from its timestamp (counted from the first frame's), ``expected``
        unless the timestamp jumps ahead. Timestamps that point past the container's frame count
        (a variable frame rate) are not trusted for the rest of the file."""
        if not self.fps or self._timestamps_ok is False:
            return expected
        msec = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        if self._t0 is None:
            self._t0 = msec
        at = round((msec - self._t0) * self.fps / 1000.0)
        if self.frame_count is not None and at >= self.frame_count:
            self._timestamps_ok = False
            return expected
        return at if at > expected else expected

    def _gap(self, first: int, end: int, why: str) -> Frame:
        self.lost += end - first
        span = f"frame {first}" if end - first == 1 else f"frames {first}–{end - 1}"
        return Frame(first, time.time(), None, None,
                     f"{self.name}: {span} lost ({why}); the file is damaged", lost=end - first)

    def iterate(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        stopped = stop.is_set if stop is not None else (lambda: False)
        index = yield from self._demuxed(stopped)
        if stopped() or self.frame_count is None or index >= self.frame_count:
            return
        if self._index is not None and self._index.mjpeg:
            yield from self._from_chunks(self._index, index, stopped)
        elif self._index is not None and index >= self._index.first_damaged:
            yield self._gap(index, self.frame_count,
                            f"the file's index shows frame {index}'s chunk damaged, and this "
                            "codec cannot be read past it frame by frame")
        else:
            yield self._gap(index, self.frame_count,
                            f"the file ends after {index} of its {self.frame_count} frames")

    def _demuxed(self, stopped: Callable[[], bool]) -> Generator[Frame, None, int]:
        """The frames the demuxer reads, up to the first damaged chunk the index knows of;
        returns the index of the next frame."""
        limit = self._index.first_damaged if self._index is not None else None
        index = 0
        while not stopped() and (limit is None or index < limit):
            ok, image = self._capture.read()
            if not ok:
                break
            at = self._index_of(index)
            if limit is not None and at >= limit:
                break
            if at > index:
                yield self._gap(index, at, "the timestamps jump over them")
            yield Frame(at, time.time(), image)
            index = at + 1
        return index

    def _from_chunks(
        self, index: AviIndex, start: int, stopped: Callable[[], bool]
    ) -> Iterator[Frame]:
        """MJPG frames ``start`` on, each decoded from its chunk; a run of frames that cannot be,
        for one reason, becomes one gap record."""
        run: tuple[int, str] | None = None  # the first frame of a run of lost ones, and why
        try:
            file = open(self.path, "rb")  # noqa: SIM115 (closed below, after the last frame)
        except OSError as exc:
            yield self._gap(start, len(index.chunks), f"the file cannot be opened: {exc.strerror}")
            return
        with file:
            for number in range(start, len(index.chunks)):
                if stopped():
                    return
                image, why = _chunk_image(file, index, number)
                if run is not None and (image is not None or why != run[1]):
                    yield self._gap(run[0], number, run[1])
                    run = None
                if image is not None:
                    yield Frame(number, time.time(), image)
                elif run is None:
                    run = (number, why)
        if run is not None:
            yield self._gap(run[0], len(index.chunks), run[1])

    def close(self) -> None:
        self._capture.release()


def _chunk_image(file: BinaryIO, index: AviIndex, number: int) -> tuple[np.ndarray | None, str]:
    """MJPG frame ``number`` decoded from its chunk, or None and why it cannot be."""
    if number in index.damaged:
        return None, "the file's index points at damaged chunks"
    offset, size = index.chunks[number]
    if size == 0:
        return None, "empty chunks: frames dropped when the file was written"
    try:
        file.seek(offset)
        data = np.frombuffer(file.read(size), np.uint8)
    except OSError as exc:
        return None, f"the disk cannot read their chunks: {exc.strerror}"
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        return None, "JPEG data that cannot be decoded"
    return image, ""


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


def open_source(
    spec: str,
    max_retries: int | None = None,
    backoff: tuple[float, float] = (0.5, 30.0),
    on_event: Callable[[str], None] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> FrameSource:
    """A frame source from a command-line string.

    Args:
        spec: camera index (``"0"``), GStreamer pipeline (contains ``!``), ``rtsp://`` /
            ``http(s)://`` URL, image folder, image file or video file. An HTTP URL of a video
            with a frame count is a finite file: read once, in order, like a file.
        max_retries: live sources only, see ``LiveSource``.
        backoff: live sources only, see ``LiveSource``.
        on_event: live sources only, see ``LiveSource``.
        max_pixels: image files and folders only: larger images become error records
            (``read_image``).

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
        files = list_images(path)
        if not files:
            raise ConfigError(f"the folder {path} holds no files; give a folder of images")
        return FolderSource(files, str(path), max_pixels)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return FolderSource([path], str(path), max_pixels)
        return VideoFileSource(path)
    raise ConfigError(
        f"--source {spec!r}: no such file or folder; give a camera index (0), a video "
        "file, an image folder, an rtsp:// or http:// URL, or a GStreamer pipeline"
    )


def image_files(folder: Path) -> list[Path]:
    """Image files of a folder (by suffix), sorted; DataError if there are none, ImageReadError
    naming a dangling link, a link loop or a folder among them."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; give a folder of images")
    files = [p for p in list_images(folder) if p.suffix.lower() in IMAGE_SUFFIXES]
    check_readable(files)  # dangling links and link loops are named, as inspect names them
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files
