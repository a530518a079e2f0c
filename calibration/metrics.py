"""Detection and localisation metrics: image AUROC, pixel AUROC, AU-PRO and AUC-sPRO.

All metrics are exact: every distinct anomaly score is a threshold, no sampling or
interpolation grid. Ties count half, as in ``sklearn.metrics.roc_auc_score``. (The LOCO script
binarises with ``score > t`` at adaptively sampled thresholds; its points are a subset of ours.)

The region-overlap curves follow the published evaluation code:

* AU-PRO as in MVTec AD's ``pro_curve_util.py``: ground-truth regions are the 8-connected
  components of each mask; the PRO at a threshold is the mean over all regions of all images
  of the fraction of the region above the threshold.
* AUC-sPRO as in MVTec LOCO's ``mvtec_loco_ad_evaluation`` (``src/metrics.py``, ``src/image.py``,
  ``src/util.py``): one defect per ground-truth PNG; the sPRO of a defect is
  ``min(overlap / saturation_area, 1)``; the curve's y value is the mean over all defects of all
  images.

In both, the false-positive rate at a threshold is computed over *every defect-free pixel of
every image passed* (the good images' pixels and the pixels outside all defects of the
anomalous images), the curve runs from (0, 0) to (1, 1), is integrated with the trapezoid rule
up to ``fpr_limit`` (the point at the limit linearly interpolated) and divided by ``fpr_limit``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

# A defect: its mask [H, W] and the number of its pixels that count as "fully found".
Defect = tuple[np.ndarray, float]

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _check_finite(values: np.ndarray, what: str) -> None:
    if not np.isfinite(values).all():
        raise ValueError(f"{what} contain NaN or infinite values; metrics need finite scores")


def _binary_labels(labels: np.ndarray, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels have shape {labels.shape}, expected ({n},) like the scores")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomalous)")
    return labels.astype(bool)


def _auroc_from_groups(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Exact tie-aware AUROC = P(pos > neg) + P(pos == neg) / 2.

    Sorts ``negatives`` in place. Positives are processed in chunks so that no temporary is
    larger than a chunk of int64 counts.
    """
    negatives.sort()
    twice_wins = 0  # 2 * (#pos > neg) + (#pos == neg), exact in int64
    for start in range(0, positives.size, 1 << 20):
        chunk = positives[start : start + (1 << 20)]
        below = np.searchsorted(negatives, chunk, side="left")
        not_above = np.searchsorted(negatives, chunk, side="right")
        twice_wins += int(below.sum()) + int(not_above.sum())
    return twice_wins / (2.0 * positives.size * negatives.size)


