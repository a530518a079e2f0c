"""Calibration: fusion statistics, thresholds and metrics. Pure numpy/scipy; never imports torch."""

from calibration.loco_defects import defects_from_masks, parse_defects_config, saturation_area
from calibration.metrics import image_auroc, pixel_auroc, pro_auc, spro_auc
from calibration.stats import MapStatistics, fusion_statistics
from calibration.threshold import (
    ThresholdResult,
    ThresholdRule,
    f1_optimal_threshold,
    select_threshold,
    threshold_from_normal,
)

__all__ = [
    "MapStatistics",
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
