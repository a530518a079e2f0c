"""FLOPs of an ONNX graph, counted from its MatMul, Gemm, Conv and ConvTranspose nodes.

Shapes come from ONNX's own shape inference (no ONNX Runtime) on a copy of the graph whose
dynamic batch is bound to a number, so every reshape that depends on the batch resolves. One
multiply-add is 2 FLOPs; bias additions, normalisation, softmax and element-wise ops are not
counted (they are a few per cent of a transformer's work). Attention's Q·Kᵀ and A·V are MatMuls
and counted as such. Totals are split per op type and per top-level scope, the first component
of the node name (``/phi_l/``, ``/bottleneck/``, ``/phi_g/``, ``/psi_l/``, ``/psi_g/``,
``/scorer/``), which the exporter takes from the deploy module's attribute names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

COUNTED_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")
ROOT_SCOPE = "(root)"  # nodes whose name has no scope, e.g. ``/Cast``
SMALL_TENSOR = 4096  # elements; smaller integer tensors are evaluated to resolve shapes

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class FlopReport:
    """FLOPs of one forward pass at ``batch`` images.

    Attributes:
        batch: the value the dynamic batch dimension was bound to.
        by_op: FLOPs per op type (only op types that occur).
        by_scope: FLOPs per top-level scope, e.g. ``{"/phi_l/": ...}``.
        nodes: nodes counted.
        unknown: counted-op nodes whose shapes stayed unknown; they are not in the totals.
    """

    batch: int
    by_op: dict[str, int]
    by_scope: dict[str, int]
    nodes: int
    unknown: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.by_op.values())

    @property
    def gflop(self) -> float:
        """Total GFLOP of the pass (all ``batch`` images)."""
        return self.total / 1e9

    @property
    def gflop_per_image(self) -> float:
        return self.gflop / self.batch

    def to_dict(self) -> dict:
        return {
            "batch": self.batch,
            "gflop": self.gflop,
            "gflop_per_image": self.gflop_per_image,
            "by_op_gflop": {k: v / 1e9 for k, v in self.by_op.items()},
            "by_scope_gflop": {k: v / 1e9 for k, v in self.by_scope.items()},
            "nodes": self.nodes,
            "unknown": list(self.unknown),
        }


def bind_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy of ``model`` with the symbolic first dimension of its inputs (and every dimension
    of the inputs and outputs with the same name) set to ``batch``, shapes inferred again."""
    bound = onnx.ModelProto()
    bound.CopyFrom(model)
    graph = bound.graph
    weights = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in weights]
    names = {
        v.type.tensor_type.shape.dim[0].dim_param
        for v in inputs
        if v.type.tensor_type.shape.dim and v.type.tensor_type.shape.dim[0].dim_param
    }
    for value in [*inputs, *graph.output]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in names:
                dim.dim_value = batch  # clears dim_param (a oneof)
    del graph.value_info[:]  # shapes the exporter recorded symbolically; inferred afresh
    return onnx.shape_inference.infer_shapes(bound, strict_mode=False, data_prop=True)


def known_shapes(model: onnx.ModelProto) -> dict[str, Shape]:
    """Tensor name → shape (None for an unknown dimension) from value infos and weights."""
    graph = model.graph
    shapes: dict[str, Shape] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            shapes[value.name] = tuple(
                d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim
            )
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = tuple(attr.t.dims)
    return shapes


def resolve_shapes(model: onnx.ModelProto) -> dict[str, Shape]:
    """Shapes of every tensor of a model with static input shapes, node by node.

    ONNX's data propagation stops at ops such as ``Mod`` in the exporter's shape arithmetic
    (window padding), leaving every later shape unknown. Here small integer tensors are evaluated
    with ONNX's reference implementation as they are met, and a node whose output shape is still
    unknown is inferred on its own with those values as constants.
    """
    graph = model.graph
    shapes = known_shapes(model)
    types = _elem_types(model)
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer if _small(t.dims)}
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if node.op_type == "Shape" and _static(shapes.get(inputs[0])):
            dims = shapes[inputs[0]]
            start, end = _attr(node, "start", 0), _attr(node, "end", len(dims))
            values[node.output[0]] = np.array(dims[start:end], dtype=np.int64)
        elif node.op_type not in MACS and all(i in values for i in inputs):
            _evaluate(node, {i: values[i] for i in inputs}, values)
        for out in node.output:
            if out in values:
                shapes[out] = tuple(values[out].shape)
                types[out] = onnx.helper.np_dtype_to_tensor_dtype(values[out].dtype)
        if any(not _static(shapes.get(o)) for o in node.output if o):
            _infer_node(model, node, shapes, types, values)
    return shapes


def _small(dims: Sequence[int]) -> bool:
    return math.prod(dims) <= SMALL_TENSOR


