"""``glcf bench --profile``: time per stage from each CPU backend's own profiler, FLOPs and the
peak of the row's precision beside it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from glcf_bench.fixtures.contract_model import contract_metadata
from glcf_bench.flops import count_flops
from glcf_bench.profile import REORDERS, STAGES, openvino_matmul_peaks, peak_key, profile_row
from glcf_runtime.metadata import INPUT_NAME, MAP_NAME, SCORE_NAME

SIZE, CH = 64, 16
PHI, PSI, SCORING, PRE = STAGES["/phi_l/"], STAGES["/psi_l/"], STAGES["/scorer/"], STAGES["(root)"]


def scoped_model(folder: Path) -> Path:
    """The deploy contract with the exporter's scopes and tensor names: a Φ_L convolution, two Ψ_L
    convolutions on its output, and a scorer (squared error, channel mean, max); the input
    conversion unscoped."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name)
               for name, shape in (("w_phi", (CH, 3, 3, 3)), ("w_psi", (CH, CH, 3, 3)),
                                   ("w_psi2", (CH, CH, 3, 3)))]
    phi, psi1, psi = "/phi_l/Conv_output_0", "/psi_l/Conv_output_0", "/psi_l/Conv_1_output_0"
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["x"], to=TensorProto.FLOAT, name="/Cast"),
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2], name="/Transpose"),
        helper.make_node("Conv", ["nchw", "w_phi"], [phi], pads=[1, 1, 1, 1], name="/phi_l/Conv"),
        helper.make_node("Conv", [phi, "w_psi"], [psi1], pads=[1, 1, 1, 1], name="/psi_l/Conv"),
        helper.make_node("Conv", [psi1, "w_psi2"], [psi], pads=[1, 1, 1, 1], name="/psi_l/Conv_1"),
        helper.make_node("Sub", [phi, psi], ["d"], name="/scorer/Sub"),
        helper.make_node("Mul", ["d", "d"], ["sq"], name="/scorer/Mul"),
        helper.make_node("ReduceMean", ["sq"], [MAP_NAME], axes=[1], keepdims=0,
                         name="/scorer/ReduceMean"),
        helper.make_node("ReduceMax", [MAP_NAME], [SCORE_NAME], axes=[1, 2], keepdims=0,
                         name="/scorer/ReduceMax"),
    ]
    graph = helper.make_graph(
        nodes, "scoped", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["batch", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info(MAP_NAME, TensorProto.FLOAT, ["batch", SIZE, SIZE]),
         helper.make_tensor_value_info(SCORE_NAME, TensorProto.FLOAT, ["batch"])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, contract_metadata().to_props())
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    return folder / "model.onnx"


def _check(profile: dict) -> None:
    batch = profile["batch"]
    stages = {s["stage"]: s for s in profile["stages"]}
    assert {PRE, PHI, PSI, SCORING} <= set(stages), stages
    assert set(stages) <= {*STAGES.values(), REORDERS}
    assert all(s["ms"] > 0 for s in stages.values())
    assert sum(s["share"] for s in stages.values()) == pytest.approx(1.0)
    # FLOPs by hand: 2 per multiply-add; the rate and the peak's share follow from them
    assert stages[PHI]["gflop"] == pytest.approx(batch * 2 * SIZE * SIZE * CH * 3 * 9 / 1e9)
    assert stages[PSI]["gflop"] == pytest.approx(batch * 2 * 2 * SIZE * SIZE * CH * CH * 9 / 1e9)
    assert stages[PSI]["gflops"] == pytest.approx(stages[PSI]["gflop"] / (stages[PSI]["ms"] / 1e3))
    assert stages[PSI]["of_peak"] is not None and stages[PSI]["of_peak"] > 0
    assert stages[PRE]["gflop"] is None  # no MatMul or Conv there


def test_onnxruntime_stages_from_its_profiler(tmp_path: Path) -> None:
    path = scoped_model(tmp_path)
    gflop = count_flops(onnx.load(str(path))).to_dict()["by_scope_gflop"]
    profile = profile_row("onnxruntime", path, 1, 2, gflop, {"cpu_fp32": 50.0}, runs=5).to_dict()
    assert (profile["backend"], profile["batch"], profile["peak_key"]) == ("onnxruntime", 2, "cpu_fp32")
    _check(profile)


def test_openvino_stages_from_its_performance_counters(tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    path = scoped_model(tmp_path)
    gflop = count_flops(onnx.load(str(path))).to_dict()["by_scope_gflop"]
    peaks = openvino_matmul_peaks(1, sizes=(256,), repeats=2)
    assert peaks["openvino_fp32"] > 0 and peaks["openvino_int8"] > 0
    profile = profile_row("openvino", path, 1, 1, gflop, peaks, runs=5).to_dict()
    assert profile["peak_key"] == "openvino_fp32"
    _check(profile)


def test_each_row_is_measured_against_its_own_precision() -> None:
    assert [peak_key(m) for m in ("onnxruntime", "onnxruntime-int8", "openvino", "openvino-bf16",
                                  "openvino-int8", "openvino-int8-bf16")] == [
        "cpu_fp32", "cpu_int8", "openvino_fp32", "openvino_bf16", "openvino_int8", "openvino_int8"]


def test_glcf_bench_profile_prints_and_records_the_stage_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from glcf_cli import main

    scoped_model(tmp_path / "export")
    out = tmp_path / "results" / "bench.json"
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", [
        "glcf", "bench", str(tmp_path / "export"), "--backends", "onnxruntime", "--batch", "1",
        "--min-time", "0.1", "--rounds", "1", "--warmup", "1", "--no-loop", "--pairs", "0",
        "--profile", "--json", str(out)])
    with pytest.raises(SystemExit) as done:
        main()
    printed = " ".join(capsys.readouterr().out.split())
    assert done.value.code in (0, None), printed
    assert "time per stage" in printed and PHI in printed and "% of peak" in printed
    (profile,) = json.loads(out.read_text())["profile"]
    assert profile["backend"] == "onnxruntime" and {s["stage"] for s in profile["stages"]} >= {PHI, SCORING}
