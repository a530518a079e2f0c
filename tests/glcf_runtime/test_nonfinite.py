"""Scores that are not usable (NaN, ±inf, the float32 limit, a negative std) from real ONNX graphs
run by ONNX Runtime: every such frame is an error record, never a frame "scored" without a
verdict, and a threshold is never calibrated on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from glcf_bench.fixtures.contract_model import SIZE, contract_metadata, write_images
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.errors import ConfigError, DataError
from glcf_runtime.loop import ExitCode, inspect
from glcf_runtime.metadata import INPUT_NAME, MAP_NAME, SCORE_NAME, ArtifactMetadata
from glcf_runtime.sinks import JsonlSink
from glcf_runtime.sources import open_source
from glcf_runtime.threshold import calibrate_threshold

FLOAT32_MAX = float(np.finfo(np.float32).max)
PATTERN = [False, True, False, True, True, False]  # True: a white patch, map maximum ≈ 0.99

# How each graph turns the contract map's maximum ``raw`` (grey frames ≈ 0.03-0.06, a white patch
# ≈ 0.99) into its score: finite for grey frames, unusable for frames with the patch.
TAILS = {
    "nan": ("NaN", [("Sub", ["half", "raw"], ["d"]), ("Sqrt", ["d"], [SCORE_NAME])]),
    "+inf": ("+infinity", [("Mul", ["raw", "hundred"], ["e"]), ("Exp", ["e"], [SCORE_NAME])]),
    "-inf": ("-infinity", [("Mul", ["raw", "hundred"], ["e"]), ("Exp", ["e"], ["p"]),
                           ("Neg", ["p"], [SCORE_NAME])]),
    # OpenVINO returned NaN as -3.4e38, the lowest float32: the same, made by the graph itself
    "clamped": ("float32 limit", [("Sub", ["half", "raw"], ["d"]), ("Sqrt", ["d"], ["s"]),
                                  ("IsNaN", ["s"], ["bad"]),
                                  ("Where", ["bad", "lowest", "s"], [SCORE_NAME])]),
}
NEGATIVE = ("negative", [("Sub", ["raw", "half"], [SCORE_NAME])])  # grey frames < 0, patch 0.49


def unusable_model(folder: Path, tail: str, metadata: ArtifactMetadata | None = None) -> Path:
    """The contract model (DESIGN §4) whose score is ``TAILS[tail]`` of the map's maximum."""
    const = lambda name, value: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=helper.make_tensor(name, TensorProto.FLOAT, [], [value])
    )
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["x"], to=TensorProto.FLOAT),
        const("c128", 128.0), const("half", 0.5), const("hundred", 100.0),
        const("lowest", -FLOAT32_MAX),
        helper.make_node("Sub", ["x", "c128"], ["centred"]),
        helper.make_node("Abs", ["centred"], ["dist"]),
        helper.make_node("Div", ["dist", "c128"], ["scaled"]),
        helper.make_node("ReduceMean", ["scaled"], [MAP_NAME], axes=[-1], keepdims=0),
        helper.make_node("ReduceMax", [MAP_NAME], ["raw"], axes=[1, 2], keepdims=0),
        *(helper.make_node(*node) for node in {**TAILS, "negative": NEGATIVE}[tail][1]),
    ]
    graph = helper.make_graph(
        nodes, "glcf_unusable_scores",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["batch", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info(MAP_NAME, TensorProto.FLOAT, ["batch", SIZE, SIZE]),
         helper.make_tensor_value_info(SCORE_NAME, TensorProto.FLOAT, ["batch"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, (metadata or contract_metadata(threshold=1000.0)).to_props())
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    return folder / "model.onnx"


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("tail", list(TAILS))
@pytest.mark.parametrize("batch", [1, 4])
def test_unusable_scores_are_error_records(tmp_path: Path, tail: str, batch: int) -> None:
    write_images(tmp_path / "in", PATTERN)
    jsonl = tmp_path / "r.jsonl"
    with OnnxRuntimeRunner(unusable_model(tmp_path / "m", tail), threads=1) as runner:
        scores = runner.infer(np.stack([np.full((SIZE, SIZE, 3), 255, np.uint8)]))[1]
        assert not (np.isfinite(scores[0]) and abs(scores[0]) < FLOAT32_MAX)  # the graph's doing
        with open_source(str(tmp_path / "in")) as source:
            summary = inspect(runner, source, batch=batch, sinks=[JsonlSink(jsonl)])
    assert (summary.frames, summary.anomalies, summary.errors) == (3, 0, 3)
    assert summary.exit_code == ExitCode.FRAME_ERRORS and summary.completed
    records = _records(jsonl)
    assert [r["frame"] for r in records] == list(range(6))  # in order, batched or not
    assert ["error" in r for r in records] == PATTERN
    for r in records:
        if "error" in r:
            assert TAILS[tail][0] in r["error"] and "score" not in r and "anomalous" not in r
        else:
            assert np.isfinite(r["score"]) and r["anomalous"] is False


def test_negative_std_score_is_an_error_record(tmp_path: Path) -> None:
    """A std score is never negative: a graph that gives one is broken, and its frame not good."""
    write_images(tmp_path / "in", [False, True])
    meta = contract_metadata(score_rule="std", threshold=0.5)
    with OnnxRuntimeRunner(unusable_model(tmp_path / "m", "negative", meta), threads=1) as runner:
        summary = inspect(runner, open_source(str(tmp_path / "in")),
                          sinks=[JsonlSink(tmp_path / "r.jsonl")])
    first, second = _records(tmp_path / "r.jsonl")
    assert (summary.frames, summary.errors, summary.exit_code) == (1, 1, ExitCode.FRAME_ERRORS)
    assert "negative" in first["error"] and second["score"] == pytest.approx(0.49, abs=0.01)


def test_score_far_below_the_calibrations_range_is_an_error_record(tmp_path: Path) -> None:
    """With the calibration's normal scores recorded, a score far below them is no verdict."""
    write_images(tmp_path / "in", [False, True])
    meta = contract_metadata(score_range=(100.0, 101.0), threshold=100.5)
    with OnnxRuntimeRunner(unusable_model(tmp_path / "m", "nan", meta), threads=1) as runner:
        summary = inspect(runner, open_source(str(tmp_path / "in")),
                          sinks=[JsonlSink(tmp_path / "r.jsonl")])
    records = _records(tmp_path / "r.jsonl")  # grey frame: 0.7, far below 100; patch: NaN
    assert (summary.frames, summary.errors) == (0, 2)
    assert "below the calibration" in records[0]["error"] and "NaN" in records[1]["error"]


@pytest.mark.parametrize("tail", ["nan", "+inf", "clamped"])
def test_threshold_is_never_calibrated_on_unusable_scores(tmp_path: Path, tail: str) -> None:
    model = unusable_model(tmp_path / "m", tail)
    write_images(tmp_path / "good", [False, True, False, False, True])
    with OnnxRuntimeRunner(model, threads=1) as runner, pytest.raises(DataError) as err:
        calibrate_threshold(runner, tmp_path / "good", batch=2)
    message = str(err.value)
    assert "001.png" in message and "004.png" in message and "000.png" not in message
    assert "2 of 5" in message and TAILS[tail][0] in message and "\n" not in message
    assert not (model.parent / "threshold.json").exists()


@pytest.mark.parametrize("batch", [0, -1, -8])
def test_batch_below_one_is_refused_before_anything_runs(tmp_path: Path, batch: int) -> None:
    model = unusable_model(tmp_path / "m", "nan")
    write_images(tmp_path / "good", [False] * 3)
    with OnnxRuntimeRunner(model, threads=1) as runner:
        with pytest.raises(ConfigError, match=f"--batch {batch}"):
            calibrate_threshold(runner, tmp_path / "good", batch=batch)
        with pytest.raises(ConfigError, match=f"--batch {batch}"):
            inspect(runner, open_source(str(tmp_path / "good")), batch=batch)
    assert not (model.parent / "threshold.json").exists()


@pytest.mark.parametrize(("quantile", "margin"), [(2.0, 0.1), (0.3, 0.1), (0.99, -1.0), (0.99, 50.0)])
def test_bad_rule_options_are_refused_before_any_image_is_scored(tmp_path: Path, quantile: float,
                                                                  margin: float) -> None:
    model = unusable_model(tmp_path / "m", "nan")
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "000.png").write_bytes(b"not a png")  # scoring it would fail differently
    with OnnxRuntimeRunner(model, threads=1) as runner, pytest.raises(ConfigError, match=r"--(quantile|margin) "):
        calibrate_threshold(runner, tmp_path / "good", quantile=quantile, margin=margin)
