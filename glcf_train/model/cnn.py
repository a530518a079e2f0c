"""Φ_L from an ImageNet CNN: EfficientNet-Lite (timm ``tf_efficientnet_lite*``) or Wide ResNet-50-2.

The network is cut to its four taps at strides 4/8/16/32 (the grids of Swin-T's t0..t3), frozen,
and kept in eval mode. CNN taps' scales differ per channel and per layer by orders of magnitude,
so with ``BackboneConfig.standardize`` each tap is standardised per channel with statistics fixed
on the training images before the first step (EfficientAD's remedy); the statistics are buffers,
saved with the model and folded into the exported graph.
"""

from __future__ import annotations

from collections.abc import Iterable

import timm
import torch
from torch import nn

from glcf_train.config import BackboneConfig, BackboneKind

# timm's name of each CNN backbone (the TF-padding EfficientNet-Lite the released weights are for).
TIMM_NAMES: dict[BackboneKind, str] = {
    BackboneKind.EFFICIENTNET_LITE0: "tf_efficientnet_lite0",
    BackboneKind.EFFICIENTNET_LITE1: "tf_efficientnet_lite1",
    BackboneKind.EFFICIENTNET_LITE2: "tf_efficientnet_lite2",
    BackboneKind.WIDE_RESNET50_2: "wide_resnet50_2",
}
TAP_INDICES = (1, 2, 3, 4)  # timm feature_info indices at strides 4, 8, 16, 32
STD_FLOOR = 1e-3  # a channel that never varies on the training images is scaled as if it did a little


def build_cnn(kind: BackboneKind, features: bool = True) -> nn.Module:
    """The timm network of ``kind`` with random weights: its four taps, or the whole classifier."""
    if features:
        return timm.create_model(TIMM_NAMES[kind], pretrained=False, features_only=True,
                                 out_indices=TAP_INDICES)
    return timm.create_model(TIMM_NAMES[kind], pretrained=False)


def stem_conv(body: nn.Module) -> nn.Conv2d:
    """The first convolution, the one that reads the normalised RGB image."""
    conv = getattr(body, "conv_stem", None) or getattr(body, "conv1", None)
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"no stem convolution found in {type(body).__name__}")
    return conv


class CnnExtractor(nn.Module):
    """A CNN cut to four taps; frozen and always in eval mode.

    Input ``[B, 3, H, W]`` normalised RGB; output the taps t0..t3, NHWC:
    ``[B, H/4, W/4, C0]`` … ``[B, H/32, W/32, C3]`` (``ModelConfig.channels``), standardised per
    channel when the config asks for it.
    """

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.kind = cfg.kind
        self.standardize = cfg.standardize
        self.body = build_cnn(cfg.kind)
        for i, c in enumerate(self.body.feature_info.channels()):
            self.register_buffer(f"tap_mean{i}", torch.zeros(c))
            self.register_buffer(f"tap_inv_std{i}", torch.ones(c))
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> CnnExtractor:
        """Φ_L stays in eval mode (BatchNorm with its ImageNet statistics) whatever the rest does."""
        return super().train(False)

    def raw_taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The network's own taps, NCHW, before any standardisation."""
        return list(self.body(x))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.finish(self.raw_taps(x))

    def finish(self, taps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Raw NCHW taps → what Φ_L gives: standardised (when configured), NHWC."""
        if self.standardize:
            taps = [(t - self._stat("tap_mean", i)) * self._stat("tap_inv_std", i)
                    for i, t in enumerate(taps)]
        return [t.permute(0, 2, 3, 1) for t in taps]

    def _stat(self, name: str, i: int) -> torch.Tensor:
        return getattr(self, f"{name}{i}").view(1, -1, 1, 1)

    @torch.no_grad()
    def fit_standardization(self, batches: Iterable[torch.Tensor],
                            keep: bool = False) -> list[torch.Tensor] | None:
        """Fix each tap's per-channel mean and 1/std over normalised image ``batches`` ``[B, 3, H, W]``
        (float64 sums, so hundreds of images at 56² lose nothing).

        With ``keep``, also return Φ_L's taps of every image as ``forward`` gives them with the new
        statistics (``[N, H/4, W/4, C0]`` …): training caches them, so Φ_L runs once over its images.
        """
        sums: list[torch.Tensor] = []
        squares: list[torch.Tensor] = []
        count = [0] * 4
        kept: list[list[torch.Tensor]] = []
        for batch in batches:
            raw = self.raw_taps(batch)
            if keep:
                kept.append(raw)
            for i, t in enumerate(raw):
                t = t.double()
                if len(sums) <= i:
                    sums.append(torch.zeros(t.shape[1], dtype=torch.float64, device=t.device))
                    squares.append(torch.zeros(t.shape[1], dtype=torch.float64, device=t.device))
                sums[i] += t.sum(dim=(0, 2, 3))
                squares[i] += t.square().sum(dim=(0, 2, 3))
                count[i] += t.shape[0] * t.shape[2] * t.shape[3]
        for i in range(len(sums)):
            mean = sums[i] / count[i]
            std = (squares[i] / count[i] - mean.square()).clamp_min(0).sqrt()
            getattr(self, f"tap_mean{i}").copy_(mean.float())
            getattr(self, f"tap_inv_std{i}").copy_(1.0 / std.clamp_min(STD_FLOOR).float())
        if not keep:
            return None
        finished: list[list[torch.Tensor]] = [[], [], [], []]
        while kept:  # standardise batch by batch, freeing the raw taps as it goes
            for part, tap in zip(finished, self.finish(kept.pop(0)), strict=True):
                part.append(tap)
        return [torch.cat(part) for part in finished]
