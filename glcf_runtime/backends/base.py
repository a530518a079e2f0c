"""The one ``Runner`` interface over the backends.

A runner is a context manager with ``infer(batch) -> (maps, scores)``. The base class checks the
batch against the artifact's contract (DESIGN §4) before any backend runs, so every backend fails
the same way on the same mistake. A runner only runs the graph: the threshold its scores are
judged by, and ``threshold.json``, are ``glcf_runtime.threshold``'s.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from glcf_runtime.errors import ConfigError
from glcf_runtime.metadata import ArtifactMetadata

if TYPE_CHECKING:
    from glcf_runtime.threshold import ThresholdChoice


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

        A ``threshold.json`` measured with another crop no longer applies
        (``glcf_runtime.threshold.load_threshold``).
        """
        self.metadata = replace(self.metadata, roi=roi)

    @property
    def threshold(self) -> ThresholdChoice:
        """``glcf_runtime.threshold.resolve_threshold(self)``: ``threshold.json`` next to the
        artifact if it is current, else the metadata's."""
        from glcf_runtime.threshold import resolve_threshold

        return resolve_threshold(self)

    def close(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Release the backend's resources (idempotent)."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
