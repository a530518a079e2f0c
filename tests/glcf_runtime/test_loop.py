"""The inspection loop on real files: JSON lines, annotated video, anomaly panels, batching, stop."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import pytest

from glcf_bench.fixtures.contract_model import (
    SIZE,
    contract_metadata,
    write_images,
    write_model,
    write_video,
)
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.errors import ConfigError
from glcf_runtime.loop import ExitCode, inspect
from glcf_runtime.sinks import AnomalySink, JsonlSink, Result, Sink, VideoSink
from glcf_runtime.sources import LiveSource, open_source
from glcf_runtime.threshold import calibrate_threshold

PATTERN = [i % 7 == 3 for i in range(30)]  # anomalous frames 3, 10, 17, 24


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    with OnnxRuntimeRunner(write_model(tmp_path_factory.mktemp("model")), threads=1) as r:
        yield r


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _frame_count(video: Path) -> int:
    capture, count = cv2.VideoCapture(str(video)), 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_video_every_frame_recorded_with_video_and_panels(runner, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", PATTERN)
    jsonl, out_video, panels = tmp_path / "r.jsonl", tmp_path / "out.avi", tmp_path / "anomalies"
    with open_source(str(video)) as source:
        sinks = [JsonlSink(jsonl), VideoSink(out_video, source.fps), AnomalySink(panels)]
        summary = inspect(runner, source, sinks=sinks)
    assert summary.completed and summary.reason == "source ended"
    assert (summary.frames, summary.anomalies, summary.errors) == (30, 4, 0)
    assert summary.threshold == 0.5 and summary.latency_p50_ms <= summary.latency_p95_ms
    records = _records(jsonl)
    assert [r["frame"] for r in records] == list(range(30))
    assert [r["anomalous"] for r in records] == PATTERN
    assert set(records[0]) == {"frame", "source", "timestamp", "score", "anomalous", "latency_ms"}
    assert _frame_count(out_video) == 30
    files = sorted(panels.glob("*.png"))
    assert [int(f.stem.split("_")[1]) for f in files] == [3, 10, 17, 24]
    assert cv2.imread(str(files[0])).shape == (SIZE, 2 * SIZE, 3)


@pytest.mark.parametrize("batch", [1, 4])
def test_folder_with_bad_files_completes_in_order(runner, tmp_path: Path, batch: int) -> None:
    folder = tmp_path / "frames"
    write_images(folder, [False, True, False, False, True, False])
    (folder / "002b.png").write_bytes(b"\x89PNG corrupt")
    (folder / "notes.txt").write_text("hello")
    jsonl = tmp_path / "r.jsonl"
    with open_source(str(folder)) as source:
        summary = inspect(runner, source, batch=batch, sinks=[JsonlSink(jsonl)])
    assert summary.completed and (summary.frames, summary.anomalies, summary.errors) == (6, 2, 2)
    records = _records(jsonl)
    assert [r["frame"] for r in records] == list(range(8))
    errors = [r for r in records if "error" in r]
    assert [Path(r["path"]).name for r in errors] == ["002b.png", "notes.txt"]
    assert (
        set(errors[0]) == {"frame", "source", "path", "error"} and "002b.png" in errors[0]["error"]
    )
    good = [r for r in records if "error" not in r]
    assert [Path(r["path"]).name for r in good][:2] == ["000.png", "001.png"]
    assert [r["anomalous"] for r in good] == [False, True, False, False, True, False]


def test_threshold_override_and_batch_limits(runner, tmp_path: Path) -> None:
    write_images(tmp_path, [True, True])
    with open_source(str(tmp_path)) as source:
        summary = inspect(runner, source, threshold=2.0)
    assert summary.anomalies == 0 and summary.threshold_origin == "--threshold"
    with pytest.raises(ConfigError, match="--batch 0"):
        inspect(runner, open_source(str(tmp_path)), batch=0)


class _StopAfter(Sink):
    def __init__(self, stop: threading.Event, n: int) -> None:
        self.stop, self.n, self.seen, self.closed = stop, n, 0, False

    def write(self, result: Result) -> None:
        self.seen += 1
        if self.seen == self.n:
            self.stop.set()

    def close(self) -> None:
        self.closed = True


def test_stop_event_ends_the_run_and_closes_sinks(runner, tmp_path: Path) -> None:
    stop = threading.Event()
    sink = _StopAfter(stop, 5)
    with open_source(str(write_video(tmp_path / "clip.avi", [False] * 20))) as source:
        summary = inspect(runner, source, sinks=[sink], stop_event=stop)
    assert not summary.completed and summary.reason == "stopped"
    assert summary.frames == sink.seen == 5 and sink.closed


def test_region_of_interest_crops_the_view(tmp_path: Path) -> None:
    meta = contract_metadata(roi=(8, 8, 40, 40))
    write_images(tmp_path / "in", [True])
    with OnnxRuntimeRunner(write_model(tmp_path / "m", meta)) as roi_runner:
        summary = inspect(
            roi_runner, open_source(str(tmp_path / "in")), sinks=[AnomalySink(tmp_path / "out")]
        )
    assert summary.anomalies == 1
    assert cv2.imread(str(next((tmp_path / "out").glob("*.png")))).shape == (40, 80, 3)


def test_frames_that_do_not_fit_the_roi_become_error_records(tmp_path: Path) -> None:
    meta = contract_metadata(roi=(0, 0, 200, 200))
    write_images(tmp_path / "in", [False, False])
    with OnnxRuntimeRunner(write_model(tmp_path / "m", meta)) as roi_runner:
        summary = inspect(roi_runner, open_source(str(tmp_path / "in")))
    assert (summary.frames, summary.errors, summary.completed) == (0, 2, True)


def test_calibrate_threshold_writes_threshold_json_used_next(tmp_path: Path) -> None:
    model = write_model(tmp_path / "model")
    before = model.read_bytes()
    write_images(tmp_path / "good", [False] * 6)
    write_images(tmp_path / "bad", [True] * 3)
    with OnnxRuntimeRunner(model) as r:
        result, file = calibrate_threshold(r, tmp_path / "good", quantile=0.9, margin=0.5, batch=4)
    assert result["rule"] == "normal_quantile" and result["n_normal"] == 6
    assert file == model.parent / "threshold.json" and model.read_bytes() == before
    assert json.loads(file.read_text())["threshold"] == pytest.approx(result["threshold"])
    with OnnxRuntimeRunner(model) as r:
        assert r.threshold.value == pytest.approx(result["threshold"])
        assert r.threshold.value < 0.5  # good frames score ≈ 8/128
        summary = inspect(r, open_source(str(tmp_path / "good")))
        assert "threshold.json" in summary.threshold_origin
        result, _ = calibrate_threshold(r, tmp_path / "good", tmp_path / "bad")
    assert result["rule"] == "f1_optimal" and result["f1"] == 1.0 and result["n_anomalous"] == 3


def test_damaged_video_ends_incomplete_with_the_gap_recorded(runner, tmp_path: Path) -> None:
    data = write_video(tmp_path / "clip.avi", [False] * 40).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])  # a copy that stopped half way
    jsonl = tmp_path / "r.jsonl"
    with open_source(str(cut)) as source:
        summary = inspect(runner, source, sinks=[JsonlSink(jsonl)])
    records = _records(jsonl)
    assert not summary.completed and summary.exit_code == ExitCode.FRAME_ERRORS
    assert summary.frames + summary.lost == 40 and summary.errors == 1
    assert "frame(s) lost" in summary.reason
    assert records[-1]["frame"] == summary.frames and records[-1]["lost"] == summary.lost


@pytest.mark.parametrize(("pattern", "extra", "code"), [
    ([False, True], None, ExitCode.SCORED),  # anomalies are verdicts, not errors
    ([False], "bad.png", ExitCode.FRAME_ERRORS),  # one unreadable file
    ([], "bad.png", ExitCode.FRAME_ERRORS),  # nothing could be read at all
])
def test_exit_codes(runner, tmp_path: Path, pattern: list[bool], extra: str | None,
                    code: ExitCode) -> None:
    folder = tmp_path / "in"
    write_images(folder, pattern)
    if extra:
        (folder / extra).write_bytes(b"not a png")
    with open_source(str(folder)) as source:
        summary = inspect(runner, source)
    assert summary.exit_code == code and summary.to_dict()["exit_code"] == int(code)
    assert json.loads(json.dumps(summary.to_dict()))["completed"] is True


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_threshold_is_refused(runner, tmp_path: Path, value: float) -> None:
    write_images(tmp_path, [True])
    with pytest.raises(ConfigError, match="finite number"):
        inspect(runner, open_source(str(tmp_path)), threshold=value)


def test_stream_outages_are_records_with_their_duration(runner, tmp_path: Path) -> None:
    """Real OpenCV captures behind the live reader: a clip, a camera that is gone, a clip, gone."""
    clip = str(write_video(tmp_path / "clip.avi", [False] * 5))
    targets = iter([clip, str(tmp_path / "missing.avi"), clip])
    source = LiveSource("camera 4", lambda: cv2.VideoCapture(next(targets, "missing.avi")),
                        backoff=(0.01, 0.02), max_retries=2, on_event=lambda m: None)
    jsonl = tmp_path / "r.jsonl"
    with source:
        summary = inspect(runner, source, sinks=[JsonlSink(jsonl)])
    outages = [r for r in _records(jsonl) if "outage_s" in r]
    assert len(outages) == 2 and all(r["outage_s"] >= 0 for r in outages)
    assert "reconnected after 2 attempt(s)" in outages[0]["error"]
    assert "gave up after 2 attempt(s)" in outages[1]["error"]
    assert not summary.completed and summary.exit_code == ExitCode.FRAME_ERRORS
    assert "gave up" in summary.reason
