"""How a run is calibrated: ``glcf_train.calibrate.calibrate_run`` takes these settings and the
``glcf calibrate`` options default to their field defaults. Plain values, no torch: the command
line reads the defaults on a box that only has the runtime installed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from calibration.threshold import DEFAULT_MARGIN, DEFAULT_QUANTILE


@dataclass(frozen=True)
class CalibrationSettings:
    data: Path | None = None  # data root (None: the one the run trained on)
    category: str | None = None  # None: the run's
    device: str = "auto"  # cpu, cuda or auto
    batch_size: int = 8  # images per forward pass
    quantile: float = DEFAULT_QUANTILE  # normal-quantile rule: q + margin × (q − median)
    margin: float = DEFAULT_MARGIN
    # Instead of the quantile rule: the lowest threshold with at most this false-alarm rate on
    # the validation images, e.g. 0.01.
    target_fpr: float | None = None
    # Changes to the run's scoring, as on the command line (e.g. {"score_rule": "max",
    # "normalisation": "position"}); eval and export then score as calibrated, no retraining.
    scoring: dict[str, str] | None = None
