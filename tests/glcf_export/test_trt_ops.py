"""TensorRT 10 operator coverage on small generated ONNX graphs (no tensorrt needed)."""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from glcf_export.trt_ops import TABLE_FILE, load_op_table, op_report
from glcf_runtime.errors import ConfigError
from glcf_runtime.metadata import INPUT_NAME, MAP_NAME, SCORE_NAME

ROOT = Path(__file__).resolve().parents[2]


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: tuple[onnx.TensorProto, ...] = (),
    opset: int = 18,
    domains: tuple[tuple[str, int], ...] = (),
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in domains)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=9)


def contract_model(size: int = 16, fp16: bool = False) -> onnx.ModelProto:
    """The deploy contract in miniature: uint8 ``image`` [B, H, W, 3] → ``anomaly_map`` [B, H, W]
    and ``score`` [B]; with ``fp16`` the conv runs in FP16 between explicit Casts (FP32 I/O)."""
    rng = np.random.default_rng(0)
    dtype = np.float16 if fp16 else np.float32
    inits = (
        numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(dtype), "conv_w"),
        numpy_helper.from_array(np.array([1], np.int64), "channel_axis"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "spatial_axes"),
    )
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["pixels"], to=TensorProto.FLOAT, name="to_float"),
        helper.make_node("Transpose", ["pixels"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Mul", ["nchw", "scale"], ["x"], name="rescale"),
    ]
    if fp16:
        nodes.append(
            helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16, name="to_fp16")
        )
    conv_in, conv_out = ("x16", "h16") if fp16 else ("x", "h")
    nodes.append(
        helper.make_node("Conv", [conv_in, "conv_w"], [conv_out], pads=[1] * 4, name="conv")
    )
    nodes.append(helper.make_node("Relu", [conv_out], [conv_out + "r"], name="relu"))
    if fp16:
        nodes.append(
            helper.make_node("Cast", ["h16r"], ["hr"], to=TensorProto.FLOAT, name="to_fp32")
        )
    nodes += [
        helper.make_node("ReduceMean", ["hr", "channel_axis"], [MAP_NAME], keepdims=0, name="map"),
        helper.make_node(
            "ReduceMax", [MAP_NAME, "spatial_axes"], [SCORE_NAME], keepdims=0, name="score"
        ),
    ]
    image = helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["batch", size, size, 3])
    outputs = [
        helper.make_tensor_value_info(MAP_NAME, TensorProto.FLOAT, ["batch", size, size]),
        helper.make_tensor_value_info(SCORE_NAME, TensorProto.FLOAT, ["batch"]),
    ]
    model = make_model(nodes, [image], outputs, inits)
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model: onnx.ModelProto, batch: int = 2, size: int = 16) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(1).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    return session.run(None, {INPUT_NAME: image})


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16-mixed"])
def test_contract_model_passes(fp16: bool) -> None:
    model = contract_model(fp16=fp16)
    report = op_report(model)
    assert report.ok, report.format()
    assert report.counts["Cast"] == (3 if fp16 else 1) and report.counts["Conv"] == 1
    assert list(report.counts) == sorted(report.counts)
    # Cast checks both sides; every other node its data input: all inferable here
    assert (
        report.types_unknown == 0
        and report.types_checked == len(model.graph.node) + report.counts["Cast"]
    )
    anomaly_map, score = _run(model)
    assert anomaly_map.shape == (2, 16, 16) and score.shape == (2,)
    assert anomaly_map.dtype == score.dtype == np.float32


def test_fp16_checked_by_type() -> None:
    """The same graph with the FP16 stretch turned into FP64: only the type check can catch it."""
    model = contract_model(fp16=True)
    for node in model.graph.node:
        if node.name == "to_fp16":
            node.attribute[0].i = TensorProto.DOUBLE
    model.graph.initializer[1].CopyFrom(
        numpy_helper.from_array(
            numpy_helper.to_array(model.graph.initializer[1]).astype(np.float64), "conv_w"
        )
    )
    onnx.checker.check_model(model, full_check=True)  # a valid graph, just not for TensorRT
    report = op_report(model)
    bad = {(u.op, u.tensor) for u in report.unsupported}
    assert ("Conv", "x16") in bad and ("Relu", "h16") in bad and ("Cast", "x16") in bad
    assert all("FP64" in u.reason for u in report.unsupported)
    assert "x16" in report.format() and "FP64" in report.format()


def test_uint8_data_tensor_rejected() -> None:
    """TensorRT takes uint8 only at I/O and in Cast: a Transpose before the Cast is refused."""
    model = contract_model()
    nodes = list(model.graph.node)
    nodes[0] = helper.make_node("Transpose", [INPUT_NAME], ["t"], perm=[0, 3, 1, 2], name="to_nchw")
    nodes[1] = helper.make_node("Cast", ["t"], ["nchw"], to=TensorProto.FLOAT, name="to_float")
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    _run(model)  # ONNX Runtime takes it; TensorRT would not
    report = op_report(model)
    (bad,) = report.unsupported
    assert bad.op == "Transpose" and bad.tensor == INPUT_NAME and "UINT8" in bad.reason


