"""Φ_G, Ψ_L, Ψ_G: three decoders of identical structure, a Swin-T run backwards."""

from __future__ import annotations

import torch
from timm.models.swin_transformer import SwinTransformerBlock
from torch import nn
from torch.nn import functional as F

from glcf_train.config import ModelConfig, UpsampleKind


class PatchExpand(nn.Module):
    """Swin-Unet patch expanding: ``[B, H, W, C]`` → ``[B, 2H, 2W, C']`` (Linear C→4C', 2x2
    rearrange, LN). Swin's taps halve the width (C' = C/2, Linear C→2C); a CNN's taps set C'."""

    def __init__(self, dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.out_dim = dim // 2 if out_dim is None else out_dim
        self.expand = nn.Linear(dim, 4 * self.out_dim, bias=False)
        self.norm = nn.LayerNorm(self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        x = self.expand(x).reshape(b, h, w, 2, 2, self.out_dim)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, self.out_dim)
        return self.norm(x)


class DualUpsample(nn.Module):
    """SUNet dual up-sample: ``[B, H, W, C]`` → ``[B, 2H, 2W, C']`` (C' = C/2 unless given).

    A pixel-shuffle path and a bilinear path, each ending in a 1x1 conv to C' channels, are
    concatenated and fused by a 1x1 conv.
    """

    def __init__(self, dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        half = dim // 2 if out_dim is None else out_dim
        self.shuffle_path = nn.Sequential(
            nn.Conv2d(dim, 4 * half, 1, bias=False), nn.PReLU(), nn.PixelShuffle(2),
            nn.Conv2d(half, half, 1, bias=False),
        )
        self.bilinear_in = nn.Sequential(nn.Conv2d(dim, half, 1), nn.PReLU())
        self.bilinear_out = nn.Conv2d(half, half, 1, bias=False)
        self.fuse = nn.Conv2d(2 * half, half, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        p = self.shuffle_path(x)
        b = F.interpolate(self.bilinear_in(x), scale_factor=2.0, mode="bilinear", align_corners=False)
        y = self.fuse(torch.cat([p, self.bilinear_out(b)], dim=1))
        return y.permute(0, 2, 3, 1)


UPSAMPLERS: dict[UpsampleKind, type[nn.Module]] = {
    UpsampleKind.PATCH_EXPAND: PatchExpand,
    UpsampleKind.DUAL: DualUpsample,
}


def _swin_blocks(dim: int, grid: int, depth: int, heads: int, window: int) -> nn.Sequential:
    return nn.Sequential(*[
        SwinTransformerBlock(dim, (grid, grid), num_heads=heads, window_size=window,
                             shift_size=0 if i % 2 == 0 else window // 2)
        for i in range(depth)
    ])


class SwinDecoder(nn.Module):
    """``[B, g, g, 8C]`` → predictions at scales 56, 28, 14 (for 224 input), NHWC.

    up → prediction at 14 (4C) → Swin blocks → up → prediction at 28 (2C) → Swin blocks → up →
    prediction at 56 (C). Returned finest first, matching the taps t0, t1, t2.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c0, c1, c2, c3 = cfg.channels
        _, g1, g2, _ = cfg.grids
        up = UPSAMPLERS[cfg.decoder.upsample]
        d, h, window = cfg.decoder.depths, cfg.decoder.num_heads, cfg.backbone.window_size
        self.up14, self.up28, self.up56 = up(c3, c2), up(c2, c1), up(c1, c0)
        self.blocks14 = _swin_blocks(c2, g2, d[0], h[0], window)
        self.blocks28 = _swin_blocks(c1, g1, d[1], h[1], window)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p14 = self.up14(x)
        p28 = self.up28(self.blocks14(p14))
        p56 = self.up56(self.blocks28(p28))
        return [p56, p28, p14]
