"""Training losses of GLCF (DESIGN §2): ℓ_C, ℓ_E, ℓ_G, each a distance summed over the three scales.

The distance is the paper's MSE by default; ``TrainConfig.loss_form`` may choose RD4AD's cosine
distance (scale-free: 1 - cosine similarity over channels, averaged over positions) or their sum.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from glcf_train.config import LossForm, TrainConfig
from glcf_train.model import GlcfFeatures


class Losses(NamedTuple):
    total: torch.Tensor
    consistency: torch.Tensor  # ℓ_C: Φ_L vs Φ_G
    local: torch.Tensor  # ℓ_E: Φ_L vs Ψ_L
    global_: torch.Tensor  # ℓ_G: Φ_G vs Ψ_G

    def items(self) -> dict[str, float]:
        """Plain floats for logging: total, l_c, l_e, l_g."""
        return {"total": float(self.total), "l_c": float(self.consistency),
                "l_e": float(self.local), "l_g": float(self.global_)}


def _mse_sum(pred: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.mse_loss(p.float(), t.float()) for p, t in zip(pred, target, strict=True))


def _cosine_sum(pred: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    """Σ over scales of the mean over positions of 1 - cos(pred, target) over channels (NHWC)."""
    return sum((1.0 - F.cosine_similarity(p.float(), t.float(), dim=-1)).mean()
               for p, t in zip(pred, target, strict=True))


def distance(pred: list[torch.Tensor], target: list[torch.Tensor], form: LossForm) -> torch.Tensor:
    """One loss term of ``form`` between feature lists (one tensor per scale)."""
    if form is LossForm.MSE:
        return _mse_sum(pred, target)
    if form is LossForm.COSINE:
        return _cosine_sum(pred, target)
    return _mse_sum(pred, target) + _cosine_sum(pred, target)


def glcf_losses(f: GlcfFeatures, cfg: TrainConfig) -> Losses:
    """L = λ1 ℓ_C + λ2 ℓ_E + λ3 ℓ_G. Φ_L carries no gradient; ℓ_G trains Φ_G too unless
    ``cfg.detach_global_target``."""
    if f.phi_g is None or f.psi_l is None or f.psi_g is None:
        raise ValueError("training needs every branch: run the model with BranchMode.BOTH")
    target = [t.detach() for t in f.phi_l]
    phi_g_target = [t.detach() for t in f.phi_g] if cfg.detach_global_target else f.phi_g
    form = LossForm(cfg.loss_form)
    l_c = distance(f.phi_g, target, form)
    l_e = distance(f.psi_l, target, form)
    l_g = distance(f.psi_g, phi_g_target, form)
    w1, w2, w3 = cfg.loss_weights
    return Losses(w1 * l_c + w2 * l_e + w3 * l_g, l_c, l_e, l_g)
