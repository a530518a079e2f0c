"""The numbers of the report: metrics per defect kind and type with bootstrap intervals, and the
operating point at the calibrated threshold. numpy and ``calibration`` only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from calibration import metrics as M

Interval = tuple[float, float]
KINDS = ("logical", "structural")


@dataclass(frozen=True)
class Group:
    """A group of test images: a kind ("good", "logical", "structural" or "all" anomalies), or one
    defect type within a kind. A defect type is keyed and labelled with its kind, so no defect
    name (defects_config.json may name one "logical") can shadow a kind or another kind's type."""

    kind: str
    defect: str | None = None  # None: the whole kind

    @property
    def label(self) -> str:
        """Unique among groups: a kind by its name, a defect type as "kind · defect"."""
        return self.kind if self.defect is None else f"{self.kind} · {self.defect}"

    @property
    def row_label(self) -> str:
        """The label of an operating-point row (the good images' row is the false-alarm rate)."""
        return "good (false alarms)" if self == GOOD else self.label

    def to_dict(self) -> dict[str, str | None]:
        return {"group": self.label, "kind": self.kind, "defect": self.defect}


GOOD, ALL = Group("good"), Group("all")


@dataclass(frozen=True)
class Row:
    """One line of a metrics table: a group of test images against the good ones."""

    group: Group
    n_good: int
    n_anomalous: int
    image_auroc: float
    image_auroc_ci: Interval
    localisation: float | None  # AUC-sPRO@0.05 (LOCO) or AU-PRO@0.3; None where not computed
    localisation_ci: Interval | None

    def to_dict(self) -> dict:
        return {**self.group.to_dict(), "n_good": self.n_good, "n_anomalous": self.n_anomalous,
                "image_auroc": self.image_auroc, "image_auroc_ci": self.image_auroc_ci,
                "localisation": self.localisation, "localisation_ci": self.localisation_ci}


@dataclass(frozen=True)
class Caught:
    """At a threshold: how many images of a group are flagged anomalous."""

    group: Group
    flagged: int
    total: int

    @property
    def rate(self) -> float:
        return self.flagged / self.total if self.total else float("nan")

    def to_dict(self) -> dict:
        return {**self.group.to_dict(), "flagged": self.flagged, "total": self.total,
                "rate": self.rate}


def bootstrap_interval(statistic: Callable[[np.ndarray, np.ndarray], float], good: np.ndarray,
                       anomalous: np.ndarray, n: int, seed: int = 0) -> Interval:
    """Percentile 95 % interval of ``statistic(good_idx, anomalous_idx)`` over ``n`` resamples
    that draw the good and the anomalous images with replacement, each group kept at its size."""
    rng = np.random.default_rng(seed)
    values = [statistic(rng.choice(good, good.size), rng.choice(anomalous, anomalous.size))
              for _ in range(n)]
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def auroc_interval(scores: np.ndarray, good: np.ndarray, anomalous: np.ndarray,
                   n: int = 1000, seed: int = 0) -> Interval:
    """Bootstrap 95 % interval of the image AUROC of ``scores[anomalous]`` against ``scores[good]``."""
    def statistic(g: np.ndarray, a: np.ndarray) -> float:
        labels = np.r_[np.zeros(g.size), np.ones(a.size)]
        return M.image_auroc(np.r_[scores[g], scores[a]], labels)

    return bootstrap_interval(statistic, good, anomalous, n, seed)


def groups(kinds: list[str], defect_types: list[str]) -> dict[Group, np.ndarray]:
    """Indices of each group: the good images, each kind ("logical", "structural") present, "all"
    anomalies when both kinds exist, then each defect type within its kind."""
    kinds_a, types_a = np.array(kinds), np.array(defect_types)
    out = {GOOD: np.flatnonzero(kinds_a == "good")}
    present = [k for k in KINDS if (kinds_a == k).any()]
    for kind in present:
        out[Group(kind)] = np.flatnonzero(kinds_a == kind)
    if len(present) == 2:
        out[ALL] = np.flatnonzero(kinds_a != "good")
    for kind in present:
        for name in sorted(set(types_a[kinds_a == kind])):
            out[Group(kind, str(name))] = np.flatnonzero((types_a == name) & (kinds_a == kind))
    return out


def operating_point(scores: np.ndarray, threshold: float,
                    index: dict[Group, np.ndarray]) -> list[Caught]:
    """Flagged images per group with "anomalous if score >= threshold"; the good images' row is
    the false-alarm rate, every other row the share of anomalies caught."""
    flagged = np.asarray(scores) >= threshold
    return [Caught(group, int(flagged[idx].sum()), int(idx.size)) for group, idx in index.items()]


def metric_rows(scores: np.ndarray, index: dict[Group, np.ndarray],
                localisation: Callable[[np.ndarray], float] | None = None,
                n_boot: int = 1000, n_boot_localisation: int = 0) -> list[Row]:
    """A row per anomalous group of ``index`` (all keys but ``GOOD``).

    Args:
        scores: ``[N]`` image scores of all test images.
        index: from :func:`groups`.
        localisation: AUC-sPRO / AU-PRO of a subset of image indices (good + anomalous), or None.
        n_boot: bootstrap resamples of the image AUROC.
        n_boot_localisation: resamples of ``localisation`` (costly; 0: no interval).
    """
    good, rows = index[GOOD], []
    for group, anomalous in index.items():
        if group == GOOD or not anomalous.size or not good.size:
            continue
        labels = np.r_[np.zeros(good.size), np.ones(anomalous.size)]
        auroc = M.image_auroc(np.r_[scores[good], scores[anomalous]], labels)
        loc = loc_ci = None
        if localisation is not None:
            loc = localisation(np.r_[good, anomalous])
            if n_boot_localisation:
                loc_ci = bootstrap_interval(lambda g, a: localisation(np.r_[g, a]), good,
                                            anomalous, n_boot_localisation)
        rows.append(Row(group, good.size, anomalous.size, auroc,
                        auroc_interval(scores, good, anomalous, n_boot), loc, loc_ci))
    return rows
