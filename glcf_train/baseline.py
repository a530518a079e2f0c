"""A reference baseline, not a deployable model: PatchCore-style nearest-neighbour patch scoring
(Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022) on the same
frozen Φ_L features GLCF reads.

Patch features are Φ_L's mid-level taps t1 (stride 8) and t2 (stride 16, upsampled), each
averaged over its 3×3 neighbourhood and concatenated, at t1's grid. A greedy coreset of the good
training patches (chosen in a random projection, as in PatchCore) is the memory bank; a test
patch scores its Euclidean distance to the nearest bank patch, the anomaly map is that distance
upsampled to the input size and smoothed like GLCF's map, and the image score is its largest
patch distance. What it omits from PatchCore: the score re-weighting by the neighbourhood of the
nearest bank patch, and the fixed-width feature pooling (the taps are concatenated as they are).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch
from torch.nn import functional as F

from glcf_train.model import GLCF
from glcf_train.progress import counting_progress
from glcf_train.scoring import GaussianBlur


class Baseline(str, Enum):
    """Reference baselines `glcf eval --baseline` can put beside the run."""

    PATCHCORE = "patchcore"


@dataclass(frozen=True)
class PatchCoreConfig:
    coreset_ratio: float = 0.01  # share of the training patches kept (PatchCore-1 %; the paper also runs 10 %)
    projection_dim: int = 128  # random projection used only to choose the coreset
    smoothing_sigma: float = 4.0  # as GLCF's map, so the two maps compare like for like
    chunk: int = 4096  # query patches per distance block (bounds memory)
    seed: int = 0


def patch_features(model: GLCF, batch: torch.Tensor) -> torch.Tensor:
    """uint8 BGR ``[B, S, S, 3]`` → locally aware patch features ``[B, h, w, C1 + C2]`` at t1's grid."""
    taps = model.raw_local_features(batch)  # Φ_L's own features, as PatchCore reads them
    t1, t2 = (t.permute(0, 3, 1, 2).float() for t in taps[1:3])
    t1 = F.avg_pool2d(t1, 3, stride=1, padding=1, count_include_pad=False)
    t2 = F.avg_pool2d(t2, 3, stride=1, padding=1, count_include_pad=False)
    t2 = F.interpolate(t2, size=t1.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([t1, t2], dim=1).permute(0, 2, 3, 1)


def greedy_coreset(features: torch.Tensor, n: int, projection_dim: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``n`` rows of ``features [N, C]`` chosen by greedy k-center (farthest point) selection.

    Distances are taken in a random Gaussian projection to ``projection_dim`` dimensions.
    """
    gen = torch.Generator().manual_seed(seed)
    x = features
    if projection_dim < features.shape[1]:
        proj = torch.randn(features.shape[1], projection_dim, generator=gen) / projection_dim**0.5
        x = features @ proj
    n = min(n, len(x))
    norms = x.pow(2).sum(1)
    chosen = torch.empty(n, dtype=torch.long)
    nearest, dist = torch.full_like(norms, float("inf")), torch.empty_like(norms)
    c = int(torch.randint(len(x), (1,), generator=gen))
    for i in range(n):  # |x - x_c|² = |x|² - 2 x·x_c + |x_c|², in place: one pass per pick
        chosen[i] = c
        torch.addmv(norms, x, x[c], alpha=-2.0, out=dist)
        torch.minimum(nearest, dist.add_(norms[c]), out=nearest)
        c = int(torch.argmax(nearest))
    return chosen


class PatchCore:
    """Memory bank of good patches; ``fit`` on good images, then ``score`` test images."""

    def __init__(self, model: GLCF, cfg: PatchCoreConfig | None = None) -> None:
        self.model = model
        self.cfg = cfg or PatchCoreConfig()
        self.bank: torch.Tensor | None = None  # [M, C]
        self.size = model.cfg.image_size
        self.blur = GaussianBlur(self.cfg.smoothing_sigma)

    def _features(self, images: np.ndarray, batch_size: int, device: torch.device,
                  progress: bool, label: str) -> torch.Tensor:
        out = []
        with counting_progress(label, len(images), enabled=progress) as advance, torch.no_grad():
            for i in range(0, len(images), batch_size):
                batch = torch.from_numpy(images[i : i + batch_size]).to(device)
                out.append(patch_features(self.model, batch).cpu())
                advance(i + len(batch), len(images))
        return torch.cat(out)

    def fit(self, images: np.ndarray, batch_size: int = 8, device: torch.device | str = "cpu",
            progress: bool = True) -> None:
        """Build the memory bank from good images, uint8 BGR ``[N, S, S, 3]``."""
        feats = self._features(images, batch_size, torch.device(device), progress, "patch bank")
        flat = feats.reshape(-1, feats.shape[-1])
        keep = max(1, round(self.cfg.coreset_ratio * len(flat)))
        with counting_progress("coreset", 1, enabled=progress) as advance:
            idx = greedy_coreset(flat, keep, self.cfg.projection_dim, self.cfg.seed)
            advance(1, 1)
        self.bank = flat[idx].contiguous()

    @torch.no_grad()
    def score(self, images: np.ndarray, batch_size: int = 8, device: torch.device | str = "cpu",
              progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Anomaly maps ``[N, S, S]`` float32 and image scores ``[N]`` (largest patch distance)."""
        if self.bank is None:
            raise RuntimeError("PatchCore.score before fit: build the memory bank first")
        feats = self._features(images, batch_size, torch.device(device), progress, "patch scores")
        b, h, w, c = feats.shape
        flat = feats.reshape(-1, c)
        dist = torch.cat([torch.cdist(flat[i : i + self.cfg.chunk], self.bank).amin(dim=1)
                          for i in range(0, len(flat), self.cfg.chunk)])
        patches = dist.reshape(b, h, w)
        maps = self.blur.resized(patches, self.size)
        return maps.numpy().astype(np.float32), patches.flatten(1).amax(dim=1).numpy()
