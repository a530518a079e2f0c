"""The fused deploy module: uint8 BGR frames in, anomaly map and score out (DESIGN §4).

It holds Φ_L, the bottleneck, only the decoders the branch mode needs, and the scorer with the
run's statistics as constants. For Swin, the ImageNet normalisation and the BGR→RGB swap are
folded into Φ_L's patch-embedding convolution (exact: that convolution has no padding), so the
graph starts with one Cast and one Transpose; a CNN Φ_L keeps a Sub and a Mul in front.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from glcf_export.windowed import StaticPatchMerging, WindowAttentionBlock, WindowedBlocks
from glcf_train.config import BranchMode
from glcf_train.model import GLCF, GlcfFeatures
from glcf_train.model.cnn import CnnExtractor, stem_conv
from glcf_train.model.decoder import SwinDecoder
from glcf_train.scoring import TorchScorer


def fold_normalization(conv: nn.Conv2d, mean: torch.Tensor, scale: torch.Tensor) -> nn.Conv2d:
    """A conv on raw BGR 0-255 pixels equal to ``conv`` on ImageNet-normalised RGB.

    ``conv(W, flip(x - m) * s) = conv(W', x) + b'`` with ``W'[:, c] = W[:, 2 - c] * s[c]`` and
    ``b' = b - Σ W' m`` (``m``, ``s`` in BGR order).
    """
    if conv.padding != (0, 0) and conv.padding != "valid":
        raise ValueError("folding the normalisation needs a convolution without padding")
    folded = copy.deepcopy(conv)
    s = scale.view(1, 3, 1, 1).to(conv.weight)
    m = mean.view(1, 3, 1, 1).to(conv.weight)
    with torch.no_grad():
        weight = conv.weight.flip(1) * s  # input channels RGB → BGR, then scale
        folded.weight.copy_(weight)
        bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
        folded.bias = nn.Parameter(bias - (weight * m).sum(dim=(1, 2, 3)))
    return folded


def folded_extractor(phi_l: nn.Module, normalize: nn.Module) -> nn.Module:
    """A copy of Φ_L that reads raw BGR 0-255 pixels: ``normalize`` folded into its patch embedding."""
    phi_l = copy.deepcopy(phi_l)
    phi_l.patch_embed.proj = fold_normalization(
        phi_l.patch_embed.proj, normalize.mean.flatten(), normalize.scale.flatten())
    return phi_l


class RawPixelCnn(nn.Module):
    """A CNN Φ_L that reads raw BGR 0-255 pixels ``[B, 3, H, W]``.

    The BGR→RGB swap is folded into the stem convolution's input channels (exact for any padding);
    the mean and scale stay one Sub and one Mul before it, because the stem pads with zeros of the
    *normalised* image (TF "same" or symmetric padding), which a folded bias would get wrong.
    """

    def __init__(self, phi_l: CnnExtractor, normalize: nn.Module) -> None:
        super().__init__()
        self.extractor = copy.deepcopy(phi_l)
        conv = stem_conv(self.extractor.body)
        with torch.no_grad():
            conv.weight.copy_(conv.weight.flip(1))  # RGB → BGR input channels
        self.register_buffer("mean", normalize.mean.view(1, 3, 1, 1).clone(), persistent=False)
        self.register_buffer("scale", normalize.scale.view(1, 3, 1, 1).clone(), persistent=False)

    def forward(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        return self.extractor((pixels - self.mean) * self.scale)


def deploy_extractor(model: GLCF) -> nn.Module:
    """Φ_L in its export form, reading raw BGR 0-255 ``[B, 3, H, W]``: Swin windowed and folded,
    a CNN with the normalisation in front (:class:`RawPixelCnn`)."""
    if isinstance(model.phi_l, CnnExtractor):
        return RawPixelCnn(model.phi_l, model.normalize)
    return folded_extractor(windowed_extractor(model.phi_l), model.normalize)


def windowed_extractor(phi_l: nn.Module,
                       block: type[WindowAttentionBlock] = WindowAttentionBlock) -> nn.Module:
    """A copy of Φ_L whose Swin stages keep their tokens in window order (see ``windowed``)."""
    phi_l = copy.deepcopy(phi_l)
    phi_l.stage1 = WindowedBlocks(phi_l.stage1.blocks, block)
    phi_l.stage2 = WindowedBlocks(phi_l.stage2, block)
    phi_l.stage3 = WindowedBlocks(phi_l.stage3, block)
    for name in ("merge2", "merge3", "merge4"):
        setattr(phi_l, name, StaticPatchMerging(getattr(phi_l, name)))
    return phi_l


def windowed_decoder(decoder: SwinDecoder,
                     block: type[WindowAttentionBlock] = WindowAttentionBlock) -> SwinDecoder:
    decoder = copy.deepcopy(decoder)
    decoder.blocks14 = WindowedBlocks(decoder.blocks14, block)
    decoder.blocks28 = WindowedBlocks(decoder.blocks28, block)
    return decoder


class DeployModule(nn.Module):
    """``image`` uint8 ``[B, H, W, 3]`` BGR → ``anomaly_map`` ``[B, H, W]``, ``score`` ``[B]``.

    Φ_L and the decoders run their Swin blocks in window order (``windowed``), and the input
    normalisation is folded into Φ_L (:func:`deploy_extractor`): the one form ``glcf export``
    writes. ``benchmarks/graph_variants`` swaps parts out to time the forms it was measured against.
    """

    def __init__(self, model: GLCF, scorer: TorchScorer) -> None:
        super().__init__()
        self.mode = scorer.cfg.branch_mode
        self.phi_l = deploy_extractor(model)
        self.bottleneck = model.bottleneck
        need_global = self.mode in (BranchMode.BOTH, BranchMode.GLOBAL)
        need_local = self.mode in (BranchMode.BOTH, BranchMode.LOCAL)
        # Decoders the mode does not use are not attributes, so they cannot reach the file.
        self.phi_g = windowed_decoder(model.phi_g) if need_global else None
        self.psi_g = windowed_decoder(model.psi_g) if need_global else None
        self.psi_l = windowed_decoder(model.psi_l) if need_local else None
        self.scorer = scorer
        self.eval()

    def pixels(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, H, W, 3]`` → float BGR 0-255 ``[B, 3, H, W]`` (TensorRT: uint8 only into Cast)."""
        return image.float().permute(0, 3, 1, 2)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        taps = self.phi_l(self.pixels(image))
        need_global = self.phi_g is not None
        theta, omega = self.bottleneck(taps[1:], theta=need_global, omega=True)
        features = GlcfFeatures(
            phi_l=taps[:3],
            phi_g=self.phi_g(theta) if self.phi_g is not None else None,
            psi_l=self.psi_l(omega) if self.psi_l is not None else None,
            psi_g=self.psi_g(omega) if self.psi_g is not None else None,
        )
        return self.scorer(features)
