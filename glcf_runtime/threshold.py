"""The threshold a run uses, the verdict it gives, and ``threshold.json`` next to the artifact.

A frame is anomalous if ``score >= threshold``. Precedence (highest first): an explicit value
(``glcf inspect --threshold``), then ``threshold.json`` next to the artifact (written by
``glcf threshold``, measured on the deployed backend), then the threshold in the artifact's
metadata (from ``glcf calibrate`` on torch). ``resolve_threshold`` applies the rule; ``glcf
inspect``, the inspection loop and the live page all ask it, so all three check the value the same
way. ``calibrate_threshold`` scores folders on the deployed backend and writes ``threshold.json``
with the rules of ``calibration.threshold``.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import shlex
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from calibration.threshold import (
    DEFAULT_MARGIN,
    DEFAULT_QUANTILE,
    check_fpr_rule,
    check_normal_rule,
    select_threshold,
)
from glcf_runtime.artifacts import THRESHOLD_FILE
from glcf_runtime.errors import ConfigError, DataError
from glcf_runtime.files import atomic_write_json, file_sha256
from glcf_runtime.metadata import ArtifactMetadata, is_roi, score_problem, shown, threshold_problem
from glcf_runtime.preprocess import load_preprocessed
from glcf_runtime.sources import image_files

if TYPE_CHECKING:
    from glcf_runtime.backends.base import Runner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold a run uses and where it came from (printed with the summary)."""

    value: float | None  # None: not calibrated, every verdict is undecided
    origin: str


class Verdict(str, Enum):
    """A frame's verdict, as the loop records it and the overlay draws it."""

    GOOD = "GOOD"
    ANOMALOUS = "ANOMALOUS"


def verdict(score: float, threshold: float | None) -> Verdict | None:
    """ANOMALOUS if ``score >= threshold``, GOOD below, None without a threshold or a finite score.

    A non-finite score is never GOOD (nor ANOMALOUS): the loop makes its frame an error record
    (``glcf_runtime.metadata.score_problem``) before any verdict is drawn.
    """
    if threshold is None or not math.isfinite(score):
        return None
    return Verdict.ANOMALOUS if score >= threshold else Verdict.GOOD


def is_anomalous(score: float, threshold: float | None) -> bool | None:
    """The record's ``anomalous`` field: the verdict as a bool, None when there is none."""
    decided = verdict(score, threshold)
    return None if decided is None else decided is Verdict.ANOMALOUS


_LOADED: weakref.WeakKeyDictionary[Runner, tuple[ArtifactMetadata, ThresholdChoice]] = (
    weakref.WeakKeyDictionary()
)  # runner -> (the metadata it was read for, the choice): read once per runner and crop


def resolve_threshold(runner: Runner, override: float | None = None) -> ThresholdChoice:
    """The threshold ``runner``'s verdicts use: ``override`` (checked) if given, else
    ``threshold.json`` next to the artifact if it is current, else the metadata's.

    ``threshold.json`` is read once per runner (and again after ``Runner.set_roi``), so a stale
    file is reported once however many parts of a run ask.

    Raises:
        ConfigError: ``override`` cannot be a threshold for these scores, or ``threshold.json``
            cannot be read or holds an unusable value.
    """
    if override is not None:
        return ThresholdChoice(checked_threshold(override, runner.metadata), "--threshold")
    loaded = _LOADED.get(runner)
    if loaded is None or loaded[0] is not runner.metadata:
        loaded = runner.metadata, load_threshold(runner.path, runner.metadata)
        _LOADED[runner] = loaded
    return loaded[1]


