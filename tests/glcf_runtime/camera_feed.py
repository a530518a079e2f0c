"""Several cameras for the live page's tests: synthetic camera sources, each frame scored by a real
runner (the contract model on ONNX Runtime) and written to a ``LiveState`` as a ``Result`` named
by its camera, as the inspection loop names results by their source."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping

import numpy as np

from glcf_runtime.backends.base import Runner
from glcf_runtime.frames import Frame, FrameSource
from glcf_runtime.preprocess import preprocess
from glcf_runtime.sinks import Result, Sink

SIZE = (320, 240)


def camera_image(seed: int, index: int, anomalous: bool, size: tuple[int, int] = SIZE) -> np.ndarray:
    """uint8 BGR ``[H, W, 3]``: grey stripes moving with ``index`` (their amplitude, period and
    tint from ``seed`` and ``index``: scores 0.14-0.41 with the contract model), a white
    rectangle (score ≈ 1) when ``anomalous``."""
    width, height = size
    amplitude = 26 + 6 * (seed % 4) + 8 * np.sin(index / 4 + seed)
    period = 17.0 + 5 * seed
    x = np.arange(width) + (4 + seed) * index
    row = (128 + amplitude * np.sin(x / period)).astype(np.uint8)
    grey = np.repeat(row[None], height, axis=0)
    image = np.stack([grey, np.roll(grey, 3 * seed, axis=1), np.roll(grey, 7, axis=1)], axis=-1)
    if anomalous:
        image[height // 4 : height // 2, width // 4 : width // 2] = 255
    return np.ascontiguousarray(image)


class SyntheticCamera(FrameSource):
    """A camera: ``camera_image`` frames at ``fps`` (None: as fast as asked), anomalous every
    ``every``-th frame, an unreadable one every ``broken``-th; ``count`` frames, or endless."""

    live = True

    def __init__(self, name: str, seed: int, every: int, broken: int = 0,
                 count: int | None = None, fps: float | None = None) -> None:
        super().__init__(name, fps)
        self.seed, self.every, self.broken, self.count = seed, every, broken, count
        self.reconnects = 0

    def anomalous(self, index: int) -> bool:
        return index % self.every == self.every - 1

    def iterate(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        index = 0
        while (stop is None or not stop.is_set()) and (self.count is None or index < self.count):
            if self.broken and index % self.broken == self.broken - 1:
                yield Frame(index, time.time(), None, error="could not decode the image")
            else:
                image = camera_image(self.seed, index, self.anomalous(index))
                yield Frame(index, time.time(), image)
            index += 1
            if self.fps:
                time.sleep(1.0 / self.fps)


def score(runner: Runner, frame: Frame, camera: str) -> Result:
    """``frame`` scored by ``runner`` as the inspection loop scores it, named ``camera``."""
    if frame.error is not None:
        return Result(frame, camera)
    meta = runner.metadata
    maps, scores = runner.infer(preprocess(frame.image, meta.preprocess_spec)[None])
    threshold = runner.threshold.value
    value = float(scores[0])
    return Result(frame, camera, value, None if threshold is None else value >= threshold,
                  (time.time() - frame.timestamp) * 1000.0, maps[0], threshold, meta.map_range)


def feed(runner: Runner, sink: Sink, cameras: Mapping[str, FrameSource],
         stop: threading.Event | None = None) -> int:
    """One frame of each camera in turn until every camera ended or ``stop`` is set; the
    results written."""
    streams = {name: source.iterate(stop) for name, source in cameras.items()}
    written = 0
    while streams:
        for name, stream in list(streams.items()):
            frame = next(stream, None)
            if frame is None:
                del streams[name]
                continue
            sink.write(score(runner, frame, name))
            written += 1
    return written


class FeedThread:
    """``feed`` on a daemon thread while the ``with`` block runs."""

    def __init__(self, runner: Runner, sink: Sink, cameras: Mapping[str, FrameSource]) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=feed, args=(runner, sink, cameras, self.stop),
                                       daemon=True, name="camera-feed")

    def __enter__(self) -> FeedThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the camera feed did not stop"
