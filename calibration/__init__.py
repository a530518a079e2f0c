"""Calibration: fusion statistics, thresholds and metrics. Pure numpy/scipy; never imports torch.

The names below load their submodule on first use, so that ``calibration.threshold`` (numpy only,
used by the deployment runtime's ``glcf threshold``) does not pull in scipy through the metrics.
"""

from __future__ import annotations

import importlib
from typing import Any

_SOURCES = {
    "defects_from_masks": "loco_defects",
    "parse_defects_config": "loco_defects",
    "saturation_area": "loco_defects",
    "image_auroc": "metrics",
    "pixel_auroc": "metrics",
    "pro_auc": "metrics",
    "spro_auc": "metrics",
    "MapStatistics": "stats",
    "PositionStatistics": "stats",
    "fusion_statistics": "stats",
    "ThresholdResult": "threshold",
    "ThresholdRule": "threshold",
    "f1_optimal_threshold": "threshold",
    "select_threshold": "threshold",
    "threshold_from_normal": "threshold",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module 'calibration' has no attribute {name!r}")
    return getattr(importlib.import_module(f"calibration.{_SOURCES[name]}"), name)
