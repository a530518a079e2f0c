"""The GLCF network: Φ_L, the semantic bottleneck and the decoders Φ_G, Ψ_L, Ψ_G.

The model returns features; losses live in :mod:`glcf_train.losses`, scoring in
:mod:`glcf_train.scoring`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import nn

from glcf_train.config import BackboneKind, BranchMode, ModelConfig
from glcf_train.model.backbone import LocalExtractor
from glcf_train.model.bottleneck import SemanticBottleneck
from glcf_train.model.cnn import CnnExtractor
from glcf_train.model.decoder import SwinDecoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)
# TF EfficientNet-Lite was trained on images scaled to [-1, 1] (timm's default_cfg of tf_efficientnet_lite*).
HALF = (0.5, 0.5, 0.5)


def input_stats(kind: BackboneKind) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The RGB mean and std (0-1 units) Φ_L's ImageNet training used."""
    if kind.value.startswith("efficientnet_lite"):
        return HALF, HALF
    return IMAGENET_MEAN, IMAGENET_STD


def build_extractor(cfg: ModelConfig) -> nn.Module:
    """Φ_L of ``cfg``: the cut Swin transformer or a CNN's four taps (random weights)."""
    if cfg.backbone.kind is BackboneKind.SWIN:
        return LocalExtractor(cfg.backbone, cfg.image_size)
    return CnnExtractor(cfg.backbone)


class GlcfFeatures(NamedTuple):
    """Feature lists at scales 56, 28, 14 (for 224 input), each ``[B, h, w, c]`` NHWC.

    ``phi_l`` are the frozen targets (t0, t1, t2); a branch the mode does not need is ``None``.
    """

    phi_l: list[torch.Tensor]
    phi_g: list[torch.Tensor] | None
    psi_l: list[torch.Tensor] | None
    psi_g: list[torch.Tensor] | None


class ImageNormalizer(nn.Module):
    """uint8 BGR ``[B, H, W, 3]`` (as OpenCV gives it) → normalised RGB ``[B, 3, H, W]``
    (``mean``, ``std``: RGB, 0-1 units; ImageNet's by default).

    The same module sits at the start of the exported graph, so training and deployment see
    identical pixels.
    """

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__()
        mean = torch.tensor(mean[::-1]) * 255.0  # BGR order, 0-255 units
        scale = 1.0 / (torch.tensor(std[::-1]) * 255.0)
        self.register_buffer("mean", mean.view(1, 1, 1, 3), persistent=False)
        self.register_buffer("scale", scale.view(1, 1, 1, 3), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image.float() - self.mean) * self.scale
        return x.flip(-1).permute(0, 3, 1, 2)  # BGR → RGB, NHWC → NCHW


class GLCF(nn.Module):
    """Global-local correspondence with a semantic bottleneck.

    ``forward(image)`` takes uint8 BGR ``[B, H, W, 3]`` and returns :class:`GlcfFeatures`.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.normalize = ImageNormalizer(*input_stats(cfg.backbone.kind))
        self.phi_l = build_extractor(cfg)
        self.bottleneck = SemanticBottleneck(cfg)
        self.phi_g = SwinDecoder(cfg)  # reads Θ
        self.psi_l = SwinDecoder(cfg)  # reads Ω
        self.psi_g = SwinDecoder(cfg)  # reads Ω
        for module in (self.bottleneck, self.phi_g, self.psi_l, self.psi_g):
            module.apply(_init_weights)

    def forward(self, image: torch.Tensor | None, mode: BranchMode = BranchMode.BOTH,
                taps: list[torch.Tensor] | None = None) -> GlcfFeatures:
        """``taps``: Φ_L's taps of ``image`` computed before (training caches a frozen CNN's)."""
        if taps is None:
            taps = self.local_features(image)
        return self.from_taps(taps, mode)

    def local_features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Φ_L taps t0..t3 of uint8 BGR images, NHWC, without gradient."""
        with torch.no_grad():
            return self.phi_l(self.normalize(image))

    def raw_local_features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Φ_L's own taps t0..t3, NHWC, before any standardisation (what a baseline compares)."""
        if not isinstance(self.phi_l, CnnExtractor):
            return self.local_features(image)
        with torch.no_grad():
            return [t.permute(0, 2, 3, 1) for t in self.phi_l.raw_taps(self.normalize(image))]

    @torch.no_grad()
    def fit_standardization(self, images: torch.Tensor, batch: int = 16, keep: bool = False,
                            progress: Callable[[int, int], None] | None = None,
                            ) -> list[torch.Tensor] | None:
        """Fix Φ_L's per-channel tap statistics on uint8 BGR training ``images`` ``[N, H, W, 3]``
        (a CNN Φ_L whose config standardises; nothing to do otherwise, and None returned).

        With ``keep``, return Φ_L's taps of every image too, as ``local_features`` gives them now.
        The images go to the model's device ``batch`` at a time; ``progress(done, total)``.
        """
        if not (isinstance(self.phi_l, CnnExtractor) and self.phi_l.standardize):
            return None
        device = self.normalize.mean.device

        def chunks() -> Iterator[torch.Tensor]:
            for i in range(0, len(images), batch):
                yield self.normalize(images[i : i + batch].to(device))
                if progress is not None:
                    progress(min(i + batch, len(images)), len(images))

        return self.phi_l.fit_standardization(chunks(), keep=keep)

    def from_taps(self, taps: list[torch.Tensor], mode: BranchMode = BranchMode.BOTH) -> GlcfFeatures:
        """Bottleneck and decoders on precomputed taps (what the mode needs, nothing more)."""
        need_local = mode in (BranchMode.BOTH, BranchMode.LOCAL)
        need_global = mode in (BranchMode.BOTH, BranchMode.GLOBAL)
        theta, omega = self.bottleneck(taps[1:], theta=need_global, omega=True)
        return GlcfFeatures(
            phi_l=taps[:3],
            phi_g=self.phi_g(theta) if need_global else None,
            psi_l=self.psi_l(omega) if need_local else None,
            psi_g=self.psi_g(omega) if need_global else None,
        )

    def trainable_parts(self) -> dict[str, nn.Module]:
        """The parts that learn, by name (Φ_L is frozen)."""
        return {"bottleneck": self.bottleneck, "phi_g": self.phi_g, "psi_l": self.psi_l,
                "psi_g": self.psi_g}


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
