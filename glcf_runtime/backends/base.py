"""The one ``Runner`` interface over the backends, and the artifact's ``threshold.json``.

A runner is a context manager with ``infer(batch) -> (maps, scores)``. The base class checks the
batch against the artifact's contract (DESIGN §4) before any backend runs, so every backend fails
the same way on the same mistake.

Threshold precedence (highest first): an explicit value (``glcf inspect --threshold``), then
``threshold.json`` next to the artifact (written by ``glcf threshold``, measured on the deployed
backend), then the threshold in the artifact's metadata (from ``glcf calibrate`` on torch).
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from glcf_runtime.errors import ConfigError
from glcf_runtime.files import atomic_write_json, file_sha256
from glcf_runtime.metadata import ArtifactMetadata, is_roi, shown, threshold_problem

THRESHOLD_FILE = "threshold.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold a run uses and where it came from (printed with the summary)."""

    value: float | None  # None: not calibrated, every verdict is undecided
    origin: str


class Runner(ABC):
    """Runs a GLCF deploy artifact: uint8 BGR frames in, anomaly maps and scores out.

    Attributes:
        path: the artifact file.
        metadata: the contract read from the artifact.
    """

    backend: ClassVar[str] = "base"

    def __init__(self, path: Path, metadata: ArtifactMetadata) -> None:
        self.path = Path(path)
        self.metadata = metadata
        self._threshold: ThresholdChoice | None = None

    @property
    @abstractmethod
    def max_batch(self) -> int | None:
        """Largest batch the backend accepts; None when unlimited."""

    @abstractmethod
    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backend inference on a checked batch (see ``infer``)."""

    def describe(self) -> str:
        """One line for logs: backend, device / providers."""
        return f"{self.backend} {self.path.name}"

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score a batch of pre-processed frames.

        Args:
            batch: uint8 BGR ``[B, H, W, 3]``, H and W from the metadata, 1 <= B <= max_batch.

        Returns:
            ``(maps, scores)``: float32 ``[B, H, W]`` and float32 ``[B]``. The arrays may be the
            backend's own buffers, overwritten by the next call: copy what you keep.

        Raises:
            ConfigError: wrong dtype, rank, size or batch; nothing has run.
        """
        self.check_batch(batch)
        return self._infer(batch)

    def check_batch(self, batch: np.ndarray) -> None:
        """Raise ConfigError unless ``batch`` is uint8 ``[B, H, W, 3]`` within ``max_batch``."""
        h, w = self.metadata.height, self.metadata.width
        expected = f"uint8 BGR [B, {h}, {w}, 3] (frames resized by glcf_runtime.preprocess)"
        if not isinstance(batch, np.ndarray):
            raise ConfigError(
                f"{self.path.name} expects a numpy array {expected}, got {type(batch).__name__}"
            )
        if batch.dtype != np.uint8:
            raise ConfigError(
                f"{self.path.name} expects {expected}, got dtype {batch.dtype}; "
                "pass the uint8 pixels, the graph normalises them itself"
            )
        if batch.ndim != 4 or batch.shape[1:] != (h, w, 3):
            raise ConfigError(f"{self.path.name} expects {expected}, got shape {batch.shape}")
        limit = self.max_batch
        if batch.shape[0] < 1 or (limit is not None and batch.shape[0] > limit):
            raise ConfigError(
                f"{self.path.name} accepts batches of 1 to {limit or 'any'} frames, "
                f"got {batch.shape[0]}; lower --batch or rebuild the engine for a "
                "larger batch (glcf export RUN --out DIR --trt --batch N)"
            )

    def warmup(self, n: int = 2, batch_size: int = 1) -> None:
        """Run ``n`` batches of grey frames so the first real frame is not slow."""
        frames = np.full((batch_size, self.metadata.height, self.metadata.width, 3), 128, np.uint8)
        for _ in range(n):
            self.infer(frames)

    def set_roi(self, roi: tuple[int, int, int, int] | None) -> None:
        """Crop every frame to ``roi`` before resizing, instead of the metadata's crop.

        A ``threshold.json`` measured with another crop no longer applies (see ``load_threshold``).
        """
        self.metadata = replace(self.metadata, roi=roi)
        self._threshold = None

    @property
    def threshold(self) -> ThresholdChoice:
        """``threshold.json`` next to the artifact if it is current, else the metadata's."""
        if self._threshold is None:
            self._threshold = load_threshold(self.path, self.metadata)
        return self._threshold

    def close(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Release the backend's resources (idempotent)."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def artifact_folder(path: Path) -> Path:
    """The export folder of an artifact file (or the folder itself)."""
    path = Path(path)
    return path if path.is_dir() else path.parent


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
    file = artifact_folder(artifact) / THRESHOLD_FILE
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
    folder = artifact_folder(runner.path)
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
    return atomic_write_json(folder / THRESHOLD_FILE, record)