def artifact_folder(path: Path) -> Path:
    """The export folder of an artifact file (or the folder itself)."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def threshold_file(artifact: Path) -> Path:
    """Where the threshold of ``artifact`` (a file or its export folder) is stored."""
    return artifact_folder(artifact) / THRESHOLD_FILE


def _metadata_choice(metadata: ArtifactMetadata, note: str = "") -> ThresholdChoice:
    value = metadata.threshold if math.isfinite(metadata.threshold) else None
    return ThresholdChoice(value, "the model's metadata" + note)


def load_threshold(artifact: Path, metadata: ArtifactMetadata) -> ThresholdChoice:
    """The threshold stored next to ``artifact``, unless it belongs to another export.

    A ``threshold.json`` is stale (and ignored, with a warning) when its config hash differs
    from the metadata's, when the artifact it was measured on is still there with other bytes,
    or when it was measured on frames cropped to another region of interest.

    Raises:
        ConfigError: the file exists but cannot be parsed.
    """
    file = threshold_file(artifact)
    if not file.is_file():
        return _metadata_choice(metadata)
    folder = shlex.quote(str(artifact_folder(artifact)))
    again = f"delete it or write it again with glcf threshold {folder} --good DIR"
    try:
        data = json.loads(file.read_text())
        value = data["threshold"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ConfigError(f"{file} cannot be read ({exc}); {again}") from None
    problem = threshold_problem(value, metadata.score_rule)
    if problem is not None:
        raise ConfigError(f"{file}: threshold {shown(value)} cannot be used: {problem}; {again}")
    value = float(value)
    raw_roi = data.get("roi")
    roi = tuple(raw_roi) if isinstance(raw_roi, list) else raw_roi
    if not is_roi(roi):
        raise ConfigError(f"{file}: roi {shown(raw_roi)} is not null or [x, y, w, h] in whole "
                          f"pixels; {again}")
    measured_on = artifact_folder(artifact) / str(data.get("artifact", ""))
    stale = data.get("config_hash") != metadata.config_hash or (
        measured_on.is_file() and data.get("artifact_sha256") != file_sha256(measured_on)
    )
    if stale or roi != metadata.roi:
        why = ("another export of this model" if stale else
               f"frames cropped to {_roi_text(roi)}, not {_roi_text(metadata.roi)}")
        log.warning("%s was measured on %s and is ignored; run glcf threshold again%s to "
                    "re-calibrate", file, why,
                    f" with --roi {_roi_text(metadata.roi)}" if metadata.roi and not stale else "")
        return _metadata_choice(metadata, f" ({file} is stale and was ignored)")
    return ThresholdChoice(value, f"{file} ({data.get('rule', '?')} on {measured_on.name})")


def checked_threshold(value: float, metadata: ArtifactMetadata, option: str = "--threshold") -> float:
    """``value`` if it can be a threshold for this artifact's scores, else ConfigError."""
    problem = threshold_problem(value, metadata.score_rule)
    if problem is not None:
        raise ConfigError(f"{option} {value}: {problem}; give a finite number"
                          f"{' >= 0' if metadata.score_rule == 'std' else ''}, e.g. from glcf threshold")
    return float(value)


def checked_target_fpr(value: float | None) -> float | None:
    """``value`` (``--target-fpr`` of ``glcf calibrate`` and ``glcf threshold``) if it is None or a
    false-alarm rate the rule accepts (``calibration.threshold.check_fpr_rule``), else ConfigError."""
    if value is not None:
        try:
            check_fpr_rule(value)
        except ValueError:
            raise ConfigError(
                f"--target-fpr {value}: give a false-alarm rate in [0, 1), e.g. 0.01") from None
    return value


def _roi_text(roi: tuple[int, ...] | None) -> str:
    return ",".join(map(str, roi)) if roi else "the whole frame"


