"""Fusion statistics on known arrays."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.stats import MapStatistics, fusion_statistics

# Spatial (mean, population std): (1, 1), (2, 1), (2, 2).
MAPS = np.array(
    [
        [[0.0, 2.0], [0.0, 2.0]],
        [[1.0, 3.0], [1.0, 3.0]],
        [[0.0, 4.0], [0.0, 4.0]],
    ],
    dtype=np.float32,
)


def test_known_values_and_batching() -> None:
    whole = MapStatistics()
    whole.update(MAPS)
    batched = MapStatistics()
    batched.update(MAPS[:1])
    batched.update(MAPS[1:])
    assert whole.result() == pytest.approx((5 / 3, 4 / 3))
    assert batched.result() == pytest.approx(whole.result(), abs=1e-15)
    assert batched.count == 3


def test_sigma_is_mean_of_per_map_stds_not_pooled_std() -> None:
    # Two maps with the same shape of spread (one pixel 4 above the rest) but means 10 apart.
    offset = np.stack([np.zeros((4, 4)), np.full((4, 4), 10.0)])
    offset[:, 0, 0] += 4.0
    stats = MapStatistics()
    stats.update(offset)
    per_map_std = float(np.std(offset[0]))
    assert stats.result()[1] == pytest.approx(per_map_std)  # pooled std would be ~5


def test_errors() -> None:
    with pytest.raises(ValueError, match="no maps"):
        MapStatistics("local/56").result()
    constant = MapStatistics("global/14")
    constant.update(np.full((2, 4, 4), 3.0))
    with pytest.raises(ValueError, match=r"global/14.*constant.*did not learn"):
        constant.result()
    with pytest.raises(ValueError, match="NaN"):
        MapStatistics().update(np.array([[[np.nan]]]))
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        MapStatistics().update(np.zeros((4, 4)))


def test_fusion_statistics() -> None:
    result = fusion_statistics({"local/56": MAPS, "global/56": 2 * MAPS + 1})
    assert result["local/56"] == pytest.approx((5 / 3, 4 / 3))
    assert result["global/56"] == pytest.approx((2 * 5 / 3 + 1, 8 / 3))
