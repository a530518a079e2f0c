"""Export the fused deploy module to ONNX (FP32), simplify it, and make the mixed-FP16 file."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import onnx
import torch

from glcf_runtime.errors import GlcfError
from glcf_runtime.metadata import (
    CHECKS_KEY,
    CHECKS_PASSED,
    CHECKS_PENDING,
    INPUT_NAME,
    MAP_NAME,
    SCORE_NAME,
    ArtifactMetadata,
)

OPSET = 17  # LayerNormalization is one node from opset 17 on
# Node-name prefix of everything the scorer computes (squared errors onwards): kept in FP32.
SCORER_SCOPE = "/scorer/"
FP32_OPS = ["LayerNormalization", "Softmax"]


class ExportError(GlcfError):
    """The export or one of its checks failed."""


def export_fp32(deploy: torch.nn.Module, path: Path, image_size: int,
                slim: bool = True) -> onnx.ModelProto:
    """Trace ``deploy`` with the TorchScript-based exporter (chosen explicitly), then onnxslim
    (``slim=False`` keeps the traced graph as is: the baseline of the graph benchmark).

    Batch is dynamic (``batch``); height and width are fixed.
    """
    dummy = torch.zeros(2, image_size, image_size, 3, dtype=torch.uint8)
    raw = path.with_name(path.stem + ".raw.onnx")
    with warnings.catch_warnings():  # known, harmless notices of the tracer, for this call only
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # control flow on fixed sizes
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")  # flip's Slice
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message="The feature will be removed")
        torch.onnx.export(
            deploy, (dummy,), str(raw), dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[MAP_NAME, SCORE_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, MAP_NAME: {0: "batch"}, SCORE_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    model = onnx.load(str(raw))
    raw.unlink()
    _fix_io_shapes(model, image_size)
    return simplify(model) if slim else model


def _fix_io_shapes(model: onnx.ModelProto, size: int) -> None:
    """Write the contract's shapes on the outputs (the tracer leaves them symbolic)."""
    shapes = {MAP_NAME: ["batch", size, size], SCORE_NAME: ["batch"]}
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        for d in shapes[output.name]:
            dim = dims.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = d


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim (constant folding, dead-code and shape-op removal), re-checked afterwards."""
    import onnxslim

    onnx.checker.check_model(model, full_check=True)
    slim = onnxslim.slim(model)
    if not isinstance(slim, onnx.ModelProto):
        raise ExportError("onnxslim returned no model; export without simplification failed")
    onnx.checker.check_model(slim, full_check=True)
    return slim


def to_mixed_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Networks in FP16; LayerNorm, Softmax and the whole scorer in FP32; FP32 inputs/outputs.

    Uses ONNX Runtime's maintained float16 converter with an explicit keep-FP32 list.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    keep = [n.name for n in model.graph.node if n.name.startswith(SCORER_SCOPE)]
    if not keep:
        raise ExportError(f"no scorer nodes ({SCORER_SCOPE}*) found; cannot keep the scoring in FP32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the value is out of fp16 range" notices
        mixed = convert_float_to_float16(model, keep_io_types=True, op_block_list=FP32_OPS,
                                         node_block_list=keep)
    toposort(mixed.graph)  # the converter appends its Cast nodes out of order
    removed = remove_fp16_round_trips(mixed)
    if removed == 0:
        raise ExportError("expected FP32→FP16→FP32 round trips between kept nodes; the float16 "
                          "converter changed behaviour — check the mixed graph by hand")
    onnx.checker.check_model(mixed, full_check=True)
    return mixed


def remove_fp16_round_trips(model: onnx.ModelProto) -> int:
    """Replace ``Cast(fp32→fp16) → Cast(→fp32)`` pairs on FP32 tensors by an Identity.

    The float16 converter assumes every tensor between nodes is FP16, so it rounds the output of
    each kept-FP32 node to FP16 and back before the next kept node: the scorer would compute in
    FP32 on FP16-rounded values (and can overflow). Returns the number of pairs removed.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    dtypes = {v.name: v.type.tensor_type.elem_type for v in
              [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    producer = {o: n for n in model.graph.node for o in n.output}
    removed = 0
    for node in model.graph.node:
        first = producer.get(node.input[0]) if node.op_type == "Cast" else None
        if first is None or first.op_type != "Cast" or _cast_to(node) != onnx.TensorProto.FLOAT:
            continue
        if _cast_to(first) == onnx.TensorProto.FLOAT16 and dtypes.get(first.input[0]) == onnx.TensorProto.FLOAT:
            node.op_type = "Identity"
            node.input[0] = first.input[0]
            del node.attribute[:]
            removed += 1
    _drop_dead_nodes(model.graph)
    return removed


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _drop_dead_nodes(graph: onnx.GraphProto) -> None:
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(keep))


def toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (Kahn)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            names = [n.name for n in pending[:3]]
            raise ExportError(f"the graph has a cycle or a dangling input near {names}")
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
        for n in ready:
            available.update(n.output)
        ordered.extend(ready)
    del graph.node[:]
    graph.node.extend(ordered)


def set_metadata(model: onnx.ModelProto, meta: ArtifactMetadata) -> None:
    """Write ``meta`` into ``model.metadata_props``, its ``extra`` saying the checks are pending:
    only :func:`mark_checked`, after every check of ``glcf export`` passed, says otherwise."""
    meta = replace(meta, extra={**meta.extra, CHECKS_KEY: CHECKS_PENDING})
    del model.metadata_props[:]
    for key, value in meta.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "glcf"


def mark_checked(path: Path) -> None:
    """Rewrite the saved model at ``path`` with ``extra["checks"] = "passed"`` (nothing else
    changes). ``glcf export`` calls it in the staging folder once every check has passed."""
    model = onnx.load(str(path))
    entry = next((p for p in model.metadata_props if p.key == "extra"), None)
    if entry is None:
        raise ExportError(f"{path} carries no GLCF metadata; it was not written by set_metadata")
    entry.value = json.dumps({**json.loads(entry.value), CHECKS_KEY: CHECKS_PASSED})
    onnx.save(model, str(path))
