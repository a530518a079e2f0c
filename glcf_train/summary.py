"""What `glcf train --dry-run` prints: parameters per part and the shape of every tap and prediction."""

from __future__ import annotations

import torch
from rich.table import Table

from glcf_train.config import GlcfConfig
from glcf_train.model import GLCF


def _count(module: torch.nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return trainable, frozen


def model_summary(cfg: GlcfConfig) -> list[Table]:
    """Tables: parameter counts per part, and output shapes for one 224² image (random weights)."""
    model = GLCF(cfg.model).eval()
    params = Table(title=f"GLCF parameters — preset {cfg.preset}")
    for col in ("part", "trainable", "frozen"):
        params.add_column(col, justify="left" if col == "part" else "right")
    parts = {f"Φ_L ({cfg.model.backbone.kind.value}, frozen)": model.phi_l, **{
        {"bottleneck": "semantic bottleneck", "phi_g": "Φ_G decoder", "psi_l": "Ψ_L decoder",
         "psi_g": "Ψ_G decoder"}[k]: v for k, v in model.trainable_parts().items()}}
    totals = [0, 0]
    for name, module in parts.items():
        t, f = _count(module)
        totals[0] += t
        totals[1] += f
        params.add_row(name, f"{t:,}", f"{f:,}")
    params.add_row("[bold]total", f"[bold]{totals[0]:,}", f"[bold]{totals[1]:,}")

    size = cfg.model.image_size
    image = torch.zeros(1, size, size, 3, dtype=torch.uint8)
    with torch.no_grad():
        taps = model.local_features(image)
        theta, omega = model.bottleneck(taps[1:])
        feats = model.from_taps(taps)
    shapes = Table(title=f"outputs for a {size}x{size} image (NHWC)")
    shapes.add_column("tensor")
    shapes.add_column("shape", justify="right")
    for i, t in enumerate(taps):
        shapes.add_row(f"Φ_L tap t{i}", str(list(t.shape)))
    shapes.add_row("Θ (global latent → Φ_G)", str(list(theta.shape)))
    shapes.add_row("Ω (local latent → Ψ_L, Ψ_G)", str(list(omega.shape)))
    for name in ("phi_g", "psi_l", "psi_g"):
        for t in getattr(feats, name):
            shapes.add_row(f"{name} prediction at {t.shape[1]}", str(list(t.shape)))
    return [params, shapes]
