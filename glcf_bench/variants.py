"""The graph optimisations one at a time: cumulative variants of the deploy graph, all computing
the same function, for the before/after table of ``benchmarks/graph_optimizations.py``.

Only the last variant is what ``glcf export`` writes; the earlier ones exist to be measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from glcf_export.deploy import DeployModule
from glcf_export.windowed import AttentionForm
from glcf_train.model import GLCF, GlcfFeatures
from glcf_train.scoring import (
    FusionStats,
    TorchScorer,
    error_maps,
    image_score,
    resize_map,
)


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
    attention: AttentionForm | None
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
                 "bias+mask, scale folded, 3-D token tensors), fused QKV projection", AttentionForm.FUSED, True, True, True),
    GraphVariant("separate-qkv", "+ attention form: separate Q, K, V projections, K produced "
                 "transposed", AttentionForm.SEPARATE, True, True, True),
    GraphVariant("head-major", "+ attention with heads outermost: Q, K, V come out of one batched "
                 "MatMul per projection already split by head, Kᵀ folds into the MatMul, one "
                 "Transpose per block left (what glcf export writes)", AttentionForm.HEAD_MAJOR, True, True, True),
)


def variant(name: str) -> GraphVariant:
    for v in VARIANTS:
        if v.name == name:
            return v
    raise ValueError(f"unknown graph variant {name!r}; choose from {', '.join(v.name for v in VARIANTS)}")


def build_variant(v: GraphVariant, model: GLCF, scorer: TorchScorer, stats: FusionStats) -> DeployModule:
    """The deploy module of variant ``v``; ``stats`` are the statistics ``scorer`` was made with."""
    deploy = DeployModule(model, scorer, attention=v.attention, fold=v.fold)
    if not v.fused_scoring:
        deploy.scorer = LiteralScorer(scorer, stats)
    return deploy
