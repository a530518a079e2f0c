"""Soak test: `glcf inspect` over a long video, with its memory, speed and latency sampled over time.

The command runs as a child process exactly as a station runs it (`python -m glcf_cli inspect
MODEL --source VIDEO --jsonl FILE`); every ``--interval`` seconds the script reads the child's
resident memory (VmRSS) and the JSON lines written since the last sample (frames per second,
latency p50 / p95). Flat memory over thousands of frames is the point: a leak shows as a slope.

    python benchmarks/soak.py --preset tiny --frames 3000
    python benchmarks/soak.py runs/x/export --frames 20000 --size 1280x720
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from glcf_bench.machine import machine_info, slug, versions
from glcf_runtime.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def write_video(path: Path, frames: int, width: int, height: int, fps: float = 25.0) -> Path:
    """An MJPG video of a textured scene with a moving part and sensor noise (healthy frames)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx + yy) * 127 // (width + height))],
                    axis=-1).astype(np.int16)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for i in range(frames):
        image = base + rng.integers(-6, 7, base.shape, dtype=np.int16)
        x = int((i * 7) % max(1, width - 80))
        image[height // 3 : height // 3 + 60, x : x + 80] = (40, 200, 90)
        writer.write(image.clip(0, 255).astype(np.uint8))
    writer.release()
    return path


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class JsonlTail:
    """Reads the whole lines appended to a JSON-lines file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.frames = path, 0, 0

    def new_records(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        records = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
        self.frames += len(records)
        return records


def sample_run(cmd: list[str], jsonl: Path, interval: float) -> tuple[list[dict], int]:
    """Start ``cmd``, sample it until it exits; ``(samples, exit code)``."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tail, samples, last_t, last_frames = JsonlTail(jsonl), [], 0.0, 0
    while True:
        done = child.poll() is not None
        memory = rss_mb(child.pid)
        records = tail.new_records()
        now = time.perf_counter() - start
        latencies = [r["latency_ms"] for r in records if r.get("latency_ms") is not None]
        if records or not done:
            samples.append({
                "t_s": round(now, 2),
                "frames": tail.frames,
                "rss_mb": None if memory is None else round(memory, 1),
                "fps": round((tail.frames - last_frames) / max(now - last_t, 1e-9), 2),
                "latency_p50_ms": round(float(np.percentile(latencies, 50)), 2) if latencies else None,
                "latency_p95_ms": round(float(np.percentile(latencies, 95)), 2) if latencies else None,
                "errors": sum("error" in r for r in records),
            })
            last_t, last_frames = now, tail.frames
        if done:
            break
        time.sleep(interval)
    stderr = child.stderr.read() if child.stderr else ""
    if child.returncode not in (0, 3):
        print(stderr[-2000:], file=sys.stderr)
    return samples, child.returncode


def summarise(samples: list[dict]) -> dict:
    """Memory after warm-up (10 % of the frames) vs at the end, and the peak."""
    with_rss = [s for s in samples if s["rss_mb"] is not None and s["frames"] > 0]
    total = samples[-1]["frames"] if samples else 0
    warm = next((s for s in with_rss if s["frames"] >= 0.1 * total), with_rss[0] if with_rss else None)
    end = with_rss[-1] if with_rss else None
    fps = [s["fps"] for s in samples[1:-1] if s["fps"] > 0]
    return {
        "frames": total,
        "rss_after_warmup_mb": warm and warm["rss_mb"],
        "rss_end_mb": end and end["rss_mb"],
        "rss_peak_mb": max((s["rss_mb"] for s in with_rss), default=None),
        "rss_growth_mb": (end["rss_mb"] - warm["rss_mb"]) if warm and end else None,
        "fps_median": float(np.median(fps)) if fps else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help="export folder or model file")
    parser.add_argument("--preset", help="random-init preset exported for the run (e.g. tiny)")
    parser.add_argument("--video", type=Path, help="video to inspect (default: one is written)")
    parser.add_argument("--frames", type=int, default=3000, help="frames of the written video")
    parser.add_argument("--size", default="640x480", help="WxH of the written video")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the result file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            from glcf_bench.targets import prepare_target

            (work / "export").mkdir()
            model = prepare_target(None, args.preset or "tiny", work / "export").folder
        width, height = (int(v) for v in args.size.lower().split("x"))
        video = args.video or write_video(work / "soak.avi", args.frames, width, height)
        jsonl = work / "soak.jsonl"
        cmd = [sys.executable, "-m", "glcf_cli", "inspect", str(model), "--source", str(video),
               "--jsonl", str(jsonl)] + (["--threads", str(args.threads)] if args.threads else [])
        samples, code = sample_run(cmd, jsonl, args.interval)
    summary = summarise(samples)
    for s in samples[:: max(1, len(samples) // 20)] + samples[-1:]:
        print(f"{s['t_s']:8.1f} s {s['frames']:7d} frames {s['rss_mb']} MB {s['fps']:7.1f} fps "
              f"p50 {s['latency_p50_ms']} ms p95 {s['latency_p95_ms']} ms")
    print(json.dumps(summary), f"exit code {code}")
    machine = machine_info()
    report = {"what": "soak", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": cmd,
              "model": str(args.model or f"preset {args.preset or 'tiny'} (random init)"),
              "exit_code": code, "summary": summary, "samples": samples, "machine": machine,
              "versions": versions(), "pid": os.getpid()}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"soak_{slug(machine['cpu'])}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    atomic_write_json(out, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
