"""``glcf export --int8``: the static QDQ INT8 file, its gates (``gates.json``), and a deliberately
bad calibration set that is refused with the numbers, leaving nothing behind; by default (no
``--int8``) an INT8 file that fails its gate is left out and the export goes on."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import glcf_export.gates as gates_module
from glcf_export.export import ExportOptions, export_run
from glcf_export.gates import (
    AUROC_TOLERANCE,
    NO_NATIVE_BF16,
    SPEARMAN_MIN,
    allowed_change,
    auroc_by_kind,
    gate_inputs,
    gate_lines,
)
from glcf_export.onnx_export import SCORER_SCOPE, ExportError
from glcf_export.quantize import INT8_PRECISION, evenly
from glcf_export.trt_ops import op_report
from glcf_runtime.artifacts import EXPORT_REPORT, GATES_FILE, INT8_FILE
from glcf_runtime.backends import choose_backend, open_runner
from glcf_runtime.compare import spearman
from glcf_runtime.errors import GlcfError
from glcf_runtime.metadata import read_metadata
from glcf_runtime.preprocess import PreprocessSpec
from glcf_train.data.datasets import load_images, read_split

pytestmark = pytest.mark.slow  # three tiny exports, ~30-60 s each on 2 shared cores


@pytest.fixture(scope="module")
def exported(calibrated_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "models"
    export_run(calibrated_run, ExportOptions(out, batch=4, fp16=False, int8=True), log=lambda _: None)
    return out


def test_int8_file_is_symmetric_per_channel_qdq(exported: Path) -> None:
    model = onnx.load(str(exported / INT8_FILE))
    assert read_metadata(model, INT8_FILE).precision == INT8_PRECISION
    assert op_report(model).ok  # QuantizeLinear FP32 and DequantizeLinear INT8: TensorRT 10 parses both
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert dq and all(not inits[n.input[2]].any() for n in dq)  # zero points 0: symmetric
    weights = [n for n in dq if n.input[0] in inits]
    assert all(inits[n.input[0]].dtype == np.int8 for n in dq if n.input[0] in inits)
    per_channel = [n for n in weights if inits[n.input[1]].size > 1]
    assert len(per_channel) == len(weights)  # one scale per output channel of every weight
    consumers = Counter()
    for node in model.graph.node:
        if any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear" for i in node.input):
            consumers[node.op_type] += 1
            assert not node.name.startswith(SCORER_SCOPE), node.name  # the scorer stays FP32
    assert set(consumers) == {"Conv", "MatMul"}, consumers  # LayerNorm, Softmax, Add: FP32
    attention = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] not in inits
                 and producer.get(n.input[1], n).op_type != "DequantizeLinear"]
    assert attention, "the activation-by-activation MatMuls (Q·Kᵀ, P·V) stay FP32"


def test_gates_are_recorded_and_auto_uses_them(exported: Path) -> None:
    gates = json.loads((exported / GATES_FILE).read_text())
    int8 = gates["int8"]
    assert int8["passed"] and int8["figures"]["spearman"] >= SPEARMAN_MIN
    assert int8["figures"]["calibration_images"] == 6  # all of the synthetic run's training images
    assert {"auroc_logical_change", "auroc_structural_change"} <= set(int8["figures"])
    assert all(abs(v) <= AUROC_TOLERANCE for k, v in int8["figures"].items() if k.endswith("_change"))
    assert 0 < int8["figures"]["map_err_rel_range"] < 0.2
    report = json.loads((exported / "export_report.json").read_text())
    assert report["files"][INT8_FILE] > 0 and GATES_FILE in report["files"]
    pytest.importorskip("openvino")
    assert "openvino-int8" in gates and "openvino-bf16" in gates
    choice = choose_backend(exported)
    if gates["openvino-int8"]["passed"]:
        assert (choice.backend, choice.path.name) == ("openvino", INT8_FILE)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_file_runs_and_ranks_like_fp32(exported: Path, synth_root: Path, backend: str) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")
    batch = load_images(read_split(synth_root, "breakfast_tray", "test"), PreprocessSpec(224, 224))
    with open_runner(exported / "model.onnx", "onnxruntime") as fp32:
        ref_maps, ref = (a.copy() for a in fp32.infer(batch))
    with open_runner(exported / INT8_FILE, backend) as runner:
        maps, scores = runner.infer(batch)
    assert maps.shape == ref_maps.shape and np.isfinite(maps).all()
    assert spearman(ref, scores) >= 0.95
    assert np.abs(maps - ref_maps).max() < 0.2 * (ref_maps.max() - ref_maps.min())


def test_bad_calibration_is_refused_and_leaves_nothing(calibrated_run: Path, tmp_path: Path) -> None:
    black = tmp_path / "black"
    black.mkdir()
    for i in range(4):  # a deliberately bad calibration set: every activation range collapses
        cv2.imwrite(str(black / f"{i}.png"), np.zeros((256, 256, 3), np.uint8))
    out = tmp_path / "models"
    with pytest.raises(ExportError, match=r"(?s)INT8 checks failed.*Spearman of scores vs FP32 -?\d\.\d+ < 0\.99"
                       r".*figures: spearman="):
        export_run(calibrated_run, ExportOptions(out, batch=4, fp16=False, int8=True, calib_dir=black),
                   log=lambda _: None)
    assert not out.exists() and not list(tmp_path.glob(".models.staging-*"))
    with pytest.raises(ExportError, match="holds no images"):
        export_run(calibrated_run, ExportOptions(out, fp16=False, int8=True, calib_dir=tmp_path / "none"),
                   log=lambda _: None)


def test_a_failed_int8_gate_leaves_the_int8_file_out_by_default(
        calibrated_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(gates_module, "SPEARMAN_MIN", 1.01)  # no reduced precision can meet this
    monkeypatch.setenv("COLUMNS", "400")  # no wrapped lines
    monkeypatch.setattr(sys, "argv", ["glcf", "export", str(calibrated_run), "--out",
                                      str(tmp_path / "models"), "--batch", "4", "--no-fp16"])
    from glcf_cli import main

    with pytest.raises(SystemExit) as exit_info:
        main()
    printed = capsys.readouterr()
    assert exit_info.value.code == 0, printed.out + printed.err  # the export goes on
    out = tmp_path / "models"
    assert (out / "model.onnx").is_file() and not (out / INT8_FILE).exists()
    assert INT8_FILE not in json.loads((out / EXPORT_REPORT).read_text())["files"]
    gates = json.loads((out / GATES_FILE).read_text())
    assert gates["int8"]["passed"] is False and gates["int8"]["figures"]["spearman"] > 0.9
    assert "Spearman of scores vs FP32" in gates["int8"]["reason"] and "< 1.01" in gates["int8"]["reason"]
    lines = [" ".join(line.split()) for line in printed.out.splitlines()]
    (note,) = [line for line in lines if f"{INT8_FILE} was not written" in line]
    assert "Spearman of scores vs FP32" in note and "--backend auto uses the float files" in note
    (line,) = [line for line in lines if line.startswith("int8:")]  # the gate, printed
    assert line.startswith("int8: failed: Spearman of scores vs FP32") and "map error" in line
    for name in gates:  # one line per gate
        assert sum(line.startswith(f"{name}:") for line in lines) == 1, (name, lines)
    # ONNX Runtime's quantizer's advice to pre-process the (already shape-inferred) graph is not shown
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]


def test_no_training_images_skip_int8_unless_it_is_required(synth_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    for image in (root / "breakfast_tray" / "train" / "good").iterdir():
        image.unlink()  # an empty training split
    frames = np.zeros((2, 224, 224, 3), np.uint8)
    said: list[str] = []
    checks, calib = gate_inputs(root, "breakfast_tray", 224, frames, 256, required=False,
                                log=said.append)
    assert calib is None and len(checks.labelled) > 0
    (line,) = said
    assert line.startswith(f"skipping {INT8_FILE}: no training images of") and "holds no images" in line
    with pytest.raises(GlcfError, match="holds no images"):
        gate_inputs(root, "breakfast_tray", 224, frames, 256, required=True, log=said.append)


def test_gate_lines_name_each_gate_and_say_why() -> None:
    lines = gate_lines({
        "int8": {"passed": True, "figures": {"spearman": 0.9991, "map_err_rel_range": 0.012,
                                             "auroc_logical_change": -0.004}},
        "openvino-bf16": {"passed": False, "figures": {}, "reason": NO_NATIVE_BF16},
        "openvino-int8": {"passed": False, "figures": {"spearman": 0.95},
                          "reason": "openvino-int8: Spearman of scores vs FP32 0.9500 < 0.99"},
    })
    assert lines[0] == ("int8: passed (Spearman 0.9991 vs FP32, map error 1.20% of its range, "
                        "AUROC change -0.0040)")
    assert "has no native BF16" in lines[1] and "--backend auto runs OpenVINO in FP32" in lines[1]
    assert lines[2] == ("openvino-int8: failed: Spearman of scores vs FP32 0.9500 < 0.99 "
                        "(Spearman 0.9500 vs FP32)")


def test_auroc_by_kind_and_even_spread() -> None:
    scores = np.array([0.1, 0.2, 0.9, 0.15, 0.8, 0.05])
    kinds = ("good", "good", "logical", "logical", "structural", "good")
    assert auroc_by_kind(scores, kinds) == {"logical": pytest.approx(5 / 6), "structural": 1.0}
    assert evenly(list(range(10)), 3) == [0, 4, 9]
    assert evenly([1, 2], 5) == [1, 2]


def test_an_auroc_tolerance_allows_at_least_one_swapped_pair() -> None:
    kinds = ("good",) * 12 + ("logical",) * 12 + ("structural",) * 40
    assert allowed_change(0.002, kinds, "logical") == pytest.approx(1 / 144)  # 12 × 12 pairs
    assert allowed_change(0.002, kinds, "structural") == pytest.approx(1 / 480)
    assert allowed_change(0.01, kinds, "structural") == 0.01  # enough images: the tolerance
    assert allowed_change(0.002, ("good", "good"), "logical") == 0.002  # no such kind
    scores = np.r_[np.arange(12.0), np.arange(12.0) + 11.5]  # separated: AUROC 1; one swap flips a pair
    labels = ("good",) * 12 + ("logical",) * 12
    before = auroc_by_kind(scores, labels)["logical"]
    swapped = scores.copy()
    swapped[[11, 12]] = swapped[[12, 11]]  # the highest good and the lowest defect trade places
    change = auroc_by_kind(swapped, labels)["logical"] - before
    assert abs(change) == pytest.approx(allowed_change(0.002, labels, "logical"))
