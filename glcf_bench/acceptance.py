"""What a GPU acceptance run needs to know about the machine, and how it measures: each probe
returns why a part cannot run here (None where it can); ``latency`` is ``glcf bench``'s timing at
batch 1 and 8, ``parity`` the export checks' figures of one run against another; ``fp16_autocast`` sends
training down its FP16 + GradScaler path on any GPU. Used by
``benchmarks/gpu_acceptance.py``; torch and TensorRT are imported only inside the functions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

# --- what this machine has (cheap: the dry run calls these) ----------------------------------


def no_train_stack() -> str | None:
    from glcf_runtime.requires import install_hint, installed

    absent = [n for n in ("torch", "timm", "onnx", "onnxslim", "scipy") if not installed(n)]
    return f"{', '.join(absent)} missing: {install_hint('glcf_export')}" if absent else None


def no_cuda() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return f"PyTorch {torch.__version__} (CUDA build {torch.version.cuda}) sees no CUDA device"
    return None


def no_ort_cuda() -> str | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return (f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                f"({', '.join(ort.get_available_providers())}): install onnxruntime-gpu")
    return None


def no_tensorrt() -> str | None:
    from glcf_runtime.backends.tensorrt.probe import tensorrt_here

    ok, why = tensorrt_here()
    return None if ok else f"TensorRT unusable here: {why}"


def no_cuda_binding() -> str | None:
    from glcf_runtime.backends.tensorrt.cuda import load_cuda_api
    from glcf_runtime.errors import GlcfError

    try:
        load_cuda_api()
    except GlcfError as exc:
        return str(exc)
    return None


# --- measuring ----------------------------------------------------------------------------


def latency(runner: Any, seconds: float = 3.0) -> list[dict]:
    """`glcf bench`'s timing (capture, pre-processing, inference, post-processing) at batch 1 and 8."""
    from glcf_bench.bench import summarise, time_backend
    from glcf_bench.frames import synthetic_frame

    camera = [synthetic_frame(i) for i in range(8)]
    return [{"batch": b, **summarise(time_backend(runner, b, 3, seconds, camera), b)} for b in (1, 8)]


def parity(ref: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Map error relative to the reference map's range, score error relative, rank agreement."""
    from glcf_runtime.compare import spearman

    span = float(ref[0].max() - ref[0].min()) or 1.0
    return {"map_err_rel_range": float(np.abs(ref[0] - got[0]).max()) / span,
            "score_err_rel": float(np.abs(ref[1] - got[1]).max() / (np.abs(ref[1]).max() or 1.0)),
            "spearman": float(spearman(ref[1], got[1]))}


@contextmanager
def fp16_autocast() -> Iterator[list[dict]]:
    """Training's FP16 path (autocast + GradScaler), which it takes on GPUs without BF16, on any
    GPU; yields the states GradScaler.load_state_dict is given (what a resume restores)."""
    import torch

    loaded: list[dict] = []
    original_bf16, original_load = torch.cuda.is_bf16_supported, torch.amp.GradScaler.load_state_dict

    def load(self: Any, state: dict) -> None:
        loaded.append(dict(state))
        original_load(self, state)

    torch.cuda.is_bf16_supported = lambda *a, **k: False
    torch.amp.GradScaler.load_state_dict = load
    try:
        yield loaded
    finally:
        torch.cuda.is_bf16_supported, torch.amp.GradScaler.load_state_dict = original_bf16, original_load
