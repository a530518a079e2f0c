"""The live state of several cameras (glcf_runtime.serve.LiveState) without a server: results of
real frames, scored by the contract model on ONNX Runtime, grouped per camera by their source
name; the totals, each camera's counters, source state, timeline, latest frame and metrics."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from glcf_bench.fixtures.contract_model import frame, write_model
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.errors import ConfigError
from glcf_runtime.frames import Frame
from glcf_runtime.serve import LiveState, model_card
from glcf_runtime.serve.metrics import registry
from tests.glcf_runtime.camera_feed import SyntheticCamera, feed, score


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    with OnnxRuntimeRunner(write_model(tmp_path_factory.mktemp("model")), threads=1) as r:
        yield r


def three_cameras() -> dict[str, SyntheticCamera]:
    """line-1: 20 frames, 4 anomalous; line-2: 12 frames, 3 anomalous, 2 unreadable; dock: 7
    frames, none anomalous."""
    return {
        "line-1": SyntheticCamera("line-1", 0, every=5, count=20),
        "line-2": SyntheticCamera("line-2", 1, every=4, broken=5, count=12),
        "dock": SyntheticCamera("dock", 2, every=100, count=7),
    }


class Recorder:
    """A sink keeping every record, to compare the state's counts with."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def write(self, result) -> None:
        self.records.append(result.record())


class Both:
    def __init__(self, *sinks) -> None:
        self.sinks = sinks

    def write(self, result) -> None:
        for sink in self.sinks:
            sink.write(result)


def fed(runner, cameras: dict) -> tuple[LiveState, list[dict]]:
    state, recorder = LiveState(model_card(runner, runner.threshold), cameras), Recorder()
    assert feed(runner, Both(state, recorder), cameras) == 39
    return state, recorder.records


