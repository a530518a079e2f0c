"""PatchCore reference baseline: greedy coreset, memory bank, nearest-neighbour scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glcf_runtime.preprocess import PreprocessSpec
from glcf_train.baseline import PatchCore, PatchCoreConfig, greedy_coreset, patch_features
from glcf_train.builder import load_run
from glcf_train.data.datasets import load_images, read_split


def test_greedy_coreset_is_farthest_point_selection() -> None:
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(1))
    chosen = greedy_coreset(x, 20, projection_dim=64)  # no projection: 5 < 64
    assert len(set(chosen.tolist())) == 20
    for i in range(1, 20):  # each pick is the point farthest from those picked before it
        d = torch.cdist(x, x[chosen[:i]]).amin(dim=1)
        assert d[chosen[i]] == pytest.approx(float(d.max()), rel=1e-4)


def test_coreset_covers_clusters_a_random_sample_would_miss() -> None:
    gen = torch.Generator().manual_seed(0)
    big = torch.randn(1000, 3, generator=gen) * 0.1
    outliers = torch.randn(3, 3, generator=gen) * 0.1 + 10.0 * torch.eye(3)
    chosen = set(greedy_coreset(torch.cat([big, outliers]), 8, 64).tolist())
    assert {1000, 1001, 1002} <= chosen


@pytest.fixture(scope="module")
def model_and_images(trained_run: Path, synth_root: Path):
    model, _, _ = load_run(trained_run)
    spec = PreprocessSpec()
    train = load_images(read_split(synth_root, "breakfast_tray", "train"), spec)
    test = load_images(read_split(synth_root, "breakfast_tray", "test"), spec)
    return model, train, test


def test_patch_features_are_t1_and_t2_at_t1_grid(model_and_images) -> None:
    model, train, _ = model_and_images
    feats = patch_features(model, torch.from_numpy(train[:2]))
    c = model.cfg.channels
    assert feats.shape == (2, 28, 28, c[1] + c[2]) and torch.isfinite(feats).all()


def test_full_bank_scores_training_images_zero(model_and_images) -> None:
    model, train, test = model_and_images
    core = PatchCore(model, PatchCoreConfig(coreset_ratio=1.0))
    core.fit(train[:3], progress=False)
    assert core.bank.shape[0] == 3 * 28 * 28
    maps, scores = core.score(train[:3], progress=False)
    _, test_scores = core.score(test, progress=False)
    assert maps.shape == (3, 224, 224) and maps.dtype == np.float32
    # each bank patch finds itself: zero up to cdist's rounding, far below any unseen image
    assert scores.max() < 0.01 * test_scores.min()


def test_small_coreset_keeps_its_share_and_scores_at_least_the_full_bank(model_and_images) -> None:
    model, train, test = model_and_images
    full, small = (PatchCore(model, PatchCoreConfig(coreset_ratio=r)) for r in (1.0, 0.05))
    full.fit(train, progress=False)
    small.fit(train, progress=False)
    assert small.bank.shape[0] == round(0.05 * len(train) * 28 * 28)
    _, s_full = full.score(test, progress=False)
    _, s_small = small.score(test, progress=False)
    assert (s_small >= s_full - 1e-4).all()  # a subset of the bank is never nearer


def test_score_before_fit_says_so(model_and_images) -> None:
    with pytest.raises(RuntimeError, match="fit"):
        PatchCore(model_and_images[0]).score(model_and_images[2], progress=False)
