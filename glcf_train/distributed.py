"""Data-parallel training across processes started by ``torchrun`` (gloo on CPU, NCCL on CUDA)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """This process's place in the ``torchrun`` job the environment describes (or a single one)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def device_for_rank(device: str, info: DistInfo) -> str:
    """``--device`` for this process: under ``torchrun`` a CUDA device (``cuda``, ``cuda:N``,
    or ``auto`` with a GPU) is the GPU of the local rank, so that ranks do not share GPU 0."""
    if not info.enabled:
        return device
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return f"cuda:{info.local_rank}"
    return device


def init_distributed(device: str) -> DistInfo:
    """Join the process group ``torchrun`` describes in the environment; single process otherwise."""
    info = dist_info()
    if not info.enabled:
        return info
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def all_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``values`` over all processes (identity in a single process)."""
    if not info.enabled:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
