"""Semantic bottleneck: multi-scale patch embedding (MS-PEM) and semantic aggregation (SAM)."""

from __future__ import annotations

import numpy as np
import torch
from timm.models.vision_transformer import Block
from torch import nn

from glcf_train.config import BottleneckConfig, ModelConfig, SamVariant


def sincos_position_embedding(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding ``[grid*grid, dim]`` (row-major tokens).

    Half the channels encode the row, half the column; each half is sin/cos pairs at
    frequencies ``1 / 10000^(k / (dim/4))``.
    """
    if dim % 4:
        raise ValueError(f"position embedding width must be divisible by 4, got {dim}")
    freqs = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")

    def encode(pos: np.ndarray) -> np.ndarray:
        angles = pos.reshape(-1, 1) * freqs[None]  # [T, dim/4]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)  # [T, dim/2]

    table = np.concatenate([encode(rows), encode(cols)], axis=1)
    return torch.from_numpy(table).float()


def _blocks(dim: int, depth: int, heads: int, mlp_ratio: float) -> nn.Sequential:
    return nn.Sequential(*[Block(dim, heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])


class MultiScalePatchEmbed(nn.Module):
    """MS-PEM: t1, t2, t3 (NHWC) → the sum of three patch embeddings ``[B, g*g, D]``, g = grid of t3."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        _, c1, c2, c3 = cfg.channels
        d = cfg.bottleneck.dim
        self.embeds = nn.ModuleList(
            [nn.Conv2d(c, d, kernel_size=p, stride=p) for c, p in ((c1, 4), (c2, 2), (c3, 1))]
        )

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        x = sum(emb(t.permute(0, 3, 1, 2)) for emb, t in zip(self.embeds, taps, strict=True))
        return x.flatten(2).transpose(1, 2)


class SemanticBottleneck(nn.Module):
    """MS-PEM + SAM; produces Θ (for Φ_G) and Ω (for Ψ_L and Ψ_G), each ``[B, g, g, 8C]`` NHWC.

    The global decoder never sees the local latent, so Θ carries only what the semantic tokens
    aggregated: the global correspondence the paper relies on for logical anomalies.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        b: BottleneckConfig = cfg.bottleneck
        self.variant = b.variant
        self.grid = cfg.grids[3]
        n = self.grid * self.grid
        self.pem = MultiScalePatchEmbed(cfg)
        self.register_buffer("pos", sincos_position_embedding(b.dim, self.grid)[None], persistent=False)
        if b.variant in (SamVariant.PS, SamVariant.PSS):
            self.s1 = nn.Parameter(torch.zeros(1, n, b.dim))  # spatial semantic tokens S₁
        else:
            self.g1 = nn.Parameter(torch.zeros(1, 1, b.dim))  # one global token
        if b.variant in (SamVariant.PGS, SamVariant.PSS):
            self.s2 = nn.Parameter(torch.zeros(1, n, b.dim))  # tokens S₂ before the global decoder
        self.encoder = _blocks(b.dim, b.encoder_depth, b.encoder_heads, b.mlp_ratio)
        self.encoder_norm = nn.LayerNorm(b.dim)
        self.global_decoder = _blocks(b.dim, b.decoder_depth, b.decoder_heads, b.mlp_ratio)
        self.local_decoder = _blocks(b.dim, b.decoder_depth, b.decoder_heads, b.mlp_ratio)
        c3 = cfg.channels[3]
        self.theta_head = nn.Sequential(nn.LayerNorm(b.dim), nn.Linear(b.dim, c3))
        self.omega_head = nn.Sequential(nn.LayerNorm(b.dim), nn.Linear(b.dim, c3))
        for p in (getattr(self, name, None) for name in ("s1", "g1", "s2")):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

    def forward(self, taps: list[torch.Tensor], theta: bool = True,
                omega: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``taps`` = [t1, t2, t3] NHWC → (Θ, Ω), each ``[B, g, g, 8C]`` or None when not asked."""
        x = self.pem(taps) + self.pos  # [B, n, D]
        n = x.shape[1]
        if self.variant is SamVariant.PGS:
            sem = self.g1.expand(x.shape[0], -1, -1)
        else:
            sem = (self.s1 + self.pos).expand(x.shape[0], -1, -1)
        latent = self.encoder_norm(self.encoder(torch.cat([x, sem], dim=1)))
        local_latent, global_latent = latent[:, :n], latent[:, n:]
        theta_out = self._theta(global_latent) if theta else None
        omega_out = self._to_grid(self.omega_head(self.local_decoder(local_latent))) if omega else None
        return theta_out, omega_out

    def _theta(self, global_latent: torch.Tensor) -> torch.Tensor:
        if self.variant is SamVariant.PS:
            tokens = self.global_decoder(global_latent)
        else:
            s2 = (self.s2 + self.pos).expand(global_latent.shape[0], -1, -1)
            tokens = self.global_decoder(torch.cat([global_latent, s2], dim=1))[:, -s2.shape[1] :]
        return self._to_grid(self.theta_head(tokens))

    def _to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.reshape(tokens.shape[0], self.grid, self.grid, tokens.shape[-1])
