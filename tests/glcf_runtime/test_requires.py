"""One way to import an optional package (``glcf_runtime.requires``), and one contract check of a
graph's inputs and outputs (``glcf_runtime.backends.base.check_io``) behind every runner."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from glcf_bench.fixtures.contract_model import SIZE, contract_metadata, contract_model
from glcf_runtime.backends.base import TensorInfo, check_io
from glcf_runtime.backends.onnxruntime import OnnxRuntimeRunner
from glcf_runtime.metadata import SCORE_NAME, MetadataError
from glcf_runtime.requires import BrokenPackage, MissingPackage, installed, require

ABSENT = "glcf_absent_package"  # a module no environment of this project installs


def test_a_missing_module_gets_one_line_naming_its_extra() -> None:
    assert not installed(ABSENT)
    with pytest.raises(MissingPackage) as err:
        require(ABSENT, "train")
    assert str(err.value) == (
        f"this needs {ABSENT}, which is not installed: pip install 'glcf[train]'")
    assert (err.value.module, err.value.extra) == (ABSENT, "train")
    with pytest.raises(MissingPackage, match=r"^--preset tiny needs glcf_absent_package, which is "
                       r"not installed: pip install 'glcf\[train,export\]' \(or else\)$"):
        require(f"{ABSENT}.sub", "train,export", who="--preset tiny", note=" (or else)")


def test_an_installed_module_that_does_not_import_is_not_called_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "glcf_half_package").mkdir()
    (tmp_path / "glcf_half_package" / "__init__.py").write_text(f"import {ABSENT}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert installed("glcf_half_package")
        with pytest.raises(BrokenPackage) as err:
            require("glcf_half_package", "runtime")
    finally:
        sys.modules.pop("glcf_half_package", None)
    assert "installed but cannot be imported" in str(err.value)
    assert "not installed" not in str(err.value)
    assert err.value.error.name == ABSENT


def test_installed_modules_are_returned() -> None:
    import onnx as expected

    assert require("onnx", "runtime") is expected


def _renamed(model: onnx.ModelProto) -> None:
    """Output ``score`` called ``scores``."""
    model.graph.node[-1].output[0] = "scores"
    model.graph.output[1].name = "scores"


def _retyped(model: onnx.ModelProto) -> None:
    """Output ``score`` in float16."""
    model.graph.node[-1].output[0] = "score32"
    model.graph.node.append(helper.make_node("Cast", ["score32"], [SCORE_NAME],
                                             to=TensorProto.FLOAT16))
    model.graph.output[1].type.tensor_type.elem_type = TensorProto.FLOAT16


def _reshaped(model: onnx.ModelProto) -> None:
    """Output ``score`` as ``[B, 1]``."""
    model.graph.node[-1].output[0] = "score32"
    model.graph.node.append(helper.make_node("Unsqueeze", ["score32", "axis"], [SCORE_NAME]))
    model.graph.initializer.append(helper.make_tensor("axis", TensorProto.INT64, [1], [1]))
    del model.graph.output[1]
    model.graph.output.append(
        helper.make_tensor_value_info(SCORE_NAME, TensorProto.FLOAT, ["batch", 1]))


BROKEN = {
    "name": (_renamed, r"has inputs \['image'\] and outputs \['anomaly_map', 'scores'\]; a GLCF "
             r"artifact has input 'image' and outputs 'anomaly_map', 'score'; re-export it"),
    "dtype": (_retyped, r"output 'score' is float16 \[B\], expected float32 \[B\]; re-export it"),
    "rank": (_reshaped, r"output 'score' is float32 \[B, 1\], expected float32 \[B\]; re-export"),
}


def _open_openvino(path: Path) -> object:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from glcf_runtime.backends.openvino import OpenVinoRunner

    return OpenVinoRunner(path, threads=1, cache=False)


RUNNERS: dict[str, Callable[[Path], object]] = {
    "onnxruntime": lambda path: OnnxRuntimeRunner(path, providers=["cpu"], threads=1),
    "openvino": _open_openvino,
}


@pytest.mark.parametrize("backend", RUNNERS)
@pytest.mark.parametrize("fault", BROKEN)
def test_every_runner_refuses_a_graph_that_breaks_the_contract(
        tmp_path: Path, backend: str, fault: str) -> None:
    change, message = BROKEN[fault]
    model = contract_model(contract_metadata())
    change(model)
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    with pytest.raises(MetadataError, match=message):
        RUNNERS[backend](path)


@pytest.mark.parametrize("backend", RUNNERS)
def test_every_runner_opens_the_contract_and_reports_its_batch(tmp_path: Path, backend: str) -> None:
    for batch, expected in (("batch", None), (2, 2)):
        path = tmp_path / f"model_{batch}.onnx"
        onnx.save(contract_model(contract_metadata(), batch), str(path))
        runner = RUNNERS[backend](path)
        assert runner.max_batch == expected  # type: ignore[attr-defined]
        runner.close()  # type: ignore[attr-defined]


def test_a_backend_that_does_not_report_output_shapes_is_held_to_names_and_types() -> None:
    """TensorRT reports an engine's output shapes only once an input shape is set."""
    image = TensorInfo("image", "uint8", (None, SIZE, SIZE, 3))
    outputs = [TensorInfo("anomaly_map", "float32", None), TensorInfo("score", "float32", None)]
    assert check_io([image], outputs, contract_metadata(), "model.engine", "rebuild") is None
    fixed = TensorInfo("image", "uint8", (4, SIZE, SIZE, 3))
    assert check_io([fixed], outputs, contract_metadata(), "model.engine", "rebuild") == 4
    wrong = TensorInfo("image", "float32", (None, SIZE, SIZE, 3))
    with pytest.raises(MetadataError, match=r"input 'image' is float32 \[B, 64, 64, 3\], "
                       r"expected uint8 \[B, 64, 64, 3\]; rebuild$"):
        check_io([wrong], outputs, contract_metadata(), "model.engine", "rebuild")
    dynamic_size = TensorInfo("image", "uint8", (None, None, SIZE, 3))
    with pytest.raises(MetadataError, match=r"is uint8 \[B, \?, 64, 3\]"):
        check_io([dynamic_size], outputs, contract_metadata(), "model.engine", "rebuild")
