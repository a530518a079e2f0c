"""GPU acceptance in one command: training with AMP, resume, and the paper graph under torch, ONNX
Runtime and TensorRT on one NVIDIA GPU → one JSON (default benchmarks/results/gpu-acceptance_*.json).

python benchmarks/gpu_acceptance.py            # about 5 min on an H100 without TensorRT, at most --budget
python benchmarks/gpu_acceptance.py --dry-run  # every part, and why it would skip on this machine
python -m benchmarks.gpu_acceptance            # from the checkout's root where glcf is not installed

Everything is made here from the working tree: synthetic images (glcf_train.data.synth), runs
trained with glcf_train.train, the graph exported as `glcf bench` exports a run. A part that cannot
run records why and the others go on; a part whose check fails records the figures and the failure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glcf_bench.acceptance import (
    fp16_autocast,
    latency,
    no_cuda,
    no_cuda_binding,
    no_ort_cuda,
    no_tensorrt,
    no_train_stack,
    parity,
)

RESULTS = Path(__file__).resolve().parent / "results"
CATEGORY = "breakfast_tray"
TRAIN_STEPS = {"tiny": 30, "paper": 20}


class Skip(Exception):  # the part cannot run here; the message says why
    pass


@dataclass
class Ctx:
    work: Path
    preset: str  # the graph the latency and parity parts use (paper unless --graph-preset)
    deadline: float
    done: dict[str, Any] = field(default_factory=dict)  # what earlier parts made
    reasons: dict[str, str] = field(default_factory=dict)  # why earlier parts did not run

    def need(self, key: str, part: str) -> Any:
        if key not in self.done:
            raise Skip(f"needs the {part} part, which did not run: {self.reasons.get(part, 'not run')}")
        return self.done[key]


def log(message: str) -> None:
    print(f"[gpu-acceptance] {message}", file=sys.stderr, flush=True)


def check(ok: bool, message: str) -> None:  # a failed acceptance check: the part is "failed"
    if not ok:
        raise AssertionError(message)


def images(ctx: Ctx, split: str = "test", n: int = 8) -> np.ndarray:
    """Synthetic images as the graph sees them: uint8 BGR [n, H, W, 3]."""
    from glcf_runtime.preprocess import PreprocessSpec
    from glcf_train.data.datasets import load_images

    meta = ctx.need("target", "export_graph").metadata
    paths = sorted((ctx.need("data", "data") / CATEGORY / split).rglob("*.png"))[:n]
    return load_images(paths, PreprocessSpec(meta.height, meta.width))


def reference(ctx: Ctx) -> tuple[np.ndarray, np.ndarray]:
    """model.onnx on ONNX Runtime's CPU provider (FP32) on :func:`images`: what the rest match."""
    from glcf_runtime.backends import OnnxRuntimeRunner

    if "reference" not in ctx.done:
        folder = ctx.need("target", "export_graph").folder
        ctx.done["reference"] = OnnxRuntimeRunner(folder / "model.onnx", providers=["cpu"]).infer(images(ctx))
    return ctx.done["reference"]


# --- the parts ------------------------------------------------------------------------------


def part_environment(ctx: Ctx) -> dict:
    from glcf_bench.machine import machine_info, versions

    return {"machine": machine_info(), "versions": versions(),
            "why_not": {"cuda": no_cuda(), "onnxruntime_cuda": no_ort_cuda(),
                        "tensorrt": no_tensorrt(), "cuda_binding": no_cuda_binding()}}


def part_data(ctx: Ctx) -> dict:
    from glcf_train.data.synth import generate

    root = ctx.work / "data"
    generate(root, [CATEGORY], n_train=16, n_val=8, n_test=4, seed=0, image_size=256)
    ctx.done["data"] = root
    return {"images": len(list(root.rglob("*.png"))), "root": str(root)}


def _train(ctx: Ctx, preset: str, out: Path, steps: int, resume: bool = False) -> dict:
    import torch

    from glcf_train.checkpoint import load_checkpoint
    from glcf_train.config import preset as make
    from glcf_train.config import with_train
    from glcf_train.train import TrainOptions, train

    stamps: list[float] = []
    torch.cuda.reset_peak_memory_stats()
    result = train(TrainOptions(
        out=out, data=ctx.need("data", "data"), category=CATEGORY, device="cuda", random_init=True,
        config=None if resume else with_train(make(preset), steps=steps, batch_size=8),
        train_overrides={"steps": steps} if resume else None, resume=resume, progress=False,
        on_step=lambda step, losses: bool(stamps.append(time.perf_counter()))))
    last = result.last_losses or {}
    check(result.completed and np.isfinite(last.get("total", np.nan)), f"training stopped: {result}")
    ckpt = load_checkpoint(out)
    per_step = float(np.median(np.diff(stamps))) if len(stamps) > 2 else None
    return {"preset": preset, "steps": result.step, "first_loss": (result.first_losses or {}).get("total"),
            "last_loss": last.get("total"), "s_per_step_median": per_step,
            "amp_dtype": "bfloat16" if torch.cuda.is_bf16_supported() else "float16",
            "grad_scaler_in_checkpoint": ckpt.get("scaler") is not None,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20}


