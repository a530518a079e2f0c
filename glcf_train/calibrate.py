"""`glcf calibrate`: fusion statistics on the normal training images, then a default threshold
from the normal validation images, written into the run folder (atomically)."""

from __future__ import annotations

import json
import math
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from calibration.settings import CalibrationSettings
from calibration.stats import MapStatistics, PositionStatistics
from calibration.threshold import ThresholdResult, select_threshold
from glcf_runtime.errors import DataError, GlcfError
from glcf_runtime.files import atomic_write_text
from glcf_runtime.preprocess import PreprocessSpec
from glcf_runtime.sinks import check_writable
from glcf_runtime.threshold import checked_target_fpr
from glcf_train.builder import load_run, resolve_device
from glcf_train.config import (
    BranchMode,
    GlcfConfig,
    Normalisation,
    ScoringConfig,
    from_dict,
    to_dict,
)
from glcf_train.data.datasets import load_images, read_split
from glcf_train.model import GLCF
from glcf_train.progress import counting_progress
from glcf_train.scoring import (
    BRANCHES,
    SCALES,
    FusionStats,
    GaussianBlur,
    PositionMaps,
    TorchScorer,
    calibration_maps,
    error_maps,
)

CALIBRATION_NAME = "calibration.json"
CALIBRATION_FORMAT = "glcf-calibration/1"


class NotCalibrated(GlcfError):
    """A run without fusion statistics."""


@dataclass(frozen=True)
class Calibration:
    stats: FusionStats
    threshold: ThresholdResult
    map_range: tuple[float, float]  # colour scale for heat maps: (normal level, clearly anomalous)
    validation_scores: list[float]
    scoring: ScoringConfig  # what the threshold was set for (the run's, or calibrate's choice)

    def to_dict(self, cfg: GlcfConfig) -> dict:
        return {"format": CALIBRATION_FORMAT, "config_hash": cfg.hash(),
                "scoring": to_dict(self.scoring), "stats": self.stats.to_dict(),
                "threshold": self.threshold.to_dict(), "map_range": list(self.map_range),
                "validation_scores": self.validation_scores}


def _batches(images: np.ndarray, batch_size: int, device: torch.device):
    for i in range(0, len(images), batch_size):
        yield i, torch.from_numpy(images[i : i + batch_size]).to(device)


class StatsAccumulator:
    """Fusion statistics of normal images' error maps, batch by batch (:func:`error_maps`)."""

    def __init__(self, scoring: ScoringConfig, image_size: int, device: torch.device | str = "cpu") -> None:
        self.image_size = image_size
        self.blur = GaussianBlur(scoring.smoothing_sigma).to(device)
        self.scalar = {(b, s): MapStatistics(f"{b}/{s}") for b in BRANCHES for s in SCALES}
        self.position = ({(b, s): PositionStatistics(f"{b}/{s}") for b in BRANCHES for s in SCALES}
                         if scoring.normalisation is Normalisation.POSITION else None)

    def add(self, errors: dict) -> None:
        for key, m in calibration_maps(errors, self.image_size, self.blur).items():
            self.scalar[key].update(m.cpu().numpy())
        if self.position is not None:
            for branch, native in errors.items():
                for scale, m in zip(SCALES, native, strict=True):
                    self.position[(branch, scale)].update(m.cpu().numpy())

    def result(self) -> FusionStats:
        res = {k: a.result() for k, a in self.scalar.items()}
        mu = tuple(tuple(res[(b, s)][0] for s in SCALES) for b in BRANCHES)
        sigma = tuple(tuple(res[(b, s)][1] for s in SCALES) for b in BRANCHES)
        position = None
        if self.position is not None:
            maps = {k: p.result() for k, p in self.position.items()}
            position = PositionMaps(tuple(tuple(maps[(b, s)][0] for s in SCALES) for b in BRANCHES),
                                    tuple(tuple(maps[(b, s)][1] for s in SCALES) for b in BRANCHES))
        return FusionStats(mu, sigma, position)  # type: ignore[arg-type]