def _static(shape: Shape | None) -> bool:
    return shape is not None and None not in shape


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    graph = model.graph
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in [*graph.input, *graph.value_info, *graph.output]
    }
    types.update({t.name: t.data_type for t in graph.initializer})
    return types


def _evaluate(node: onnx.NodeProto, feeds: dict[str, np.ndarray], values: dict) -> None:
    """Values of a node whose inputs are all known, where they are small (shape arithmetic)."""
    from onnx.reference import ReferenceEvaluator

    try:
        results = ReferenceEvaluator(node).run(None, feeds)
    except Exception:  # an op the reference runtime lacks: its shape is inferred instead
        return
    for name, value in zip(node.output, results, strict=False):
        value = np.asarray(value)
        if _small(value.shape):
            values[name] = value


def _infer_node(
    model: onnx.ModelProto,
    node: onnx.NodeProto,
    shapes: dict[str, Shape],
    types: dict[str, int],
    values: dict[str, np.ndarray],
) -> None:
    """ONNX shape inference on ``node`` alone, its known-valued inputs given as constants."""
    helper = onnx.helper
    inputs = [i for i in dict.fromkeys(node.input) if i]
    if any(i not in values and not _static(shapes.get(i)) for i in inputs):
        return  # an input is unknown too: nothing to learn here
    graph = helper.make_graph(
        [node],
        "node",
        [
            helper.make_tensor_value_info(i, types.get(i, 0), shapes[i])
            for i in inputs
            if i not in values
        ],
        [helper.make_empty_tensor_value_info(o) for o in node.output if o],
        initializer=[numpy_helper.from_array(values[i], i) for i in inputs if i in values],
    )
    single = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    try:
        inferred = onnx.shape_inference.infer_shapes(single, strict_mode=True)
    except Exception:  # inference refuses the node: its outputs stay unknown
        return
    for out in [*inferred.graph.output, *inferred.graph.value_info]:
        tensor = out.type.tensor_type
        if tensor.HasField("shape"):
            shapes[out.name] = tuple(
                d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim
            )
            types[out.name] = tensor.elem_type


def _attr(node: onnx.NodeProto, name: str, default: int = 0) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _matmul_macs(node: onnx.NodeProto, s: list[Shape]) -> int:
    a, _b, out = s
    return math.prod(out) * a[-1]  # every output element is a K-long dot product


def _gemm_macs(node: onnx.NodeProto, s: list[Shape]) -> int:
    a, _b, out = s
    k = a[0] if _attr(node, "transA") else a[1]
    return math.prod(out) * k


def _conv_macs(node: onnx.NodeProto, s: list[Shape]) -> int:
    _x, w, out = s  # w: [C_out, C_in / groups, *kernel]
    return math.prod(out) * math.prod(w[1:])


def _conv_transpose_macs(node: onnx.NodeProto, s: list[Shape]) -> int:
    x, w, _out = s  # w: [C_in, C_out / groups, *kernel]; each input element meets all of w[1:]
    return math.prod(x) * math.prod(w[1:])


MACS: dict[str, Callable[[onnx.NodeProto, list[Shape]], int]] = {
    "MatMul": _matmul_macs,
    "Gemm": _gemm_macs,
    "Conv": _conv_macs,
    "ConvTranspose": _conv_transpose_macs,
}


def scope_of(name: str) -> str:
    """``/phi_l/stage1/.../MatMul`` → ``/phi_l/``; a name without a scope → ``(root)``."""
    parts = name.split("/")
    if len(parts) >= 3 and parts[0] == "" and parts[1]:
        return f"/{parts[1]}/"
    return ROOT_SCOPE


def count_flops(model: onnx.ModelProto, batch: int = 1) -> FlopReport:
    """FLOPs of ``model`` for a batch of ``batch`` (2 per multiply-add; see the module docstring)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    bound = bind_batch(model, batch)
    shapes = known_shapes(bound)
    if any(not _static(shapes.get(o)) for n in bound.graph.node for o in n.output if o):
        shapes = resolve_shapes(bound)
    by_op: dict[str, int] = {}
    by_scope: dict[str, int] = {}
    unknown: list[str] = []
    nodes = 0
    for node in bound.graph.node:
        if node.op_type not in MACS:
            continue
        names = [node.input[0], node.input[1], node.output[0]]
        found = [shapes.get(n) for n in names]
        if any(s is None or not s or None in s for s in found):
            unknown.append(node.name or node.output[0])
            continue
        flops = 2 * MACS[node.op_type](node, found)  # type: ignore[arg-type]
        by_op[node.op_type] = by_op.get(node.op_type, 0) + flops
        scope = scope_of(node.name)
        by_scope[scope] = by_scope.get(scope, 0) + flops
        nodes += 1
    return FlopReport(batch, by_op, by_scope, nodes, tuple(unknown))
