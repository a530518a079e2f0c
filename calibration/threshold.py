"""Decision thresholds on image scores: a frame is anomalous if ``score >= threshold``.

Rules (DESIGN §5): from normal validation images alone (a high quantile plus a margin, or the
lowest cut that keeps their false-alarm rate at or under a target), or the F1-optimal cut when
labelled anomalies exist.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np

MAX_MARGIN = 10.0  # the quantile rule's largest margin: a threshold from normal scores then lies in
#                    [lowest, highest + MAX_MARGIN × (highest − lowest)], the range an artifact's
#                    metadata threshold is checked against (glcf_runtime.metadata)
FLOAT32_MAX = float(np.finfo(np.float32).max)  # scores are float32: ±this is saturation
DEFAULT_QUANTILE = 0.99  # the normal-quantile rule's defaults, wherever a threshold is chosen
DEFAULT_MARGIN = 0.1  # (glcf calibrate, glcf threshold, glcf eval's comparisons and baseline)


class ThresholdRule(str, Enum):
    """How a threshold was chosen."""

    NORMAL_QUANTILE = "normal_quantile"
    F1_OPTIMAL = "f1_optimal"
    TARGET_FPR = "target_fpr"


@dataclass(frozen=True)
class ThresholdResult:
    """A chosen threshold and how it was chosen, for the artifact's metadata."""

    threshold: float
    rule: ThresholdRule
    quantile: float | None = None  # NORMAL_QUANTILE only
    margin: float | None = None  # NORMAL_QUANTILE only
    f1: float | None = None  # F1_OPTIMAL only: F1 on the calibration set
    n_normal: int = 0
    n_anomalous: int = 0
    target_fpr: float | None = None  # TARGET_FPR only: the false-alarm rate aimed at
    fpr: float | None = None  # TARGET_FPR only: false-alarm rate on the calibration images

    def to_dict(self) -> dict:
        """Plain JSON-ready dict; ``rule`` as its string value."""
        return {**asdict(self), "rule": ThresholdRule(self.rule).value}


def sample_size_note(result: ThresholdResult | dict) -> str | None:
    """What the number of good images cannot show about a threshold, with the fix; None when
    they suffice. The quantile rule needs at least 1 / (1 − quantile) of them (else the quantile
    is one of their highest scores); a target FPR needs at least 1 / target (else the cut lies
    above all of them). Either way, about 1 good part in n + 1 may still score above it."""
    r = result if isinstance(result, dict) else result.to_dict()
    n = int(r["n_normal"])
    rule = ThresholdRule(r["rule"])
    if rule is ThresholdRule.NORMAL_QUANTILE and r.get("quantile") is not None:
        need = int(np.ceil(1.0 / (1.0 - float(r["quantile"])) - 1e-9))
        if n < need:
            return (f"{n} good images are too few for the {r['quantile']} quantile (it needs {need} "
                    f"or more): the threshold rests on their highest scores, so up to about 1 good "
                    f"part in {n + 1} ({1 / (n + 1):.0%}) may be flagged; give {need} or more good "
                    "images, or set --target-fpr")
    if rule is ThresholdRule.TARGET_FPR and r.get("target_fpr") is not None:
        target = float(r["target_fpr"])
        if target <= 0.0:  # no false alarm at all: no number of images shows a rate of 0
            return (f"a false-alarm target of 0 puts the threshold above all {n} good images; up "
                    f"to about 1 good part in {n + 1} ({1 / (n + 1):.0%}) may still be flagged")
        need = int(np.ceil(1.0 / target - 1e-9))
        if n < need:
            return (f"{n} good images cannot show a false-alarm rate as low as {r['target_fpr']} "
                    f"(one false alarm among them is already {1 / n:.1%}): the threshold lies "
                    f"above all of them, and up to about 1 good part in {n + 1} "
                    f"({1 / (n + 1):.0%}) may be flagged; give {need} or more good images")
    return None


