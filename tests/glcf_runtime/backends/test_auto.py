"""``--backend auto``: the fastest backend and precision that the box has, the folder holds and the
export's checks passed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_model
from glcf_runtime.artifacts import GATES_FILE, INT8_FILE
from glcf_runtime.backends import OnnxRuntimeRunner, OpenVinoRunner, choose_backend, open_runner
from glcf_runtime.backends import openvino as ov_backend
from glcf_runtime.backends.auto import choose_for_folder
from glcf_runtime.errors import ConfigError

NO_TRT = (False, "tensorrt is not installed")
pytest.importorskip("openvino", reason="the openvino extra is not installed")


def _export(folder: Path, gates: dict | None = None, int8: bool = False) -> Path:
    model = write_model(folder)
    if int8:  # the choice reads file names and gates; any valid artifact serves as the INT8 file
        shutil.copy(model, folder / INT8_FILE)
    if gates is not None:
        (folder / GATES_FILE).write_text(json.dumps(gates))
    return folder


def test_int8_first_when_its_gates_passed(tmp_path: Path) -> None:
    folder = _export(tmp_path, {"openvino-int8": {"passed": True, "figures": {"spearman": 0.995}}}, int8=True)
    choice = choose_for_folder(folder, NO_TRT)
    assert (choice.path.name, choice.backend, choice.options) == (INT8_FILE, "openvino", {"precision": "fp32"})
    assert "openvino-int8 passed its checks (Spearman 0.9950 vs FP32)" in choice.reason
    with open_runner(folder, "auto") as runner:
        assert isinstance(runner, OpenVinoRunner) and runner.path.name == INT8_FILE


def test_the_choice_names_the_gate_figures(tmp_path: Path) -> None:
    """auto says why, with the figures of the gate that let the mode through."""
    figures = {"spearman": 0.9991, "map_err_rel_range": 0.0042, "auroc_logical_change": 0.0,
               "auroc_structural_change": -0.0031, "auroc_logical_fp32": 0.97}
    folder = _export(tmp_path, {"openvino-int8": {"passed": True, "figures": figures}}, int8=True)
    reason = choose_for_folder(folder, NO_TRT).reason
    assert ("openvino-int8 passed its checks (Spearman 0.9991 vs FP32, map error 0.42% of its "
            "range, AUROC change -0.0031)") in reason, reason


def test_int8_with_bf16_float_parts_first_on_a_bf16_cpu(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    gates = {"openvino-int8": {"passed": True, "figures": {"spearman": 0.995}},
             "openvino-int8-bf16": {"passed": True, "figures": {"spearman": 0.994}}}
    folder = _export(tmp_path, gates, int8=True)
    monkeypatch.setattr(ov_backend, "native_bf16", lambda core=None: True)
    choice = choose_for_folder(folder, NO_TRT)
    assert (choice.path.name, choice.options) == (INT8_FILE, {"precision": "bf16"})
    monkeypatch.setattr(ov_backend, "native_bf16", lambda core=None: False)
    assert choose_for_folder(folder, NO_TRT).options == {"precision": "fp32"}


def test_failed_or_missing_int8_gates_fall_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ov_backend, "native_bf16", lambda core=None: True)
    gates = {"openvino-int8": {"passed": False, "reason": "Spearman 0.91 < 0.99"},
             "openvino-bf16": {"passed": True, "figures": {"spearman": 0.999}}}
    choice = choose_for_folder(_export(tmp_path / "a", gates, int8=True), NO_TRT)
    assert (choice.path.name, choice.options) == ("model.onnx", {"precision": "bf16"})
    assert "openvino-int8 did not pass its checks: Spearman 0.91 < 0.99" in choice.reason
    choice = choose_for_folder(_export(tmp_path / "b", int8=True), NO_TRT)  # no gates.json
    assert (choice.path.name, choice.options) == ("model.onnx", {"precision": "fp32"})
    assert "no openvino-int8 check recorded" in choice.reason


def test_bf16_only_with_native_bf16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _export(tmp_path, {"openvino-bf16": {"passed": True, "figures": {"spearman": 0.999}}})
    monkeypatch.setattr(ov_backend, "native_bf16", lambda core=None: False)
    choice = choose_for_folder(folder, NO_TRT)
    assert choice.options == {"precision": "fp32"} and "no native BF16" in choice.reason


def test_tensorrt_first_and_onnxruntime_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _export(tmp_path)
    write_model(folder, name="model.fp16.onnx")
    choice = choose_for_folder(folder, (True, "tensorrt and an NVIDIA GPU are present"))
    assert (choice.path, choice.backend) == (folder, "tensorrt")
    monkeypatch.setattr(ov_backend, "openvino_available", lambda: False)
    choice = choose_for_folder(folder, NO_TRT)
    assert (choice.path.name, choice.backend) == ("model.onnx", "onnxruntime")
    assert "openvino is not installed" in choice.reason
    with open_runner(folder, "auto") as runner:
        assert isinstance(runner, OnnxRuntimeRunner)
    # Without OpenVINO, ONNX Runtime runs the INT8 file where the export's own INT8 check passed.
    int8 = _export(tmp_path / "int8", {"int8": {"passed": True, "figures": {"spearman": 0.999}}}, int8=True)
    choice = choose_for_folder(int8, NO_TRT)
    assert (choice.path.name, choice.backend) == (INT8_FILE, "onnxruntime")
    assert "int8 passed its checks" in choice.reason


def test_providers_mean_onnxruntime_and_explicit_backends_are_kept(tmp_path: Path) -> None:
    folder = _export(tmp_path, int8=True)
    with open_runner(folder, "auto", providers=["cpu"], threads=1) as runner:
        assert isinstance(runner, OnnxRuntimeRunner)
    choice = choose_backend(folder / INT8_FILE)  # a named file runs as it is
    assert (choice.path.name, choice.backend) == (INT8_FILE, "openvino")
    assert choose_backend(folder, "onnxruntime").reason == "asked for (--backend onnxruntime)"
    with pytest.raises(ConfigError, match="no model at"):
        choose_backend(tmp_path / "missing")


def test_unreadable_gates_are_named(tmp_path: Path) -> None:
    folder = _export(tmp_path)
    (folder / GATES_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match=f"{GATES_FILE} cannot be read"):
        choose_for_folder(folder, NO_TRT)
