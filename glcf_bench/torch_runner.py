"""The ``torch`` backend of `glcf bench`: a torch module behind the runtime's ``Runner`` interface."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from glcf_runtime.backends import Runner
from glcf_runtime.metadata import ArtifactMetadata

if TYPE_CHECKING:
    import torch
    from torch import nn


def _torch() -> Any:
    """torch, imported when a torch runner is made (glcf_bench imports torch only lazily)."""
    import torch

    return torch


class TorchRunner(Runner):
    """A torch module (uint8 frames in, map and score out) behind the runtime's ``Runner`` interface.

    CPU: FP32 eager under ``torch.inference_mode()``. CUDA: FP16 autocast, optionally replayed
    from a CUDA graph captured once per batch size.
    """

    backend = "torch"

    def __init__(
        self,
        deploy: nn.Module,
        path: Path,
        metadata: ArtifactMetadata,
        device: str = "cpu",
        cuda_graphs: bool = False,
    ) -> None:
        super().__init__(path, metadata)
        torch = _torch()
        self.device = torch.device(device)
        self.module = deploy.to(self.device).eval()
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, tuple]] = {}

    @property
    def max_batch(self) -> int | None:
        return None

    @property
    def precision(self) -> str:
        if self.device.type == "cpu":
            return "fp32"
        return "fp16-autocast" + ("+cuda-graph" if self.cuda_graphs else "")

    def describe(self) -> str:
        return f"torch eager {self.precision} on {self.device}"

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"

    def gpu_memory_mb(self) -> float | None:
        """Peak memory torch allocated on the GPU since the last reset (None on the CPU)."""
        torch = _torch()
        return torch.cuda.max_memory_allocated() / 2**20 if self.on_cuda else None

    def reset_peak_memory(self) -> None:
        torch = _torch()
        if self.on_cuda:
            torch.cuda.reset_peak_memory_stats()

    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = _torch()
        if self.device.type == "cpu":
            with torch.inference_mode():
                maps, scores = self.module(torch.from_numpy(batch))
            return maps.numpy(), scores.numpy()
        maps, scores = self._replay(batch) if self.cuda_graphs else self._cuda(batch)
        return maps.float().cpu().numpy(), scores.float().cpu().numpy()

    def _cuda(self, batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        torch = _torch()
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
            return self.module(x)

    def _replay(self, batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Copy into the graph's static input, replay, return its static outputs."""
        torch = _torch()
        n = batch.shape[0]
        if n not in self._graphs:
            static = torch.from_numpy(batch).to(self.device)
            autocast = torch.autocast("cuda", dtype=torch.float16, cache_enabled=False)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), torch.inference_mode(), autocast:
                for _ in range(3):  # warm-up on a side stream before capture (PyTorch docs)
                    self.module(static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode(), autocast:
                outputs = self.module(static)
            self._graphs[n] = (graph, static, outputs)
        graph, static, outputs = self._graphs[n]
        static.copy_(torch.from_numpy(batch))
        graph.replay()
        return outputs

    def close(self) -> None:
        torch = _torch()
        self._graphs.clear()
        if self.device.type == "cuda":
            self.module.to("cpu")
            torch.cuda.empty_cache()