@torch.no_grad()
def fusion_stats(model: GLCF, images: np.ndarray, cfg: GlcfConfig, batch_size: int,
                 device: torch.device, progress: bool = True,
                 scoring: ScoringConfig | None = None) -> FusionStats:
    """μ, σ per (branch, scale) of the resized, smoothed error maps of normal images; with
    position normalisation also their maps per position of each native grid."""
    acc = StatsAccumulator(scoring or cfg.scoring, cfg.model.image_size, device)
    with counting_progress("fusion statistics", len(images), enabled=progress) as advance:
        for i, batch in _batches(images, batch_size, device):
            acc.add(error_maps(model(batch, BranchMode.BOTH)))
            advance(i + len(batch), len(images))
    return acc.result()


@torch.no_grad()
def score_images(model: GLCF, scorer: TorchScorer, images: np.ndarray, batch_size: int,
                 device: torch.device, progress: bool = True,
                 label: str = "scoring") -> tuple[np.ndarray, np.ndarray]:
    """Anomaly maps ``[N, S, S]`` float32 and scores ``[N]`` of uint8 BGR images ``[N, S, S, 3]``."""
    maps, scores = [], []
    mode = scorer.cfg.branch_mode
    with counting_progress(label, len(images), enabled=progress) as advance:
        for i, batch in _batches(images, batch_size, device):
            m, s = scorer(model(batch, mode))
            maps.append(m.float().cpu().numpy())
            scores.append(s.float().cpu().numpy())
            advance(i + len(batch), len(images))
    return np.concatenate(maps), np.concatenate(scores)


def calibrate_run(run: Path, settings: CalibrationSettings = CalibrationSettings(),
                  progress: bool = True) -> Calibration:
    """Compute and store a run's fusion statistics and default threshold (the normal-quantile
    rule, or the lowest cut with at most ``settings.target_fpr`` false alarms on the validation
    images), scoring as the run's config with ``settings.scoring``'s changes.
    """
    checked_target_fpr(settings.target_fpr)
    dev = resolve_device(settings.device)
    batch_size = settings.batch_size
    model, cfg, ckpt = load_run(run, dev)
    check_writable(Path(run) / CALIBRATION_NAME, "the calibration file")  # before the statistics
    root = Path(settings.data) if settings.data is not None else Path(ckpt["data"]["root"])
    category = settings.category if settings.category is not None else ckpt["data"]["category"]
    spec = PreprocessSpec(cfg.model.image_size, cfg.model.image_size)
    chosen = _scoring_with(cfg.scoring, settings.scoring or {})
    train_images = load_images(read_split(root, category, "train"), spec)
    stats = fusion_stats(model, train_images, cfg, batch_size, dev, progress, chosen)
    scorer = TorchScorer(chosen, cfg.model.image_size, stats).to(dev)
    val = read_split(root, category, "validation")
    if len(val) < 2:
        raise DataError(f"{root}: need at least 2 validation images to set a threshold, found {len(val)}")
    maps, scores = score_images(model, scorer, load_images(val, spec), batch_size, dev, progress,
                                label="validation scores")
    threshold = select_threshold(scores, None, settings.quantile, settings.margin,
                                 settings.target_fpr)
    result = Calibration(stats, threshold, _map_range(maps), [float(s) for s in scores], chosen)
    atomic_write_text(Path(run) / CALIBRATION_NAME, json.dumps(result.to_dict(cfg), indent=2))
    return result


def _scoring_with(base: ScoringConfig, changes: dict) -> ScoringConfig:
    """``base`` with ``changes`` (values as on the command line or in YAML), checked."""
    return from_dict(ScoringConfig, {**to_dict(base), **changes}, where="scoring")


def _map_range(maps: np.ndarray) -> tuple[float, float]:
    """Heat-map colour range: the normal images' median level to well above their peaks."""
    low, high = np.percentile(maps, [50.0, 99.9])
    return float(low), float(high + 2.0 * (high - low))