def metric_values(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_results_are_grouped_per_camera_and_totals_stay(runner) -> None:
    state, records = fed(runner, three_cameras())
    status = state.status()
    cameras = {c["name"]: c for c in status["cameras"]}
    assert list(cameras) == ["line-1", "line-2", "dock"]  # the mapping's order
    expected = {"line-1": (20, 4, {}), "line-2": (10, 3, {"unreadable": 2}), "dock": (7, 0, {})}
    for name, (frames, anomalies, errors) in expected.items():
        c = cameras[name]
        assert (c["frames"], c["anomalies"], c["errors"]) == (frames, anomalies, errors), name
        assert c["errors_total"] == sum(errors.values()) and c["source"] == name
        mine = [r for r in records if r["source"] == name and "score" in r]
        assert c["last_score"] == pytest.approx(mine[-1]["score"])
        assert c["latest_frame"] == mine[-1]["frame"] and c["anomalous"] == mine[-1]["anomalous"]
        assert c["fps"] > 0 and 0 < c["latency_p50_ms"] <= c["latency_p95_ms"]
        assert (c["up"], c["reconnects"], c["failed"]) == (True, 0, None)
    assert (status["frames"], status["anomalies"], status["errors"]) == (37, 7, {"unreadable": 2})
    assert status["errors_total"] == 2 and status["latest_frame"] == 19  # line-1 wrote last
    assert {f["camera"] for f in status["flagged"]} == {"line-1", "line-2"}
    assert status["source"] == {"name": "line-1, line-2, dock", "up": True, "reconnects": 0,
                                "failed": None, "down": []}


def test_each_camera_keeps_a_timeline_of_its_scores(runner) -> None:
    state, records = fed(runner, three_cameras())
    timeline = state.timeline()
    assert timeline["seq"] == 39 and list(timeline["cameras"]) == ["line-1", "line-2", "dock"]
    for name, points in timeline["cameras"].items():
        mine = [r for r in records if r["source"] == name]
        assert [p[1] for p in points] == [r.get("score") for r in mine]  # None: an error
        assert [p[2] for p in points] == [r.get("anomalous") for r in mine]
        assert [p[0] for p in points] == sorted(p[0] for p in points)
    assert list(state.timeline("dock")["cameras"]) == ["dock"]
    assert [r["frame"] for r in state.results(15, camera="line-1")] == [16, 17, 18, 19]


def test_latest_frame_per_camera(runner) -> None:
    state, records = fed(runner, three_cameras())
    seen = {}
    for name in ("line-1", "line-2", "dock"):
        _, record, data = state.latest_jpeg(name)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (240, 320, 3) and record["source"] == name
        assert record == [r for r in records if r["source"] == name and "score" in r][-1]
        seen[name] = image
    assert state.latest_jpeg()[1]["source"] == "line-1"  # the first camera by default
    assert state.latest_jpeg("nowhere") is None
    # the cameras' pictures differ (each its own stripes), so no cached JPEG was mixed up
    assert np.abs(seen["line-1"].astype(int) - seen["dock"]).mean() > 5


def test_metrics_carry_a_camera_label_with_several_cameras(runner) -> None:
    state, _ = fed(runner, three_cameras())
    values = metric_values(generate_latest(registry(state)).decode())
    for c in state.status()["cameras"]:
        label = (("camera", c["name"]),)
        assert values[("glcf_frames_total", label)] == c["frames"]
        assert values[("glcf_anomalies_total", label)] == c["anomalies"]
        assert values[("glcf_latency_seconds_count", label)] == c["frames"]
        assert values[("glcf_latency_seconds_bucket", (*label, ("le", "+Inf")))] == c["frames"]
        assert values[("glcf_last_score", label)] == pytest.approx(c["last_score"])
        assert values[("glcf_source_up", label)] == 1.0
        assert values[("glcf_source_reconnects_total", label)] == 0
        assert values[("glcf_fps", label)] > 0
        errors = values[("glcf_errors_total", (("camera", c["name"]), ("kind", "unreadable")))]
        assert errors == c["errors"].get("unreadable", 0)
    assert ("glcf_frames_total", ()) not in values  # no unlabelled total beside the cameras
    assert values[("glcf_threshold", ())] == 0.5  # one model, one threshold: no camera label


def test_one_source_is_one_camera_as_before(runner) -> None:
    """One source (or a mapping of one camera): the page, status and metrics as before."""
    source = SyntheticCamera("cam0", 3, every=3, count=9)
    for given in (source, {"cam0": source}):
        state = LiveState(model_card(runner, runner.threshold), given)
        feed(runner, state, {"cam0": SyntheticCamera("cam0", 3, every=3, count=9)})
        status = state.status()
        assert [c["name"] for c in status["cameras"]] == ["cam0"]
        assert status["source"] == {"name": "cam0", "up": True, "reconnects": 0, "failed": None}
        values = metric_values(generate_latest(registry(state)).decode())
        assert values[("glcf_frames_total", ())] == 9 and values[("glcf_anomalies_total", ())] == 3
        assert not [k for k in values if dict(k[1]).get("camera")]


def test_one_source_takes_the_name_its_results_carry(runner) -> None:
    """``glcf inspect --source top=cam.avi`` names the results "top", the source "cam.avi": one
    camera, "top", whose source is "cam.avi" (not two, one of them empty)."""
    state = LiveState(model_card(runner, runner.threshold), SyntheticCamera("cam.avi", 0, 3))
    feed(runner, state, {"top": SyntheticCamera("cam.avi", 0, every=3, count=6)})
    status = state.status()
    assert [(c["name"], c["source"], c["frames"]) for c in status["cameras"]] == [
        ("top", "cam.avi", 6)]
    assert status["source"]["name"] == "cam.avi" and state.latest_jpeg("top") is not None
    assert state.latest_jpeg()[1]["source"] == "top"


def test_a_result_of_an_unknown_camera_gets_its_own_entry(runner) -> None:
    state = LiveState(model_card(runner, runner.threshold), {"line-1": SyntheticCamera("line-1", 0, 5)})
    state.write(score(runner, Frame(0, time.time(), frame(True, 96)), "spare"))
    cameras = {c["name"]: c for c in state.status()["cameras"]}
    assert list(cameras) == ["line-1", "spare"]
    assert (cameras["line-1"]["frames"], cameras["spare"]["frames"]) == (0, 1)
    assert cameras["spare"]["anomalies"] == 1 and cameras["spare"]["source"] is None
    assert state.latest_jpeg() is None  # the first camera (line-1) has no frame yet
    assert state.latest_jpeg("spare")[1]["source"] == "spare"


def test_a_failed_camera_is_down_and_the_others_stay_up(runner) -> None:
    cameras = three_cameras()
    state, _ = fed(runner, cameras)
    cameras["dock"].failed = "gave up after 3 attempts to reopen it"  # as LiveSource sets it
    found = {c["name"]: c for c in state.status()["cameras"]}
    assert (found["dock"]["up"], found["dock"]["failed"]) == (False, cameras["dock"].failed)
    assert found["line-1"]["up"] and found["line-2"]["up"]
    source = state.source_state()
    assert source["up"] is False and source["down"] == ["dock"]
    assert source["failed"] == f"dock: {cameras['dock'].failed}"
    values = metric_values(generate_latest(registry(state)).decode())
    assert values[("glcf_source_up", (("camera", "dock"),))] == 0.0
    assert values[("glcf_source_up", (("camera", "line-1"),))] == 1.0
    state.close()
    assert not any(c["up"] for c in state.status()["cameras"])  # the run ended


def test_writes_from_several_threads_are_all_counted(runner) -> None:
    """One writer thread per camera (the runner is shared, so each thread scores first under a
    lock, then writes to the state without it)."""
    state, lock = LiveState(model_card(runner, runner.threshold)), threading.Lock()

    def camera(name: str, seed: int) -> None:
        for f in SyntheticCamera(name, seed, every=4, count=16).iterate():
            with lock:
                result = score(runner, f, name)
            state.write(result)

    threads = [threading.Thread(target=camera, args=(f"cam{i}", i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    status = state.status()
    assert sorted(c["name"] for c in status["cameras"]) == ["cam0", "cam1", "cam2", "cam3"]
    assert all((c["frames"], c["anomalies"]) == (16, 4) for c in status["cameras"])
    assert (status["frames"], status["anomalies"], status["seq"]) == (64, 16, 64)


def test_camera_names_are_checked(runner) -> None:
    card = model_card(runner, runner.threshold)
    with pytest.raises(ConfigError, match="at least one camera"):
        LiveState(card, {})
    with pytest.raises(ConfigError, match="non-empty name"):
        LiveState(card, {"": SyntheticCamera("x", 0, 5)})
