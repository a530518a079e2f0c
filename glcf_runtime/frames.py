"""What every frame source yields: ``Frame`` (a frame, or the record of one that could not be
used), and the ``FrameSource`` interface (``glcf_runtime.sources`` and ``glcf_runtime.live``)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One frame, or the record of one that could not be read.

    Attributes:
        index: position in the file / folder; capture sequence number for live sources (gaps
            are frames dropped because the loop was busy).
        timestamp: Unix time in seconds when the frame was available (decoded).
        image: uint8 BGR ``[H, W, 3]``; None when ``error`` is set.
        path: the image file, for folder sources.
        error: why the frame could not be read (names the file).
        health: why a decoded frame is unusable (``glcf_runtime.health.Health`` value).
        lost: frames this record stands for that were never decoded (a damaged video's gap).
        outage_s: how long a live stream was lost, for a reconnection record.
    """

    index: int
    timestamp: float
    image: np.ndarray | None
    path: Path | None = None
    error: str | None = None
    health: str | None = None
    lost: int = 0
    outage_s: float | None = None


class FrameSource(ABC):
    """Iterable of frames and a context manager; ``iterate(stop)`` ends soon after ``stop`` is set.

    Attributes:
        name: the source as shown in records (URL credentials removed).
        live: True for camera, URL and pipeline sources (frames may be dropped).
        fps: nominal frame rate, when the source knows it.
        failed: why a live source gave up; None while it is fine.
        lost: frames a file source knows it could not deliver (a damaged video).
    """

    live = False

    def __init__(self, name: str, fps: float | None = None) -> None:
        self.name = name
        self.fps = fps
        self.failed: str | None = None
        self.lost = 0  # frames the source knows it could not deliver (a damaged file)

    @abstractmethod
    def iterate(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        """Frames in order until the source ends, fails or ``stop`` is set."""

    def __iter__(self) -> Iterator[Frame]:
        return self.iterate()

    def close(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Release the device or file (idempotent)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
