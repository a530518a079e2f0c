"""Random byte mutations of real image files, run through the inspection loop (folder source →
decode → pre-process → health → runner → JSON lines). Used by the seeded test and by
``benchmarks/fuzz_decode.py`` for longer runs. One mutation in seven makes the header declare
more pixels than ``MAX_PIXELS`` (with the pixel data unchanged): each of those must be refused
from its header, by name, before it is decoded."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from glcf_runtime.backends.base import Runner
from glcf_runtime.loop import inspect
from glcf_runtime.sinks import JsonlSink
from glcf_runtime.sources import open_source
from tests.glcf_runtime.contract_model import SIZE, frame
from tests.glcf_runtime.crafted_images import with_declared_size

FORMATS = (".png", ".jpg", ".bmp", ".tiff", ".webp")
# declared sizes past the default limit of 50 megapixels: just past it, far past it, and the
# largest each header can hold (WebP: 16383 a side, JPEG: 65535)
OVERSIZED = ((7072, 7072), (16384, 3100), (16000, 16000), (65535, 65535), (200_000, 200_000))
LIMITS = {".webp": 16383, ".jpg": 65535}


def seeds(size: int = SIZE) -> dict[str, bytes]:
    """One real encoded image per format (a contract frame with an anomalous patch)."""
    image = frame(anomalous=True, size=size, seed=3)
    return {fmt: cv2.imencode(fmt, image)[1].tobytes() for fmt in FORMATS}


def oversize(data: bytes, fmt: str, rng: np.random.Generator) -> bytes:
    """The header now declares far more pixels than the limit; the pixel data is unchanged."""
    side = LIMITS.get(fmt, 1 << 31)
    width, height = (min(v, side) for v in OVERSIZED[rng.integers(len(OVERSIZED))])
    return with_declared_size(data, fmt, width, height)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random damage: flipped bytes, a cut, inserted or zeroed bytes, a repeated chunk."""
    buf = bytearray(data)
    kind = rng.integers(6)
    at = int(rng.integers(len(buf)))
    if kind == 0:  # flip 1-16 bytes anywhere (headers included)
        for i in rng.integers(len(buf), size=int(rng.integers(1, 17))):
            buf[i] ^= int(rng.integers(1, 256))
    elif kind == 1:  # truncated
        del buf[at:]
    elif kind == 2:  # random bytes inserted
        buf[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == 3:  # a zeroed run
        buf[at : at + int(rng.integers(1, 256))] = bytes(min(len(buf) - at, 255))
    elif kind == 4:  # a chunk repeated
        chunk = buf[at : at + int(rng.integers(1, 128))]
        buf[at:at] = chunk * int(rng.integers(1, 4))
    else:  # a header byte set to an extreme (sizes, depths, counts)
        buf[int(rng.integers(min(64, len(buf))))] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF]))
    return bytes(buf)


@dataclass(frozen=True)
class FuzzResult:
    cases: int
    scored: int
    errors: int
    seconds: float
    slowest_ms: float
    oversized: int  # cases whose header declares too many pixels (all refused by name)


def run_fuzz(runner: Runner, folder: Path, cases: int, seed: int, batch: int = 8) -> FuzzResult:
    """Write ``cases`` mutated files into ``folder`` and inspect them all.

    Raises:
        AssertionError: a case with neither a score nor an error record, records out of order,
            or an oversized header that was not refused for its size.
    """
    rng = np.random.default_rng(seed)
    originals = seeds()
    folder.mkdir(parents=True, exist_ok=True)
    names = list(originals)
    oversized = set()
    for i in range(cases):
        fmt = names[i % len(names)]
        if rng.integers(7) == 0:
            oversized.add(i)
            data = oversize(originals[fmt], fmt, rng)
        else:
            data = mutate(originals[fmt], rng)
        (folder / f"{i:06d}{fmt}").write_bytes(data)
    out = io.StringIO()
    start = time.perf_counter()
    with open_source(str(folder)) as source:
        summary = inspect(runner, source, batch=batch, sinks=[JsonlSink(out)])
    seconds = time.perf_counter() - start
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["frame"] for r in records] == list(range(cases)), "a case has no record"
    for r in records:
        assert ("score" in r) != ("error" in r), r
        if r["frame"] in oversized:
            assert "megapixels), more than the limit" in r.get("error", ""), r
    slowest = max((r.get("latency_ms") or 0.0) for r in records)
    return FuzzResult(cases, summary.frames, summary.errors, seconds, slowest, len(oversized))
