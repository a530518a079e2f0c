"""``glcf bench --profile``: where the fused graph's time goes, per stage, on each CPU backend.

Each node's time comes from the backend's own profiler — OpenVINO's per-node performance counters
(``PERF_COUNT``; a fused node is counted under the stage most of its original layers come from,
read from the compiled model's ``originalLayersNames``) and ONNX Runtime's profiler (its
``*_kernel_time`` events) — and is summed per stage: the graph's top-level scopes, which the
exporter takes from the deploy module (``/phi_l/`` …, ``/scorer/``), plus the nodes without one
(the uint8 → float input conversion: pre-processing). OpenVINO's layout and precision conversions
(``Reorder``, and ONNX Runtime's NCHWc ``ReorderInput``/``ReorderOutput``) get a row of their
own. Beside each stage: its FLOPs (``glcf_bench.flops``), the
FLOP rate it reached and that rate's share of the MatMul peak of the precision the row runs in,
measured in the same run on the same backend (``matmul_peaks``).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glcf_bench.flops import ROOT_SCOPE, scope_of
from glcf_runtime.artifacts import RUN_MODES, Backend, Precision
from glcf_runtime.metadata import INPUT_NAME
from glcf_runtime.requires import require

# The graph's top-level scopes in execution order, as the stages the table names.
STAGES = {ROOT_SCOPE: "pre-processing", "/phi_l/": "Φ_L (backbone)", "/bottleneck/": "bottleneck",
          "/phi_g/": "Φ_G (decoder)", "/psi_l/": "Ψ_L (decoder)", "/psi_g/": "Ψ_G (decoder)",
          "/scorer/": "scoring"}
REORDERS = "layout / precision reorders"
PEAK_SIZES = (1024, 2048)  # the peak's MatMuls: [n, n] x [n, n] constant weights, the best of them


@dataclass
class StageTime:
    """One stage of one row: ms per batch, share of the row's total, GFLOP per batch, the rate
    reached, and that rate's share of the row's precision's MatMul peak."""

    stage: str
    ms: float
    share: float
    gflop: float | None = None
    gflops: float | None = None
    of_peak: float | None = None


@dataclass
class StageProfile:
    """The stage table of one bench row (a run mode) at one batch size."""

    backend: str
    precision: str
    batch: int
    runs: int
    peak_key: str  # which of the report's peaks the fractions refer to
    stages: list[StageTime]

    def to_dict(self) -> dict:
        return asdict(self)


def stage_of(names: list[str]) -> str:
    """The stage most of ``names`` (original ONNX node names) belong to."""
    scopes = Counter(scope_of(n) for n in names if n)
    if not scopes:
        return STAGES[ROOT_SCOPE]
    scope = scopes.most_common(1)[0][0]
    return STAGES.get(scope, scope)


@dataclass(frozen=True)
class GraphNode:
    """A node of the graph a backend runs (after its own fusions): its name, the original ONNX
    names it stands for, the nodes it reads from, and whether it is a layout/precision reorder
    or a constant."""

    name: str
    originals: tuple[str, ...]
    inputs: tuple[str, ...]
    reorder: bool = False
    constant: bool = False


