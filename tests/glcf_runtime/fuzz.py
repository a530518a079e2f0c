"""Random byte mutations of real image files, run through the inspection loop (folder source →
decode → pre-process → health → runner → JSON lines). Used by the seeded test and by
``benchmarks/fuzz_decode.py`` for longer runs."""

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

FORMATS = (".png", ".jpg", ".bmp", ".tiff", ".webp")


def seeds(size: int = SIZE) -> dict[str, bytes]:
    """One real encoded image per format (a contract frame with an anomalous patch)."""
    image = frame(anomalous=True, size=size, seed=3)
    return {fmt: cv2.imencode(fmt, image)[1].tobytes() for fmt in FORMATS}


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


def run_fuzz(runner: Runner, folder: Path, cases: int, seed: int, batch: int = 8) -> FuzzResult:
    """Write ``cases`` mutated files into ``folder`` and inspect them all.

    Raises:
        AssertionError: a case with neither a score nor an error record, or records out of order.
    """
    rng = np.random.default_rng(seed)
    originals = seeds()
    folder.mkdir(parents=True, exist_ok=True)
    names = list(originals)
    for i in range(cases):
        fmt = names[i % len(names)]
        (folder / f"{i:06d}{fmt}").write_bytes(mutate(originals[fmt], rng))
    out = io.StringIO()
    start = time.perf_counter()
    with open_source(str(folder)) as source:
        summary = inspect(runner, source, batch=batch, sinks=[JsonlSink(out)])
    seconds = time.perf_counter() - start
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["frame"] for r in records] == list(range(cases)), "a case has no record"
    for r in records:
        assert ("score" in r) != ("error" in r), r
    slowest = max((r.get("latency_ms") or 0.0) for r in records)
    return FuzzResult(cases, summary.frames, summary.errors, seconds, slowest)
