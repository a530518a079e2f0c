"""Torch reference scorer (DESIGN §3): error maps → normalised, fused, smoothed anomaly map → score.

This is the ground truth the exported graph is held against. Everything after the squared
errors is linear, so the scorer folds the normalisation and the scale weights into one affine
combination, resizes each scale once, sums, and smooths once with a separable Gaussian.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from glcf_runtime.errors import ConfigError
from glcf_train.config import BranchMode, Normalisation, ScoreRule, ScoringConfig
from glcf_train.model import GlcfFeatures

BRANCHES = ("local", "global")
SCALES = (56, 28, 14)  # names of the three scales at 224 input (finest first)


@dataclass(frozen=True, eq=False)
class PositionMaps:
    """μ and σ maps per (branch, scale) on each error map's own grid: ``mu[b][i]`` ``[h, w]``."""

    mu: tuple[tuple[np.ndarray, ...], ...]
    sigma: tuple[tuple[np.ndarray, ...], ...]

    def to_dict(self) -> dict:
        return {b: {str(s): {"mu": self.mu[i][j].tolist(), "sigma": self.sigma[i][j].tolist()}
                    for j, s in enumerate(SCALES)} for i, b in enumerate(BRANCHES)}

    @staticmethod
    def from_dict(d: dict) -> PositionMaps:
        def arrays(key: str) -> tuple[tuple[np.ndarray, ...], ...]:
            return tuple(tuple(np.asarray(d[b][str(s)][key], dtype=np.float32) for s in SCALES)
                         for b in BRANCHES)
        return PositionMaps(arrays("mu"), arrays("sigma"))


@dataclass(frozen=True)
class FusionStats:
    """μ and σ per (branch, scale): ``mu[b][i]``, ``sigma[b][i]`` with b in local/global; with
    position normalisation also their maps (``position``)."""

    mu: tuple[tuple[float, float, float], tuple[float, float, float]]
    sigma: tuple[tuple[float, float, float], tuple[float, float, float]]
    position: PositionMaps | None = field(default=None, compare=False)

    @staticmethod
    def identity() -> FusionStats:
        zeros, ones = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        return FusionStats((zeros, zeros), (ones, ones))

    def to_dict(self) -> dict:
        """The scalars as ``{branch: {scale: {mu, sigma}}}``, the maps (if any) under ``position``."""
        out: dict = {b: {str(s): {"mu": self.mu[i][j], "sigma": self.sigma[i][j]}
                         for j, s in enumerate(SCALES)} for i, b in enumerate(BRANCHES)}
        if self.position is not None:
            out["position"] = self.position.to_dict()
        return out

    @staticmethod
    def from_dict(d: dict) -> FusionStats:
        mu = tuple(tuple(float(d[b][str(s)]["mu"]) for s in SCALES) for b in BRANCHES)
        sigma = tuple(tuple(float(d[b][str(s)]["sigma"]) for s in SCALES) for b in BRANCHES)
        position = PositionMaps.from_dict(d["position"]) if "position" in d else None
        return FusionStats(mu, sigma, position)  # type: ignore[arg-type]