def assign_stages(nodes: list[GraphNode]) -> dict[str, str]:
    """Stage of each node (``nodes`` in topological order).

    A node with a scoped original name: that scope's stage. An original name without a scope
    (the exporter names every node ``/…``: ``/Cast``, ``/Transpose``): pre-processing. A node the
    backend made itself without keeping an exported name (OpenVINO's ``Multiply_123``, ONNX
    Runtime's ``BiasGelu_token_4``: fusions): the stage of the node it reads from — or, where that
    is pre-processing, of the node that reads it, so the first convolution, fused with the input
    normalisation, counts in Φ_L.
    """
    pre = STAGES[ROOT_SCOPE]
    constants = {n.name for n in nodes if n.constant}
    stage: dict[str, str] = {}
    made = []  # the backend's own nodes, in order
    for node in nodes:
        if node.reorder:
            stage[node.name] = REORDERS
        elif node.constant or any(n.startswith("/") for n in node.originals):
            stage[node.name] = stage_of(list(node.originals))
        else:
            inherited = [stage.get(i) for i in node.inputs if i not in constants]
            inherited = [f for f in inherited if f and f != REORDERS]
            stage[node.name] = inherited[0] if inherited else pre
            made.append(node)
    readers: dict[str, list[str]] = {}
    for node in nodes:
        for source in node.inputs:
            readers.setdefault(source, []).append(node.name)
    for node in reversed(made):
        if stage[node.name] == pre:
            after = [stage.get(r) for r in readers.get(node.name, [])]
            after = [a for a in after if a and a not in (REORDERS, pre)]
            stage[node.name] = after[0] if after else pre
    return {k: v for k, v in stage.items() if k not in constants}


def runtime_stages(runtime_model: Any) -> dict[str, str]:
    """Stage of each node of OpenVINO's compiled (runtime) model (``assign_stages``; its
    ``originalLayersNames`` are the original names, ``Reorder`` nodes are reorders)."""
    nodes = []
    for op in runtime_model.get_ordered_ops():  # topological: inputs come first
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else ""
        names = [n for n in (info["originalLayersNames"].astype(str).split(",")
                             if "originalLayersNames" in info else []) if n]
        nodes.append(GraphNode(op.get_friendly_name(), tuple(names or [op.get_friendly_name()]),
                               tuple(v.get_node().get_friendly_name() for v in op.input_values()),
                               reorder=kind == "Reorder", constant=kind in ("Const", "Input")))
    return assign_stages(nodes)


def onnx_stages(model: Any) -> dict[str, str]:
    """Stage of each node of ONNX Runtime's optimised graph (``assign_stages``; its NCHWc
    ``ReorderInput``/``ReorderOutput`` are reorders)."""
    producer = {o: n.name for n in model.graph.node for o in n.output}
    nodes = [GraphNode(n.name, (n.name,), tuple(producer[i] for i in n.input if i in producer),
                       reorder=n.op_type in ("ReorderInput", "ReorderOutput"))
             for n in model.graph.node]
    return assign_stages(nodes)


def _frames(shape: tuple[int, int], batch: int) -> np.ndarray:
    from glcf_bench.frames import synthetic_frame
    from glcf_runtime.preprocess import PreprocessSpec, preprocess

    spec = PreprocessSpec(*shape)
    return np.stack([preprocess(synthetic_frame(i), spec) for i in range(batch)])


def profile_openvino(path: Path, precision: str, threads: int, batch: int = 1,
                     runs: int = 20, warmup: int = 3) -> dict[str, float]:
    """ms per batch of each stage of ``path`` compiled by OpenVINO for the CPU in ``precision``
    (fp32 or bf16: the inference precision hint), from its per-node performance counters."""
    from glcf_runtime.backends.openvino import DEVICE, OV_PRECISION

    ov = require("openvino", "openvino", who="--profile on OpenVINO")
    core = ov.Core()
    model = core.read_model(str(path))
    size = model.inputs[0].get_partial_shape()
    frames = _frames((size[1].get_length(), size[2].get_length()), batch)
    compiled = core.compile_model(model, DEVICE, {
        "INFERENCE_PRECISION_HINT": OV_PRECISION[Precision(precision)], "PERF_COUNT": True,
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})
    stage = runtime_stages(compiled.get_runtime_model())
    request = compiled.create_infer_request()
    for _ in range(warmup):
        request.infer({INPUT_NAME: frames})
    totals: Counter[str] = Counter()
    for _ in range(runs):
        request.infer({INPUT_NAME: frames})
        for node in request.profiling_info:
            if str(node.status).endswith("EXECUTED"):
                name = REORDERS if node.node_type == "Reorder" else stage.get(
                    node.node_name, stage_of([node.node_name]))
                totals[name] += node.real_time.total_seconds() * 1e3
    return {name: ms / runs for name, ms in totals.items()}


