"""Several cameras on one box: one `glcf inspect` batched across the cameras, against one process
per camera.

Four (``--cameras``) 1280x720 MJPG videos of synthetic frames (glcf_bench.frames), ``--frames``
each, inspected in alternating rounds:

(a) one process: ``glcf inspect EXPORT --source cam0=FILE … --batch N`` (N = the cameras, or
    ``--batch``), one runner for every camera;
(b) one ``glcf inspect EXPORT --source FILE`` per camera, all started at once, batch 1;
(c) with ``--streams S``: (a) with ``--streams S --batch B`` (B = ``--streams-batch``, default
    the cameras / S): one process, S batches scored at once on S CPU streams.

images/s is every camera's frames over the wall time from the start of the processes to the
last one's exit (model loading included, as on a station that starts); ``steady images/s`` is
the frames over the span of the records' timestamps (from the first frame to the last, loading
excluded). The p95 latency (capture → verdict) is over every record of the round, from the JSONL.

With ``--live-fps N`` the cameras are live instead: each video is served as an MJPEG stream over
HTTP at N frames per second (``glcf inspect`` reads it as a live camera: the newest frame only,
no queue), and the stream closes after ``--frames`` frames (``--reconnect 0``: the camera then
ends). Below the box's capacity every frame is scored either way, and the latency is what a
line sees; frames a path could not keep up with are dropped by the live source and counted.

    python benchmarks/station_batching.py                   # the contract model (tiny)
    python benchmarks/station_batching.py --live-fps 10     # four live cameras at 10 fps each
    python benchmarks/station_batching.py --export models/cable_pair   # an export of yours
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from glcf_bench.frames import write_video
from glcf_bench.machine import machine_info, slug, versions
from glcf_runtime.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


class _Streams:
    """Serves ``/camK.mjpg``: ``frames`` JPEG frames at ``fps`` as multipart/x-mixed-replace (the
    MJPEG stream IP cameras give), from the moment a client connects, then closes."""

    def __init__(self, frames: int, fps: float) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import cv2

        from glcf_bench.frames import synthetic_frame

        jpegs = [cv2.imencode(".jpg", synthetic_frame(i))[1].tobytes() for i in range(frames)]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                start = time.perf_counter()
                try:
                    for i, jpeg in enumerate(jpegs):
                        time.sleep(max(0.0, start + i / fps - time.perf_counter()))
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def urls(self, cameras: int) -> list[str]:
        host, port = self.server.server_address[:2]
        return [f"http://{host}:{port}/cam{i}.mjpg" for i in range(cameras)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _glcf(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "glcf_cli", "inspect", *args]


def _records(paths: list[Path]) -> list[dict]:
    return [json.loads(line) for p in paths for line in p.read_text().splitlines()]


def _figures(paths: list[Path], summaries: list[Path], wall: float) -> dict:
    records = [r for r in _records(paths) if "score" in r]
    times = [r["timestamp"] for r in records]
    latencies = np.array([r["latency_ms"] for r in records])
    span = max(times) - min(times) if times else 0.0
    reports = [json.loads(s.read_text()) for s in summaries]
    return {
        "frames": len(records),
        "wall_s": wall,
        "images_per_s": len(records) / wall,
        "steady_images_per_s": len(records) / span if span > 0 else None,
        "latency_p50_ms": float(np.percentile(latencies, 50)),
        "latency_p95_ms": float(np.percentile(latencies, 95)),
        "summary_latency_p95_ms": [r["latency_p95_ms"] for r in reports],
        "mean_batch": [r.get("mean_batch") for r in reports],
        "exit_codes": [r["exit_code"] for r in reports],
    }


def run_batched(export: Path, videos: list[Path], batch: int, extra: list[str], out: Path,
                streams: int = 1) -> dict:
    jsonl, summary = out / f"a{streams}.jsonl", out / f"a{streams}.json"
    for p in (jsonl, summary):
        p.unlink(missing_ok=True)
    sources = [a for i, v in enumerate(videos) for a in ("--source", f"cam{i}={v}")]
    start = time.perf_counter()
    subprocess.run(_glcf([str(export), *sources, "--batch", str(batch), "--jsonl", str(jsonl),
                          "--summary-json", str(summary), "--streams", str(streams), *extra]),
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _figures([jsonl], [summary], time.perf_counter() - start)


def run_separate(export: Path, videos: list[Path], extra: list[str], out: Path) -> dict:
    jsonls = [out / f"b{i}.jsonl" for i in range(len(videos))]
    summaries = [out / f"b{i}.json" for i in range(len(videos))]
    for p in (*jsonls, *summaries):
        p.unlink(missing_ok=True)
    start = time.perf_counter()
    procs = [subprocess.Popen(_glcf([str(export), "--source", str(v), "--batch", "1", "--jsonl",
                                     str(j), "--summary-json", str(s), *extra]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for v, j, s in zip(videos, jsonls, summaries, strict=True)]
    for proc in procs:
        proc.wait()
    return _figures(jsonls, summaries, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, default=None,
                        help="an export folder (default: the contract model, written here)")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--frames", type=int, default=150, help="frames per camera")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=None, help="(a)'s batch (default: cameras)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--streams", type=int, default=None,
                        help="add (c): one process with this many inference streams")
    parser.add_argument("--streams-batch", type=int, default=None,
                        help="(c)'s batch (default: cameras / streams)")
    parser.add_argument("--live-fps", type=float, default=None,
                        help="serve the cameras as live MJPEG streams at this many frames per second")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    machine = machine_info()
    print(f"CPU: {machine['cpu']} ({machine['usable_cores']} usable cores)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        export = args.export
        if export is None:
            from glcf_bench.fixtures.contract_model import write_model

            export = write_model(work / "export").parent
        streams = _Streams(args.frames, args.live_fps) if args.live_fps else None
        videos = streams.urls(args.cameras) if streams else [
            write_video(work / f"cam{i}.avi", args.frames) for i in range(args.cameras)]
        extra = ["--backend", args.backend, "--threshold", "1e9"]  # no anomaly panels, no wait
        if streams:
            extra += ["--reconnect", "0"]  # the stream's end ends the camera
        batch = args.batch or args.cameras
        streams_batch = args.streams_batch or max(1, args.cameras // (args.streams or 1))
        rounds: list[dict] = []
        for number in range(1, args.rounds + 1):
            a = run_batched(export, videos, batch, extra, work)
            b = run_separate(export, videos, extra, work)
            rounds.append({"batched": a, "separate": b})
            rows = [(f"(a) one process, batch {batch}", a),
                    (f"(b) {args.cameras} processes, batch 1", b)]
            if args.streams:
                c = run_batched(export, videos, streams_batch, extra, work, args.streams)
                rounds[-1]["streams"] = c
                rows.append((f"(c) one process, {args.streams} streams, batch {streams_batch}", c))
            for name, r in rows:
                steady = r["steady_images_per_s"] or 0.0
                print(f"round {number} {name}: {r['frames']} frames, {r['images_per_s']:.1f} images/s "
                      f"({steady:.1f} steady), p95 {r['latency_p95_ms']:.1f} ms, "
                      f"exit {r['exit_codes']}", flush=True)
        if streams:
            streams.close()

    def median(mode: str, key: str) -> float:
        return statistics.median(r[mode][key] or 0.0 for r in rounds)

    result = {
        "benchmark": "station_batching", "export": str(args.export or "contract model"),
        "live_fps": args.live_fps, "frames_sent_per_camera": args.frames,
        "backend": args.backend, "cameras": args.cameras, "frames_per_camera": args.frames,
        "batch": batch, "streams": args.streams, "streams_batch": streams_batch if args.streams
        else None, "machine": machine, "versions": versions(), "rounds": rounds,
        "median": {mode: {key: median(mode, key) for key in
                          ("frames", "images_per_s", "steady_images_per_s", "latency_p95_ms")}
                   for mode in ("batched", "separate", "streams") if mode in rounds[0]},
    }
    med = result["median"]
    print(f"median of {args.rounds} rounds on {machine['cpu']}: (a) "
          f"{med['batched']['images_per_s']:.1f} images/s, p95 {med['batched']['latency_p95_ms']:.1f}"
          f" ms; (b) {med['separate']['images_per_s']:.1f} images/s, p95 "
          f"{med['separate']['latency_p95_ms']:.1f} ms" + (
              f"; (c) {med['streams']['images_per_s']:.1f} images/s, p95 "
              f"{med['streams']['latency_p95_ms']:.1f} ms" if "streams" in med else ""))
    name = "contract" if args.export is None else slug(args.export.name)
    if args.live_fps:
        name += f"_live{args.live_fps:g}fps"
    if args.streams:
        name += f"_streams{args.streams}"
    file = args.out / (f"station-batching_{name}_{slug(machine['cpu'])}_"
                       f"{os.cpu_count()}c_{time.strftime('%Y%m%d-%H%M%S')}.json")
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(file, result)
    print(f"→ {file}")


if __name__ == "__main__":
    main()
