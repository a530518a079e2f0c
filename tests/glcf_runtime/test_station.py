"""Several cameras on one runner (glcf_runtime.station): per-camera numbering and endings, batches
across cameras, a camera that ends or gives up early, per-camera thresholds and crops."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from glcf_bench.fixtures.contract_model import write_images, write_model, write_video
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.errors import ConfigError
from glcf_runtime.loop import ExitCode
from glcf_runtime.sinks import JsonlSink, Result, Sink
from glcf_runtime.sources import LiveSource, open_source
from glcf_runtime.station import Camera, check_cameras, inspect_station


class CountingRunner(OnnxRuntimeRunner):
    """The real ONNX Runtime runner, counting its inferences and their sizes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sizes: list[int] = []

    def infer(self, images: np.ndarray):
        self.sizes.append(len(images))
        return super().infer(images)


class BatchOf(Sink):
    """Which inference each camera's scored result came from."""

    def __init__(self, runner: CountingRunner) -> None:
        self.runner, self.cameras = runner, {}

    def write(self, result: Result) -> None:
        if result.frame.error is None:
            self.cameras.setdefault(len(self.runner.sizes), set()).add(result.camera)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    with CountingRunner(write_model(tmp_path_factory.mktemp("model")), threads=1) as r:
        yield r


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _pattern(n: int, every: int) -> list[bool]:
    return [i % every == 1 for i in range(n)]


def test_four_cameras_one_runner_numbered_per_camera_in_mixed_batches(runner, tmp_path) -> None:
    lengths = {"top": 40, "side": 12, "lane3": 25}
    videos = {name: write_video(tmp_path / f"{name}.avi", _pattern(n, 5))
              for name, n in lengths.items()}
    folder = tmp_path / "tray"
    write_images(folder, _pattern(9, 4))
    (folder / "004b.png").write_bytes(b"\x89PNG corrupt")  # an error record, in its place
    jsonl = tmp_path / "r.jsonl"
    runner.sizes.clear()
    batches = BatchOf(runner)
    sources = {name: open_source(str(path)) for name, path in videos.items()}
    sources["tray"] = open_source(str(folder))
    cameras = [Camera(name, source) for name, source in sources.items()]
    summary = inspect_station(runner, cameras, batch=4, sinks=[JsonlSink(jsonl), batches])
    for source in sources.values():
        source.close()
    records = _records(jsonl)
    for name, n in {**lengths, "tray": 10}.items():
        mine = [r for r in records if r["camera"] == name]
        assert [r["frame"] for r in mine] == list(range(n)), name
        assert {r["source"] for r in mine} == {sources[name].name}
        entry = summary.cameras[name]
        assert (entry["frames"], entry["completed"]) == (n - (name == "tray"), True)
    assert summary.cameras["tray"]["errors"] == 1 and summary.cameras["tray"]["exit_code"] == 3
    assert summary.cameras["top"]["exit_code"] == 0 and summary.cameras["top"]["anomalies"] == 8
    assert summary.exit_code == ExitCode.FRAME_ERRORS  # the worst camera's
    assert summary.frames == 40 + 12 + 25 + 9 and summary.errors == 1
    assert max(runner.sizes) <= 4 and sum(runner.sizes) == summary.frames
    assert summary.mean_batch == pytest.approx(summary.frames / len(runner.sizes))
    assert summary.mean_batch > 2  # batches really form across cameras
    mixed = [c for c in batches.cameras.values() if len(c) > 1]
    assert len(mixed) >= 5  # a batch holds frames of several cameras


def test_a_camera_that_ends_early_does_not_stall_the_others(runner, tmp_path) -> None:
    short = write_video(tmp_path / "short.avi", [False] * 3)
    long = write_video(tmp_path / "long.avi", _pattern(80, 9))
    with open_source(str(short)) as a, open_source(str(long)) as b:
        summary = inspect_station(runner, [Camera("a", a), Camera("b", b)], batch=2)
    assert summary.cameras["a"]["frames"] == 3 and summary.cameras["b"]["frames"] == 80
    assert summary.completed and summary.exit_code == ExitCode.SCORED
    assert summary.reason == "source ended"


def test_a_live_camera_that_gives_up_leaves_the_others_running(runner, tmp_path) -> None:
    clip = str(write_video(tmp_path / "clip.avi", [False] * 4))
    targets = iter([clip])
    live = LiveSource("camera 4", lambda: cv2.VideoCapture(next(targets, "missing.avi")),
                      backoff=(0.01, 0.02), max_retries=1, on_event=lambda m: None)
    long = write_video(tmp_path / "long.avi", [False] * 60)
    jsonl = tmp_path / "r.jsonl"
    with live, open_source(str(long)) as files:
        summary = inspect_station(runner, [Camera("dock", live), Camera("belt", files)],
                                  batch=4, sinks=[JsonlSink(jsonl)])
    assert summary.cameras["belt"]["frames"] == 60 and summary.cameras["belt"]["completed"]
    dock = summary.cameras["dock"]
    assert not dock["completed"] and "gave up" in dock["reason"] and dock["exit_code"] == 3
    assert summary.exit_code == ExitCode.FRAME_ERRORS and not summary.completed
    outage = [r for r in _records(jsonl) if "outage_s" in r]
    assert len(outage) == 1 and outage[0]["camera"] == "dock"


def test_threshold_and_crop_per_camera(runner, tmp_path) -> None:
    folder = tmp_path / "frames"
    write_images(folder, [True, False, True, False])  # the white patch: x, y in [16, 32)
    jsonl = tmp_path / "r.jsonl"
    with open_source(str(folder)) as a, open_source(str(folder)) as b, \
            open_source(str(folder)) as c:
        cameras = [Camera("strict", a), Camera("lenient", b, threshold=1.5),
                   Camera("corner", c, roi=(40, 40, 24, 24))]  # a crop without the patch
        summary = inspect_station(runner, cameras, batch=3, sinks=[JsonlSink(jsonl)])
    assert {n: e["anomalies"] for n, e in summary.cameras.items()} == {
        "strict": 2, "lenient": 0, "corner": 0}
    assert summary.cameras["lenient"]["threshold"] == 1.5 and summary.threshold is None
    assert summary.threshold_origin == "per camera (see cameras)"
    assert {r["camera"] for r in _records(jsonl)} == {"strict", "lenient", "corner"}


def test_stop_event_ends_every_camera(runner, tmp_path) -> None:
    stop = threading.Event()

    class StopAfter(Sink):
        def write(self, result: Result) -> None:
            if result.frame.index == 5:
                stop.set()

    videos = [write_video(tmp_path / f"{i}.avi", [False] * 200) for i in range(2)]
    with open_source(str(videos[0])) as a, open_source(str(videos[1])) as b:
        summary = inspect_station(runner, [Camera("a", a), Camera("b", b)], batch=2,
                                  sinks=[StopAfter()], stop_event=stop)
    assert summary.reason == "stopped" and not summary.completed
    assert summary.frames < 100


def test_names_checked(tmp_path) -> None:
    folder = tmp_path / "frames"
    write_images(folder, [False])
    with open_source(str(folder)) as a, open_source(str(folder)) as b:
        with pytest.raises(ConfigError, match="two cameras are named 'top'; give each"):
            check_cameras([Camera("top", a), Camera("top", b)])
        with pytest.raises(ConfigError, match="empty name"):
            check_cameras([Camera(" ", a)])
    with pytest.raises(ConfigError, match="no camera"):
        check_cameras([])
