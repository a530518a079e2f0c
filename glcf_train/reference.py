"""The trained model and its reference scorer behind the deploy graph's input contract."""

from __future__ import annotations

import torch
from torch import nn

from glcf_train.model import GLCF
from glcf_train.scoring import TorchScorer


class ReferenceDetector(nn.Module):
    """uint8 BGR ``[B, H, W, 3]`` → ``anomaly_map`` ``[B, H, W]``, ``score`` ``[B]``, computed by
    the modules as trained (timm's Swin blocks, the normalisation module) and the reference scorer:
    what evaluation computes and what ``glcf bench``'s ``torch`` backend times against the graph."""

    def __init__(self, model: GLCF, scorer: TorchScorer) -> None:
        super().__init__()
        self.model = model
        self.scorer = scorer
        self.eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scorer(self.model(image, self.scorer.cfg.branch_mode))
