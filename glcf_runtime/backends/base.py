"""The one ``Runner`` interface over the backends.

A runner is a context manager with ``infer(batch) -> (maps, scores)``. Each backend reports its
graph's inputs and outputs as ``TensorInfo`` and ``check_io`` holds them against the artifact's
contract (DESIGN §4) once, here; the base class checks every batch the same way before any backend
runs, so every backend fails the same way on the same mistake. A runner only runs the graph: the threshold its scores are
judged by, and ``threshold.json``, are ``glcf_runtime.threshold``'s.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from glcf_runtime.errors import ConfigError
from glcf_runtime.metadata import INPUT_NAME, MAP_NAME, SCORE_NAME, ArtifactMetadata, MetadataError

if TYPE_CHECKING:
    from glcf_runtime.threshold import ThresholdChoice


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a loaded graph, as its backend reports it.

    Attributes:
        name: the tensor's name.
        dtype: numpy's name for its element type (``uint8``, ``float32``), else the backend's.
        shape: its dimensions, None for a dynamic one; None where the backend does not say.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None

    def __str__(self) -> str:
        if self.shape is None:
            return f"{self.dtype} [?]"
        dims = [("B" if i == 0 else "?") if d is None else str(d) for i, d in enumerate(self.shape)]
        return f"{self.dtype} [{', '.join(dims)}]"


def check_io(inputs: list[TensorInfo], outputs: list[TensorInfo], metadata: ArtifactMetadata,
             source: Path | str, rebuild: str | None = None) -> int | None:
    """Hold a graph's inputs and outputs against the contract (DESIGN §4).

    Args:
        inputs, outputs: what the backend reports.
        metadata: the artifact's contract (H, W).
        source: the file, for the message.
        rebuild: how to make a file that keeps the contract; None: re-export it.

    Returns:
        The graph's fixed batch size, None where the batch is dynamic.

    Raises:
        MetadataError: other names, or an element type or shape the contract does not allow.
    """
    rebuild = rebuild or f"re-export it: glcf export RUN --out DIR (source: {source})"
    h, w = metadata.height, metadata.width
    ins = {t.name: t for t in inputs}
    outs = {t.name: t for t in outputs}
    if set(ins) != {INPUT_NAME} or set(outs) != {MAP_NAME, SCORE_NAME}:
        raise MetadataError(
            f"{source} has inputs {sorted(ins)} and outputs {sorted(outs)}; a GLCF artifact has "
            f"input {INPUT_NAME!r} and outputs {MAP_NAME!r}, {SCORE_NAME!r}; {rebuild}")
    expected = {INPUT_NAME: ("uint8", (h, w, 3), f"[B, {h}, {w}, 3]"),
                MAP_NAME: ("float32", (h, w), f"[B, {h}, {w}]"),
                SCORE_NAME: ("float32", (), "[B]")}
    for role, tensors in (("input", ins), ("output", outs)):
        for name, tensor in tensors.items():
            dtype, rest, text = expected[name]
            shape = tensor.shape
            if tensor.dtype != dtype or (shape is not None and (
                    len(shape) != len(rest) + 1
                    or any(d is not None and d != e for d, e in zip(shape[1:], rest, strict=True))
                    or (role == "input" and None in shape[1:]))):
                raise MetadataError(
                    f"{source}: {role} {name!r} is {tensor}, expected {dtype} {text}; {rebuild}")
    shape = ins[INPUT_NAME].shape
    return shape[0] if shape is not None else None


def cpu_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_streams(streams: int, threads: int | None) -> None:
    """ConfigError unless ``streams`` is a whole number >= 1 with a thread for each stream."""
    if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
        raise ConfigError(f"streams must be a whole number >= 1, got {streams!r}")
    if threads is not None and threads < streams:
        raise ConfigError(f"{threads} threads cannot run {streams} streams: each stream needs a "
                          "thread of its own; give --threads >= --streams, or leave --threads out")


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

    @property
    def streams(self) -> int:
        """How many batches the runner can score at the same time (``lanes``); 1 unless it was
        opened with ``streams=N`` (OpenVINO, ONNX Runtime)."""
        return len(self._stream_runs())

    def lanes(self) -> list[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]:
        """One ``infer`` per stream: each may run on its own thread at the same time as the
        others, each with its own output buffers (overwritten by its own next call)."""
        runs = self._stream_runs()
        if len(runs) == 1:
            return [self.infer]
        return [partial(self._checked, run) for run in runs]

    def _stream_runs(self) -> list[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]:
        """The backend's inference per stream, on checked batches (one stream: ``_infer``)."""
        return [self._infer]

    def _checked(self, run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                 batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.check_batch(batch)
        return run(batch)

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
