"""The inspection loop's throughput with one live-page viewer attached, against no server.

The loop runs over a 1280x720 MJPG video (glcf_bench.frames) with its JSON records going to
memory, in alternating rounds: plain, then with the state and server of `glcf inspect --serve`
and one viewer doing what the page does (the event stream, the latest frame fetched up to 10
times a second, the gallery's thumbnails at most every 2 s) from another process, as a browser
would. The threshold is set so that about 10 % of the frames are flagged.

served fps / plain fps is what the page costs the loop. This process's CPU time (loop and server;
the viewer's is its own process's) is recorded too, a frame and, beyond the loop's own, a second:
on a machine shared with other work, wall-clock fps swings from run to run far more than the page
costs, CPU time much less.

    python benchmarks/serve_overhead.py --preset paper --frames 100
    python benchmarks/serve_overhead.py EXPORT_DIR
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import resource
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from glcf_bench.frames import write_video
from glcf_bench.machine import machine_info, slug, versions
from glcf_cli.common import console
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.files import atomic_write_json
from glcf_runtime.loop import Summary, inspect
from glcf_runtime.serve import LiveServer, LiveState, model_card
from glcf_runtime.sinks import JsonlSink
from glcf_runtime.sources import VideoFileSource
from glcf_runtime.threshold import ThresholdChoice

RESULTS = Path(__file__).resolve().parent / "results"
FRAME_INTERVAL_S = 0.1  # the page asks for the latest frame at most this often
THUMB_WIDTH = 360  # the page's gallery thumbnails
GALLERY_INTERVAL_S = 2.0  # the page refreshes its gallery at most this often


class PageViewer:
    """One open live page, as HTTP requests: what glcf_runtime/serve/static/app.js does."""

    def __init__(self, url: str) -> None:
        self.url, self.stop = url, threading.Event()
        self.events = self.frames = self.thumbnails = self.missed = 0
        self._threads = [threading.Thread(target=self._events, daemon=True),
                         threading.Thread(target=self._frames, daemon=True)]

    def __enter__(self) -> PageViewer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _events(self) -> None:
        seen: set[int] = set()
        refreshed = -GALLERY_INTERVAL_S
        with urllib.request.urlopen(self.url + "api/events", timeout=30) as stream:
            for raw in stream:
                if not raw.startswith(b"data: ") or raw.strip() == b"data: {}":
                    continue
                self.events += 1
                if time.monotonic() - refreshed < GALLERY_INTERVAL_S:
                    continue
                refreshed = time.monotonic()
                for flagged in json.loads(raw[6:])["status"]["flagged"]:
                    if flagged["id"] not in seen:  # a browser has the others in its cache
                        seen.add(flagged["id"])
                        self._thumbnail(flagged["id"])

    def _thumbnail(self, flag_id: int) -> None:
        try:
            with urllib.request.urlopen(
                f"{self.url}flagged/{flag_id}.jpg?width={THUMB_WIDTH}", timeout=30
            ) as image:
                image.read()
            self.thumbnails += 1
        except urllib.error.HTTPError:
            self.missed += 1  # it left the gallery before this viewer asked

    def _frames(self) -> None:
        shown = None
        while not self.stop.wait(FRAME_INTERVAL_S):
            try:
                with urllib.request.urlopen(self.url + "frame.jpg", timeout=30) as response:
                    response.read()
                    seq = response.headers["X-Frame-Seq"]
            except urllib.error.HTTPError:
                continue  # no frame yet
            self.frames += seq != shown
            shown = seq


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (less disturbed by other processes
    than wall time on a shared machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_plain(runner: OnnxRuntimeRunner, video: Path, threshold: float | None) -> tuple[Summary, float]:
    with VideoFileSource(video) as source:
        start = cpu_seconds()
        summary = inspect(runner, source, threshold, sinks=[JsonlSink(io.StringIO())])
        return summary, cpu_seconds() - start


def view_page(url: str, stop: Any, counts: Any) -> None:
    """A viewer process: the page's requests until ``stop`` is set; its counts into ``counts``."""
    with urllib.request.urlopen(url + "api/status", timeout=30):
        counts.put("ready")
    with PageViewer(url) as viewer:
        stop.wait()
    counts.put({"events": viewer.events, "frames": viewer.frames,
                "thumbnails": viewer.thumbnails, "thumbnails_gone": viewer.missed})


def run_served(
    runner: OnnxRuntimeRunner, video: Path, threshold: float | None
) -> tuple[Summary, float, dict]:
    """The loop with the live state and server, watched by a viewer in another process; the
    CPU time counted is this process's (loop and server), not the viewer's."""
    choice = ThresholdChoice(threshold, "benchmark: 90th percentile of the scores")
    context = multiprocessing.get_context("spawn")
    stop, counts = context.Event(), context.Queue()
    with VideoFileSource(video) as source:
        state = LiveState(model_card(runner, choice), source)
        with LiveServer(state) as server:
            viewer = context.Process(target=view_page, args=(server.url, stop, counts))
            viewer.start()
            if counts.get(timeout=120) != "ready":
                raise RuntimeError("the viewer process did not start")
            start = cpu_seconds()
            summary = inspect(runner, source, threshold, sinks=[JsonlSink(io.StringIO()), state])
            cpu = cpu_seconds() - start
            stop.set()
            seen = counts.get(timeout=60)
            viewer.join(timeout=30)
    return summary, cpu, seen


