"""Build a GLCF model with its Φ_L weights, or restore one from a run."""

from __future__ import annotations

from pathlib import Path

import torch

from glcf_runtime.errors import ConfigError
from glcf_train.checkpoint import load_checkpoint
from glcf_train.config import GlcfConfig, from_dict
from glcf_train.model import GLCF
from glcf_train.model.backbone import (
    WEIGHTS_HELP,
    WeightsError,
    load_backbone_weights,
    load_hub_weights,
)


def build_model(cfg: GlcfConfig, backbone_weights: Path | None = None,
                random_init: bool = False, hub: bool = True) -> tuple[GLCF, str]:
    """A fresh model and a description of where Φ_L's weights came from.

    Order: ``backbone_weights`` file, else timm's hub (when ``hub``), else random weights when
    ``random_init``; otherwise :class:`WeightsError` naming both ways to get weights.
    """
    torch.manual_seed(cfg.train.seed)
    model = GLCF(cfg.model)
    if backbone_weights is not None:
        if random_init:
            raise WeightsError("--backbone-weights and --random-init contradict each other; pick one")
        load_backbone_weights(model.phi_l, cfg.model.backbone, cfg.model.image_size, backbone_weights)
        return model, f"file:{backbone_weights}"
    if random_init:
        return model, "random-init"
    if not hub:
        raise WeightsError(f"no backbone weights given. {WEIGHTS_HELP}")
    load_hub_weights(model.phi_l, cfg.model.backbone, cfg.model.image_size)
    return model, f"timm-hub:{cfg.model.backbone.timm_name}"


def load_run(run: Path, device: str | torch.device = "cpu") -> tuple[GLCF, GlcfConfig, dict]:
    """The trained model of a run folder (eval mode), its config and the raw checkpoint."""
    ckpt = load_checkpoint(Path(run))
    cfg = from_dict(GlcfConfig, ckpt["config"], where=f"{run} checkpoint config")
    model = GLCF(cfg.model)
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    return model, cfg, ckpt


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` as a device; a clear error where CUDA is absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device {name!r}: use cpu, cuda, cuda:N or auto")
    return torch.device(name)
