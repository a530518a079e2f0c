"""The graph optimisations one at a time: cumulative variants of the deploy graph, all computing
the same function, for the before/after table of ``benchmarks/graph_optimizations.py``.

Only the last variant is what ``glcf export`` writes (``glcf_export.deploy.DeployModule``); the
earlier ones, and the attention forms below, exist here to be measured against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from glcf_export.deploy import DeployModule, folded_extractor, windowed_decoder, windowed_extractor
from glcf_export.windowed import WindowAttentionBlock
from glcf_train.model import GLCF, GlcfFeatures
from glcf_train.scoring import (
    FusionStats,
    TorchScorer,
    error_maps,
    image_score,
    resize_map,
)


class FusedQkvBlock(WindowAttentionBlock):
    """Attention per window: one QKV projection on ``[B·nW, N, C]``, split by a 5-D Transpose."""

    def __init__(self, block: nn.Module, tokens: int) -> None:
        super().__init__(block, tokens)
        # [nH, 1, nW, N, N] → [nW, nH, N, N]: windows outermost, like these logits
        self.logits_bias = self.logits_bias.squeeze(1).transpose(0, 1).contiguous()

    def _windows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, C]`` → q ``[B·nW, nH, N, hd]``, kᵀ ``[B·nW, nH, hd, N]``, v like q."""
        n, h = self.area, self.heads
        qkv = self.qkv(x.reshape(-1, n, self.dim)).reshape(-1, n, 3, h, self.dim // h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k.transpose(-2, -1), v

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        n, h = self.area, self.heads
        q, k_t, v = self._windows(x)
        windows = self.logits_bias.shape[0]
        logits = ((q @ k_t).reshape(-1, windows, h, n, n) + self.logits_bias).reshape(-1, h, n, n)
        out = logits.softmax(dim=-1) @ v  # [B·nW, nH, N, hd]
        return self.proj(out.transpose(1, 2).reshape(-1, n, self.dim)).reshape(-1, self.tokens, self.dim)


class SeparateQkvBlock(FusedQkvBlock):
    """Three projections; K produced already transposed (``[B·nW, nH, hd, N]``)."""

    def __init__(self, block: nn.Module, tokens: int) -> None:
        super().__init__(block, tokens)
        dim = self.dim
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        with torch.no_grad():
            for i, lin in enumerate((self.q, self.k, self.v)):
                lin.weight.copy_(self.qkv.weight[i * dim : (i + 1) * dim])
                lin.bias.copy_(self.qkv.bias[i * dim : (i + 1) * dim])
        del self.qkv

    def _windows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, h = self.area, self.heads
        x = x.reshape(-1, n, self.dim)
        q = self.q(x).reshape(-1, n, h, self.dim // h).permute(0, 2, 1, 3)
        k_t = self.k(x).reshape(-1, n, h, self.dim // h).permute(0, 2, 3, 1)
        v = self.v(x).reshape(-1, n, h, self.dim // h).permute(0, 2, 1, 3)
        return q, k_t, v


class BroadcastHeadsBlock(WindowAttentionBlock):
    """Heads outermost straight from the projections: ``[1, B·T, C] @ [nH, C, hd]`` per Q, K, V
    (weights broadcast over the heads; OpenVINO refuses this MatMul with a dynamic batch)."""

    def __init__(self, block: nn.Module, tokens: int) -> None:
        super().__init__(block, tokens)
        h, hd, dim = self.heads, self.dim // self.heads, self.dim
        with torch.no_grad():  # [3·C_out, C_in] → [3, nH, C_in, hd]
            weight = self.qkv.weight.reshape(3, h, hd, dim).transpose(-1, -2).contiguous()
            bias = self.qkv.bias.reshape(3, h, 1, hd).contiguous()
        self.register_buffer("qkv_weight", weight, persistent=False)
        self.register_buffer("qkv_bias", bias, persistent=False)
        del self.qkv

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        n, h = self.area, self.heads
        hd = self.dim // h
        windows = self.logits_bias.shape[2]
        rows = x.reshape(1, -1, self.dim)  # [1, B·T, C]
        q, k, v = ((rows @ self.qkv_weight[i] + self.qkv_bias[i]).reshape(h, -1, windows, n, hd)
                   for i in range(3))
        out = (q @ k.transpose(-2, -1) + self.logits_bias).softmax(dim=-1) @ v
        return self.proj(out.reshape(h, -1, hd).transpose(0, 1).reshape(-1, self.tokens, self.dim))


class LiteralScorer(nn.Module):
    """DESIGN §3 in the order it is written: every error map resized to the input size,
    normalised and smoothed on its own, then weighted and summed. The same function as
    :class:`TorchScorer` (resizing and smoothing are linear), at several times the cost."""

    def __init__(self, scorer: TorchScorer, stats: FusionStats) -> None:
        super().__init__()
        self.cfg, self.size, self.blur = scorer.cfg, scorer.size, scorer.blur
        sigma = torch.tensor(stats.sigma)
        # TorchScorer's gains are weight / σ per (branch, scale); the weights alone are gains × σ.
        self.register_buffer("weights", scorer.gains * sigma, persistent=False)
        self.register_buffer("mu", torch.tensor(stats.mu), persistent=False)
        self.register_buffer("sigma", sigma, persistent=False)

    def forward(self, f: GlcfFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        total = None
        for b, maps in enumerate(error_maps(f).values()):  # in BRANCHES order
            if maps is None:
                continue
            for i, m in enumerate(maps):
                normalised = (self.blur(resize_map(m, self.size)) - self.mu[b, i]) / self.sigma[b, i]
                term = self.weights[b, i] * normalised
                total = term if total is None else total + term
        return total, image_score(total, self.cfg.score_rule)


@dataclass(frozen=True)
class GraphVariant:
    name: str
    change: str  # what this variant adds to the one before it
    block: type[WindowAttentionBlock] | None  # None: timm's Swin blocks as trained
    fold: bool
    fused_scoring: bool
    slim: bool


VARIANTS: tuple[GraphVariant, ...] = (
    GraphVariant("traced", "timm blocks as trained, normalisation as Sub/Mul, literal scoring, "
                 "traced graph as is", None, False, False, False),
    GraphVariant("slim", "+ onnxslim: constant folding, shape-op and dead-code removal",
                 None, False, False, True),
    GraphVariant("fold-norm", "+ normalisation and BGR→RGB folded into the patch-embed conv",
                 None, True, False, True),
    GraphVariant("fused-scoring", "+ linear scoring reordered: scales combined at native "
                 "resolution, resized once, one separable Gaussian", None, True, True, True),
    GraphVariant("window-order", "+ Swin blocks in window order (one Gather per shift, constant "
                 "bias+mask, scale folded, 3-D token tensors), fused QKV projection", FusedQkvBlock,
                 True, True, True),
    GraphVariant("separate-qkv", "+ attention form: separate Q, K, V projections, K produced "
                 "transposed", SeparateQkvBlock, True, True, True),
    GraphVariant("head-major", "+ attention with heads outermost: Q, K, V come out of one batched "
                 "MatMul per projection (weights broadcast over the heads) already split by head, "
                 "one Transpose per block left", BroadcastHeadsBlock, True, True, True),
    GraphVariant("heads-outermost", "+ one QKV MatMul on plain 2-D weights, then one Transpose "
                 "to heads outermost: loads in OpenVINO with a dynamic batch (what glcf export "
                 "writes)", WindowAttentionBlock, True, True, True),
)


def variant(name: str) -> GraphVariant:
    for v in VARIANTS:
        if v.name == name:
            return v
    raise ValueError(f"unknown graph variant {name!r}; choose from {', '.join(v.name for v in VARIANTS)}")


class VariantModule(DeployModule):
    """The deploy module with a variant's parts swapped in (the normalisation as its own module
    when it is not folded)."""

    def __init__(self, v: GraphVariant, model: GLCF, scorer: TorchScorer, stats: FusionStats) -> None:
        super().__init__(model, scorer)
        phi_l = model.phi_l if v.block is None else windowed_extractor(model.phi_l, v.block)
        self.phi_l = folded_extractor(phi_l, model.normalize) if v.fold else phi_l
        self.normalize = None if v.fold else model.normalize
        for name in ("phi_g", "psi_g", "psi_l"):
            if getattr(self, name) is not None:
                trained = getattr(model, name)
                setattr(self, name, trained if v.block is None else windowed_decoder(trained, v.block))
        if not v.fused_scoring:
            self.scorer = LiteralScorer(scorer, stats)
        self.eval()

    def pixels(self, image: torch.Tensor) -> torch.Tensor:
        # Sub, Mul, BGR → RGB, NCHW: the trained model's own module
        return super().pixels(image) if self.normalize is None else self.normalize(image)


def build_variant(v: GraphVariant, model: GLCF, scorer: TorchScorer, stats: FusionStats) -> DeployModule:
    """The deploy module of variant ``v``; ``stats`` are the statistics ``scorer`` was made with."""
    return VariantModule(v, model, scorer, stats)