def flag_tenth(runner: OnnxRuntimeRunner, video: Path) -> float:
    """The threshold that flags the share of the video's frames closest to 10 % (random-init
    models have no threshold of their own; tied scores rule out an exact 10 %)."""
    out = io.StringIO()
    with VideoFileSource(video) as source:
        inspect(runner, source, sinks=[JsonlSink(out)])
    records = (json.loads(line) for line in out.getvalue().splitlines())
    scores = np.array([r["score"] for r in records if r.get("score") is not None])
    candidates = np.unique(scores)
    flagged = np.array([(scores >= t).mean() for t in candidates])
    return float(candidates[np.argmin(np.abs(flagged - 0.1))])


def model_folder(target: Path | None, preset: str, workdir: Path) -> tuple[Path, str]:
    if target is not None:
        return target, f"export {target}"
    from glcf_bench.targets import prepare_target  # torch, only for a preset

    bench = prepare_target(None, preset, workdir, console.print)
    return bench.folder, bench.description


def one_round(runner: OnnxRuntimeRunner, video: Path, threshold: float, i: int) -> dict:
    """A plain run, then a served one; their figures as one row."""
    plain, plain_cpu = run_plain(runner, video, threshold)
    served, served_cpu, viewer = run_served(runner, video, threshold)
    row = {
        "round": i, "plain_fps": plain.fps, "served_fps": served.fps,
        "ratio": served.fps / plain.fps, "served_anomalies": served.anomalies,
        "plain_cpu_ms_per_frame": 1000 * plain_cpu / plain.frames,
        "served_cpu_ms_per_frame": 1000 * served_cpu / served.frames,
        # the page's own cost: CPU beyond the loop's, per second of viewing
        "server_cpu_ms_per_s": 1000 * (served_cpu - plain_cpu * served.frames / plain.frames)
        / served.seconds,
        **{f"viewer_{key}": value for key, value in viewer.items()},
    }
    console.print(
        f"round {i}: plain {plain.fps:.2f} fps, served {served.fps:.2f} fps "
        f"({row['ratio']:.1%}); CPU {row['plain_cpu_ms_per_frame']:.1f} vs "
        f"{row['served_cpu_ms_per_frame']:.1f} ms a frame, the page "
        f"{row['server_cpu_ms_per_s']:.0f} ms a second; the viewer got {viewer['frames']} "
        f"frames, {viewer['events']} events, {viewer['thumbnails']} thumbnails", highlight=False)
    return row


def summarise(rows: list[dict], **about: Any) -> dict:
    """The result file's content: what ran, on what, each round and the medians."""
    return {
        **about,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "versions": versions(),
        "rounds": rows,
        "median_plain_fps": statistics.median(r["plain_fps"] for r in rows),
        "median_served_fps": statistics.median(r["served_fps"] for r in rows),
        "median_ratio": statistics.median(r["ratio"] for r in rows),
        "median_cpu_ratio": statistics.median(
            r["plain_cpu_ms_per_frame"] / r["served_cpu_ms_per_frame"] for r in rows
        ),
        "median_server_cpu_ms_per_s": statistics.median(r["server_cpu_ms_per_s"] for r in rows),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", type=Path, help="export folder (model.onnx)")
    parser.add_argument("--preset", default="paper", help="random-init preset without a target")
    parser.add_argument("--frames", type=int, default=300, help="frames of the test video")
    parser.add_argument("--rounds", type=int, default=3, help="plain/served pairs, alternating")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the result file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="glcf-serve-bench-") as tmp:
        folder, description = model_folder(args.target, args.preset, Path(tmp))
        video = write_video(Path(tmp) / "line.avi", args.frames)
        with OnnxRuntimeRunner(folder / "model.onnx", threads=args.threads) as runner:
            runner.warmup()
            threshold = flag_tenth(runner, video)
            rows = [one_round(runner, video, threshold, i) for i in range(args.rounds)]
    report = summarise(rows, model=description, frames=args.frames, threads=args.threads,
                       threshold=threshold)
    machine = report["machine"]
    name = (f"serve-overhead_{slug(machine['cpu'])}_{machine['usable_cores']}c_"
            f"{slug(args.preset if args.target is None else folder.name, 24)}_"
            f"{time.strftime('%Y%m%d-%H%M%S')}.json")
    args.out.mkdir(parents=True, exist_ok=True)
    file = atomic_write_json(args.out / name, report)
    console.print(
        f"median: plain {report['median_plain_fps']:.2f} fps, served with one viewer "
        f"{report['median_served_fps']:.2f} fps = {report['median_ratio']:.1%} of plain; "
        f"CPU time a frame: plain / served = {report['median_cpu_ratio']:.1%}; the page "
        f"{report['median_server_cpu_ms_per_s']:.0f} ms of CPU a second\n"
        f"wrote {file}", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
