"""Frames for `glcf bench`: synthetic 1280×720 camera frames, an endless in-memory source of them,
and an MJPG video of them for the camera-loop benchmark."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from glcf_runtime.errors import ConfigError
from glcf_runtime.sources import Frame, FrameSource

FRAME_SIZE = (1280, 720)  # (width, height) of the synthetic camera frames
SOURCE_NAME = "bench"


class MemorySource(FrameSource):
    """Frames held in memory, cycled without end; each read is a fresh copy, as a capture is."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        super().__init__(SOURCE_NAME)
        self.frames = frames

    def iterate(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        index = 0
        while stop is None or not stop.is_set():
            yield Frame(index, time.time(), self.frames[index % len(self.frames)].copy())
            index += 1


def synthetic_frame(i: int, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A 1280×720 BGR test frame: gradient background, a moving tray, texture noise."""
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    frame = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8)
    left = 100 + (i * 7) % (w - 500)
    cv2.rectangle(frame, (left, 200), (left + 300, 500), (40, 120, 200), -1)
    noise = np.random.default_rng(i).integers(0, 16, frame.shape, dtype=np.uint8)
    return cv2.add(frame, noise)


def write_video(path: Path, frames: int, fps: float = 30.0) -> Path:
    """An MJPG video of ``frames`` synthetic 1280×720 frames (for the camera-loop benchmark)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, FRAME_SIZE)
    if not writer.isOpened():
        raise ConfigError(f"OpenCV cannot write the test video {path} (no MJPG encoder?)")
    try:
        for i in range(frames):
            writer.write(synthetic_frame(i))
    finally:
        writer.release()
    return path
