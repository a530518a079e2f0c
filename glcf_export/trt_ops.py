"""TensorRT 10 operator coverage of an ONNX graph, checked without importing tensorrt.

The table (``data/tensorrt10_onnx_ops.tsv``, from the onnx-tensorrt operator matrix) lists every
ONNX operator with Y/N and the element types TensorRT 10 takes for it. A graph passes when every
node's operator is marked Y, its data tensor has a listed element type (checked wherever ONNX
shape inference can tell the type) and it avoids the restrictions the table's header names:
``Resize`` with ``antialias=1`` and ``Slice``/``Pad``/``Reduce*`` whose ``axes`` are computed at
run time instead of being constants.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import onnx
from onnx import TensorProto

from glcf_runtime.errors import ConfigError

TABLE_FILE = "tensorrt10_onnx_ops.tsv"

OpTable = dict[str, tuple[bool, frozenset[str]]]  # op -> (supported, element types)

# ONNX element types in the table's spelling; anything else falls back to the ONNX name.
_TYPE_NAMES = {
    TensorProto.FLOAT: "FP32",
    TensorProto.FLOAT16: "FP16",
    TensorProto.BFLOAT16: "BF16",
    TensorProto.DOUBLE: "FP64",
    TensorProto.FLOAT8E4M3FN: "FP8",
    TensorProto.FLOAT8E5M2: "FP8",
    TensorProto.INT4: "INT4",
    TensorProto.INT8: "INT8",
    TensorProto.UINT8: "UINT8",
    TensorProto.INT32: "INT32",
    TensorProto.INT64: "INT64",
    TensorProto.BOOL: "BOOL",
}
# Which tensor the table's types describe: by default a node's first input (the data input).
_CAST_OPS = {"Cast", "CastLike"}  # both sides of the cast
_OUTPUT_TYPED = {  # generators: the type they produce
    "Constant",
    "ConstantOfShape",
    "EyeLike",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
}
_DATA_INPUT = {"Where": 1}  # input 0 is the condition
_AXES_INPUT = {"Slice": 3, "Pad": 3}  # and input 1 of every Reduce*


@dataclass(frozen=True)
class Unsupported:
    """One node TensorRT 10 would reject, and why."""

    op: str
    node: str
    reason: str
    tensor: str | None = None  # the tensor whose element type was checked, where that failed

    def __str__(self) -> str:
        where = f"node {self.node!r}" + (f", tensor {self.tensor!r}" if self.tensor else "")
        return f"{self.op} ({where}): {self.reason}"


@dataclass(frozen=True)
class OpReport:
    """Operator coverage of one graph (subgraphs of If/Loop/Scan included)."""

    counts: dict[str, int]  # op -> number of nodes, sorted by op name
    unsupported: tuple[Unsupported, ...] = ()
    types_checked: int = 0  # tensors whose element type was inferred and checked
    types_unknown: int = 0  # tensors whose element type shape inference could not tell

    @property
    def ok(self) -> bool:
        return not self.unsupported

    def format(self) -> str:
        """A readable table: every op with its node count, then the reasons for each rejection."""
        bad = {u.op for u in self.unsupported}
        verdict = "ok" if self.ok else f"{len(self.unsupported)} unsupported node(s)"
        width = max([24, *(len(op) + 2 for op in self.counts)])
        lines = [
            f"TensorRT 10 operator check: {len(self.counts)} op types, "
            f"{sum(self.counts.values())} nodes, {verdict}",
            f"  {'op':<{width}}{'nodes':>6}  TensorRT 10",
        ]
        for op, n in self.counts.items():
            lines.append(f"  {op:<{width}}{n:>6}  {'NO' if op in bad else 'yes'}")
        lines.append(
            f"  element types: {self.types_checked} tensors checked, "
            f"{self.types_unknown} not inferable"
        )
        if self.unsupported:
            lines.append("unsupported:")
            lines.extend(f"  {u}" for u in self.unsupported)
        return "\n".join(lines)


def load_op_table(path: Path | None = None) -> OpTable:
    """Read the operator table (default: the one packaged with glcf_export).

    Raises:
        ConfigError: a line that is not ``op<TAB>Y|N<TAB>types``.
    """
    if path is None:
        source = f"glcf_export/data/{TABLE_FILE}"
        text = (resources.files("glcf_export") / "data" / TABLE_FILE).read_text(encoding="utf-8")
    else:
        source, text = str(path), Path(path).read_text(encoding="utf-8")
    table: OpTable = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t")]
        if cells[0] == "op":  # the column header
            continue
        if len(cells) < 2 or cells[1] not in ("Y", "N"):
            raise ConfigError(f"{source}:{number}: expected 'op<TAB>Y|N<TAB>types', got {line!r}")
        types = cells[2] if len(cells) > 2 else ""
        table[cells[0]] = (
            cells[1] == "Y",
            frozenset(t.strip() for t in types.split(",") if t.strip()),
        )
    return table


def op_report(model: onnx.ModelProto, table: OpTable | None = None) -> OpReport:
    """Check every node of ``model`` against the TensorRT 10 table (see the module docstring)."""
    table = load_op_table() if table is None else table
    graph = _inferred(model).graph
    types, constants = _tensor_facts(graph)
    counts: Counter[str] = Counter()
    unsupported: list[Unsupported] = []
    checked = unknown = 0
    for i, node in enumerate(_walk(graph)):
        op = _op_name(node)
        counts[op] += 1
        label = node.name or f"#{i}"
        entry = table.get(op)
        if entry is None:
            custom = " (custom domain: it would need a TensorRT plugin)" if ":" in op else ""
            unsupported.append(Unsupported(op, label, f"not in the TensorRT 10 table{custom}"))
            continue
        supported, allowed = entry
        if not supported:
            unsupported.append(
                Unsupported(op, label, "marked unsupported (N) in the TensorRT 10 table")
            )
            continue
        unsupported.extend(Unsupported(op, label, r) for r in _restrictions(node, constants))
        for tensor in _typed_tensors(node):
            if tensor not in types:
                unknown += 1
                continue
            checked += 1
            name = _type_name(types[tensor])
            if allowed and name not in allowed:
                reason = f"element type {name} is not one TensorRT 10 takes ({','.join(sorted(allowed))})"
                unsupported.append(Unsupported(op, label, reason, tensor))
    return OpReport(dict(sorted(counts.items())), tuple(unsupported), checked, unknown)


def _inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with inferred value_info; the model itself where inference fails."""
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
    except (onnx.shape_inference.InferenceError, ValueError):
        return model  # element types then come from inputs, outputs and initializers only


