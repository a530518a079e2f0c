"""Frame health: blank, clipped and frozen frames become error records, never "good" verdicts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
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
from glcf_runtime.health import Health, HealthCheck, HealthConfig
from glcf_runtime.loop import ExitCode, inspect
from glcf_runtime.preprocess import PreprocessSpec, load_preprocessed, preprocess
from glcf_runtime.sinks import JsonlSink
from glcf_runtime.sources import LiveSource, open_source


@pytest.fixture(scope="module")
def std_runner(tmp_path_factory: pytest.TempPathFactory):
    """The contract model labelled with the paper's ``std`` rule (its graph scores a grey frame 0)."""
    meta = contract_metadata(score_rule="std", threshold=0.05)
    with OnnxRuntimeRunner(write_model(tmp_path_factory.mktemp("model"), meta), threads=1) as r:
        yield r


def _blank_frames(folder: Path) -> Path:
    """Real PNGs of what a dead camera sends: white, grey, black, a covered lens, a blown exposure."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    covered = cv2.resize((20 + rng.normal(0, 3, (720, 1280, 3))).clip(0, 255).astype(np.uint8),
                         (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    blown = np.full((SIZE, SIZE, 3), 255, np.uint8)
    blown[:2] = 100  # a sliver of detail: not constant, but clipped
    frames = {"a_white": np.full((SIZE, SIZE, 3), 255, np.uint8),
              "b_grey": np.full((SIZE, SIZE, 3), 128, np.uint8),
              "c_black": np.zeros((SIZE, SIZE, 3), np.uint8),
              "d_covered": covered, "e_blown": blown}
    for name, image in frames.items():
        cv2.imwrite(str(folder / f"{name}.png"), image)
    return folder


def test_blank_frames_are_unhealthy_records_not_good_verdicts(std_runner, tmp_path: Path) -> None:
    frames = _blank_frames(tmp_path / "blank")
    jsonl = tmp_path / "r.jsonl"
    with open_source(str(frames)) as source:
        summary = inspect(std_runner, source, sinks=[JsonlSink(jsonl)])
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r.get("health") for r in records] == ["clipped", "flat", "clipped", "flat", "clipped"]
    assert all("anomalous" not in r and "error" in r for r in records)
    assert (summary.frames, summary.errors, summary.unhealthy) == (0, 5, 5)
    assert summary.exit_code == ExitCode.FRAME_ERRORS
    with open_source(str(frames)) as source:  # the check off: the grey frame passes as good
        off = inspect(std_runner, source, health=HealthConfig(enabled=False))
    assert (off.frames, off.exit_code) == (5, ExitCode.SCORED) and off.anomalies < 5


def test_thresholds_are_configurable(std_runner, tmp_path: Path) -> None:
    frames = _blank_frames(tmp_path / "blank")
    lenient = HealthConfig(min_std=0.0, max_clipped=1.0)
    with open_source(str(frames)) as source:
        summary = inspect(std_runner, source, health=lenient)
    assert (summary.frames, summary.unhealthy) == (5, 0)


def test_synthetic_scenes_and_test_media_are_healthy(synth_root: Path, tmp_path: Path) -> None:
    spec = PreprocessSpec(224, 224)
    check = HealthCheck(HealthConfig(), live=False)
    images = sorted(synth_root.rglob("*.png"))
    assert len(images) > 10
    problems = {p.name: check.check(load_preprocessed(p, spec))
                for p in images if "ground_truth" not in p.parts}
    assert not any(problems.values()), problems
    video = write_video(tmp_path / "clip.avi", [i % 3 == 0 for i in range(20)])
    capture, small = cv2.VideoCapture(str(video)), PreprocessSpec(SIZE, SIZE)
    while (read := capture.read())[0]:
        assert check.check(preprocess(read[1], small)) is None
    for path in write_images(tmp_path / "png", [False, True] * 5):
        assert check.check(load_preprocessed(path, small)) is None


def test_a_frozen_live_stream_is_reported(std_runner, tmp_path: Path) -> None:
    """A real capture (OpenCV reading a video of one repeated frame) behind the live reader."""
    still = tmp_path / "still.avi"
    writer = cv2.VideoWriter(str(still), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (SIZE, SIZE))
    image = write_images(tmp_path / "one", [True])[0]
    for _ in range(12):
        writer.write(cv2.imread(str(image)))
    writer.release()

    def slow_capture() -> cv2.VideoCapture:
        return _Paced(cv2.VideoCapture(str(still)))

    source = LiveSource("camera 7", slow_capture, max_retries=0, on_event=lambda m: None)
    with source:
        summary = inspect(std_runner, source, health=HealthConfig(frozen_frames=4))
    assert summary.unhealthy >= 1 and 1 <= summary.frames <= 3  # at most 3 scored, then frozen
    files = write_video(tmp_path / "same.avi", [False] * 1)
    with open_source(str(files)) as source:  # files are never "frozen"
        assert inspect(std_runner, source, health=HealthConfig(frozen_frames=2)).unhealthy == 0


class _Paced:
    """A capture read at about 50 frames/s, so the loop sees every frame of the still video."""

    def __init__(self, capture: cv2.VideoCapture) -> None:
        self.capture = capture

    def __getattr__(self, name: str):
        return getattr(self.capture, name)

    def read(self):
        time.sleep(0.02)
        return self.capture.read()


def test_the_check_is_cheap() -> None:
    check = HealthCheck(HealthConfig(), live=True)
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    check.check(image)
    start = time.perf_counter()
    for _ in range(200):
        check.check(image)
    per_frame_ms = (time.perf_counter() - start) / 200 * 1000
    assert per_frame_ms < 1.0, per_frame_ms  # a few tens of µs here; the model takes ≥ 10 ms


@pytest.mark.parametrize("kwargs", [dict(min_std=-1.0), dict(min_std=float("nan")),
                                    dict(max_clipped=0.0), dict(frozen_frames=1)])
def test_bad_limits_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="--health-"):
        HealthConfig(**kwargs)


def test_cli_defaults_match_the_library() -> None:
    import inspect as pyinspect

    from glcf_cli.runtime_commands import inspect_command

    params = pyinspect.signature(inspect_command).parameters
    defaults = HealthConfig()
    assert params["health_min_std"].default == defaults.min_std
    assert params["health_max_clipped"].default == defaults.max_clipped
    assert params["health_frozen_frames"].default == defaults.frozen_frames
    assert [h.value for h in Health] == ["flat", "clipped", "frozen"]
