"""Report numbers: groups, operating point, bootstrap intervals (against brute force/sklearn)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from glcf_train.report.figures import roc_curve
from glcf_train.report.tables import (
    ALL,
    GOOD,
    Group,
    auroc_interval,
    groups,
    metric_rows,
    operating_point,
)

KINDS = ["good"] * 4 + ["logical"] * 3 + ["structural"] * 3
TYPES = ["good"] * 4 + ["missing", "missing", "extra"] + ["scratch"] * 3
SCORES = np.array([0.1, 0.2, 0.3, 0.9, 0.5, 0.05, 0.8, 1.0, 0.95, 0.25])


def test_groups_by_kind_all_and_type() -> None:
    index = groups(KINDS, TYPES)
    assert [g.label for g in index] == ["good", "logical", "structural", "all", "logical · extra",
                                        "logical · missing", "structural · scratch"]
    assert index[Group("logical", "missing")].tolist() == [4, 5]
    assert index[ALL].tolist() == list(range(4, 10))


def test_a_defect_named_like_a_kind_shadows_nothing() -> None:
    """defects_config.json may name a defect "logical" (or "good", "all"): each group keeps its
    own images and a label no other group has."""
    kinds = ["good"] * 2 + ["logical"] * 3 + ["structural"] * 2
    types = ["good"] * 2 + ["logical", "logical", "all"] + ["logical", "good"]
    index = groups(kinds, types)
    assert index[GOOD].tolist() == [0, 1] and index[Group("logical")].tolist() == [2, 3, 4]
    assert index[Group("structural")].tolist() == [5, 6] and index[ALL].tolist() == [2, 3, 4, 5, 6]
    assert index[Group("logical", "logical")].tolist() == [2, 3]
    assert index[Group("structural", "logical")].tolist() == [5]
    assert index[Group("structural", "good")].tolist() == [6]
    labels = [g.row_label for g in index]
    assert len(set(labels)) == len(labels) == 8, labels
    caught = {c.group.label: c.total for c in operating_point(np.arange(7.0), 3.0, index)}
    assert caught["logical"] + caught["structural"] == caught["all"] == 5


def test_operating_point_counts_flags_at_the_threshold() -> None:
    caught = {c.group: (c.flagged, c.total) for c in operating_point(SCORES, 0.5, groups(KINDS, TYPES))}
    assert caught[GOOD] == (1, 4)  # 0.9: one false alarm
    assert caught[Group("logical")] == (2, 3)  # 0.5 counts (score >= threshold), 0.05 missed
    assert caught[Group("structural")] == (2, 3) and caught[ALL] == (4, 6)
    assert caught[Group("logical", "missing")] == (1, 2)


def test_metric_rows_match_sklearn_and_intervals_hold_the_estimate() -> None:
    index = groups(KINDS, TYPES)
    rows = {r.group: r for r in metric_rows(SCORES, index, n_boot=300)}
    for group in (Group("logical"), Group("structural"), ALL, Group("logical", "missing")):
        idx = np.r_[index[GOOD], index[group]]
        labels = np.r_[np.zeros(4), np.ones(index[group].size)]
        assert rows[group].image_auroc == pytest.approx(roc_auc_score(labels, SCORES[idx]))
        low, high = rows[group].image_auroc_ci
        assert 0.0 <= low <= rows[group].image_auroc <= high <= 1.0
    logical = rows[Group("logical")]
    assert logical.localisation is None and logical.n_anomalous == 3


def test_interval_narrows_with_more_images() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 200):
        scores = np.r_[rng.normal(0, 1, n), rng.normal(1, 1, n)]
        low, high = auroc_interval(scores, np.arange(n), np.arange(n, 2 * n), n=300)
        widths.append(high - low)
    assert widths[1] < 0.5 * widths[0]


def test_localisation_interval_is_computed_for_kinds_when_asked() -> None:
    index = groups(KINDS, TYPES)
    calls = []

    def fake_localisation(idx: np.ndarray) -> float:  # the share of anomalous images in idx
        calls.append(idx)
        return float(np.isin(idx, index[ALL]).mean())

    rows = metric_rows(SCORES, {k: index[k] for k in (GOOD, Group("logical"))}, fake_localisation,
                       n_boot=10, n_boot_localisation=5)
    assert rows[0].localisation == pytest.approx(3 / 7) and len(calls) == 6
    assert rows[0].localisation_ci == (pytest.approx(3 / 7), pytest.approx(3 / 7))


def test_roc_curve_integrates_to_the_auroc() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    fpr, tpr = roc_curve(SCORES, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoid rule
    assert area == pytest.approx(roc_auc_score(labels, SCORES))