def _scores_1d(scores: np.ndarray, minimum: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D [N], got shape {scores.shape}")
    if scores.size < minimum:
        raise ValueError(f"need at least {minimum} scores, got {scores.size}")
    bad = np.flatnonzero(~(np.abs(scores) < FLOAT32_MAX))  # NaN, ±inf, or the float32 limit
    if bad.size:
        more = f" and {bad.size - 10} more" if bad.size > 10 else ""
        raise ValueError(f"scores contain NaN or infinite values, or values at the float32 limit "
                         f"(an overflow, or a NaN a backend clamped), at position"
                         f"{'s' * (bad.size > 1)} {', '.join(map(str, bad[:10]))}{more}")
    return scores


def check_normal_rule(quantile: float, margin: float) -> None:
    """ValueError unless ``quantile`` lies in [0.5, 1) and ``margin`` in [0, MAX_MARGIN] (NaN does
    not): check options with it before scoring anything. The messages start with the option's
    name and value (``quantile 2.0: …``), so a command prefixes its flag's dashes."""
    if not 0.5 <= quantile < 1.0:
        raise ValueError(f"quantile {quantile}: give a quantile in [0.5, 1), a high one "
                         f"(e.g. {DEFAULT_QUANTILE}); below the median most normal images "
                         "would be flagged")
    if not 0.0 <= margin <= MAX_MARGIN:
        raise ValueError(f"margin {margin}: give a margin >= 0 and <= {MAX_MARGIN:g}, in "
                         f"(quantile − median) spreads (e.g. {DEFAULT_MARGIN})")


def check_fpr_rule(target_fpr: float) -> None:
    """ValueError unless ``target_fpr`` lies in [0, 1) (NaN does not): check options with it
    before scoring anything."""
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target_fpr must lie in [0, 1), got {target_fpr}")


def threshold_from_normal(scores: np.ndarray, quantile: float = DEFAULT_QUANTILE,
                          margin: float = DEFAULT_MARGIN) -> float:
    """Threshold from the scores of normal images alone.

    Rule: ``t = q + margin × (q − median)`` with ``q`` the ``quantile`` of the scores
    (linear interpolation), i.e. the quantile pushed out by a fraction of its spread.

    Args:
        scores: ``[N]`` image scores of normal (defect-free) validation images, N >= 2.
        quantile: in [0.5, 1): a quantile under the median would flag most normal images.
        margin: in [0, MAX_MARGIN], in units of ``q − median``.

    Returns:
        The threshold.
    """
    check_normal_rule(quantile, margin)
    scores = _scores_1d(scores, minimum=2)
    q = float(np.quantile(scores, quantile))
    return q + margin * (q - float(np.median(scores)))


def threshold_for_fpr(scores: np.ndarray, target_fpr: float) -> tuple[float, float]:
    """The lowest cut whose false-alarm rate on normal scores is at most ``target_fpr``.

    With "anomalous if score >= threshold", at most ``floor(target_fpr × N)`` of the ``N``
    normal scores may reach the cut; the cut sits just above the highest score that must pass
    (the next float up), so it alarms on exactly the scores above it. Empirical, no margin:
    with N validation images a target under 1/N means "no false alarm on any of them".

    Args:
        scores: ``[N]`` image scores of normal validation images, N >= 1.
        target_fpr: in [0, 1).

    Returns:
        ``(threshold, achieved false-alarm rate on scores)``.
    """
    check_fpr_rule(target_fpr)
    ordered = np.sort(_scores_1d(scores, minimum=1))[::-1]
    allowed = int(np.floor(target_fpr * ordered.size + 1e-9))
    threshold = float(np.nextafter(ordered[allowed], np.inf))  # allowed < N as target_fpr < 1
    return threshold, float(np.mean(ordered >= threshold))


def f1_optimal_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The score cut that maximises F1 with "anomalous if score >= threshold".

    Every distinct score is a candidate. Among cuts with the same F1 the highest threshold
    wins (fewest alarms). F1 = 2·TP / (TP + FP + P) is compared exactly (correctly rounded
    divisions of integers).

    Args:
        scores: ``[N]`` image scores.
        labels: ``[N]`` 0 for normal, 1 for anomalous; both classes needed.

    Returns:
        ``(threshold, f1)``.
    """
    scores = _scores_1d(scores, minimum=2)
    labels = np.asarray(labels)
    if labels.shape != scores.shape or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0/1 with shape {scores.shape}, got {labels.shape}")
    n_pos = int(labels.sum())
    if n_pos in (0, scores.size):
        raise ValueError("F1-optimal threshold needs both normal and anomalous scores")
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_pos = scores[order], labels[order].astype(np.int64)
    # Last index of each run of equal scores: the cut "score >= that value" flags 0..index.
    ends = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True))
    tp = np.cumsum(sorted_pos)[ends]
    flagged = ends + 1
    f1 = 2.0 * tp / (flagged + n_pos)  # TP + FP = flagged
    best = int(np.argmax(f1))  # first maximum = highest threshold
    return float(sorted_scores[ends[best]]), float(f1[best])


def select_threshold(
    scores: np.ndarray,
    labels: np.ndarray | None = None,
    quantile: float = DEFAULT_QUANTILE,
    margin: float = DEFAULT_MARGIN,
    target_fpr: float | None = None,
) -> ThresholdResult:
    """F1-optimal threshold where labelled anomalies exist, else a rule on the normal scores:
    the false-alarm target when ``target_fpr`` is given, the normal quantile otherwise.

    Args:
        scores: ``[N]`` image scores.
        labels: ``[N]`` 0/1, or None when every image is normal.
        quantile: for the normal-quantile rule.
        margin: for the normal-quantile rule.
        target_fpr: for the false-alarm rule (normal scores only).

    Returns:
        The threshold and how it was chosen.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != scores.shape or not np.isin(labels, (0, 1)).all():
            raise ValueError(f"labels must be 0/1 with shape {scores.shape}, got {labels.shape}")
    n_anomalous = 0 if labels is None else int(labels.sum())
    n_normal = scores.size - n_anomalous
    if n_anomalous == 0 and target_fpr is not None:
        t, fpr = threshold_for_fpr(scores, target_fpr)
        return ThresholdResult(t, ThresholdRule.TARGET_FPR, n_normal=n_normal,
                               target_fpr=target_fpr, fpr=fpr)
    if n_anomalous == 0:
        t = threshold_from_normal(scores, quantile, margin)
        return ThresholdResult(t, ThresholdRule.NORMAL_QUANTILE, quantile, margin, None, n_normal)
    t, f1 = f1_optimal_threshold(scores, labels)
    return ThresholdResult(t, ThresholdRule.F1_OPTIMAL, None, None, f1, n_normal, n_anomalous)