def _walk(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node, including those of If/Loop/Scan bodies."""
    for g in _subgraphs(graph):
        yield from g.node


def _subgraphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and, recursively, every graph held in a node attribute."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                yield from _subgraphs(sub)


def _tensor_facts(graph: onnx.GraphProto) -> tuple[dict[str, int], set[str]]:
    """Element type of every tensor whose type is known; names of constant tensors.

    Constants are initializers and Constant-node outputs (the ONNX parser imports both as weights).
    """
    types: dict[str, int] = {}
    constants: set[str] = set()
    for g in _subgraphs(graph):
        for info in (*g.input, *g.output, *g.value_info):
            if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
                types[info.name] = info.type.tensor_type.elem_type
        for init in g.initializer:
            types[init.name] = init.data_type
            constants.add(init.name)
        constants.update(n.output[0] for n in g.node if n.op_type == "Constant" and n.output)
    return types, constants


def _op_name(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"


def _type_name(elem_type: int) -> str:
    return (
        _TYPE_NAMES.get(elem_type) or onnx.helper.tensor_dtype_to_string(elem_type).split(".")[-1]
    )


def _typed_tensors(node: onnx.NodeProto) -> list[str]:
    """The tensor(s) whose element type the table's types describe."""
    if node.op_type in _CAST_OPS:
        return [t for t in (node.input[0], node.output[0]) if t]
    if node.op_type in _OUTPUT_TYPED:
        return [node.output[0]] if node.output and node.output[0] else []
    index = _DATA_INPUT.get(node.op_type, 0)
    return [node.input[index]] if len(node.input) > index and node.input[index] else []


def _restrictions(node: onnx.NodeProto, constants: set[str]) -> list[str]:
    """Reasons from the table's header that apply to this node."""
    reasons = []
    if node.op_type == "Resize":
        for attr in node.attribute:
            if attr.name == "antialias" and onnx.helper.get_attribute_value(attr) == 1:
                reasons.append(
                    "antialias=1 is not supported; resize outside the graph or use antialias=0"
                )
    index = 1 if node.op_type.startswith("Reduce") else _AXES_INPUT.get(node.op_type)
    if index is not None and len(node.input) > index and node.input[index]:
        axes = node.input[index]
        if axes not in constants:
            reasons.append(
                f"axes come from tensor {axes!r} computed at run time; "
                "they must be an initializer (constant-fold the graph)"
            )
    return reasons
