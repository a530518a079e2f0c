"""The machine a benchmark runs on: CPU, cores, GPU, package versions, the measured MatMul peak
and the process's peak memory."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import time
from pathlib import Path

import numpy as np

from glcf_runtime.backends.base import cpu_cores
from glcf_runtime.errors import GlcfError

VERSION_OF = {
    "torch": "torch",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "onnxslim": "onnxslim",
    "glcf": "glcf",
    "numpy": "numpy",
    "opencv": "opencv-python-headless",
    "tensorrt": "tensorrt",
}



def cpu_model() -> str:
    """``model name`` from /proc/cpuinfo (the processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()



def machine_info() -> dict:
    gpu = gpu_description()
    return {
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": cpu_cores(),
        "physical_cores": physical_cores(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "gpu": gpu[0] if gpu else None,
        "cuda": gpu[1] if gpu else None,
        "cpu_flags": cpu_flags(),
    }


def cpu_flags() -> list[str]:
    """The CPU's vector and reduced-precision instructions that decide CPU speed-ups (AVX2,
    AVX-512, BF16, VNNI, AMX), from /proc/cpuinfo; empty elsewhere."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.partition(":")[2].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def gpu_description() -> tuple[str, str | None] | None:
    """(GPU name, CUDA version) of the current device, through torch where it is already loaded,
    else cuda-python; None without a visible GPU or either binding."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        return (torch.cuda.get_device_name(), torch.version.cuda) if torch.cuda.is_available() else None
    from glcf_runtime.backends.tensorrt.probe import gpu_info

    try:
        return gpu_info().name, None
    except GlcfError:
        return None



def versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (None: not installed)."""
    found: dict[str, str | None] = {}
    for key, dist in VERSION_OF.items():
        try:
            found[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[key] = None
    if found["opencv"] is None:
        import cv2

        found["opencv"] = cv2.__version__
    return found



def physical_cores() -> int:
    """Physical cores this process may use (distinct core ids in /proc/cpuinfo, capped by the
    CPU affinity); the logical count where /proc/cpuinfo says nothing."""
    allowed = cpu_cores()
    cores, physical = set(), "0"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "physical id":
                physical = value.strip()
            elif key.strip() == "core id":
                cores.add((physical, value.strip()))
    except OSError:
        pass
    return max(1, min(len(cores) or allowed or 1, allowed or 1))



def matmul_peak_gflops(
    threads: int, sizes: tuple[int, ...] = (1024, 2048), repeats: int = 5
) -> float:
    """Best FP32 GFLOP/s of ONNX Runtime (CPU provider, ``threads``) on one square MatMul."""
    import onnx
    import onnxruntime as ort

    best = 0.0
    for n in sizes:
        inputs = [
            onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [n, n])
            for x in ("a", "b")
        ]
        out = onnx.helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [n, n])
        graph = onnx.helper.make_graph(
            [onnx.helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", inputs, [out]
        )
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        rng = np.random.default_rng(0)
        feed = {x: rng.standard_normal((n, n), dtype=np.float32) for x in ("a", "b")}
        session.run(None, feed)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, feed)
            best = max(best, 2.0 * n**3 / (time.perf_counter() - start) / 1e9)
    return best



def matmul_peak_int8_gops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Best INT8 GOP/s of ONNX Runtime (CPU provider, ``threads``) on one square MatMulInteger
    (uint8 × int8 → int32: the VNNI / AMX path of a static INT8 graph on x86)."""
    import onnx
    import onnxruntime as ort

    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("MatMulInteger", ["a", "b"], ["c"])], "matmul_int8",
        [h.make_tensor_value_info("a", onnx.TensorProto.UINT8, [n, n]),
         h.make_tensor_value_info("b", onnx.TensorProto.INT8, [n, n])],
        [h.make_tensor_value_info("c", onnx.TensorProto.INT32, [n, n])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"a": rng.integers(0, 256, (n, n), dtype=np.uint8),
            "b": rng.integers(-128, 128, (n, n), dtype=np.int8)}
    session.run(None, feed)  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        best = max(best, 2.0 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def cuda_matmul_peak_gflops(n: int = 4096, repeats: int = 10) -> float | None:
    """Best FP16 GFLOP/s of one square torch matmul on the CUDA device; None without one (or
    without torch: a runtime-only install times no torch)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    torch.matmul(a, b)
    torch.cuda.synchronize()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        torch.cuda.synchronize()
        best = max(best, 2.0 * n**3 / (time.perf_counter() - start) / 1e9)
    return best



def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS, where Linux allows it."""
    with contextlib.suppress(OSError):  # else the peak covers the whole process lifetime
        Path("/proc/self/clear_refs").write_text("5")



def peak_rss_mb() -> float:
    """Peak resident memory in MiB: VmHWM since the last reset, else the process's maximum."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0



def slug(text: str, limit: int = 40) -> str:
    """``AMD EPYC 7763 64-Core Processor`` → ``amd-epyc-7763-64-core-processor``."""
    text = re.sub(r"\((r|tm)\)|\b(cpu|processor)\b", "", text.lower())
    return re.sub(r"[^a-z0-9.]+", "-", text).strip("-.")[:limit].strip("-.") or "unknown"
