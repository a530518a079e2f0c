"""Several inference streams on one runner (``Runner.lanes``, ``glcf inspect --streams``): batches
scored at the same time, each camera's verdicts still in its frame order, the same scores as one
stream, a failing lane ending the run with its error; the real OpenVINO and ONNX Runtime runners."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from glcf_bench.fixtures.contract_model import write_model, write_video
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.sinks import JsonlSink
from glcf_runtime.sources import open_source
from glcf_runtime.station import Camera, inspect_station

LENGTHS = {"top": 14, "side": 9, "left": 11, "right": 6}


class Lanes(OnnxRuntimeRunner):
    """The real ONNX Runtime runner with two sessions, whose lanes first meet at a barrier (both
    must be scoring at once, else the barrier breaks) and then take different times per batch,
    so batches finish out of the order they started."""

    def __init__(self, *args, fail_at: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.meet = threading.Barrier(self.streams, timeout=10)
        self.calls, self.fail_at, self.lock = 0, fail_at, threading.Lock()
        self.met = 0

    def lanes(self):
        def wrap(k, infer):
            first = [True]

            def lane(batch: np.ndarray):
                with self.lock:
                    self.calls += 1
                    failing = self.calls == self.fail_at
                if failing:
                    raise GlcfError("lane failed on purpose")
                if first[0]:
                    first[0] = False
                    self.meet.wait()  # BrokenBarrierError unless the other lane scores now too
                    with self.lock:
                        self.met += 1
                time.sleep(0.004 * (k + 1))
                return infer(batch)
            return lane
        return [wrap(k, infer) for k, infer in enumerate(super().lanes())]


def _cameras(tmp_path: Path) -> list[Camera]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cameras = []
    for name, n in LENGTHS.items():
        video = write_video(tmp_path / f"{name}.avi", [i % 4 == 1 for i in range(n)])
        cameras.append(Camera(name, open_source(str(video))))
    return cameras


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _close(cameras: list[Camera]) -> None:
    for camera in cameras:
        camera.source.close()


def test_two_streams_score_at_once_in_frame_order_with_the_same_scores(tmp_path) -> None:
    model = write_model(tmp_path / "model")
    results = {}
    for streams in (1, 2):
        cameras = _cameras(tmp_path / f"v{streams}")
        jsonl = tmp_path / f"s{streams}.jsonl"
        runner = Lanes(model, threads=2, streams=streams) if streams > 1 else \
            OnnxRuntimeRunner(model, threads=2)
        with runner:
            assert runner.streams == streams and len(runner.lanes()) == streams
            summary = inspect_station(runner, cameras, batch=2, sinks=[JsonlSink(jsonl)])
            if streams > 1:
                assert runner.met == 2  # both lanes were scoring at the same time
                assert "2 streams" in runner.describe()
        _close(cameras)
        records = _records(jsonl)
        assert summary.completed and summary.frames == sum(LENGTHS.values())
        for name, n in LENGTHS.items():
            mine = [r for r in records if r["camera"] == name]
            assert [r["frame"] for r in mine] == list(range(n)), name  # each camera in order
        results[streams] = {(r["camera"], r["frame"]): (r["score"], r["anomalous"])
                            for r in records}
    assert results[1] == results[2]
    # the slower lane finishes later than batches started after it: records interleave
    # differently from one stream, while each camera's stay in order (checked above)


def test_a_failing_lane_ends_the_run_with_its_error(tmp_path) -> None:
    model = write_model(tmp_path / "model")
    cameras = _cameras(tmp_path)
    jsonl = tmp_path / "r.jsonl"
    with Lanes(model, threads=2, streams=2, fail_at=5) as runner, \
            pytest.raises(GlcfError, match="lane failed on purpose"):
        inspect_station(runner, cameras, batch=1, sinks=[JsonlSink(jsonl)])
    _close(cameras)
    assert jsonl.is_file() and len(_records(jsonl)) < sum(LENGTHS.values())


def test_streams_options_checked(tmp_path) -> None:
    model = write_model(tmp_path / "model")
    with pytest.raises(ConfigError, match="1 threads cannot run 2 streams"):
        OnnxRuntimeRunner(model, threads=1, streams=2)
    with pytest.raises(ConfigError, match="streams must be a whole number >= 1, got 0"):
        OnnxRuntimeRunner(model, streams=0)
    with OnnxRuntimeRunner(model, threads=2, streams=2) as runner:
        batch = np.full((3, runner.metadata.height, runner.metadata.width, 3), 90, np.uint8)
        one = runner.infer(batch)
        for lane in runner.lanes():
            maps, scores = lane(batch)
            np.testing.assert_array_equal(scores, one[1])
            np.testing.assert_array_equal(maps, one[0])
        with pytest.raises(ConfigError, match="expects"):
            runner.lanes()[1](batch[..., :2])  # a lane checks its batch like infer


def test_openvino_compiles_one_stream_per_lane(tmp_path) -> None:
    pytest.importorskip("openvino")
    from glcf_runtime.backends import OpenVinoRunner

    model = write_model(tmp_path / "model")
    with pytest.raises(ConfigError, match="1 threads cannot run 2 streams"):
        OpenVinoRunner(model, threads=1, streams=2)
    with OpenVinoRunner(model, threads=2, streams=2, cache=False) as runner:
        assert runner.streams == 2 and "2 streams" in runner.describe()
        assert int(runner._compiled.get_property("NUM_STREAMS")) == 2
        batch = np.full((2, runner.metadata.height, runner.metadata.width, 3), 60, np.uint8)
        one = [a.copy() for a in runner.infer(batch)]
        lanes = runner.lanes()
        out: dict[int, tuple] = {}
        threads = [threading.Thread(target=lambda k=k: out.__setitem__(
            k, tuple(a.copy() for a in lanes[k](batch)))) for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for k in range(2):
            np.testing.assert_allclose(out[k][1], one[1], rtol=1e-6)
            np.testing.assert_allclose(out[k][0], one[0], rtol=1e-6, atol=1e-7)
