"""FLOP counting on hand-built graphs with known FLOPs, and against PyTorch's own counter."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from glcf_bench.flops import count_flops, scope_of

FLOAT = TensorProto.FLOAT


def _model(
    nodes: list[onnx.NodeProto], inputs: list, outputs: list, weights: dict | None = None
) -> onnx.ModelProto:
    init = [numpy_helper.from_array(v, k) for k, v in (weights or {}).items()]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _weights(*shape: int) -> torch.Tensor:
    return torch.ones(shape).numpy()


def test_matmul_with_dynamic_batch() -> None:
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 3, 4])
    y = helper.make_tensor_value_info("y", FLOAT, ["batch", 3, 5])
    model = _model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="/phi_l/fc/MatMul")],
        [x],
        [y],
        {"w": _weights(4, 5)},
    )
    one = count_flops(model)
    assert one.total == 2 * 3 * 5 * 4 and one.by_op == {"MatMul": 120}
    assert one.by_scope == {"/phi_l/": 120} and one.unknown == ()
    eight = count_flops(model, batch=8)
    assert eight.total == 8 * 120 and eight.gflop_per_image == pytest.approx(one.gflop)


def test_grouped_strided_conv() -> None:
    # x [1, 4, 8, 8], w [6, 4/2, 3, 3], groups 2, stride 2, pad 1 → y [1, 6, 4, 4]
    x = helper.make_tensor_value_info("x", FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", FLOAT, [1, 6, 4, 4])
    conv = helper.make_node(
        "Conv",
        ["x", "w", "b"],
        ["y"],
        name="/scorer/Conv",
        group=2,
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        kernel_shape=[3, 3],
    )
    model = _model([conv], [x], [y], {"w": _weights(6, 2, 3, 3), "b": _weights(6)})
    report = count_flops(model)
    assert report.total == 2 * (6 * 4 * 4) * (2 * 3 * 3)  # bias additions are not counted
    assert report.by_scope == {"/scorer/": report.total}


def test_conv_transpose() -> None:
    # x [1, 4, 5, 5], w [C_in 4, C_out 3, 3, 3], stride 2 → every input element meets 3·3·3 weights
    x = helper.make_tensor_value_info("x", FLOAT, [1, 4, 5, 5])
    y = helper.make_tensor_value_info("y", FLOAT, [1, 3, 11, 11])
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])
    report = count_flops(_model([node], [x], [y], {"w": _weights(4, 3, 3, 3)}))
    assert report.total == 2 * (4 * 5 * 5) * (3 * 3 * 3)
    assert report.by_scope == {"(root)": report.total}


@pytest.mark.parametrize(("trans_a", "trans_b"), [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm(trans_a: int, trans_b: int) -> None:
    m, k, n = 3, 4, 5
    a = helper.make_tensor_value_info("a", FLOAT, [k, m] if trans_a else [m, k])
    y = helper.make_tensor_value_info("y", FLOAT, [m, n])
    gemm = helper.make_node("Gemm", ["a", "w", "c"], ["y"], transA=trans_a, transB=trans_b)
    w = _weights(n, k) if trans_b else _weights(k, n)
    report = count_flops(_model([gemm], [a], [y], {"w": w, "c": _weights(n)}))
    assert report.total == 2 * m * n * k and report.by_op == {"Gemm": 2 * m * n * k}


def test_shape_arithmetic_that_onnx_inference_leaves_unknown() -> None:
    """Reshape to [B, -1, S[2] mod 3] (the exporter's window-padding arithmetic uses Mod)."""
    x = helper.make_tensor_value_info("x", FLOAT, ["batch", 6, 4])
    y = helper.make_tensor_value_info("y", FLOAT, ["batch", "n", "m"])  # n, m: inferred
    consts = {"zero": [0], "two": [2], "three": 3, "minus1": [-1], "axes": [0]}
    nodes = [
        helper.make_node(
            "Constant",
            [],
            [k],
            value=numpy_helper.from_array(torch.tensor(v, dtype=torch.int64).numpy(), k),
        )
        for k, v in consts.items()
    ]
    nodes += [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"]),
        helper.make_node("Gather", ["s", "two"], ["c"]),
        helper.make_node("Mod", ["c", "three"], ["k"]),  # 4 mod 3 = 1
        helper.make_node("Concat", ["b", "minus1", "k"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"]),  # [B, 24, 1]
        helper.make_node("MatMul", ["r", "w"], ["y"], name="/bottleneck/MatMul"),
    ]
    model = _model(nodes, [x], [y], {"w": _weights(1, 7)})
    report = count_flops(model, batch=2)
    assert report.unknown == ()
    assert report.total == 2 * (2 * 24 * 7) * 1


class _Attention(nn.Module):
    """Patch conv, q/k/v projections and attention matmuls: the op mix of the GLCF graph."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 16, kernel_size=4, stride=4)
        self.qkv = nn.Linear(16, 48)
        self.proj = nn.Linear(16, 16)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.embed(image).flatten(2).transpose(1, 2)  # [B, 16 tokens, 16]
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        attn = (q @ k.transpose(1, 2)).softmax(-1)
        return self.proj(attn @ v)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter, chosen on purpose
def test_agrees_with_torch_flop_counter(tmp_path: Path) -> None:
    module = _Attention().eval()
    dummy = torch.zeros(2, 3, 16, 16)
    path = tmp_path / "attn.onnx"
    torch.onnx.export(
        module,
        (dummy,),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        dynamic_axes={"image": {0: "batch"}},
    )
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.zeros(3, 3, 16, 16))
    report = count_flops(onnx.load(str(path)), batch=3)
    assert report.unknown == ()
    assert report.total == counter.get_total_flops()


def test_scope_of() -> None:
    assert scope_of("/phi_l/stage1/blocks/blocks.0/attn/MatMul") == "/phi_l/"
    assert scope_of("/Cast") == "(root)" and scope_of("MatMul_3") == "(root)"