def image_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of image scores.

    Args:
        scores: ``[N]`` anomaly scores, higher = more anomalous.
        labels: ``[N]`` 0 for normal images, 1 for anomalous ones.

    Returns:
        AUROC in [0, 1]; equals ``sklearn.metrics.roc_auc_score(labels, scores)``.

    Raises:
        ValueError: shapes differ, labels are not 0/1, scores are not finite, or only one
            class is present (AUROC is undefined then).
    """
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D [N], got shape {scores.shape}")
    positive = _binary_labels(labels, scores.size)
    _check_finite(scores, "scores")
    n_pos = int(positive.sum())
    if n_pos in (0, scores.size):
        present = "anomalous" if n_pos else "normal"
        raise ValueError(
            f"AUROC needs normal and anomalous samples; all {scores.size} are {present}"
        )
    return _auroc_from_groups(scores[~positive], scores[positive])


def _check_maps_masks(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps, masks = np.asarray(maps), np.asarray(masks)
    if maps.ndim != 3:
        raise ValueError(f"maps must be [N, H, W], got shape {maps.shape}")
    if masks.shape != maps.shape:
        raise ValueError(f"masks have shape {masks.shape}, maps {maps.shape}; they must match")
    if masks.dtype != bool:
        raise ValueError(f"masks must be bool [N, H, W], got dtype {masks.dtype}")
    _check_finite(maps, "anomaly maps")
    return maps, masks


def pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float:
    """Area under the ROC curve over all pixels of all images.

    Memory: one copy of the defect-free pixels (sorted in place) plus chunked counts, so
    200 maps of 224×224 need about one extra map stack, not an argsort of all pixels.

    Args:
        maps: ``[N, H, W]`` anomaly maps (float).
        masks: ``[N, H, W]`` bool, True on anomalous pixels.

    Returns:
        Pixel AUROC in [0, 1]; equals ``roc_auc_score(masks.ravel(), maps.ravel())``.
    """
    maps, masks = _check_maps_masks(maps, masks)
    n_pos = int(masks.sum())
    if n_pos in (0, masks.size):
        raise ValueError("pixel AUROC needs both anomalous and normal pixels in the masks")
    return _auroc_from_groups(maps[~masks], maps[masks])


def _check_limit(fpr_limit: float) -> None:
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must lie in (0, 1], got {fpr_limit}")


def _saturating_weights(n_pixels: int, saturation: float) -> np.ndarray:
    """sPRO gained by the k-th pixel of a defect to go positive: min(k/s,1) - min((k-1)/s,1)."""
    k = np.arange(n_pixels + 1, dtype=np.float64)
    return np.diff(np.minimum(k / saturation, 1.0))


def _overlap_curve(
    negatives: np.ndarray, events: np.ndarray, weights: np.ndarray, fpr_limit: float
) -> tuple[np.ndarray, np.ndarray]:
    """FPR and overlap at every distinct score, thresholds descending ("positive if >= t").

    Args:
        negatives: ``[P]`` scores of all defect-free pixels; reordered in place.
        events: ``[E]`` scores of defect pixels.
        weights: ``[E]`` how much each defect pixel adds to the overlap when it goes positive.
        fpr_limit: points with an FPR above the limit are dropped, except the first ones
            (1.0 keeps the whole curve); saves memory for a small limit.

    Returns:
        ``(fprs, overlaps)``, both ``[T]`` non-decreasing; the first point is (0, 0). The whole
        curve ends at FPR 1 (and overlap 1 when every defect can saturate).
    """
    _check_limit(fpr_limit)
    order = np.argsort(events, kind="stable")
    events = events[order]
    # suffix[i] = overlap reached when events[i:] are positive; suffix[E] = 0.
    suffix = np.append(np.cumsum(weights[order][::-1])[::-1], 0.0)
    # Keep thresholds down to one with more than fpr_limit * P false positives (+1 for rounding).
    n_keep = int(np.floor(fpr_limit * negatives.size)) + 2
    if n_keep < negatives.size:
        # Only the n_keep highest negatives can be thresholds: select them in linear time and
        # sort just those (a 0.05 limit sorts 5 % of the pixels instead of all of them).
        cut = negatives.size - n_keep
        negatives.partition(cut)
        top = np.sort(negatives[cut:])
        thresholds = np.union1d(top, events[events >= top[0]])[::-1]  # distinct, descending
        # Every threshold is >= top[0]; only at top[0] itself do pixels left of the cut count.
        false_pos = top.size - np.searchsorted(top, thresholds, side="left")
        false_pos[-1] += np.count_nonzero(negatives[:cut] == top[0])
    else:
        negatives.sort()
        thresholds = np.union1d(negatives, events)[::-1]
        false_pos = negatives.size - np.searchsorted(negatives, thresholds, side="left")
    overlaps = suffix[np.searchsorted(events, thresholds, side="left")]
    overlaps = np.minimum(overlaps, 1.0)  # summation error only
    return np.concatenate(([0.0], false_pos / negatives.size)), np.concatenate(([0.0], overlaps))


def area_up_to(fprs: np.ndarray, values: np.ndarray, fpr_limit: float) -> float:
    """Normalised area under a curve up to an FPR limit.

    Trapezoid rule over the points with ``fpr <= fpr_limit``, plus the trapezoid up to the
    limit with the value there linearly interpolated; divided by ``fpr_limit``.

    Args:
        fprs: ``[T]`` non-decreasing false-positive rates, starting at 0 and ending at 1.
        values: ``[T]`` the curve's y values (PRO, sPRO, TPR).
        fpr_limit: upper integration limit in (0, 1].

    Returns:
        Area in [0, 1] for y values in [0, 1].
    """
    _check_limit(fpr_limit)
    fprs, values = np.asarray(fprs, np.float64), np.asarray(values, np.float64)
    if fprs.shape != values.shape or fprs.ndim != 1 or fprs[-1] < fpr_limit:
        raise ValueError("need 1-D fprs and values of equal length with fprs reaching fpr_limit")
    if np.any(np.diff(fprs) < 0):
        raise ValueError("fprs must be non-decreasing")
    inside = int(np.searchsorted(fprs, fpr_limit, side="right"))  # points with fpr <= limit
    x, y = fprs[:inside], values[:inside]
    area = float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))
    if x[-1] < fpr_limit:
        x_next, y_next = fprs[inside], values[inside]
        y_limit = y[-1] + (y_next - y[-1]) * (fpr_limit - x[-1]) / (x_next - x[-1])
        area += 0.5 * (y[-1] + y_limit) * (fpr_limit - x[-1])
    return area / fpr_limit


def pro_curve(
    maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-region overlap (PRO) curve of MVTec AD.

    Args:
        maps: ``[N, H, W]`` anomaly maps.
        masks: ``[N, H, W]`` bool ground truth; regions are its 8-connected components.
        fpr_limit: drop the points past the first ones above this FPR (1.0: whole curve).

    Returns:
        ``(fprs, pros)``, each ``[T]``, non-decreasing from (0, 0) to (1, 1).
    """
    maps, masks = _check_maps_masks(maps, masks)
    region_ids, n_regions = [], 0
    for mask in masks:
        labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
        region_ids.append(labels[mask] + (n_regions - 1))  # 0-based, unique across images
        n_regions += count
    if n_regions == 0:
        raise ValueError("PRO needs at least one anomalous region; all masks are empty")
    if masks.all():
        raise ValueError("PRO needs defect-free pixels; every pixel of every mask is anomalous")
    ids = np.concatenate(region_ids)  # same order as maps[masks]
    areas = np.bincount(ids, minlength=n_regions)
    weights = 1.0 / (n_regions * areas[ids])  # each region contributes 1 / n_regions
    return _overlap_curve(maps[~masks], maps[masks], weights, fpr_limit)


