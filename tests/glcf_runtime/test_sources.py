"""Frame sources: video and folder read in order, error frames, live reconnection, CSI pipeline."""

from __future__ import annotations

import contextlib
import functools
import http.server
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from glcf_bench.fixtures.contract_model import SIZE, frame, write_images, write_video
from glcf_bench.fixtures.crafted_images import black_png
from glcf_runtime.errors import ConfigError
from glcf_runtime.frames import Frame
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


CELL = 8  # one 8×8 JPEG block per bit: MJPG keeps each cell plainly black or white


def _numbered_frame(number: int) -> np.ndarray:
    """``frame``'s grey noise with ``number`` spelled in its top two rows of 8×8 cells: bit k
    of the number in row 0, its complement in row 1 (so a garbled code reads as no number)."""
    image = frame(False, SIZE, seed=number)
    for bit in range(SIZE // CELL):
        one = number >> bit & 1
        image[:CELL, bit * CELL : (bit + 1) * CELL] = 255 * one
        image[CELL : 2 * CELL, bit * CELL : (bit + 1) * CELL] = 255 * (1 - one)
    return image


def _number_of(image: np.ndarray) -> int | None:
    """The number ``_numbered_frame`` spelled into ``image``; None where the code is garbled."""
    cells = image[: 2 * CELL].reshape(2, CELL, SIZE // CELL, CELL, 3).mean(axis=(1, 3, 4)) > 128
    if (cells[0] == cells[1]).any():
        return None
    return sum(1 << bit for bit, one in enumerate(cells[0]) if one)


def _video_chunks(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of each frame chunk (``00dc``) in the ``movi`` list of an intact AVI."""
    offset, chunks = data.index(b"movi") + 4, []
    while data[offset : offset + 4] == b"00dc":
        size = struct.unpack_from("<I", data, offset + 4)[0]
        chunks.append((offset, 8 + size + (size & 1)))
        offset += 8 + size + (size & 1)
    return chunks


def _damaged(tmp_path: Path, how: str) -> tuple[Path, range]:
    """A 40-frame MJPG AVI written by OpenCV, each frame spelling its number, then damaged with
    plain file operations; also the byte range the damage hit."""
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0,
                             (SIZE, SIZE))
    for number in range(40):
        writer.write(_numbered_frame(number))
    writer.release()
    data = bytearray((tmp_path / "clip.avi").read_bytes())
    middle, chunks = len(data) // 2, _video_chunks(data)
    hit = range(middle, middle + 3000)
    if how == "truncated":
        data, hit = data[:middle], range(middle, len(data))
    elif how == "zeroed":  # a run of zeroed bytes in the middle (a bad sector)
        data[hit.start : hit.stop] = bytes(len(hit))
    elif how == "garbage":  # a run of random bytes in the middle
        data[hit.start : hit.stop] = np.random.default_rng(7).bytes(len(hit))
    elif how == "movi":  # the movi list's header and frames 0-2: no chunk chain to follow
        hit = range(data.index(b"movi") - 8, chunks[3][0])
        data[hit.start : hit.stop] = bytes(len(hit))
    elif how == "payload":  # frames 14-17: JPEG data zeroed, chunk headers intact
        hit = range(chunks[14][0], chunks[18][0])
        for offset, size in chunks[14:18]:
            data[offset + 8 : offset + size] = bytes(size - 8)
    path = tmp_path / f"{how}.avi"
    path.write_bytes(bytes(data))
    return path, hit


def _check_numbers(frames: list[Frame], chunks: list[tuple[int, int]], hit: range) -> None:
    """Every one of the 40 frames is scored under its true number or counted in one gap record,
    never both; no frame is scored under another's number."""
    scored = {f.index: f.image for f in frames if f.error is None}
    gaps = [f for f in frames if f.error is not None]
    lost = [i for g in gaps for i in range(g.index, g.index + g.lost)]
    assert sorted(lost + list(scored)) == list(range(40)), (sorted(scored), lost)
    for index, image in scored.items():
        offset, size = chunks[index]
        touched = offset < hit.stop and hit.start < offset + size
        number = _number_of(image)  # a frame the damage touched may be garbled, never another
        assert number == index or (touched and number is None), f"frame {number} scored as {index}"
    assert [f.index for f in frames] == sorted({f.index for f in frames})


def test_truncated_video_reports_the_frames_it_lost(tmp_path: Path) -> None:
    path, hit = _damaged(tmp_path, "truncated")
    with open_source(str(path)) as source:
        frames = list(source)
    good = [f.index for f in frames if f.error is None]
    gap = frames[-1]
    assert good == list(range(len(good))) and 0 < len(good) < 40
    assert (gap.index, gap.lost, gap.image) == (len(good), 40 - len(good), None)
    assert f"ends after {len(good)} of its 40 frames" in gap.error and source.lost == gap.lost
    _check_numbers(frames, _video_chunks((tmp_path / "clip.avi").read_bytes()), hit)


@pytest.mark.parametrize("how", ["zeroed", "garbage", "movi", "payload"])
def test_damaged_middle_keeps_true_frame_numbers(tmp_path: Path, how: str) -> None:
    path, hit = _damaged(tmp_path, how)
    with open_source(str(path)) as source:
        frames = list(source)
    chunks = _video_chunks((tmp_path / "clip.avi").read_bytes())
    _check_numbers(frames, chunks, hit)
    untouched = [i for i, (offset, size) in enumerate(chunks)
                 if offset + size <= hit.start or hit.stop <= offset]
    scored = {f.index for f in frames if f.error is None}
    assert set(untouched) <= scored  # the frames after the damage are read, not given up
    assert source.lost == 40 - len(scored) and all("damaged" in f.error for f in frames if f.error)


def test_damaged_middle_of_another_codec_is_lost_to_the_end(tmp_path: Path) -> None:
    """MPEG-4 frames depend on earlier ones: past the first damaged chunk none can be placed."""
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"XVID"), 10.0,
                             (SIZE, SIZE))
    for number in range(40):
        writer.write(_numbered_frame(number))
    writer.release()
    data = bytearray((tmp_path / "clip.avi").read_bytes())
    chunks = _video_chunks(data)
    hit = range(chunks[20][0], chunks[25][0])  # frames 20-24, chunk headers and all
    data[hit.start : hit.stop] = bytes(len(hit))
    (tmp_path / "damaged.avi").write_bytes(bytes(data))
    with open_source(str(tmp_path / "damaged.avi")) as source:
        frames = list(source)
    _check_numbers(frames, chunks, hit)
    assert [f.index for f in frames if f.error is None] == list(range(20))
    assert frames[-1].lost == 20 and "cannot be read past it" in frames[-1].error


def _dropped(tmp_path: Path, frames: range) -> Path:
    """The numbered clip with ``frames`` dropped the way AVI records a dropped frame: each one's
    chunk stays in place and in the index with length 0, its old bytes become a JUNK chunk."""
    _damaged(tmp_path, "none")
    data = bytearray((tmp_path / "clip.avi").read_bytes())
    index = data.index(b"idx1") + 8
    for number, (offset, size) in enumerate(_video_chunks(data)):
        if number in frames:
            data[offset + 4 : offset + 16] = struct.pack("<I4sI", 0, b"JUNK", size - 16)
            data[offset + 16 : offset + size] = bytes(size - 16)
            data[index + 16 * number + 12 : index + 16 * number + 16] = bytes(4)
    path = tmp_path / "dropped.avi"
    path.write_bytes(bytes(data))
    return path


def test_dropped_frames_keep_true_frame_numbers(tmp_path: Path) -> None:
    path = _dropped(tmp_path, range(14, 18))
    with open_source(str(path)) as source:
        frames = list(source)
    _check_numbers(frames, _video_chunks((tmp_path / "clip.avi").read_bytes()), range(0))
    gaps = [f for f in frames if f.error is not None]
    assert [(g.index, g.lost) for g in gaps] == [(14, 4)] and source.lost == 4
    assert "frames 14–17 lost" in gaps[0].error


def test_demuxer_timestamps_place_dropped_frames(tmp_path: Path) -> None:
    """Over HTTP the demuxer alone reads the file: its timestamps jump over the empty chunks."""
    _dropped(tmp_path, range(14, 18))
    with _http_server(tmp_path) as base, open_source(f"{base}/dropped.avi") as source:
        frames = list(source.iterate())
    gaps = [f for f in frames if f.error is not None]
    assert [(g.index, g.lost) for g in gaps] == [(14, 4)] and "timestamps jump" in gaps[0].error
    assert all(_number_of(f.image) == f.index for f in frames if f.error is None)


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_intact_videos_lose_nothing(tmp_path: Path, suffix: str) -> None:
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


def test_folder_source_refuses_oversized_images_by_name(tmp_path: Path) -> None:
    write_images(tmp_path, [False, False])
    (tmp_path / "000a_huge.png").write_bytes(black_png(20000, 20000))
    with open_source(str(tmp_path)) as source:
        frames = list(source)
    assert [f.path.name for f in frames] == ["000.png", "000a_huge.png", "001.png"]
    assert [f.error is None for f in frames] == [True, False, True]
    assert "000a_huge.png: it declares 20000×20000 pixels" in frames[1].error
    with open_source(str(tmp_path / "000.png"), max_pixels=SIZE * SIZE - 1) as source:
        assert "--max-pixels" in next(iter(source)).error
    with pytest.raises(ConfigError, match="--max-pixels 0"):
        open_source(str(tmp_path), max_pixels=0)
