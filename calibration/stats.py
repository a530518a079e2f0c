"""Fusion statistics: the μ, σ that normalise each (branch, scale) anomaly map (DESIGN §3).

μ is the mean over images of each map's spatial mean; σ is the mean over images of each map's
spatial (population) standard deviation. Maps arrive batch by batch, already resized to 224
and smoothed by the caller.
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
