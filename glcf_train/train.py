"""The training loop: paper optimiser and schedule, atomic checkpoints, exact resume, DDP."""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.files import atomic_write
from glcf_runtime.preprocess import MAX_PIXELS
from glcf_train import checkpoint as ck
from glcf_train.builder import build_model, resolve_device
from glcf_train.config import BackboneKind, GlcfConfig, from_dict, save_yaml, to_dict, with_train
from glcf_train.distributed import (
    DistInfo,
    all_mean,
    barrier,
    device_for_rank,
    dist_info,
    init_distributed,
    shutdown,
)
from glcf_train.losses import glcf_losses
from glcf_train.progress import TrainProgress, counting_progress
from glcf_train.training_data import TrainingData, load_training_data

TAP_CACHE_BYTES = 4 << 30  # the largest tap cache kept in memory (or GPU memory) per process


class TrainingDiverged(GlcfError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainOptions:
    out: Path
    data: Path | None = None
    category: str | None = None
    config: GlcfConfig | None = None  # a new run's config; a resumed run keeps its own
    train_overrides: dict[str, Any] | None = None  # e.g. {"steps": 800}: applied to either
    device: str = "cpu"
    random_init: bool = False
    backbone_weights: Path | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    max_pixels: int = MAX_PIXELS  # the largest image read (--max-pixels), width × height
    # Called after every step with (step, losses); returning True stops the run cleanly.
    on_step: Callable[[int, dict[str, float]], bool] | None = None


@dataclass(frozen=True)
class TrainResult:
    run: Path
    step: int
    total_steps: int
    completed: bool
    first_losses: dict[str, float] | None
    last_losses: dict[str, float] | None
    weights: str = ""  # where Φ_L's weights came from, with their sha256


@dataclass
class _State:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    cfg: GlcfConfig
    data: TrainingData
    step: int
    total_steps: int
    backbone: str  # where Φ_L's weights came from (WeightsInfo.source)
    out: Path
    backbone_sha256: str | None = None
    scaler_state: dict | None = None  # GradScaler of a resumed FP16 run
    scaler: Any = None  # the run's torch.amp.GradScaler (FP16 autocast on CUDA), else None
    taps: list[torch.Tensor] | None = None  # a frozen CNN Φ_L's taps of every training image


def train(opts: TrainOptions) -> TrainResult:
    """Train (or resume) a run; see :class:`TrainOptions`. Returns where it stopped.

    Every input (run folder, data, weights, training length) is checked before the run folder
    changes; with ``overwrite`` the old run is set aside and comes back if the new one fails
    before its first checkpoint. Under ``torchrun`` each process uses the GPU of its local rank.
    """
    info = dist_info()
    device = resolve_device(device_for_rank(opts.device, info))  # after the rank is known
    info = init_distributed(str(device))
    try:
        if info.is_main:
            ck.check_run_dir(opts.out, opts.resume, opts.overwrite)
        barrier(info)
        state = _restore(opts, device, info) if opts.resume else _fresh(opts, device, info)
        fresh_folder = info.is_main and not opts.resume
        with ck.set_aside(opts.out) if fresh_folder else nullcontext():
            if info.is_main:
                atomic_write(opts.out / ck.CONFIG_NAME, lambda p: save_yaml(state.cfg, p))
            return _loop(state, opts, device, info)
    finally:
        shutdown(info)


def _optimizer(model: torch.nn.Module, cfg: GlcfConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    t = cfg.train
    return torch.optim.AdamW(params, lr=t.lr, betas=t.betas, weight_decay=t.weight_decay)


def _total_steps(cfg: GlcfConfig, steps_per_epoch: int) -> int:
    steps, epochs = cfg.train.steps, cfg.train.epochs
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ConfigError(f"--steps {steps}: give a number of optimiser steps >= 0 "
                              "(0 writes an untrained checkpoint)")
        return steps
    if epochs is None:
        raise ConfigError("the config sets neither train.epochs nor train.steps")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"--epochs {epochs}: give a number of epochs >= 1")
    return epochs * steps_per_epoch


def _fresh(opts: TrainOptions, device: torch.device, info: DistInfo) -> _State:
    if opts.config is None or opts.data is None:
        raise ConfigError("a new run needs --data and a preset or --config")
    cfg = with_train(opts.config, **(opts.train_overrides or {}))
    data = load_training_data(opts.data, opts.category, cfg, info, progress=opts.progress,
                              max_pixels=opts.max_pixels)
    model, weights = build_model(cfg, opts.backbone_weights, opts.random_init)
    model.to(device)
    total = _total_steps(cfg, data.steps_per_epoch)
    return _State(model, _optimizer(model, cfg), cfg, data, 0, total, weights.source, opts.out,
                  backbone_sha256=weights.sha256,
                  taps=_cached_taps(model, cfg, data, device, opts.progress and info.is_main,
                                    fit=True))


def _restore(opts: TrainOptions, device: torch.device, info: DistInfo) -> _State:
    ckpt = ck.load_checkpoint(opts.out / ck.CHECKPOINT_NAME)
    cfg = from_dict(GlcfConfig, ckpt["config"], where=f"{opts.out} checkpoint")
    cfg = with_train(cfg, **(opts.train_overrides or {}))
    data_root = Path(ckpt["data"]["root"]) if opts.data is None else opts.data
    category = ckpt["data"]["category"] if opts.category is None else opts.category
    data = load_training_data(data_root, category, cfg, info, progress=opts.progress,
                              max_pixels=opts.max_pixels)
    if data.count != ckpt["data"]["count"]:
        raise ConfigError(
            f"resume: the training set now has {data.count} images, the run started with "
            f"{ckpt['data']['count']}; resume on the same images or start a new run"
        )
    model, _ = build_model(cfg, random_init=True)  # weights come from the checkpoint
    model.load_state_dict(ckpt["model"])
    model.to(device)
    optimizer = _optimizer(model, cfg)
    optimizer.load_state_dict(ckpt["optimizer"])
    total = _total_steps(cfg, data.steps_per_epoch)
    if ckpt["step"] >= total:
        raise ConfigError(f"{opts.out} already finished its {total} steps; pass a larger "
                          "--steps or --epochs with --resume to train further")
    return _State(model, optimizer, cfg, data, ckpt["step"], total, ckpt["backbone"], opts.out,
                  backbone_sha256=ckpt.get("backbone_sha256"), scaler_state=ckpt.get("scaler"),
                  taps=_cached_taps(model, cfg, data, device, opts.progress and info.is_main))


def _cached_taps(model: torch.nn.Module, cfg: GlcfConfig, data: TrainingData,
                 device: torch.device, progress: bool, fit: bool = False) -> list[torch.Tensor] | None:
    """A frozen CNN Φ_L's taps of every training image, computed once (no per-step augmentation:
    each step would compute the same ones again; on a CPU they cost more than the rest of a step;
    ``shift_augment``'s shifted copies are training images like the others).
    None for Swin, whose taps each step computes as before.

    ``fit`` (a new run): first fix a CNN Φ_L's tap statistics on the training images, in the same
    pass over them where the taps are cached.
    """
    cnn = cfg.model.backbone.kind is not BackboneKind.SWIN
    per_image = sum(c * g * g for c, g in zip(cfg.model.channels, cfg.model.grids, strict=True)) * 4
    cache = cnn and per_image * data.count <= TAP_CACHE_BYTES
    images = torch.from_numpy(data.images)
    if fit and cnn and cfg.model.backbone.standardize:
        title = "Φ_L features of the training images" if cache else "Φ_L's tap statistics"
        with counting_progress(title, data.count, progress) as advance:
            return model.fit_standardization(images, keep=cache, progress=advance)
    if not cache:
        return None
    parts: list[list[torch.Tensor]] = [[], [], [], []]
    with counting_progress("Φ_L features of the training images", data.count, progress) as advance:
        for i in range(0, data.count, 16):
            batch = images[i : i + 16].to(device)
            for part, tap in zip(parts, model.local_features(batch), strict=True):
                part.append(tap)
            advance(min(i + 16, data.count), data.count)
    return [torch.cat(part) for part in parts]


def _lr_at(cfg: GlcfConfig, step: int, total: int) -> float:
    """Paper schedule: ``lr`` until ``lr_drop_at`` of the run, then ``lr * lr_drop``."""
    t = cfg.train
    return t.lr * (t.lr_drop if step >= math.floor(t.lr_drop_at * total) else 1.0)


def _autocast(device: torch.device, cfg: GlcfConfig):
    if device.type != "cuda" or not cfg.train.amp:
        return nullcontext(), None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype is torch.float16 else None
    return torch.autocast("cuda", dtype=dtype), scaler


def _loop(s: _State, opts: TrainOptions, device: torch.device, info: DistInfo) -> TrainResult:
    net = DistributedDataParallel(s.model) if info.enabled else s.model
    s.model.train()
    amp_ctx, scaler = _autocast(device, s.cfg)
    if scaler is not None and s.scaler_state:
        scaler.load_state_dict(s.scaler_state)  # exact resume: the loss scale and its growth
    s.scaler = scaler
    stop = _StopFlag()
    first = last = None
    bar = TrainProgress(s.total_steps, s.step, enabled=opts.progress and info.is_main)
    log = (opts.out / ck.LOG_NAME).open("a") if info.is_main else None
    with stop.installed(), bar:
        if s.total_steps == 0:  # an untrained run (e.g. to export or benchmark random weights)
            _save(s, opts, info, last)
        while s.step < s.total_steps and not stop.requested:
            epoch, offset = divmod(s.step, s.data.steps_per_epoch)
            for index in s.data.epoch_batches(epoch)[offset:]:
                losses = _step(s, net, index, device, amp_ctx, scaler, info)
                s.step += 1
                first = first or losses
                last = losses
                bar.update(s.step, epoch, losses)
                if log is not None:
                    log.write(json.dumps({"step": s.step, "epoch": epoch, "time": time.time(), **losses}) + "\n")
                if opts.on_step is not None and opts.on_step(s.step, losses):
                    stop.request()
                if s.step >= s.total_steps or stop.requested:
                    break
            _save(s, opts, info, last)
    if log is not None:
        log.close()
    weights = s.backbone + (f" (sha256 {s.backbone_sha256})" if s.backbone_sha256 else "")
    return TrainResult(opts.out, s.step, s.total_steps, s.step >= s.total_steps, first, last,
                       f"{s.cfg.model.backbone.kind.value}, {weights}")


def _step(s: _State, net: torch.nn.Module, index: np.ndarray, device: torch.device,
          amp_ctx, scaler, info: DistInfo) -> dict[str, float]:
    lr = _lr_at(s.cfg, s.step, s.total_steps)
    for group in s.optimizer.param_groups:
        group["lr"] = lr
    s.optimizer.zero_grad(set_to_none=True)
    with amp_ctx:
        if s.taps is not None:
            taps = [t[torch.from_numpy(index).to(t.device)] for t in s.taps]
            losses = glcf_losses(net(None, taps=taps), s.cfg.train)
        else:
            batch = torch.from_numpy(s.data.images[index]).to(device, non_blocking=True)
            losses = glcf_losses(net(batch), s.cfg.train)
    values = all_mean(torch.stack([losses.total, losses.consistency, losses.local,
                                   losses.global_]).detach().float(), info)
    if not bool(torch.isfinite(values).all()):
        raise TrainingDiverged(
            f"the loss became {values[0].item()} at step {s.step + 1}; the last good checkpoint "
            f"{s.out / ck.CHECKPOINT_NAME} is intact. Lower the learning rate "
            "(train.lr in a --config file) or check the training images."
        )
    if scaler is not None:
        scaler.scale(losses.total).backward()
        scaler.step(s.optimizer)
        scaler.update()
    else:
        losses.total.backward()
        s.optimizer.step()
    total, l_c, l_e, l_g = values.tolist()
    return {"total": total, "l_c": l_c, "l_e": l_e, "l_g": l_g, "lr": lr}


def _save(s: _State, opts: TrainOptions, info: DistInfo, last: dict | None) -> None:
    if info.is_main:
        ck.save_checkpoint(opts.out / ck.CHECKPOINT_NAME, {
            "config": to_dict(s.cfg),
            "config_hash": s.cfg.hash(),
            "model": s.model.state_dict(),
            "optimizer": s.optimizer.state_dict(),
            "step": s.step,
            "total_steps": s.total_steps,
            "data": s.data.describe(),
            "backbone": s.backbone,
            "backbone_sha256": s.backbone_sha256,
            "last_losses": last or {},
            "scaler": None if s.scaler is None else s.scaler.state_dict(),
            "versions": {"torch": str(torch.__version__)},
        })
    barrier(info)


class _StopFlag:
    """Ctrl-C / SIGTERM ask the loop to stop after the current step and save a checkpoint."""

    def __init__(self) -> None:
        self.requested = False

    def request(self, *_: object) -> None:
        self.requested = True

    @contextmanager
    def installed(self) -> Iterator[None]:
        saved = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(ValueError):  # not the main thread: leave signals alone
                saved[sig] = signal.signal(sig, self.request)
        try:
            yield
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