def profile_onnxruntime(path: Path, threads: int, batch: int = 1, runs: int = 20,
                        warmup: int = 3) -> dict[str, float]:
    """ms per batch of each stage of ``path`` on ONNX Runtime's CPU provider, from its profiler
    (the kernel time of every node; warm-up runs are left out)."""
    ort = require("onnxruntime", "runtime")
    with tempfile.TemporaryDirectory(prefix="glcf-profile-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        stage = onnx_stages(require("onnx", "runtime").load(str(Path(tmp) / "optimised.onnx"),
                                                           load_external_data=False))
        shape = session.get_inputs()[0].shape
        frames = _frames((int(shape[1]), int(shape[2])), batch)
        for _ in range(warmup):
            session.run(None, {INPUT_NAME: frames})
        for _ in range(runs):
            session.run(None, {INPUT_NAME: frames})
        events = json.loads(Path(session.end_profiling()).read_text())
    starts = sorted(e["ts"] for e in events
                    if e.get("cat") == "Session" and e.get("name") == "model_run")
    first = starts[-runs] if len(starts) >= runs else 0  # the timed runs are the last ``runs``
    totals: Counter[str] = Counter()
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") == "Node" and name.endswith("_kernel_time") and event["ts"] >= first:
            node = name.removesuffix("_kernel_time")
            totals[stage.get(node, stage_of([node]))] += event["dur"] / 1e3
    return {name: ms / runs for name, ms in totals.items()}


