"""The false-alarm-target threshold rule (`glcf calibrate --target-fpr`)."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.threshold import ThresholdRule, select_threshold, threshold_for_fpr


@pytest.mark.parametrize("target", [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.99])
def test_fpr_rule_is_the_lowest_cut_within_the_target(target: float) -> None:
    scores = np.random.default_rng(3).normal(size=200)
    t, fpr = threshold_for_fpr(scores, target)
    assert fpr == np.mean(scores >= t) <= target + 1e-12
    # brute force: no lower candidate cut keeps within the target
    lower = np.sort(scores)[np.sort(scores) < t]
    if lower.size:
        assert np.mean(scores >= lower.max()) > target


def test_fpr_rule_known_values_and_ties() -> None:
    scores = np.arange(100.0)
    assert threshold_for_fpr(scores, 0.0) == (np.nextafter(99.0, np.inf), 0.0)
    assert threshold_for_fpr(scores, 0.05) == (np.nextafter(94.0, np.inf), 0.05)
    tied = np.array([1.0, 2.0, 2.0, 2.0])
    assert threshold_for_fpr(tied, 0.5) == (np.nextafter(2.0, np.inf), 0.0)  # ties pass together


@pytest.mark.parametrize("target", [-0.1, 1.0, 1.5])
def test_fpr_rule_rejects_targets_outside_0_1(target: float) -> None:
    with pytest.raises(ValueError, match="target_fpr"):
        threshold_for_fpr(np.arange(5.0), target)


def test_select_threshold_records_target_and_rate() -> None:
    result = select_threshold(np.arange(50.0), None, target_fpr=0.1)
    assert result.rule is ThresholdRule.TARGET_FPR
    assert result.to_dict()["rule"] == "target_fpr"
    assert (result.target_fpr, result.fpr, result.n_normal) == (0.1, 0.1, 50)
    # labelled anomalies still choose the F1-optimal cut
    labelled = select_threshold(np.array([0.1, 0.2, 0.9]), np.array([0, 0, 1]), target_fpr=0.1)
    assert labelled.rule is ThresholdRule.F1_OPTIMAL
