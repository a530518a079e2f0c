"""The fused deploy module: uint8 BGR frames in, anomaly map and score out (DESIGN §4).

It holds Φ_L, the bottleneck, only the decoders the branch mode needs, and the scorer with the
run's statistics as constants. The ImageNet normalisation and the BGR→RGB swap are folded into
Φ_L's patch-embedding convolution (exact: that convolution has no padding), so the graph starts
with one Cast and one Transpose.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from glcf_export.windowed import AttentionForm, StaticPatchMerging, WindowedBlocks
from glcf_train.config import BranchMode
from glcf_train.model import GLCF, GlcfFeatures
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


def windowed_extractor(phi_l: nn.Module, form: AttentionForm) -> nn.Module:
    """A copy of Φ_L whose Swin stages keep their tokens in window order (see ``windowed``)."""
    phi_l = copy.deepcopy(phi_l)
    phi_l.stage1 = WindowedBlocks(phi_l.stage1.blocks, form)
    phi_l.stage2 = WindowedBlocks(phi_l.stage2, form)
    phi_l.stage3 = WindowedBlocks(phi_l.stage3, form)
    for name in ("merge2", "merge3", "merge4"):
        setattr(phi_l, name, StaticPatchMerging(getattr(phi_l, name)))
    return phi_l


def windowed_decoder(decoder: SwinDecoder, form: AttentionForm) -> SwinDecoder:
    decoder = copy.deepcopy(decoder)
    decoder.blocks14 = WindowedBlocks(decoder.blocks14, form)
    decoder.blocks28 = WindowedBlocks(decoder.blocks28, form)
    return decoder


class DeployModule(nn.Module):
    """``image`` uint8 ``[B, H, W, 3]`` BGR → ``anomaly_map`` ``[B, H, W]``, ``score`` ``[B]``.

    ``attention``: the attention form of the window-order Swin blocks (``windowed``), or None for
    timm's blocks as trained. ``fold``: the ImageNet normalisation folded into the patch-embedding
    convolution (else it runs as its own Sub and Mul). Every setting computes the same function;
    ``benchmarks/graph_optimizations.py`` times them against each other.
    """

    def __init__(self, model: GLCF, scorer: TorchScorer,
                 attention: AttentionForm | None = AttentionForm.HEAD_MAJOR, fold: bool = True) -> None:
        super().__init__()
        self.mode = scorer.cfg.branch_mode
        phi_l = model.phi_l if attention is None else windowed_extractor(model.phi_l, attention)
        if fold:
            phi_l = copy.deepcopy(phi_l) if attention is None else phi_l
            phi_l.patch_embed.proj = fold_normalization(
                phi_l.patch_embed.proj, model.normalize.mean.flatten(), model.normalize.scale.flatten())
            self.normalize = None
        else:
            self.normalize = model.normalize
        self.phi_l = phi_l
        self.bottleneck = model.bottleneck
        need_global = self.mode in (BranchMode.BOTH, BranchMode.GLOBAL)
        need_local = self.mode in (BranchMode.BOTH, BranchMode.LOCAL)

        def decoder(d: SwinDecoder, needed: bool) -> SwinDecoder | None:
            if not needed:
                return None
            return d if attention is None else windowed_decoder(d, attention)

        # Decoders the mode does not use are not attributes, so they cannot reach the file.
        self.phi_g = decoder(model.phi_g, need_global)
        self.psi_g = decoder(model.psi_g, need_global)
        self.psi_l = decoder(model.psi_l, need_local)
        self.scorer = scorer
        self.eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.normalize is not None:
            x = self.normalize(image)  # Sub, Mul, BGR → RGB, NCHW: the trained model's own module
        else:
            x = image.float().permute(0, 3, 1, 2)  # BGR 0-255, NCHW (TensorRT: uint8 only into Cast)
        taps = self.phi_l(x)
        need_global = self.phi_g is not None
        theta, omega = self.bottleneck(taps[1:], theta=need_global, omega=True)
        features = GlcfFeatures(
            phi_l=taps[:3],
            phi_g=self.phi_g(theta) if self.phi_g is not None else None,
            psi_l=self.psi_l(omega) if self.psi_l is not None else None,
            psi_g=self.psi_g(omega) if self.psi_g is not None else None,
        )
        return self.scorer(features)