def _matmul_model(n: int, int8: bool) -> Any:
    """``x [n, n] @ W [n, n]`` with constant weights (the projections' form); ``int8``: in QDQ
    form (symmetric INT8 activations and per-tensor INT8 weights), as ``model.int8.onnx``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((n, n)).astype(np.float32)
    nodes, inits = [], []
    if int8:
        scale = float(np.abs(weight).max() / 127)
        inits += [numpy_helper.from_array(np.round(weight / scale).astype(np.int8), "wq"),
                  numpy_helper.from_array(np.array(scale, np.float32), "ws"),
                  numpy_helper.from_array(np.array(4.0 / 127, np.float32), "xs"),
                  numpy_helper.from_array(np.array(0, np.int8), "zp")]
        nodes += [helper.make_node("DequantizeLinear", ["wq", "ws", "zp"], ["w"]),
                  helper.make_node("QuantizeLinear", ["x", "xs", "zp"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "xs", "zp"], ["xd"]),
                  helper.make_node("MatMul", ["xd", "w"], ["y"])]
    else:
        inits.append(numpy_helper.from_array(weight, "w"))
        nodes.append(helper.make_node("MatMul", ["x", "w"], ["y"]))
    graph = helper.make_graph(nodes, "matmul", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [n, n])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        inits)
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def openvino_matmul_peaks(threads: int, sizes: tuple[int, ...] = PEAK_SIZES,
                          repeats: int = 10) -> dict[str, float]:
    """Best GFLOP/s (INT8: GOP/s) of OpenVINO's CPU plugin on a ``[n, n] x [n, n]`` MatMul with
    constant weights, over ``sizes``: ``openvino_fp32``, ``openvino_bf16`` (where the CPU has
    native BF16) and ``openvino_int8`` (the QDQ form)."""
    from glcf_runtime.backends.openvino import DEVICE, native_bf16

    ov = require("openvino", "openvino", who="--profile on OpenVINO")
    core = ov.Core()
    cases = {"openvino_fp32": (False, "f32"), "openvino_int8": (True, "f32")}
    if native_bf16(core):
        cases["openvino_bf16"] = (False, "bf16")
    peaks = dict.fromkeys(cases, 0.0)
    for n in sizes:
        x = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
        for key, (int8, hint) in cases.items():
            model = core.read_model(_matmul_model(n, int8).SerializeToString(), b"")
            compiled = core.compile_model(model, DEVICE, {"INFERENCE_PRECISION_HINT": hint,
                                                          "INFERENCE_NUM_THREADS": threads,
                                                          "PERFORMANCE_HINT": "LATENCY"})
            request = compiled.create_infer_request()
            request.infer({0: x})
            for _ in range(repeats):
                start = time.perf_counter()
                request.infer({0: x})
                peaks[key] = max(peaks[key], 2.0 * n**3 / (time.perf_counter() - start) / 1e9)
    return peaks


def peak_key(mode: str) -> str:
    """The peak a run mode's stages are measured against: its backend's MatMul peak in the
    precision its MatMuls run in (an INT8 file: INT8)."""
    run = RUN_MODES[mode]
    int8 = run.file == RUN_MODES["onnxruntime-int8"].file
    if run.backend is Backend.OPENVINO:
        return "openvino_int8" if int8 else f"openvino_{run.precision.value}"
    return "cpu_int8" if int8 else "cpu_fp32"


PROFILED = tuple(m for m, run in RUN_MODES.items()
                 if run.backend in (Backend.OPENVINO, Backend.ONNXRUNTIME)
                 and run.precision is not Precision.FP16)


def profile_row(mode: str, path: Path, threads: int, batch: int,
                gflop_by_scope: dict[str, float] | None, peaks: dict[str, float | None],
                runs: int = 20) -> StageProfile:
    """The stage table of run mode ``mode`` on ``path`` (its file) at ``batch``; beside each
    stage its GFLOP (``gflop_by_scope``: per image, per top-level scope) and the peak's share."""
    run = RUN_MODES[mode]
    if run.backend is Backend.OPENVINO:
        times = profile_openvino(path, run.precision.value, threads, batch, runs)
    else:
        times = profile_onnxruntime(path, threads, batch, runs)
    total = sum(times.values()) or 1.0
    key = peak_key(mode)
    peak = peaks.get(key)
    gflop = {STAGES.get(s, s): v * batch for s, v in (gflop_by_scope or {}).items()}
    order = [*STAGES.values(), REORDERS]
    stages = []
    for name in sorted(times, key=lambda s: order.index(s) if s in order else len(order)):
        ms, g = times[name], gflop.get(name)
        rate = g / (ms / 1e3) if g and ms > 0 else None
        stages.append(StageTime(name, ms, ms / total, g, rate,
                                rate / peak if rate is not None and peak else None))
    return StageProfile(mode, run.precision.value, batch, runs, key, stages)


def profile_report(report: Any, bench: Any, settings: Any, log: Any) -> None:
    """Fill ``report.profile`` with the stage table of every CPU run mode in ``settings.backends``
    at its smallest batch, and ``report.peak_gflops`` with OpenVINO's MatMul peaks (measured
    here, in the same run); a row that cannot run is left out with its reason logged."""
    from glcf_bench.targets import open_backend

    modes = [m for m in settings.backends if m in PROFILED and m not in report.skipped]
    if any(RUN_MODES[m].backend is Backend.OPENVINO for m in modes):
        log(f"measuring OpenVINO's FP32 / BF16 / INT8 MatMul peaks with {settings.threads} threads …")
        report.peak_gflops.update(openvino_matmul_peaks(settings.threads))
    by_scope = (report.flops or {}).get("by_scope_gflop")
    batch = min(settings.batches)
    for mode in modes:
        try:
            with open_backend(mode, bench, settings.threads, batch, log=log) as runner:
                path = Path(runner.path)
        except Exception as exc:  # recorded like a row that does not run
            log(f"{mode}: not profiled — {exc}")
            continue
        log(f"{mode}: profiling each node at batch {batch} …")
        report.profile.append(profile_row(mode, path, settings.threads, batch, by_scope,
                                          report.peak_gflops).to_dict())