def error_maps(f: GlcfFeatures) -> dict[str, list[torch.Tensor] | None]:
    """Channel-mean squared errors ``[B, h, w]`` per scale: A_L = |Φ_L − Ψ_L|², A_G = |Φ_G − Ψ_G|²."""
    def err(a: list[torch.Tensor] | None, b: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
        if a is None or b is None:
            return None
        return [(x.float() - y.float()).pow(2).mean(dim=-1) for x, y in zip(a, b, strict=True)]

    return {"local": err(f.phi_l, f.psi_l), "global": err(f.phi_g, f.psi_g)}


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian, radius ``ceil(4σ)`` (scipy's default truncation)."""
    radius = math.ceil(4.0 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).float()


class GaussianBlur(nn.Module):
    """Separable Gaussian smoothing of ``[B, H, W]`` maps with reflect padding."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        k = gaussian_kernel1d(sigma)
        self.radius = (k.numel() - 1) // 2
        self.kernel = tuple(k.double().tolist())  # the key of its resize-and-smooth matrices
        self.register_buffer("kx", k.view(1, 1, 1, -1), persistent=False)
        self.register_buffer("ky", k.view(1, 1, -1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.radius
        x = F.pad(x[:, None], (r, r, r, r), mode="reflect")
        return F.conv2d(F.conv2d(x, self.kx), self.ky)[:, 0]

    def resized(self, x: torch.Tensor, size: int) -> torch.Tensor:
        """``self(resize_map(x, size))`` as one step at ``x``'s own grid: both are linear and
        separable, so per axis they are one ``[size, n]`` matrix (``resize_blur_matrix``) and the
        result is ``R_h · x · R_wᵀ`` — two small MatMuls in place of a resize to the full grid,
        a reflect pad and two full-grid convolutions (equal to float rounding; an order of
        magnitude faster in the deploy graph)."""
        rows = _operator(self.kernel, int(x.shape[-2]), size, str(x.device))
        cols = _operator(self.kernel, int(x.shape[-1]), size, str(x.device))
        return torch.matmul(torch.matmul(rows, x), cols.T)


def resize_blur_matrix(kernel: np.ndarray, n: int, size: int) -> np.ndarray:
    """``[size, n]`` (float64): a length-``n`` axis resized bilinearly to ``size`` (half-pixel
    centres, no antialias: ``resize_map``), then smoothed by ``kernel`` with reflect padding
    (``GaussianBlur``). Column j is the response to the unit vector e_j."""
    radius = (len(kernel) - 1) // 2
    up = F.interpolate(torch.eye(n, dtype=torch.float64)[None, None], size=(size, n),
                       mode="bilinear", align_corners=False)[0, 0]  # [size, n]
    padded = F.pad(up.T[None], (radius, radius), mode="reflect")[0]  # [n, size + 2r]
    smooth = F.conv1d(padded[:, None], torch.as_tensor(kernel, dtype=torch.float64).view(1, 1, -1))
    return smooth[:, 0].T.contiguous().numpy()


@functools.lru_cache(maxsize=64)
def _operator(kernel: tuple[float, ...], n: int, size: int, device: str) -> torch.Tensor:
    """``resize_blur_matrix`` as float32 on ``device``, made once per kernel, grid and device
    (no host transfer per call)."""
    return torch.from_numpy(resize_blur_matrix(np.array(kernel), n, size)).float().to(device)


def resize_map(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of ``[B, h, w]`` to ``[B, size, size]`` (half-pixel centres, no antialias)."""
    return F.interpolate(x[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


class TorchScorer(nn.Module):
    """Error maps → anomaly map ``[B, S, S]`` and image score ``[B]``.

    Image normalisation folds μ, σ into a gain per (branch, scale) and one constant offset.
    Position normalisation normalises at each scale's native grid (before the resize): a μ map
    and a gain map (weights over σ) per branch and scale, applied as gain ⊙ (A − μ).
    """

    def __init__(self, cfg: ScoringConfig, image_size: int, stats: FusionStats) -> None:
        super().__init__()
        self.cfg = cfg
        self.size = image_size
        self.blur = GaussianBlur(cfg.smoothing_sigma)
        w = {"local": cfg.w_local if cfg.branch_mode is not BranchMode.GLOBAL else 0.0,
             "global": cfg.w_global if cfg.branch_mode is not BranchMode.LOCAL else 0.0}
        self.position = cfg.normalisation is Normalisation.POSITION
        if self.position:
            if stats.position is None:
                raise ConfigError("this scoring normalises per position, but the calibration holds "
                                  "no position statistics; run `glcf calibrate RUN --normalisation "
                                  "position` first")
            for i, k in enumerate(cfg.scale_weights):  # gain ⊙ (A − μ): no large offset to cancel
                gain = [k / 3.0 * w[br] / stats.position.sigma[b][i].astype(np.float64)
                        for b, br in enumerate(BRANCHES)]
                mu = np.stack([stats.position.mu[b][i] for b in range(len(BRANCHES))])
                self.register_buffer(f"gain{i}", torch.from_numpy(np.stack(gain)).float(), persistent=False)
                self.register_buffer(f"mu{i}", torch.from_numpy(mu).float(), persistent=False)
            self.offset = 0.0
            return
        gains, offset = torch.zeros(2, 3, dtype=torch.float64), 0.0
        for b, branch in enumerate(BRANCHES):
            for i, k in enumerate(cfg.scale_weights):
                gains[b, i] = k / 3.0 * w[branch] / stats.sigma[b][i]
                offset -= k / 3.0 * w[branch] * stats.mu[b][i] / stats.sigma[b][i]
        self.register_buffer("gains", gains.float(), persistent=False)
        self.offset = float(offset)  # constant: resizing and smoothing leave it unchanged

    def _scale(self, maps: dict, i: int) -> torch.Tensor:
        """Scale ``i``'s weighted, normalised error map at its native grid."""
        if self.position:
            gain, mu = getattr(self, f"gain{i}"), getattr(self, f"mu{i}")
            return sum(gain[b] * (maps[br][i] - mu[b]) for b, br in enumerate(BRANCHES) if maps[br] is not None)
        return sum(self.gains[b, i] * maps[br][i] for b, br in enumerate(BRANCHES) if maps[br] is not None)

    def forward(self, f: GlcfFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        return self.score_errors(error_maps(f))

    def score_errors(self, maps: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The same from error maps already computed (:func:`error_maps`)."""
        total = None
        for i in range(3):  # combine the branches at native resolution; resize and smooth each
            scale_map = self.blur.resized(self._scale(maps, i), self.size)  # scale once, at its grid
            total = scale_map if total is None else total + scale_map
        anomaly_map = total + self.offset
        return anomaly_map, image_score(anomaly_map, self.cfg.score_rule)


def image_score(anomaly_map: torch.Tensor, rule: ScoreRule) -> torch.Tensor:
    """``[B, H, W]`` → ``[B]``: population standard deviation (default) or maximum."""
    flat = anomaly_map.flatten(1)
    if rule is ScoreRule.MAX:
        return flat.amax(dim=1)
    return flat.std(dim=1, unbiased=False)


def calibration_maps(f: GlcfFeatures | dict, image_size: int,
                     blur: GaussianBlur) -> dict[tuple[str, int], torch.Tensor]:
    """Each error map (of features, or error maps already computed) resized to the input size
    and smoothed: what the image normalisation's μ, σ are computed on."""
    out = {}
    errors = f if isinstance(f, dict) else error_maps(f)
    for branch, maps in errors.items():
        if maps is None:
            continue
        for scale, m in zip(SCALES, maps, strict=True):
            out[(branch, scale)] = blur.resized(m, image_size)
    return out
