"""The torch reference scorer against a literal, unoptimised reading of DESIGN §3."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from glcf_runtime.errors import ConfigError
from glcf_train.config import BranchMode, Normalisation, ScoreRule, ScoringConfig
from glcf_train.model import GlcfFeatures
from glcf_train.scoring import FusionStats, GaussianBlur, PositionMaps, TorchScorer, error_maps

SIZE = 224
CHANNELS = (8, 16, 32)
GRIDS = (56, 28, 14)


def _features(seed: int, batch: int = 2) -> GlcfFeatures:
    g = torch.Generator().manual_seed(seed)

    def branch() -> list[torch.Tensor]:
        return [torch.randn(batch, s, s, c, generator=g) for s, c in zip(GRIDS, CHANNELS, strict=True)]

    return GlcfFeatures(branch(), branch(), branch(), branch())


STATS = FusionStats(mu=((1.9, 2.1, 2.0), (2.2, 1.8, 2.05)), sigma=((0.3, 0.2, 0.1), (0.25, 0.15, 0.05)))


def _position_stats(seed: int) -> FusionStats:
    rng = np.random.default_rng(seed)
    mu = tuple(tuple(rng.uniform(1.5, 2.5, (g, g)).astype(np.float32) for g in GRIDS) for _ in range(2))
    sigma = tuple(tuple(rng.uniform(0.05, 0.4, (g, g)).astype(np.float32) for g in GRIDS) for _ in range(2))
    return FusionStats(STATS.mu, STATS.sigma, PositionMaps(mu, sigma))


def literal(f: GlcfFeatures, cfg: ScoringConfig, stats: FusionStats) -> tuple[np.ndarray, np.ndarray]:
    """DESIGN §3 word for word: normalise each map, fuse per scale, resize, weight, sum, smooth
    (with position normalisation: μ, σ are maps of each scale's grid)."""
    maps_out, scores = [], []
    pos = cfg.normalisation is Normalisation.POSITION
    mu = stats.position.mu if pos else stats.mu
    sd = stats.position.sigma if pos else stats.sigma
    for b in range(f.phi_l[0].shape[0]):
        total = np.zeros((SIZE, SIZE), np.float64)
        for i, k in enumerate(cfg.scale_weights):
            a = np.zeros(GRIDS[i:i + 1] * 2, np.float64)
            if cfg.branch_mode in (BranchMode.BOTH, BranchMode.LOCAL):
                a_l = ((f.phi_l[i][b] - f.psi_l[i][b]) ** 2).mean(-1).double().numpy()
                a += cfg.w_local * (a_l - mu[0][i]) / sd[0][i]
            if cfg.branch_mode in (BranchMode.BOTH, BranchMode.GLOBAL):
                a_g = ((f.phi_g[i][b] - f.psi_g[i][b]) ** 2).mean(-1).double().numpy()
                a += cfg.w_global * (a_g - mu[1][i]) / sd[1][i]
            total += k * cv2.resize(a, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
        total /= 3.0
        smooth = gaussian_filter(total, sigma=cfg.smoothing_sigma, mode="mirror", truncate=4.0)
        maps_out.append(smooth)
        scores.append(smooth.max() if cfg.score_rule is ScoreRule.MAX else smooth.std())
    return np.stack(maps_out), np.array(scores)


@pytest.mark.parametrize("normalisation", list(Normalisation))
@pytest.mark.parametrize("mode", list(BranchMode))
@pytest.mark.parametrize("rule", list(ScoreRule))
def test_scorer_matches_literal_design(mode: BranchMode, rule: ScoreRule,
                                       normalisation: Normalisation) -> None:
    cfg = ScoringConfig(branch_mode=mode, score_rule=rule, normalisation=normalisation)
    stats = _position_stats(seed=5)  # its scalars are STATS'; image normalisation uses only those
    f = _features(seed=3)
    maps, scores = TorchScorer(cfg, SIZE, stats)(f)
    ref_maps, ref_scores = literal(f, cfg, stats)
    span = ref_maps.max() - ref_maps.min()
    np.testing.assert_allclose(maps.numpy(), ref_maps, atol=1e-5 * span, rtol=0)
    np.testing.assert_allclose(scores.numpy(), ref_scores, rtol=1e-5)


def test_position_normalisation_needs_position_statistics() -> None:
    cfg = ScoringConfig(normalisation=Normalisation.POSITION)
    with pytest.raises(ConfigError, match="--normalisation position"):
        TorchScorer(cfg, SIZE, STATS)


def test_position_maps_round_trip() -> None:
    stats = _position_stats(seed=6)
    back = FusionStats.from_dict(stats.to_dict())
    assert back == stats and back.position is not None
    for b in range(2):
        for i in range(3):
            np.testing.assert_array_equal(back.position.mu[b][i], stats.position.mu[b][i])
            np.testing.assert_array_equal(back.position.sigma[b][i], stats.position.sigma[b][i])
    assert "position" not in STATS.to_dict() and FusionStats.from_dict(STATS.to_dict()).position is None


def test_error_maps_are_channel_means() -> None:
    f = _features(seed=1, batch=1)
    maps = error_maps(f)
    expected = ((f.phi_l[2] - f.psi_l[2]) ** 2).mean(-1)
    torch.testing.assert_close(maps["local"][2], expected)
    assert [m.shape for m in maps["global"]] == [(1, 56, 56), (1, 28, 28), (1, 14, 14)]


def test_blur_preserves_constants_and_mass() -> None:
    blur = GaussianBlur(4.0)
    const = torch.full((1, 40, 40), 2.5)
    torch.testing.assert_close(blur(const), const)
    impulse = torch.zeros(1, 64, 64)
    impulse[0, 32, 32] = 1.0
    out = blur(impulse)
    assert abs(float(out.sum()) - 1.0) < 1e-5 and out[0, 32, 32] == out.max()


@pytest.mark.parametrize(("h", "w", "size", "sigma"),
                         [(64, 64, 256, 4.0), (7, 7, 224, 4.0), (56, 40, 224, 2.0), (10, 12, 64, 4.0)])
def test_resize_and_smoothing_as_one_step_equal_the_two(h: int, w: int, size: int, sigma: float) -> None:
    """R_h · A · R_wᵀ at the map's own grid is the bilinear resize followed by the smoothing."""
    from glcf_train.scoring import resize_map

    blur = GaussianBlur(sigma)
    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(h * w)) * 5 - 1
    ref = blur(resize_map(x, size))
    torch.testing.assert_close(blur.resized(x, size), ref, atol=2e-6 * float(ref.abs().max()), rtol=0)


def test_the_deploy_scorer_resizes_and_smooths_at_the_native_grid(tmp_path) -> None:
    """The traced scorer holds MatMuls at each scale's grid: no full-grid Resize, Pad or Conv."""
    import onnx

    scorer = TorchScorer(ScoringConfig(), SIZE, STATS)

    class Maps(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scorer = scorer

        def forward(self, *maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.scorer.score_errors({"local": list(maps[:3]), "global": list(maps[3:])})

    maps = tuple(torch.rand(1, g, g) for g in GRIDS) * 2
    torch.onnx.export(Maps(), maps, tmp_path / "scorer.onnx", opset_version=17, dynamo=False)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "scorer.onnx")).graph.node]
    assert ops.count("MatMul") == 6 and not {"Resize", "Conv", "Pad"} & set(ops), ops


def test_stats_round_trip() -> None:
    assert FusionStats.from_dict(STATS.to_dict()) == STATS
