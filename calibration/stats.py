"""Fusion statistics: the μ, σ that normalise each (branch, scale) anomaly map (DESIGN §3).

Image normalisation (the paper's): μ is the mean over images of each map's spatial mean; σ is
the mean over images of each map's spatial (population) standard deviation. Maps arrive batch by
batch, already resized to 224 and smoothed by the caller.

Position normalisation (an option for fixed layouts): μ and σ are maps, the mean and population
standard deviation over images at each position of the error map's own grid, σ floored at a
share of its spatial mean so that a position that never varies cannot turn noise into alarms.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class MapStatistics:
    """Accumulates μ and σ over batches of anomaly maps, in float64.

    Args:
        name: what the maps are (e.g. ``"local/56"``), used in error messages.
    """

    def __init__(self, name: str = "maps") -> None:
        self.name = name
        self._count = 0
        self._sum_means = 0.0
        self._sum_stds = 0.0

    @property
    def count(self) -> int:
        """Number of maps seen so far."""
        return self._count

    def update(self, maps: np.ndarray) -> None:
        """Add a batch.

        Args:
            maps: ``[B, H, W]`` anomaly maps of normal images.

        Raises:
            ValueError: the batch is not 3-D or holds NaN / infinite values.
        """
        maps = np.asarray(maps)
        if maps.ndim != 3:
            raise ValueError(f"{self.name}: maps must be [B, H, W], got shape {maps.shape}")
        if not np.isfinite(maps).all():
            raise ValueError(
                f"{self.name}: the maps hold NaN or infinite values; the model diverged or "
                "was exported with too little precision"
            )
        self._sum_means += float(maps.mean(axis=(1, 2), dtype=np.float64).sum())
        self._sum_stds += float(maps.std(axis=(1, 2), dtype=np.float64).sum())
        self._count += maps.shape[0]

    def result(self) -> tuple[float, float]:
        """The statistics so far.

        Returns:
            ``(mu, sigma)``.

        Raises:
            ValueError: no map was added, or σ is 0.
        """
        if self._count == 0:
            raise ValueError(f"{self.name}: no maps were added; call update() with a batch first")
        mu = self._sum_means / self._count
        sigma = self._sum_stds / self._count
        if sigma <= 0.0:
            raise ValueError(
                f"{self.name}: every map is constant (σ = 0), so they cannot be normalised; "
                "the model did not learn, or check the images (all identical or blank?)"
            )
        return mu, sigma


SIGMA_FLOOR = 0.3  # position σ is at least this share of its mean over the map


class PositionStatistics:
    """Accumulates a μ and σ per position over batches of maps ``[B, h, w]``, in float64
    (Chan et al.'s pairwise update, so large batches of small errors lose no precision).

    Args:
        name: what the maps are (e.g. ``"local/56"``), used in error messages.
    """

    def __init__(self, name: str = "maps") -> None:
        self.name = name
        self._count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    @property
    def count(self) -> int:
        return self._count

    def update(self, maps: np.ndarray) -> None:
        """Add a batch ``[B, h, w]``; raises ValueError on another shape or NaN / infinity."""
        maps = np.asarray(maps, dtype=np.float64)
        if maps.ndim != 3:
            raise ValueError(f"{self.name}: maps must be [B, H, W], got shape {maps.shape}")
        if self._mean is not None and maps.shape[1:] != self._mean.shape:
            raise ValueError(f"{self.name}: maps of shape {maps.shape[1:]} after maps of shape "
                             f"{self._mean.shape}; every map of one key must have the same grid")
        if not np.isfinite(maps).all():
            raise ValueError(f"{self.name}: the maps hold NaN or infinite values; the model diverged")
        n, mean = maps.shape[0], maps.mean(axis=0)
        m2 = ((maps - mean) ** 2).sum(axis=0)
        if self._mean is None:
            self._count, self._mean, self._m2 = n, mean, m2
            return
        total = self._count + n
        delta = mean - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + m2 + delta**2 * (self._count * n / total)
        self._count = total

    def result(self, floor: float = SIGMA_FLOOR) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)``, float32 maps ``[h, w]``; σ is at least ``floor`` × its spatial mean.

        Raises:
            ValueError: fewer than 2 maps were added, or every position is constant.
        """
        if self._count < 2 or self._mean is None or self._m2 is None:
            raise ValueError(f"{self.name}: position statistics need at least 2 maps, got {self._count}")
        sigma = np.sqrt(self._m2 / self._count)
        level = float(sigma.mean())
        if level <= 0.0:
            raise ValueError(
                f"{self.name}: every position is constant over the images (σ = 0), so they cannot "
                "be normalised; the model did not learn, or check the images (all identical?)"
            )
        sigma = np.maximum(sigma, floor * level)
        return self._mean.astype(np.float32), sigma.astype(np.float32)


def fusion_statistics(maps_by_key: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """μ, σ for several kinds of map at once.

    Args:
        maps_by_key: ``{key: maps [N, H, W]}``, e.g. keys ``"local/56"``, ``"global/14"``.

    Returns:
        ``{key: (mu, sigma)}``.
    """
    result = {}
    for key, maps in maps_by_key.items():
        stats = MapStatistics(name=key)
        stats.update(maps)
        result[key] = stats.result()
    return result