def part_train_tiny_amp(ctx: Ctx) -> dict:
    return _train(ctx, "tiny", ctx.work / "runs" / "tiny", TRAIN_STEPS["tiny"])


def part_train_paper_amp(ctx: Ctx) -> dict:
    figures = _train(ctx, "paper", ctx.work / "runs" / "paper", TRAIN_STEPS["paper"])
    ctx.done["paper_run"] = ctx.work / "runs" / "paper"
    return figures


def part_resume_gradscaler(ctx: Ctx) -> dict:
    from glcf_train.checkpoint import load_checkpoint

    out = ctx.work / "runs" / "tiny-fp16"
    with fp16_autocast() as loaded:
        first = _train(ctx, "tiny", out, 6)
        saved = load_checkpoint(out)["scaler"]
        second = _train(ctx, "tiny", out, 12, resume=True)
    check(first["grad_scaler_in_checkpoint"] and saved is not None, "no GradScaler state was saved")
    check(len(loaded) == 1 and loaded[0] == saved,
          f"resume gave GradScaler {loaded}, the checkpoint holds {saved}")
    check(second["steps"] == 12, f"resumed run stopped at step {second['steps']}")
    return {"first": first, "resumed": second, "scale_saved": saved.get("scale"),
            "growth_tracker_saved": saved.get("_growth_tracker"),
            "note": "training uses BF16 without a GradScaler where the GPU has BF16; this part "
                    "forces the FP16 path (torch.cuda.is_bf16_supported reports False)"}


def part_export_graph(ctx: Ctx) -> dict:
    from glcf_bench.torch_targets import run_target

    run = ctx.done.get("paper_run") if ctx.preset == "paper" else None
    if run is None:  # an untrained run of the preset, made on the CPU (train with 0 steps)
        from glcf_train.config import preset, with_train
        from glcf_train.train import TrainOptions, train

        run = ctx.work / "runs" / f"{ctx.preset}-untrained"
        train(TrainOptions(out=run, data=ctx.need("data", "data"), category=CATEGORY,
                           config=with_train(preset(ctx.preset), steps=0), random_init=True,
                           progress=False))
    (ctx.work / "export").mkdir()
    target = run_target(run, ctx.work / "export", log)
    ctx.done["target"] = target
    files = {p.name: p.stat().st_size for p in target.folder.glob("*.onnx")}
    check({"model.onnx", "model.fp16.onnx"} <= set(files), f"export wrote {files}")
    return {"run": str(run), "description": target.description, "files": files,
            "export_seconds": target.export_seconds}


def part_torch_fp16_latency(ctx: Ctx) -> dict:
    from glcf_bench.torch_targets import open_torch

    runner = open_torch(ctx.need("target", "export_graph"), cuda_graphs=False)
    check(runner.on_cuda, f"the torch runner is not on CUDA: {runner.describe()}")
    runner.reset_peak_memory()
    figures = parity(reference(ctx), runner.infer(images(ctx)))
    check(figures["map_err_rel_range"] <= 1e-2, f"torch FP16 differs from ONNX Runtime FP32: {figures}")
    return {"runner": runner.describe(), "vs_onnxruntime_fp32": figures, "latency": latency(runner),
            "peak_gpu_mb": runner.gpu_memory_mb()}


def part_onnxruntime_cuda(ctx: Ctx) -> dict:
    from glcf_runtime.backends import OnnxRuntimeRunner

    folder, x, out = ctx.need("target", "export_graph").folder, images(ctx), {}
    for name, tolerance in (("model.onnx", 5e-3), ("model.fp16.onnx", 1e-2)):  # TF32 on CUDA
        cpu = OnnxRuntimeRunner(folder / name, providers=["cpu"])
        gpu = OnnxRuntimeRunner(folder / name, providers=["cuda", "cpu"])
        check(gpu.providers[0] == "CUDAExecutionProvider", f"{name}: CUDA provider not used: {gpu.providers}")
        figures = parity(reference(ctx), gpu.infer(x))
        out[name] = {"cuda_vs_cpu_fp32": figures, "tolerance_map_err_rel_range": tolerance,
                     "cuda": latency(gpu), "cpu": latency(cpu, seconds=1.0)}
        check(figures["map_err_rel_range"] <= tolerance, f"{name} on CUDA differs from CPU FP32: {figures}")
    return out


