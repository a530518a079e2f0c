"""Frame sources: video and folder read in order, error frames, live reconnection, CSI pipeline."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from glcf_runtime.errors import ConfigError
from glcf_runtime.sources import (
    FolderSource,
    LiveSource,
    VideoFileSource,
    _has_gstreamer,
    csi_pipeline,
    open_source,
    redact,
)
from tests.glcf_runtime.contract_model import SIZE, write_images, write_video


def test_csi_pipeline() -> None:
    pipeline = csi_pipeline(sensor_id=1, width=1280, height=720, fps=60, flip=2)
    assert pipeline.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM)")
    for part in (
        "width=(int)1280",
        "height=(int)720",
        "framerate=(fraction)60/1",
        "nvvidconv flip-method=2",
        "videoconvert ! video/x-raw, format=(string)BGR",
    ):
        assert part in pipeline
    assert pipeline.endswith("! appsink drop=1 max-buffers=1")
    assert "sensor-id=0" in csi_pipeline() and "width=(int)1920" in csi_pipeline()


def test_video_file_every_frame_in_order(tmp_path: Path) -> None:
    source = open_source(str(write_video(tmp_path / "clip.avi", [False] * 30)))
    assert isinstance(source, VideoFileSource) and not source.live and source.fps == 10.0
    with source:
        frames = list(source)
    assert [f.index for f in frames] == list(range(30))
    assert all(f.image.shape == (SIZE, SIZE, 3) and f.error is None for f in frames)


def test_folder_reports_bad_files_and_goes_on(tmp_path: Path) -> None:
    write_images(tmp_path, [False, True, False])
    (tmp_path / "001b_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    with open_source(str(tmp_path)) as source:
        frames = list(source)
    names = [f.path.name for f in frames]
    assert names == ["000.png", "001.png", "001b_corrupt.png", "002.png", "notes.txt"]
    assert [f.index for f in frames] == list(range(5))
    bad = {f.path.name: f.error for f in frames if f.error}
    assert set(bad) == {"001b_corrupt.png", "notes.txt"}
    assert "001b_corrupt.png" in bad["001b_corrupt.png"] and "not an image" in bad["notes.txt"]
    assert all(f.image is None for f in frames if f.error)


def test_open_source_dispatch_and_errors(tmp_path: Path) -> None:
    image = write_images(tmp_path / "one", [False])[0]
    single = open_source(str(image))
    assert isinstance(single, FolderSource) and len(list(single)) == 1
    with pytest.raises(ConfigError, match="no such file or folder"):
        open_source(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no files"):
        open_source(str(tmp_path / "empty"))
    if not _has_gstreamer():
        with pytest.raises(ConfigError, match="no GStreamer"):
            open_source(csi_pipeline())
    assert redact("rtsp://admin:secret@10.0.0.5:554/live") == "rtsp://***@10.0.0.5:554/live"


class _FakeCapture:
    """A capture that delivers ``frames`` frames, then drops; ``opened`` False: cannot open."""

    def __init__(self, frames: int, opened: bool = True, delay: float = 0.002) -> None:
        self.left, self.opened, self.delay = frames, opened, delay

    def isOpened(self) -> bool:
        return self.opened

    def get(self, prop: int) -> float:
        return 25.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(self.delay)
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def release(self) -> None:
        self.opened = False


def test_live_source_reconnects_with_backoff_then_gives_up() -> None:
    captures = iter([_FakeCapture(5), _FakeCapture(0, opened=False), _FakeCapture(5)])
    events: list[str] = []
    source = LiveSource(
        "camera 9",
        lambda: next(captures, _FakeCapture(0, opened=False)),
        backoff=(0.01, 0.04),
        max_retries=3,
        on_event=events.append,
    )
    assert source.live and source.fps == 25.0
    with source:
        frames = list(source.iterate())
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)) and indices[-1] == 9  # newest frames, none twice
    assert source.failed == "camera 9 lost; gave up after 3 reconnection attempts"
    delays = [e.split("in ")[1].split(" s")[0] for e in events if "reconnecting" in e]
    assert delays == ["0.01", "0.02", "0.01", "0.02", "0.04"]  # back-off resets after frames
    assert events[-1] == source.failed


def test_live_source_keeps_only_the_newest_frame_and_stops() -> None:
    source = LiveSource("url", lambda: _FakeCapture(10_000, delay=0.001))
    stop = threading.Event()
    seen = []
    with source:
        for frame in source.iterate(stop):
            seen.append(frame.index)
            time.sleep(0.02)  # a slow consumer: the reader runs ahead
            if len(seen) == 5:
                stop.set()
    assert len(seen) == 5 and seen[-1] - seen[0] > 4  # frames were dropped, not queued
    assert not source._thread.is_alive()


def test_live_source_that_cannot_open_fails_at_once() -> None:
    with pytest.raises(ConfigError, match="cannot open camera 3"):
        LiveSource("camera 3", lambda: _FakeCapture(0, opened=False))


def test_live_source_error_on_reconnect_marks_it_failed() -> None:
    opened = iter([_FakeCapture(2)])

    def open_capture() -> _FakeCapture:
        capture = next(opened, None)
        if capture is None:
            raise RuntimeError("driver gone")
        return capture

    with LiveSource("camera 5", open_capture, backoff=(0.01, 0.01), on_event=lambda m: None) as s:
        frames = list(s)
    assert frames[-1].index == 1 and s.failed == "camera 5 failed: driver gone"