def save_threshold(runner: Runner, result: dict, scores: dict[str, dict]) -> Path:
    """Write ``threshold.json`` next to the runner's artifact atomically (temp file + rename).

    Args:
        runner: the runner that produced the scores (its artifact is hashed and recorded).
        result: ``calibration.ThresholdResult.to_dict()``.
        scores: summary statistics per folder, for the record.

    Returns:
        The written file.
    """
    record = {
        **result,
        "artifact": runner.path.name,
        "artifact_sha256": file_sha256(runner.path),
        "config_hash": runner.metadata.config_hash,
        "roi": list(runner.metadata.roi) if runner.metadata.roi else None,
        "backend": runner.describe(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "scores": scores,
    }
    return atomic_write_json(threshold_file(runner.path), record)


def is_count(value: object) -> bool:
    """An integer >= 1 (Python's or numpy's, not a bool): a usable batch size."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def score_images(runner: Runner, files: Sequence[Path], batch: int = 8) -> np.ndarray:
    """Image scores of files, in order: float64 ``[N]``.

    Args:
        batch: images per inference, >= 1; the runner's ``max_batch`` where that is lower.

    Raises:
        ConfigError: ``batch`` below 1.
        ImageReadError: a file that cannot be decoded (calibration data must be clean).
        DataError: images the model gave no usable score (``metadata.score_problem``), named.
    """
    if not is_count(batch):
        raise ConfigError(f"--batch {batch}: give 1 or more images per inference, e.g. 8")
    batch = min(batch, runner.max_batch or batch)
    meta = runner.metadata
    scores = np.zeros(len(files), np.float64)
    for start in range(0, len(files), batch):
        chunk = files[start : start + batch]
        frames = np.stack([load_preprocessed(f, meta.preprocess_spec) for f in chunk])
        scores[start : start + len(chunk)] = runner.infer(frames)[1]
    bad = [(f, p) for f, s in zip(files, scores, strict=True)
           if (p := score_problem(float(s), meta.score_rule, meta.score_range)) is not None]
    if bad:
        named = ", ".join(f"{f.name} ({p})" for f, p in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DataError(
            f"{files[0].parent}: {runner.path.name} gave no usable score for {len(bad)} of "
            f"{len(files)} images: {named}{more}; a threshold needs a usable score for every "
            "image: check the artifact and the backend (e.g. --backend onnxruntime)")
    return scores


def calibrate_threshold(
    runner: Runner,
    good: Path,
    anomalous: Path | None = None,
    quantile: float = DEFAULT_QUANTILE,
    margin: float = DEFAULT_MARGIN,
    batch: int = 8,
    target_fpr: float | None = None,
) -> tuple[dict, Path]:
    """Choose a threshold on the deployed backend and write ``threshold.json`` next to the model.

    Good images alone: ``q + margin·(q − median)`` of their scores, or with ``target_fpr`` the
    lowest cut with at most that false-alarm rate on them (as ``glcf calibrate --target-fpr``);
    with anomalous images too: the F1-optimal cut (``calibration.threshold.select_threshold``).

    Returns:
        ``(ThresholdResult.to_dict(), written file)``.

    Raises:
        ConfigError: a bad option (checked before any image is scored), or ``target_fpr`` with
            anomalous images.
    """
    if not is_count(batch):
        raise ConfigError(f"--batch {batch}: give 1 or more images per inference, e.g. 8")
    checked_target_fpr(target_fpr)
    if target_fpr is not None and anomalous is not None:
        raise ConfigError(f"--target-fpr {target_fpr} and --anomalous: the false-alarm rule sets "
                          "the threshold from good images alone, anomalous images make it "
                          "F1-optimal; give one of them")
    if anomalous is None and target_fpr is None:  # the rule's options, before any image is scored
        try:
            check_normal_rule(quantile, margin)
        except ValueError as exc:
            raise ConfigError(f"--{exc}") from None
    folders = {"good": good} if anomalous is None else {"good": good, "anomalous": anomalous}
    scores = {
        name: score_images(runner, image_files(folder), batch) for name, folder in folders.items()
    }
    labels = None
    if anomalous is not None:
        labels = np.r_[np.zeros(scores["good"].size), np.ones(scores["anomalous"].size)]
    try:
        result = select_threshold(np.concatenate(list(scores.values())), labels, quantile, margin,
                                  target_fpr)
    except ValueError as exc:
        raise ConfigError(f"cannot choose a threshold: {exc}") from None
    stats = {
        name: {
            "n": int(s.size),
            "min": float(s.min()),
            "median": float(np.median(s)),
            "max": float(s.max()),
            "folder": str(folders[name]),
        }
        for name, s in scores.items()
    }
    data = result.to_dict()
    return data, save_threshold(runner, data, stats)