def part_cuda_api(ctx: Ctx) -> dict:
    """The TensorRT runner's CUDA seam on the GPU: 1 MiB to the device and back, as it copies."""
    from glcf_runtime.backends.tensorrt.cuda import load_cuda_api

    api = load_cuda_api()
    host, data = api.pinned_empty((1 << 20,), np.dtype(np.uint8)), np.arange(1 << 20, dtype=np.uint8)
    host[:] = data
    pointer, stream = api.malloc(host.nbytes), api.stream()
    api.htod_async(pointer, host, stream)
    host[:] = 0
    api.dtoh_async(host, pointer, stream)
    api.synchronize(stream)
    same = bool(np.array_equal(host, data))
    api.free(pointer)
    api.free_pinned(host)
    api.destroy_stream(stream)
    check(same, "1 MiB copied to the GPU and back differs")
    return {"binding": api.name, "device": api.device(), "roundtrip_1mib": same}


def _build(ctx: Ctx, source: str, engine: str, cache: Path, int8: bool = False) -> tuple[float, list[str]]:
    from glcf_runtime.backends.tensorrt.build import BuildOptions
    from glcf_runtime.backends.tensorrt.engines import build_for

    folder, lines = ctx.need("target", "export_graph").folder, []
    start = time.perf_counter()
    build_for(folder / source, folder / engine, BuildOptions(batch=(1, 1, 8), timing_cache=cache),
              int8=int8, overwrite=True, log=lines.append)
    return time.perf_counter() - start, lines


def part_tensorrt_fp16(ctx: Ctx) -> dict:
    """Build the engine from model.fp16.onnx; the project's runner against ONNX Runtime."""
    from glcf_runtime.backends import OnnxRuntimeRunner
    from glcf_runtime.backends.tensorrt.runner import TensorRTRunner

    seconds, lines = _build(ctx, "model.fp16.onnx", "model.engine", ctx.work / "timing.cache")
    engine, x = ctx.done["target"].folder / "model.engine", images(ctx)
    trt, ort = TensorRTRunner(engine), OnnxRuntimeRunner(engine.parent / "model.fp16.onnx")
    got = trt.infer(x)  # the same frames: ONNX Runtime on its best provider here, and CPU FP32
    vs_fp16, vs_fp32 = parity(ort.infer(x), got), parity(reference(ctx), got)
    check(vs_fp32["map_err_rel_range"] <= 1e-2, f"TensorRT differs from ONNX Runtime FP32: {vs_fp32}")
    ctx.done["engine"], ctx.done["build_seconds"] = engine, seconds
    return {"build_seconds": seconds, "log": lines[-3:], "runner": trt.describe(),
            "onnxruntime": ort.describe(), "vs_onnxruntime_fp16": vs_fp16,
            "vs_onnxruntime_fp32": vs_fp32, "latency": latency(trt)}


def part_tensorrt_timing_cache(ctx: Ctx) -> dict:
    """A rebuild reuses the first build's timing cache; a cache whose header (TensorRT version,
    device) was wiped is refused: the builder names it in its log and leaves the file as it was."""
    ctx.need("engine", "tensorrt_fp16")
    cache, foreign = ctx.work / "timing.cache", ctx.work / "foreign.cache"
    seconds, lines = _build(ctx, "model.fp16.onnx", "model.cached.engine", cache)
    check(not any(str(cache) in line for line in lines), f"own cache refused: {lines}")
    blob = bytearray(cache.read_bytes())
    blob[8:40] = bytes(32)
    foreign.write_bytes(bytes(blob))
    _, refused = _build(ctx, "model.fp16.onnx", "model.foreign.engine", foreign)
    check(foreign.read_bytes() == bytes(blob), "the mismatched cache file was rewritten")
    check(any(str(foreign) in line for line in refused), f"mismatched cache not refused: {refused}")
    return {"rebuild_with_cache_seconds": seconds, "first_build_seconds":
            ctx.done["build_seconds"], "refusal": [r for r in refused if str(foreign) in r]}


def part_tensorrt_int8(ctx: Ctx) -> dict:
    from glcf_export.quantize import quantize_int8
    from glcf_runtime.backends.tensorrt.runner import TensorRTRunner

    ctx.need("engine", "tensorrt_fp16")
    folder, meta = ctx.done["target"].folder, ctx.done["target"].metadata
    quantize_int8(folder / "model.onnx", folder / "model.int8.onnx", images(ctx, "train", 16), meta)
    seconds, _ = _build(ctx, "model.int8.onnx", "model.int8.engine", ctx.work / "int8.cache", int8=True)
    trt = TensorRTRunner(folder / "model.int8.engine")
    return {"build_seconds": seconds, "vs_onnxruntime_fp32": parity(reference(ctx), trt.infer(images(ctx))),
            "latency": latency(trt)}


