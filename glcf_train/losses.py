"""Training losses of GLCF (DESIGN §2): ℓ_C, ℓ_E, ℓ_G, each an MSE summed over the three scales."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from glcf_train.config import TrainConfig
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


def glcf_losses(f: GlcfFeatures, cfg: TrainConfig) -> Losses:
    """L = λ1 ℓ_C + λ2 ℓ_E + λ3 ℓ_G. Φ_L carries no gradient; ℓ_G trains Φ_G too unless
    ``cfg.detach_global_target``."""
    if f.phi_g is None or f.psi_l is None or f.psi_g is None:
        raise ValueError("training needs every branch: run the model with BranchMode.BOTH")
    target = [t.detach() for t in f.phi_l]
    phi_g_target = [t.detach() for t in f.phi_g] if cfg.detach_global_target else f.phi_g
    l_c = _mse_sum(f.phi_g, target)
    l_e = _mse_sum(f.psi_l, target)
    l_g = _mse_sum(f.psi_g, phi_g_target)
    w1, w2, w3 = cfg.loss_weights
    return Losses(w1 * l_c + w2 * l_e + w3 * l_g, l_c, l_e, l_g)
