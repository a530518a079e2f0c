"""Outputs that fail: a full disk, a read-only folder, wrong kinds of path, a JSONL cut mid-line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_images, write_model, write_video
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.errors import ConfigError
from glcf_runtime.loop import ExitCode, inspect
from glcf_runtime.sinks import AnomalySink, JsonlSink, VideoSink, check_writable
from glcf_runtime.sources import open_source
from tests.glcf_runtime.readonly import readonly_folder


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    with OnnxRuntimeRunner(write_model(tmp_path_factory.mktemp("model")), threads=1) as r:
        yield r


def test_full_device_stops_cleanly_with_a_one_line_reason(runner, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", [i % 4 == 1 for i in range(12)])
    panels = AnomalySink(tmp_path / "panels")
    with open_source(str(video)) as source:
        summary = inspect(runner, source, sinks=[panels, JsonlSink(Path("/dev/full"))])
    assert summary.exit_code == ExitCode.OUTPUT_FAILED and not summary.completed
    assert "/dev/full" in summary.reason and "No space left" in summary.reason
    assert "\n" not in summary.reason and summary.frames == 1  # stopped at the first record
    assert len(panels.written) == 0  # frame 0 is good; nothing after it ran


def test_disk_filling_mid_run_leaves_only_whole_records(runner, tmp_path: Path) -> None:
    disk = tmp_path / "small"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a 4 KiB tmpfs here (needs root)")
    try:
        jsonl = disk / "r.jsonl"
        video = write_video(tmp_path / "clip.avi", [False] * 80)
        with open_source(str(video)) as source:
            summary = inspect(runner, source, sinks=[JsonlSink(jsonl)])
        text = jsonl.read_text()
        records = [json.loads(line) for line in text.splitlines()]
        assert summary.exit_code == ExitCode.OUTPUT_FAILED and "No space left" in summary.reason
        assert text.endswith("\n") and 10 < len(records) < 80
        assert [r["frame"] for r in records] == list(range(len(records)))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_appending_after_a_cut_line_does_not_glue_records(runner, tmp_path: Path) -> None:
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text('{"frame": 0}\n{"frame": 1, "sco')  # a run killed mid-write
    write_images(tmp_path / "in", [False, True])
    with open_source(str(tmp_path / "in")) as source:
        inspect(runner, source, sinks=[JsonlSink(jsonl)])
    lines = jsonl.read_text().splitlines()
    assert lines[:2] == ['{"frame": 0}', '{"frame": 1, "sco']  # the user's bytes are kept
    assert [json.loads(line)["frame"] for line in lines[2:]] == [0, 1]


def test_read_only_folder_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with readonly_folder(tmp_path / "ro") as ro:
        with pytest.raises(ConfigError, match=r"--jsonl .*cannot write into .*Read-only"):
            JsonlSink(ro / "r.jsonl")
        with pytest.raises(ConfigError, match=r"--save-video .*cannot write into"):
            VideoSink(ro / "sub" / "a.avi", 10.0)
        with pytest.raises(ConfigError, match=r"--save-anomalies .*cannot write into"):
            AnomalySink(ro / "panels")
        assert list(ro.iterdir()) == []


@pytest.mark.parametrize(("kind", "option", "folder", "message"), [
    ("dir", "--jsonl", False, "is a folder; give a file name"),
    ("file", "--save-anomalies", True, "is a file; give a folder"),
    ("file-parent", "--save-video", False, "is a file, not a folder"),
])
def test_wrong_kind_of_path_is_named(tmp_path: Path, kind: str, option: str, folder: bool,
                                     message: str) -> None:
    target = tmp_path / "out"
    if kind == "dir":
        target.mkdir()
    else:
        target.write_text("mine")
    path = target / "a.avi" if kind == "file-parent" else target
    with pytest.raises(ConfigError, match=message):
        check_writable(path, option, folder=folder)
    assert kind == "dir" or target.read_text() == "mine"


def test_video_on_a_filling_disk_closes_whole_and_stops_the_run(runner, tmp_path: Path) -> None:
    """OpenCV's writer reports no errors: the sink watches the free space itself and stops while
    the video can still be closed, so the file plays up to the last frame written."""
    import cv2

    disk = tmp_path / "small"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a 1.5 MiB tmpfs here (needs root)")
    try:  # ~2.6 KB a frame: 600 frames need more than the 0.35 MiB left above the reserve
        clip = write_video(tmp_path / "clip.avi", [i % 3 == 0 for i in range(600)], size=224)
        sink = VideoSink(disk / "annotated.avi", 10.0)
        with open_source(str(clip)) as source:
            summary = inspect(runner, source, sinks=[sink])
        assert summary.exit_code == ExitCode.OUTPUT_FAILED and not summary.completed
        assert "--save-video" in summary.reason and "nearly full" in summary.reason
        assert 0 < sink.frames < 600 and f"after {sink.frames} frames" in summary.reason
        capture = cv2.VideoCapture(str(disk / "annotated.avi"))
        played = 0
        while capture.read()[0]:
            played += 1
        capture.release()
        assert played == sink.frames
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