@dataclass(frozen=True)
class Part:
    name: str
    run: Callable[[Ctx], dict]
    needs: tuple[Callable[[], str | None], ...]
    after: tuple[str, ...]  # parts whose results it uses
    estimate_s: float  # skipped when less of the budget is left


PARTS = (
    Part("environment", part_environment, (), (), 5),
    Part("data", part_data, (), (), 20),
    Part("train_tiny_amp", part_train_tiny_amp, (no_train_stack, no_cuda), ("data",), 40),
    Part("train_paper_amp", part_train_paper_amp, (no_train_stack, no_cuda), ("data",), 60),
    Part("resume_gradscaler", part_resume_gradscaler, (no_train_stack, no_cuda), ("data",), 40),
    Part("export_graph", part_export_graph, (no_train_stack,), ("data", "train_paper_amp"), 90),
    Part("torch_fp16_latency", part_torch_fp16_latency, (no_train_stack, no_cuda), ("export_graph",), 30),
    Part("onnxruntime_cuda", part_onnxruntime_cuda, (no_ort_cuda,), ("export_graph",), 90),
    Part("cuda_api", part_cuda_api, (no_cuda_binding,), (), 5),
    Part("tensorrt_fp16", part_tensorrt_fp16, (no_tensorrt,), ("export_graph",), 180),
    Part("tensorrt_timing_cache", part_tensorrt_timing_cache, (no_tensorrt,), ("tensorrt_fp16",), 150),
    Part("tensorrt_int8", part_tensorrt_int8, (no_tensorrt,), ("tensorrt_fp16",), 180),
)


def blocked(part: Part) -> str | None:
    """Why ``part`` cannot run on this machine (None: it can), without running anything heavy."""
    return next((reason for reason in (need() for need in part.needs) if reason), None)


def run_part(part: Part, ctx: Ctx, selected: set[str]) -> dict:
    if part.name not in selected:
        return {"status": "skipped", "reason": "not selected (--parts)"}
    reason = blocked(part)
    left = ctx.deadline - time.monotonic()
    if reason is None and left < part.estimate_s:
        reason = f"time budget: {left:.0f} s left, the part takes about {part.estimate_s:.0f} s"
    if reason:
        return {"status": "skipped", "reason": reason}
    log(f"{part.name} …")
    start = time.perf_counter()
    try:
        entry = {"status": "ok", "figures": part.run(ctx)}
    except Skip as exc:
        entry = {"status": "skipped", "reason": str(exc)}
    except Exception as exc:
        entry = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                 "traceback": traceback.format_exc()[-3000:]}
    entry["seconds"] = round(time.perf_counter() - start, 2)
    log(f"{part.name}: {entry['status']} {entry.get('reason', '')} ({entry['seconds']} s)")
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the JSON file (default: benchmarks/results/…)")
    parser.add_argument("--dry-run", action="store_true", help="list the parts and why each would skip")
    parser.add_argument("--parts", default=",".join(p.name for p in PARTS), help="comma-separated")
    parser.add_argument("--graph-preset", default="paper", help="the graph of the latency parts")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for all parts")
    parser.add_argument("--workdir", type=Path, help="keep the data, runs and engines here")
    args = parser.parse_args(argv)
    selected = set(args.parts.split(","))
    unknown = selected - {p.name for p in PARTS}
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {[p.name for p in PARTS]}")
    if args.dry_run:
        for part in PARTS:
            reason = "not selected (--parts)" if part.name not in selected else blocked(part)
            after = f" (uses {', '.join(part.after)})" if part.after else ""
            print(f"{part.name}: " + (f"skip: {reason}" if reason else "would run") + after)
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gpu-acceptance-"))
    work.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(work, args.graph_preset, time.monotonic() + args.budget)
    start, report = time.perf_counter(), {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                          "graph_preset": args.graph_preset, "parts": {}}
    try:
        for part in PARTS:
            entry = report["parts"][part.name] = run_part(part, ctx, selected)
            if entry["status"] != "ok":
                ctx.reasons[part.name] = entry["reason"]
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    report["total_seconds"] = round(time.perf_counter() - start, 1)
    machine = report["parts"]["environment"].get("figures", {}).get("machine", {})
    gpu = (machine.get("gpu") or "no-gpu").lower().replace(" ", "-")
    out = args.out or RESULTS / f"gpu-acceptance_{gpu}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    failed = [n for n, e in report["parts"].items() if e["status"] == "failed"]
    print(f"wrote {out} ({report['total_seconds']} s); " + (f"FAILED: {', '.join(failed)}" if failed
          else "no part failed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
