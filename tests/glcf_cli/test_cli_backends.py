"""glcf inspect's --backend auto (the default) prints what it chose and why; --precision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glcf_bench.fixtures.contract_model import write_images, write_model
from glcf_cli import app
from glcf_runtime.artifacts import GATES_FILE, INT8_FILE

pytest.importorskip("openvino", reason="the openvino extra is not installed")
cli = CliRunner()


def test_inspect_prints_the_auto_choice_and_why(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    shutil.copy(write_model(folder), folder / INT8_FILE)  # any valid artifact serves as the INT8 file
    (folder / GATES_FILE).write_text(json.dumps({"openvino-int8": {"passed": True, "figures": {"spearman": 0.997}}}))
    frames = write_images(tmp_path / "frames", [False, True])[0].parent
    result = cli.invoke(app, ["inspect", str(folder), "--source", str(frames), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "--backend auto: openvino on model.int8.onnx, precision fp32" in result.output
    assert "openvino-int8 passed its checks (Spearman 0.9970 vs FP32)" in result.output
    assert "openvino model.int8.onnx on CPU (fp32, 1 threads)" in result.output


def test_precision_is_an_openvino_option(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    write_model(folder)
    frames = write_images(tmp_path / "frames", [False])[0].parent
    result = cli.invoke(app, ["inspect", str(folder), "--source", str(frames), "--backend",
                              "onnxruntime", "--precision", "bf16"])
    assert result.exit_code != 0  # glcf's main() prints the ConfigError as a one-line error
    assert "--backend onnxruntime takes no precision option" in str(result.exception)
