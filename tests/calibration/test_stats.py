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


def test_position_statistics_per_pixel_and_batching() -> None:
    from calibration.stats import PositionStatistics

    rng = np.random.default_rng(0)
    maps = rng.gamma(2.0, 0.01, (37, 5, 6)).astype(np.float32) + np.linspace(0, 1, 30).reshape(5, 6)
    whole, batched = PositionStatistics(), PositionStatistics()
    whole.update(maps)
    for i in range(0, 37, 8):
        batched.update(maps[i:i + 8])
    mu, sigma = whole.result(floor=0.0)
    np.testing.assert_allclose(mu, maps.astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(sigma, maps.astype(np.float64).std(0), rtol=1e-5)
    for a, b in zip(batched.result(floor=0.0), whole.result(floor=0.0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert batched.count == 37


def test_position_sigma_floor_guards_still_positions() -> None:
    from calibration.stats import PositionStatistics

    maps = np.zeros((4, 2, 2))
    maps[:, 0, 0] = [0.0, 2.0, 0.0, 2.0]  # σ 1 at one position, 0 at the other three
    stats = PositionStatistics()
    stats.update(maps)
    _, sigma = stats.result(floor=0.5)
    assert sigma[0, 0] == pytest.approx(1.0)
    assert sigma[1, 1] == pytest.approx(0.5 * 0.25)  # the floor: half the mean σ (1/4)


def test_position_statistics_errors() -> None:
    from calibration.stats import PositionStatistics

    with pytest.raises(ValueError, match="at least 2 maps"):
        PositionStatistics("local/56").result()
    constant = PositionStatistics("global/14")
    constant.update(np.full((3, 4, 4), 2.0))
    with pytest.raises(ValueError, match=r"global/14.*constant"):
        constant.result()
    grid = PositionStatistics("local/28")
    grid.update(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"local/28.*same grid"):
        grid.update(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="NaN"):
        PositionStatistics().update(np.array([[[np.inf]]]))