def load_calibration(run: Path, cfg: GlcfConfig) -> dict:
    """The run's calibration, checked (:func:`read_calibration`) and matched to ``cfg``.

    Raises:
        NotCalibrated: no calibration, or one of another training config.
        DataError: a calibration file that cannot be used.
    """
    path = Path(run) / CALIBRATION_NAME
    again = shlex.join(["glcf", "calibrate", str(run)])
    if not path.is_file():
        raise NotCalibrated(f"{run} has no {CALIBRATION_NAME}; run {again} first")
    data = read_calibration(path)
    if data.get("format") != CALIBRATION_FORMAT or data.get("config_hash") != cfg.hash():
        raise NotCalibrated(f"{path} does not belong to this checkpoint (retrained since?); "
                            f"run {again} again")
    return data


def read_calibration(path: Path) -> dict:
    """``calibration.json`` as written by ``glcf calibrate``: JSON, every number finite, and a
    threshold and a heat-map range that are numbers. Every reader of the file goes through here.

    Raises:
        DataError: naming the file, the key and the fix (run ``glcf calibrate`` again).
    """
    path = Path(path)
    again = f"run {shlex.join(['glcf', 'calibrate', str(path.parent)])} again"
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:  # not UTF-8, not JSON, an integer of thousands of digits
        raise DataError(f"{path} is not valid JSON ({exc}); {again}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} holds {type(data).__name__}, not a calibration; {again}")
    bad = _non_finite(data)
    if bad is not None:
        key, value = bad
        raise DataError(f"{path}: {key} is {value}, not a finite number (a threshold, statistic "
                        f"or score must be finite, or detection is silently off); {again}")
    threshold = data.get("threshold")
    if not isinstance(threshold, dict) or "threshold" not in threshold:
        raise DataError(f"{path}: threshold.threshold is missing; {again}")
    if not _is_number(threshold["threshold"]):
        raise DataError(f"{path}: threshold.threshold is {threshold['threshold']!r}, not a number; "
                        f"{again}")
    pair = data.get("map_range")
    if not (isinstance(pair, list) and len(pair) == 2 and all(map(_is_number, pair))):
        raise DataError(f"{path}: map_range is {pair!r}, not two numbers; {again}")
    if not isinstance(data.get("scoring", {}), dict):
        raise DataError(f"{path}: scoring is {data['scoring']!r}, not a mapping; {again}")
    scores = data.get("validation_scores", [])
    if not (isinstance(scores, list) and all(map(_is_number, scores))):
        raise DataError(f"{path}: validation_scores is not a list of numbers; {again}")
    return data


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _non_finite(value: object, key: str = "") -> tuple[str, str] | None:
    """The first key (``stats.local.28.sigma``, ``map_range[1]``) holding NaN, ±inf or an integer
    too large for a float, and that value in words; None when every number is finite."""
    if isinstance(value, dict):
        items = ((f"{key}.{k}" if key else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{key}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, float) and not math.isfinite(value):
        return key, "NaN" if math.isnan(value) else ("+" if value > 0 else "-") + "infinity"
    elif _is_number(value) and abs(value) > sys.float_info.max:
        return key, f"an integer of {len(str(abs(value)))} digits"
    else:
        return None
    return next((bad for k, v in items if (bad := _non_finite(v, k)) is not None), None)


def scorer_for(run: Path, cfg: GlcfConfig, branch_mode: BranchMode | None = None,
               scoring: ScoringConfig | None = None) -> tuple[TorchScorer, dict]:
    """The run's calibrated scorer (optionally with another branch mode) and its calibration.

    It scores as calibrated: the scoring stored in the calibration, which ``glcf calibrate`` may
    have changed from the run's config.
    """
    calib = load_calibration(run, cfg)
    if scoring is None:
        scoring = _scoring_with(cfg.scoring, calib["scoring"]) if "scoring" in calib else cfg.scoring
    if branch_mode is not None:
        scoring = replace(scoring, branch_mode=branch_mode)
    try:
        stats = FusionStats.from_dict(calib["stats"])
    except (KeyError, TypeError, ValueError) as exc:
        path = Path(run) / CALIBRATION_NAME
        raise DataError(f"{path}: its fusion statistics are incomplete or malformed ({exc!r}); "
                        f"run {shlex.join(['glcf', 'calibrate', str(run)])} again") from None
    return TorchScorer(scoring, cfg.model.image_size, stats), calib