def _col2im() -> onnx.ModelProto:
    inits = (
        numpy_helper.from_array(np.array([4, 4], np.int64), "image_shape"),
        numpy_helper.from_array(np.array([2, 2], np.int64), "block_shape"),
    )
    node = helper.make_node("Col2Im", ["cols", "image_shape", "block_shape"], ["img"], name="fold")
    return make_model(
        [node],
        [helper.make_tensor_value_info("cols", TensorProto.FLOAT, [1, 4, 9])],
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, None)],
        inits,
    )


def _stft() -> onnx.ModelProto:
    step = numpy_helper.from_array(np.array(4, np.int64), "step")
    node = helper.make_node("STFT", ["signal", "step", "", "frame_length"], ["spec"], name="stft")
    frame = numpy_helper.from_array(np.array(8, np.int64), "frame_length")
    return make_model(
        [node],
        [helper.make_tensor_value_info("signal", TensorProto.FLOAT, [1, 64, 1])],
        [helper.make_tensor_value_info("spec", TensorProto.FLOAT, None)],
        (step, frame),
    )


@pytest.mark.parametrize("build, op", [(_col2im, "Col2Im"), (_stft, "STFT")])
def test_unsupported_op_named(build: Callable[[], onnx.ModelProto], op: str) -> None:
    report = op_report(build())
    assert not report.ok
    (bad,) = report.unsupported
    assert bad.op == op and "marked unsupported (N)" in bad.reason
    assert op in report.format() and "NO" in report.format()


def test_op_missing_from_table() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    scale = numpy_helper.from_array(np.ones(8, np.float32), "s")
    rms = helper.make_node("RMSNormalization", ["x", "s"], ["r"], name="rms")
    gelu = helper.make_node("FastGelu", ["r"], ["y"], domain="com.microsoft", name="gelu")
    model = make_model([rms, gelu], [x], [y], (scale,), opset=23, domains=(("com.microsoft", 1),))
    report = op_report(model)
    reasons = {u.op: u.reason for u in report.unsupported}
    assert set(reasons) == {"RMSNormalization", "com.microsoft:FastGelu"}
    assert all("not in the TensorRT 10 table" in r for r in reasons.values())
    assert "plugin" in reasons["com.microsoft:FastGelu"]


def test_header_restrictions() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    axes_in = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("up", "m1", "m2")]
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node(
            "Resize", ["x", "", "scales"], ["up"], antialias=1, mode="linear", name="aa"
        ),
        helper.make_node("ReduceMean", ["x", "axes"], ["m1"], name="dynamic_axes"),
        helper.make_node("Constant", [], ["c_axes"], value_ints=[1], name="const"),
        helper.make_node("ReduceMean", ["x", "c_axes"], ["m2"], name="constant_axes"),
    ]
    report = op_report(make_model(nodes, [x, axes_in], outs, (scales,)))
    by_node = {u.node: u.reason for u in report.unsupported}
    assert set(by_node) == {"aa", "dynamic_axes"}
    assert "antialias" in by_node["aa"] and "'axes'" in by_node["dynamic_axes"]


def test_subgraph_nodes_are_checked() -> None:
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    branch_out = [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)]
    then = helper.make_graph(
        [helper.make_node("Unique", ["x"], ["b"], name="uniq")], "then", [], branch_out
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["b"], name="id")], "else", [], branch_out
    )
    node = helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other, name="if")
    report = op_report(make_model([node], [cond, x], [out]))
    assert report.counts == {"Identity": 1, "If": 1, "Unique": 1}
    assert [u.op for u in report.unsupported] == ["Unique"]


def test_load_op_table(tmp_path: Path) -> None:
    table = load_op_table()
    assert table["Conv"] == (True, frozenset({"FP32", "FP16", "BF16"}))
    assert table["Col2Im"][0] is False and "op" not in table
    custom = tmp_path / "ops.tsv"
    custom.write_text("# comment\nop\tsupported\ttypes\nCast\tY\tFP32,UINT8\n", encoding="utf-8")
    model = contract_model()
    report = op_report(model, load_op_table(custom))
    assert {u.op for u in report.unsupported} == {
        "Transpose",
        "Mul",
        "Conv",
        "Relu",
        "ReduceMean",
        "ReduceMax",
    }
    custom.write_text("Cast\tmaybe\tFP32\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"ops\.tsv:1"):
        load_op_table(custom)


def test_table_is_packaged() -> None:
    assert (resources.files("glcf_export") / "data" / TABLE_FILE).is_file()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # no tomllib on Python 3.10
    section = re.search(
        r"^\[tool\.setuptools\.package-data\]\n(.*?)(?:^\[|\Z)", pyproject, re.S | re.M
    )
    assert section and re.search(r'^glcf_export = \[.*"data/\*\.tsv"', section.group(1), re.M)
