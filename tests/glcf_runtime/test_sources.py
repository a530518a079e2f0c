"""Frame sources: video and folder read in order, error frames, live reconnection, CSI pipeline."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
import time
from collections.abc import Iterator
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
    parse_reconnect,
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
    assert indices == sorted(set(indices))  # newest frames and outage records, none twice
    assert [f.index for f in frames if f.error is None][-1] == 10
    outages = [f for f in frames if f.outage_s is not None]
    assert [f.index for f in outages] == [5, 11] and all(f.image is None for f in outages)
    assert "reconnected after 2 attempt(s)" in outages[0].error
    assert "gave up after 3 attempt(s)" in outages[1].error and outages[1].outage_s > 0.05
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


def _damaged(tmp_path: Path, how: str) -> Path:
    """A 40-frame MJPG AVI written by OpenCV, then damaged with plain file operations."""
    data = write_video(tmp_path / "clip.avi", [False] * 40).read_bytes()
    middle = len(data) // 2
    if how == "truncated":
        data = data[:middle]
    else:  # a run of zeroed bytes in the middle (a bad sector)
        data = data[:middle] + bytes(3000) + data[middle + 3000 :]
    path = tmp_path / f"{how}.avi"
    path.write_bytes(data)
    return path


def test_truncated_video_reports_the_frames_it_lost(tmp_path: Path) -> None:
    with open_source(str(_damaged(tmp_path, "truncated"))) as source:
        frames = list(source)
    good = [f.index for f in frames if f.error is None]
    gap = frames[-1]
    assert good == list(range(len(good))) and 0 < len(good) < 40
    assert (gap.index, gap.lost, gap.image) == (len(good), 40 - len(good), None)
    assert f"ends after {len(good)} of its 40 frames" in gap.error and source.lost == gap.lost


def test_damaged_middle_keeps_true_frame_numbers(tmp_path: Path) -> None:
    with open_source(str(_damaged(tmp_path, "zeroed"))) as source:
        frames = list(source)
    gaps = [f for f in frames if f.error is not None]
    assert gaps and "timestamps jump" in gaps[0].error
    first = gaps[0].index
    after = next(f for f in frames if f.error is None and f.index > first)
    assert after.index == first + gaps[0].lost  # the frames after the gap keep their numbers
    assert sum(g.lost for g in gaps) + sum(f.error is None for f in frames) == 40
    assert [f.index for f in frames] == sorted(f.index for f in frames)


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_intact_videos_lose_nothing(tmp_path: Path, suffix: str) -> None:
    import cv2

    path = tmp_path / f"clip{suffix}"
    codec = {".avi": "MJPG", ".mp4": "mp4v"}[suffix]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 25.0, (SIZE, SIZE))
    for i in range(50):
        writer.write(np.full((SIZE, SIZE, 3), i * 5, np.uint8))
    writer.release()
    with open_source(str(path)) as source:
        frames = list(source)
    assert [f.index for f in frames] == list(range(50)) and source.lost == 0


def test_folder_entries_that_are_not_images_get_records_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    write_images(folder, [False, False, False])  # 000.png 001.png 002.png
    (folder / "000a.png").mkdir()  # a folder named like an image
    (folder / "001a.png").symlink_to("001a.png")  # a link to itself (loop)
    (folder / "001b.png").symlink_to(tmp_path / "gone.png")  # a dangling link
    (folder / "subfolder").mkdir()  # a plain subfolder is not an entry
    with open_source(str(folder)) as source:
        frames = list(source)
    names = [f.path.name for f in frames]
    assert names == ["000.png", "000a.png", "001.png", "001a.png", "001b.png", "002.png"]
    errors = {f.path.name: f.error for f in frames if f.error is not None}
    assert "is a folder" in errors["000a.png"] and "loops" in errors["001a.png"]
    assert "dangling" in errors["001b.png"] and len(errors) == 3


@contextlib.contextmanager
def _http_server(folder: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_finite_video_over_http_is_read_once_in_order(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", [False] * 30)
    with _http_server(tmp_path) as base, open_source(f"{base}/clip.avi") as source:
        frames = list(source.iterate())
    assert not source.live and [f.index for f in frames] == list(range(30))


def test_reconnect_option_parsing() -> None:
    assert parse_reconnect("forever") is None and parse_reconnect("3") == 3
    for bad in ("-1", "many", ""):
        with pytest.raises(ConfigError, match="--reconnect"):
            parse_reconnect(bad)