def pro_auc(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (MVTec AD's AU-PRO).

    Args:
        maps: ``[N, H, W]`` anomaly maps.
        masks: ``[N, H, W]`` bool ground truth.
        fpr_limit: integration limit in (0, 1]; MVTec AD reports 0.3.

    Returns:
        AU-PRO in [0, 1].
    """
    fprs, pros = pro_curve(maps, masks, fpr_limit)
    return area_up_to(fprs, pros, fpr_limit)


def _check_defects(maps: np.ndarray, defects: Sequence[Sequence[Defect]]) -> None:
    if maps.ndim != 3:
        raise ValueError(f"maps must be [N, H, W], got shape {maps.shape}")
    if len(defects) != len(maps):
        raise ValueError(f"{len(defects)} defect lists for {len(maps)} maps; need one per map")
    for i, image_defects in enumerate(defects):
        for mask, saturation in image_defects:
            if mask.shape != maps.shape[1:] or mask.dtype != bool:
                raise ValueError(
                    f"defect mask of image {i} is {mask.dtype} {mask.shape}; "
                    f"expected bool {maps.shape[1:]}"
                )
            if not mask.any():
                raise ValueError(f"a defect mask of image {i} is empty; drop it or fix the mask")
            if not saturation > 0:
                raise ValueError(f"defect of image {i} has saturation area {saturation}; need > 0")


def spro_curve(
    maps: np.ndarray, defects: Sequence[Sequence[Defect]], fpr_limit: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Saturated per-region overlap (sPRO) curve of MVTec LOCO.

    Args:
        maps: ``[N, H, W]`` anomaly maps.
        defects: per image, its defects as ``(mask [H, W] bool, saturation_area)``; an empty
            list for a good image. Defects of one image may overlap.
        fpr_limit: drop the points past the first ones above this FPR (1.0: whole curve).

    Returns:
        ``(fprs, spros)``, each ``[T]``, non-decreasing from (0, 0) to (1, 1). The FPR counts
        every pixel outside all defects of all images passed (good images included).
    """
    maps = np.asarray(maps)
    _check_defects(maps, defects)
    _check_finite(maps, "anomaly maps")
    n_defects = sum(len(d) for d in defects)
    if n_defects == 0:
        raise ValueError("sPRO needs at least one defect; every image is defect-free")
    negatives, events, weights = [], [], []
    for anomaly_map, image_defects in zip(maps, defects, strict=True):
        defect_free = np.ones(anomaly_map.shape, dtype=bool)
        for mask, saturation in image_defects:
            defect_free &= ~mask
            values = np.sort(anomaly_map[mask])[::-1]  # descending: k-th pixel to go positive
            gains = _saturating_weights(values.size, saturation) / n_defects
            keep = gains > 0  # pixels past saturation add nothing
            events.append(values[keep])
            weights.append(gains[keep])
        negatives.append(anomaly_map[defect_free])
    negatives_all = np.concatenate(negatives)
    if negatives_all.size == 0:
        raise ValueError("sPRO needs defect-free pixels to count false positives; there are none")
    events_all, weights_all = np.concatenate(events), np.concatenate(weights)
    return _overlap_curve(negatives_all, events_all, weights_all, fpr_limit)


def spro_auc(
    maps: np.ndarray, defects: Sequence[Sequence[Defect]], fpr_limit: float = 0.05
) -> float:
    """AUC-sPRO as the MVTec LOCO benchmark defines it.

    Pass the good images (empty defect lists) together with the anomalous images of the
    subset being scored (LOCO: good + logical, good + structural).

    Args:
        maps: ``[N, H, W]`` anomaly maps.
        defects: per image, ``(mask [H, W] bool, saturation_area)`` per defect (see
            ``defects_from_masks``); empty for good images.
        fpr_limit: integration limit in (0, 1]; LOCO reports 0.05.

    Returns:
        AUC-sPRO in [0, 1].
    """
    fprs, spros = spro_curve(maps, defects, fpr_limit)
    return area_up_to(fprs, spros, fpr_limit)
