"""Metrics: hand-worked cases, agreement with scikit-learn, LOCO sPRO definitions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from calibration.loco_defects import defects_from_masks, parse_defects_config, saturation_area
from calibration.metrics import (
    area_up_to,
    image_auroc,
    pixel_auroc,
    pro_auc,
    pro_curve,
    spro_auc,
    spro_curve,
)


def _square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


# --- image AUROC -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "labels", "expected"),
    [
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),  # 3 of 4 pairs ordered
        ([1.0, 1.0, 2.0, 2.0], [0, 1, 0, 1], 0.5),  # pairs: tie, loss, win, tie
        ([3.0, 3.0, 3.0], [0, 1, 1], 0.5),  # all tied
        ([0.0, 1.0, 2.0], [0, 1, 1], 1.0),
        ([2.0, 0.0, 1.0], [1, 0, 0], 1.0),
        ([0.0, 1.0, 1.0, 2.0], [0, 0, 1, 1], 0.875),  # one tie among 4 pairs
        ([5.0, 1.0], [0, 1], 0.0),
    ],
)
def test_image_auroc_hand_worked(scores: list, labels: list, expected: float) -> None:
    assert image_auroc(np.array(scores), np.array(labels)) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_image_auroc_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=300), 1)  # rounding makes many ties
    labels = rng.integers(0, 2, size=300)
    assert image_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_image_auroc_errors() -> None:
    with pytest.raises(ValueError, match="all 3 are normal"):
        image_auroc(np.array([0.1, 0.2, 0.3]), np.array([0, 0, 0]))
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        image_auroc(np.array([0.1, 0.2]), np.array([0, 2]))
    with pytest.raises(ValueError, match="shape"):
        image_auroc(np.array([0.1, 0.2]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="NaN"):
        image_auroc(np.array([0.1, np.nan]), np.array([0, 1]))


# --- pixel AUROC -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pixel_auroc_matches_sklearn(dtype: type) -> None:
    rng = np.random.default_rng(3)
    masks = np.zeros((6, 32, 32), dtype=bool)
    masks[1:, 8:16, 4:20] = True
    maps = (np.round(rng.random(masks.shape) * 50) / 50).astype(dtype)
    maps[masks] += 0.2
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert pixel_auroc(maps, masks) == pytest.approx(expected, abs=1e-12)


def test_pixel_auroc_errors() -> None:
    maps = np.zeros((2, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="both anomalous and normal"):
        pixel_auroc(maps, np.zeros((2, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match="must match"):
        pixel_auroc(maps, np.zeros((2, 4, 5), dtype=bool))
    with pytest.raises(ValueError, match="bool"):
        pixel_auroc(maps, np.zeros((2, 4, 4), dtype=np.uint8))


# --- integration up to an FPR limit ------------------------------------------------------


def test_area_up_to_interpolates_at_the_limit() -> None:
    fprs = np.array([0.0, 0.1, 0.2, 1.0])
    values = np.array([0.2, 0.6, 0.8, 1.0])
    # 0..0.1: (0.2 + 0.6) / 2 * 0.1 = 0.04; 0.1..0.15: y(0.15) = 0.7, (0.6 + 0.7) / 2 * 0.05
    expected = (0.04 + 0.0325) / 0.15
    assert area_up_to(fprs, values, 0.15) == pytest.approx(expected, abs=1e-12)
    assert area_up_to(fprs, values, 0.2) == pytest.approx((0.04 + 0.07) / 0.2, abs=1e-12)
    with pytest.raises(ValueError, match="fpr_limit"):
        area_up_to(fprs, values, 0.0)


# --- PRO ---------------------------------------------------------------------------------


def test_pro_auc_known_value() -> None:
    maps = np.zeros((1, 10, 10))
    masks = np.zeros((1, 10, 10), dtype=bool)
    masks[0, 0:2, 0:2] = True  # region A, 4 px, all found at threshold 1
    masks[0, 5, 5:7] = True  # region B, 2 px, half found at threshold 1
    maps[0, 0:2, 0:2] = 1.0
    maps[0, 5, 5] = 1.0
    # Curve: (0, 0) -> (0, 0.75) -> (1, 1); y(0.3) = 0.825.
    expected = 0.3 * (0.75 + 0.825) / 2 / 0.3
    assert pro_auc(maps, masks, fpr_limit=0.3) == pytest.approx(expected, abs=1e-12)


def test_pro_regions_are_eight_connected() -> None:
    maps = np.zeros((1, 6, 6))
    masks = np.zeros((1, 6, 6), dtype=bool)
    masks[0, 0, 0] = masks[0, 1, 1] = masks[0, 1, 2] = True  # touch diagonally: one region
    maps[0, 0, 0] = 1.0
    fprs, pros = pro_curve(maps, masks)
    assert fprs[1] == 0.0
    assert pros[1] == pytest.approx(1 / 3)  # 4-connectivity would give (1 + 0) / 2


def test_pro_errors() -> None:
    with pytest.raises(ValueError, match="at least one anomalous region"):
        pro_auc(np.zeros((1, 4, 4)), np.zeros((1, 4, 4), dtype=bool))


# --- sPRO (MVTec LOCO) -------------------------------------------------------------------


def test_saturation_area_rules() -> None:
    mask = _square(20, 0, 0, 10)  # 100 px
    assert saturation_area(mask, 0.5, relative=True) == 50.0
    assert saturation_area(mask, 1.0, relative=True) == 100.0
    assert saturation_area(mask, 20, relative=False) == 20.0
    assert saturation_area(mask, 500, relative=False) == 100.0  # min(threshold, area)
    seven = np.zeros((4, 4), dtype=bool)
    seven.flat[:7] = True
    assert saturation_area(seven, 0.5, relative=True) == 3.0  # int(3.5), as the official code
    single = np.zeros((4, 4), dtype=bool)
    single[0, 0] = True
    assert saturation_area(single, 0.5, relative=True) == 1.0  # int(0.5) = 0 -> at least 1
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        saturation_area(mask, 1.5, relative=True)
    with pytest.raises(ValueError, match="empty"):
        saturation_area(np.zeros((4, 4), dtype=bool), 0.5, relative=True)


@pytest.mark.parametrize(("n_found", "expected"), [(50, 1.0), (60, 1.0), (25, 0.5), (10, 0.2)])
def test_spro_relative_saturation(n_found: int, expected: float) -> None:
    # A 100 px defect with relative saturation 0.5 saturates once 50 of its pixels are found.
    mask = _square(20, 0, 0, 10)
    anomaly_map = np.zeros((20, 20))
    anomaly_map.flat[np.flatnonzero(mask)[:n_found]] = 1.0
    fprs, spros = spro_curve(anomaly_map[None], [[(mask, saturation_area(mask, 0.5, True))]])
    assert fprs[1] == 0.0 and spros[1] == pytest.approx(expected)
    # The rest of the defect scores 0 like the background: the curve then rises linearly to
    # (1, 1), so at FPR 0.05 it has gained 5 % of the remainder.
    auc = expected + (1.0 - expected) * 0.05 / 2
    assert spro_auc(anomaly_map[None], [[(mask, 50.0)]], fpr_limit=0.05) == pytest.approx(auc)


def test_spro_absolute_saturation() -> None:
    mask = _square(20, 0, 0, 10)
    anomaly_map = np.zeros((20, 20))
    anomaly_map.flat[np.flatnonzero(mask)[:10]] = 1.0
    area = saturation_area(mask, 20, relative=False)
    fprs, spros = spro_curve(anomaly_map[None], [[(mask, area)]])
    assert fprs[1] == 0.0 and spros[1] == pytest.approx(0.5)  # 10 of the 20 px needed


def test_spro_fpr_counts_all_defect_free_pixels() -> None:
    good = np.zeros((10, 10))
    good.flat[:19] = 0.5  # 19 false positives at threshold 0.5
    defect = np.zeros((10, 10), dtype=bool)
    defect[0, :] = True  # 10 px, relative saturation 1.0
    bad = np.zeros((10, 10))
    bad[0, :5] = 1.0
    bad[0, 5:] = 0.25
    maps = np.stack([good, bad])
    defects = [[], [(defect, saturation_area(defect, 1.0, True))]]
    # Negatives: 100 (good) + 90 (bad) = 190. Curve: (0,0) (0,0.5) (0.1,0.5) (0.1,1) (1,1).
    # With only the good images' pixels the jump would sit at FPR 0.19 instead.
    assert spro_auc(maps, defects, fpr_limit=0.05) == pytest.approx(0.5)
    assert spro_auc(maps, defects, fpr_limit=0.3) == pytest.approx((0.05 + 0.2) / 0.3)


def test_spro_is_mean_over_all_defects_of_all_images() -> None:
    masks = [_square(8, 0, 0, 2), _square(8, 4, 4, 4)]
    maps = np.zeros((2, 8, 8))
    maps[0][masks[0]] = 1.0  # defect 1 found, defect 2 not
    defects = [[(masks[0], 4.0)], [(masks[1], 16.0)]]
    fprs, spros = spro_curve(maps, defects)
    assert fprs[1] == 0.0 and spros[1] == pytest.approx(0.5)


def test_spro_matches_brute_force_threshold_sweep() -> None:
    rng = np.random.default_rng(7)
    maps = np.round(rng.random((3, 12, 12)) * 10) / 10
    defects = [[]]
    for _ in range(2):
        a, b = _square(12, 1, 1, 4), _square(12, 3, 6, 3)
        maps[len(defects)][a] += 0.3
        defects.append([(a, saturation_area(a, 0.5, True)), (b, saturation_area(b, 5, False))])
    fprs, spros = spro_curve(maps, defects)
    for t in np.unique(maps):  # positive if score >= t
        free = [
            ~np.any([m for m, _ in d], axis=0) if d else np.ones((12, 12), bool) for d in defects
        ]
        fp = sum(int(np.sum((mp >= t) & f)) for mp, f in zip(maps, free, strict=True))
        fpr = fp / sum(int(f.sum()) for f in free)
        overlaps = [
            min(np.sum((mp >= t) & m) / s, 1.0)
            for mp, d in zip(maps, defects, strict=True)
            for m, s in d
        ]
        index = np.flatnonzero(np.isclose(fprs, fpr) & np.isclose(spros, np.mean(overlaps)))
        assert index.size > 0, f"threshold {t} missing from the curve"


@pytest.mark.parametrize("fpr_limit", [0.01, 0.05, 0.3, 0.9])
def test_limited_curve_is_the_head_of_the_whole_curve(fpr_limit: float) -> None:
    """A limit selects only the top negatives; ties at the cut must still be counted."""
    rng = np.random.default_rng(3)
    maps = np.round(rng.random((6, 20, 20)) * 20) / 20  # many equal scores, ties at any cut
    a, b = _square(20, 2, 2, 6), _square(20, 10, 9, 5)
    maps[2][a] += 0.2
    defects = [[], [], [(a, 20.0)], [(b, 8.0)], [(a, 50.0), (b, 10.0)], []]
    masks = np.zeros(maps.shape, bool)
    masks[2][a] = masks[3][b] = True
    for limited, whole in (
        (spro_curve(maps, defects, fpr_limit), spro_curve(maps, defects)),
        (pro_curve(maps, masks, fpr_limit), pro_curve(maps, masks)),
    ):
        n = limited[0].size
        assert n < whole[0].size and limited[0][-1] > fpr_limit
        np.testing.assert_array_equal(limited[0], whole[0][:n])
        np.testing.assert_array_equal(limited[1], whole[1][:n])


def test_spro_errors() -> None:
    maps = np.zeros((1, 4, 4))
    with pytest.raises(ValueError, match="at least one defect"):
        spro_auc(maps, [[]])
    with pytest.raises(ValueError, match="one per map"):
        spro_auc(maps, [[], []])
    with pytest.raises(ValueError, match="empty"):
        spro_auc(maps, [[(np.zeros((4, 4), dtype=bool), 1.0)]])
    with pytest.raises(ValueError, match="defect-free pixels"):
        spro_auc(maps, [[(np.ones((4, 4), dtype=bool), 1.0)]])


# --- LOCO ground truth -------------------------------------------------------------------


def test_defects_from_masks() -> None:
    config = parse_defects_config(
        [
            {"defect_name": "missing", "pixel_value": 255, "saturation_threshold": 1.0,
             "relative_saturation": True},
            {"defect_name": "extra", "pixel_value": 100, "saturation_threshold": 30,
             "relative_saturation": False},
        ]
    )  # fmt: skip
    first = np.zeros((16, 16), dtype=np.uint8)
    first[:10, :10] = 255
    second = np.zeros((16, 16), dtype=np.uint8)
    second[12:, :] = 100  # 64 px, absolute 30
    defects = defects_from_masks([first, second], config)
    assert [area for _, area in defects] == [100.0, 30.0]
    assert defects[0][0].dtype == bool and defects[0][0].sum() == 100

    stray = np.zeros((16, 16), dtype=np.uint8)
    stray[0, 0] = 7
    with pytest.raises(ValueError, match="pixel value 7"):
        defects_from_masks([stray], config)
    with pytest.raises(ValueError, match="no defect pixel"):
        defects_from_masks([np.zeros((16, 16), dtype=np.uint8)], config)
    with pytest.raises(ValueError, match="twice"):
        parse_defects_config([config[255], config[255]])
