"""Threshold rules on known arrays."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from calibration.threshold import (
    MAX_MARGIN,
    ThresholdResult,
    ThresholdRule,
    f1_optimal_threshold,
    sample_size_note,
    select_threshold,
    threshold_from_normal,
)


def test_threshold_from_normal_known_values() -> None:
    scores = np.arange(101, dtype=np.float64)  # q99 = 99, median = 50
    assert threshold_from_normal(scores) == pytest.approx(99 + 0.1 * 49)
    assert threshold_from_normal(scores, quantile=0.9, margin=0.0) == pytest.approx(90.0)
    assert threshold_from_normal(scores, quantile=0.5, margin=1.0) == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("scores", "kwargs", "message"),
    [
        ([1.0, 2.0], {"quantile": 1.0}, "quantile"),
        ([1.0, 2.0], {"quantile": 0.0}, "quantile"),
        ([1.0, 2.0], {"margin": -0.1}, "margin"),
        ([1.0], {}, "at least 2"),
        ([1.0, np.inf], {}, "NaN or infinite"),
        ([1.0, 2.0], {"margin": MAX_MARGIN + 0.5}, "margin"),
        ([1.0, 2.0], {"quantile": 0.3}, "quantile"),  # below the median: most normal images flagged
    ],
)
def test_threshold_from_normal_errors(scores: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        threshold_from_normal(np.array(scores), **kwargs)


def test_f1_optimal_known_value() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    labels = np.array([0, 0, 1, 0, 1])
    # Cuts 0.5, 0.4, 0.3, 0.2, 0.1 give F1 2/3, 1/2, 4/5, 2/3, 4/7.
    threshold, f1 = f1_optimal_threshold(scores, labels)
    assert threshold == 0.3 and f1 == pytest.approx(0.8)
    assert f1 == pytest.approx(f1_score(labels, scores >= threshold))


def test_f1_optimal_ties() -> None:
    # Cuts 4 and 1 both give F1 2/3: the higher threshold wins.
    assert f1_optimal_threshold(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 0, 0, 1])) == (
        4.0,
        pytest.approx(2 / 3),
    )
    # Tied scores go positive together: the cut 0.5 flags both 0.5 scores.
    threshold, f1 = f1_optimal_threshold(np.array([0.5, 0.5, 0.9]), np.array([0, 1, 1]))
    assert threshold == 0.5 and f1 == pytest.approx(0.8)


@pytest.mark.parametrize("seed", range(3))
def test_f1_optimal_beats_every_cut(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=80), 1)
    labels = (rng.random(80) < 0.3).astype(int)
    labels[:2] = (0, 1)
    threshold, f1 = f1_optimal_threshold(scores, labels)
    best = max(f1_score(labels, scores >= t) for t in np.unique(scores))
    assert f1 == pytest.approx(best) and f1 == pytest.approx(f1_score(labels, scores >= threshold))


def test_f1_optimal_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both normal and anomalous"):
        f1_optimal_threshold(np.array([0.1, 0.2]), np.array([0, 0]))


def test_threshold_result_and_selection() -> None:
    normal = select_threshold(np.arange(101, dtype=float))
    assert normal.rule is ThresholdRule.NORMAL_QUANTILE
    assert (normal.n_normal, normal.n_anomalous, normal.f1) == (101, 0, None)
    labelled = select_threshold(np.array([0.1, 0.2, 0.3, 0.4, 0.5]), np.array([0, 0, 1, 0, 1]))
    assert labelled.rule is ThresholdRule.F1_OPTIMAL and labelled.threshold == 0.3
    assert (labelled.n_normal, labelled.n_anomalous, labelled.quantile) == (3, 2, None)
    record = json.loads(json.dumps(labelled.to_dict()))
    assert record == {
        "threshold": 0.3,
        "rule": "f1_optimal",
        "quantile": None,
        "margin": None,
        "f1": pytest.approx(0.8),
        "n_normal": 3,
        "n_anomalous": 2,
        "target_fpr": None,
        "fpr": None,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        labelled.threshold = 1.0  # type: ignore[misc]
    assert isinstance(labelled, ThresholdResult)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, -3.4028234663852886e38])
def test_unusable_scores_are_refused_by_every_rule_naming_their_positions(bad: float) -> None:
    """NaN, ±inf and the float32 limit (OpenVINO's NaN) never become a threshold."""
    scores = np.array([0.1, bad, 0.3, 0.2, bad])
    labels = np.array([0, 0, 1, 0, 1])
    for kwargs in ({}, {"labels": labels}, {"target_fpr": 0.1}):
        with pytest.raises(ValueError, match=r"at positions? 1, 4") as err:
            select_threshold(scores, **kwargs)
        assert "NaN or infinite" in str(err.value) or "float32" in str(err.value)


@pytest.mark.parametrize("seed", range(20))
def test_normal_rules_stay_in_the_range_the_runtime_accepts(seed: int) -> None:
    """Every threshold from normal scores lies in [lowest, highest + MAX_MARGIN × spread]: the
    range an artifact's metadata threshold is checked against (glcf_runtime.metadata)."""
    rng = np.random.default_rng(seed)
    scores = rng.gamma(2.0, size=int(rng.integers(2, 60))) * 10.0 ** rng.integers(-3, 3)
    if seed % 5 == 0:
        scores[:] = scores[0]  # all equal: no spread at all
    low, high = scores.min(), scores.max()
    for kwargs in ({"quantile": rng.uniform(0.5, 1.0), "margin": rng.uniform(0, MAX_MARGIN)},
                   {"quantile": 0.999, "margin": MAX_MARGIN}, {"target_fpr": rng.uniform(0, 1)}):
        t = select_threshold(scores, **kwargs).threshold
        assert low <= t <= np.nextafter(high + MAX_MARGIN * (high - low), np.inf) * (1 + 1e-12)


def test_sample_size_note_says_when_the_good_images_are_too_few() -> None:
    scores = np.linspace(0.0, 1.0, 30)
    few = select_threshold(scores, None)  # the 0.99 quantile of 30 images
    note = sample_size_note(few)
    assert note is not None and "30 good images are too few for the 0.99 quantile (it needs 100" in note
    assert "1 good part in 31 (3%)" in note and "--target-fpr" in note
    assert sample_size_note(select_threshold(np.linspace(0.0, 1.0, 100), None)) is None
    assert sample_size_note(select_threshold(scores, None, quantile=0.95)) is None  # needs 20
    strict = select_threshold(scores, None, target_fpr=0.01)
    note = sample_size_note(strict.to_dict())  # the runtime's dict form too
    assert note is not None and "as low as 0.01" in note and "give 100 or more" in note
    assert sample_size_note(select_threshold(scores, None, target_fpr=0.05)) is None
    zero = sample_size_note(select_threshold(scores, None, target_fpr=0.0))
    assert zero is not None and "target of 0 puts the threshold above all 30 good images" in zero
    assert sample_size_note(select_threshold(scores, np.r_[np.zeros(20), np.ones(10)])) is None  # F1
