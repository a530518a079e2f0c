"""Calibration: fusion statistics, thresholds, metrics and the settings a run is calibrated
with. Pure numpy/scipy; never imports torch.

``stats``, ``threshold`` and ``settings`` need numpy at most and are imported here. The metrics
(and the MVTec LOCO defects, which use them) need scipy: their names load on first use, so that
``calibration.threshold`` (used by the deployment runtime's ``glcf threshold``) does not pull in
scipy.
"""

from __future__ import annotations

from typing import Any

from calibration.settings import CalibrationSettings
from calibration.stats import MapStatistics, PositionStatistics, fusion_statistics
from calibration.threshold import (
    ThresholdResult,
    ThresholdRule,
    f1_optimal_threshold,
    select_threshold,
    threshold_from_normal,
)

_METRICS = ("image_auroc", "pixel_auroc", "pro_auc", "spro_auc")
_LOCO_DEFECTS = ("defects_from_masks", "parse_defects_config", "saturation_area")

__all__ = [
    "CalibrationSettings",
    "MapStatistics",
    "PositionStatistics",
    "ThresholdResult",
    "ThresholdRule",
    "defects_from_masks",
    "f1_optimal_threshold",
    "fusion_statistics",
    "image_auroc",
    "parse_defects_config",
    "pixel_auroc",
    "pro_auc",
    "saturation_area",
    "select_threshold",
    "spro_auc",
    "threshold_from_normal",
]


def __getattr__(name: str) -> Any:
    """The scipy-backed names, imported on first use."""
    if name in _METRICS:
        from calibration import metrics

        return getattr(metrics, name)
    if name in _LOCO_DEFECTS:
        from calibration import loco_defects

        return getattr(loco_defects, name)
    raise AttributeError(f"module 'calibration' has no attribute {name!r}")
