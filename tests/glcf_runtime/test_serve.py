"""The live page (glcf_runtime.serve) on real video files: every route, the token, the metrics
(parsed with prometheus_client's parser), a real reconnecting source, and headless Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from glcf_bench.fixtures.contract_model import write_model
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.errors import ConfigError
from glcf_runtime.loop import inspect
from glcf_runtime.serve import LiveServer, LiveState, model_card, parse_bind
from glcf_runtime.sinks import JsonlSink
from glcf_runtime.sources import Frame, FrameSource, LiveSource, VideoFileSource, open_source
from tests.browser import open_browser

PATTERN = [i % 7 == 3 for i in range(30)]  # anomalous frames 3, 10, 17, 24
TOKEN = "s3cret-token"


def write_stripes_video(
    path: Path, pattern: list[bool], size: tuple[int, int] = (320, 240), fps: float = 25.0
) -> Path:
    """MJPG ``.avi``: moving grey stripes (score ≈ 0.31 with the contract model, never flat or
    frozen), a white rectangle (score ≈ 1) on frames where ``pattern`` is True."""
    width, height = size
    row = (128 + 40 * np.sin(np.arange(width + 8 * len(pattern)) / 23.0)).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i, bad in enumerate(pattern):
        grey = np.repeat(row[None, 8 * i : 8 * i + width], height, axis=0)
        image = np.ascontiguousarray(np.stack([grey, grey, np.roll(grey, 5, axis=1)], axis=-1))
        if bad:
            image[height // 4 : height // 2, width // 4 : width // 2] = 255
        writer.write(image)
    writer.release()
    return path


def get(url: str, token: str | None = None, bearer: bool = False) -> tuple[int, dict, bytes]:
    """``(status, headers, body)`` of a GET; the token as ``?token=`` or as a Bearer header."""
    headers = {"Authorization": f"Bearer {token}"} if token and bearer else {}
    if token and not bearer:
        url += ("&" if "?" in url else "?") + f"token={token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def read_events(url: str, count: int, timeout: float = 10.0) -> list[dict]:
    """The first ``count`` data events of a server-sent event stream (fewer if it ends)."""
    events: list[dict] = []
    with urllib.request.urlopen(url, timeout=timeout) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: ") and line != "data: {}":
                events.append(json.loads(line[6:]))
                if len(events) == count:
                    break
    return events


def read_mjpeg(url: str, count: int, timeout: float = 10.0) -> list[bytes]:
    """The first ``count`` JPEG parts of an MJPEG stream (fewer if it ends)."""
    parts: list[bytes] = []
    with urllib.request.urlopen(url, timeout=timeout) as stream:
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        while len(parts) < count:
            if stream.readline() != b"--frame\r\n":
                break
            fields = dict(
                line.decode().strip().split(": ", 1) for line in iter(stream.readline, b"\r\n")
            )
            parts.append(stream.read(int(fields["Content-Length"])))
            stream.readline()
    return parts


def metric_values(text: str) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` from Prometheus text, via the official parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class ReplaySource(FrameSource):
    """A real video file played again and again at ``fps`` until stopped, like a camera."""

    def __init__(self, path: Path, fps: float) -> None:
        super().__init__(f"replay {path.name}", fps)
        self.path = path

    def iterate(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        index = 0
        while stop is None or not stop.is_set():
            with VideoFileSource(self.path) as video:
                for frame in video.iterate(stop):
                    yield replace(frame, index=index, timestamp=time.time())
                    index += 1
                    time.sleep(1.0 / self.fps)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    with OnnxRuntimeRunner(write_model(tmp_path_factory.mktemp("model")), threads=1) as r:
        yield r


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stripes_video(tmp_path_factory.mktemp("video") / "clip.avi", PATTERN)


@pytest.fixture(scope="module")
def finished(runner, video: Path, tmp_path_factory: pytest.TempPathFactory):
    """A run over the whole video with the JSON-lines sink and the live state side by side; the
    server stays up after the loop (the state says it stopped)."""
    jsonl = tmp_path_factory.mktemp("run") / "run.jsonl"
    with open_source(str(video)) as source:
        state = LiveState(model_card(runner, runner.threshold), source)
        with LiveServer(state, token=TOKEN) as server:
            summary = inspect(runner, source, sinks=[JsonlSink(jsonl), state])
            yield server, summary, [json.loads(line) for line in jsonl.read_text().splitlines()]


@contextlib.contextmanager
def replay_served(runner, video: Path, token: str | None) -> Iterator[LiveServer]:
    """A loop over a replayed video (20 fps) on a thread, served with ``token``."""
    stop = threading.Event()
    source = ReplaySource(video, fps=20.0)
    state = LiveState(model_card(runner, runner.threshold), source)
    with LiveServer(state, token=token) as server:
        loop = threading.Thread(target=inspect, args=(runner, source), daemon=True,
                                kwargs={"sinks": [state], "stop_event": stop})
        loop.start()
        try:
            yield server
        finally:
            stop.set()
            loop.join(timeout=10)
    assert not loop.is_alive()


@pytest.fixture
def running(runner, video: Path) -> Iterator[LiveServer]:
    """The replayed loop served without a token."""
    with replay_served(runner, video, None) as server:
        yield server


@pytest.fixture
def running_with_token(runner, video: Path) -> Iterator[LiveServer]:
    """The replayed loop served with ``TOKEN``: the page is opened once as ``/?token=T``."""
    with replay_served(runner, video, TOKEN) as server:
        yield server


def test_status_and_results_match_the_jsonl_records(finished) -> None:
    server, summary, records = finished
    assert summary.completed and (summary.frames, summary.anomalies) == (30, 4)
    code, headers, body = get(server.url + "api/status", TOKEN)
    status = json.loads(body)
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert (status["frames"], status["anomalies"], status["errors_total"]) == (30, 4, 0)
    assert status["running"] is False and status["latest_frame"] == 29
    assert status["model"]["threshold"] == 0.5 and status["model"]["category"] == "test"
    assert status["model"]["threshold_origin"] == summary.threshold_origin
    assert status["model"]["backend"] == "onnxruntime" and status["model"]["precision"] == "fp32"
    assert status["model"]["normalisation"] == "image"  # the contract model names none: the paper's
    assert [f["frame"] for f in status["flagged"]] == [24, 17, 10, 3]  # newest first
    assert status["latency_p50_ms"] <= status["latency_p95_ms"]
    results = json.loads(get(server.url + "api/results", TOKEN)[2])
    assert results == records and [r["frame"] for r in results] == list(range(30))
    later = json.loads(get(server.url + "api/results?since=20&limit=5", TOKEN)[2])
    assert [r["frame"] for r in later] == [25, 26, 27, 28, 29]
    assert get(server.url + "api/results?since=x", TOKEN)[0] == 400


def test_metrics_parse_with_prometheus_client(finished) -> None:
    server = finished[0]
    code, headers, body = get(server.url + "metrics", TOKEN, bearer=True)
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    values = metric_values(body.decode())
    assert values[("glcf_frames_total", ())] == 30
    assert values[("glcf_anomalies_total", ())] == 4
    assert values[("glcf_errors_total", (("kind", "unreadable"),))] == 0
    assert values[("glcf_latency_seconds_count", ())] == 30
    assert values[("glcf_latency_seconds_bucket", (("le", "+Inf"),))] == 30
    assert 0 < values[("glcf_latency_seconds_sum", ())] < 30 * 10
    assert values[("glcf_threshold", ())] == 0.5
    assert values[("glcf_source_up", ())] == 0  # the video ended
    assert values[("glcf_source_reconnects_total", ())] == 0
    assert values[("glcf_last_score", ())] == pytest.approx(0.31, abs=0.05)
    info = [k for k in values if k[0] == "glcf_model_info"]
    assert dict(info[0][1])["backend"] == "onnxruntime"


def test_images_events_and_stream(finished, video: Path) -> None:
    server, _, records = finished
    code, headers, body = get(server.url + "frame.jpg", TOKEN)
    frame = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert code == 200 and headers["Content-Type"] == "image/jpeg" and frame.shape == (240, 320, 3)
    assert json.loads(headers["X-Frame-Record"]) == records[-1]  # the page's verdict line
    code, _, body = get(server.url + "flagged/4.jpg", TOKEN)  # the 4th flagged: frame 24
    flagged = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert code == 200 and flagged.shape == (240, 320, 3)
    patch = (slice(60, 120), slice(80, 160))  # the white rectangle of anomalous frames
    assert np.abs(flagged[patch].astype(int) - frame[patch]).mean() > 40
    thumb = get(server.url + "flagged/4.jpg?width=100", TOKEN)[2]
    assert cv2.imdecode(np.frombuffer(thumb, np.uint8), cv2.IMREAD_COLOR).shape == (75, 100, 3)
    assert get(server.url + "flagged/99.jpg", TOKEN)[0] == 404
    events = read_events(server.url + f"api/events?since=25&token={TOKEN}", 5)
    assert len(events) == 1  # the run is over: one event, then the stream ends
    assert [r["frame"] for r in events[0]["records"]] == [26, 27, 28, 29]
    assert events[0]["records"] == records[26:]
    parts = read_mjpeg(server.url + f"stream.mjpg?token={TOKEN}", 3)
    assert len(parts) == 1 and cv2.imdecode(np.frombuffer(parts[0], np.uint8), 1).shape[0] == 240


def test_page_and_static_files_need_no_cdn(finished) -> None:
    server = finished[0]
    code, headers, page = get(server.url, TOKEN)
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    html = page.decode()
    assert 'src="static/app.js"' in html and 'href="static/style.css"' in html
    assert "http://" not in html and "https://" not in html  # nothing from the internet
    for name, kind in (("static/app.js", "text/javascript"), ("static/style.css", "text/css")):
        code, headers, body = get(server.url + name, TOKEN)
        assert code == 200 and headers["Content-Type"].startswith(kind) and body
        assert b"http://" not in body and b"https://" not in body
    assert get(server.url + "static/../server.py", TOKEN)[0] == 404
    assert get(server.url + "nothing", TOKEN)[0] == 404


def test_token_is_needed_on_every_route_but_healthz(finished) -> None:
    server = finished[0]
    for route in ("", "static/app.js", "api/status", "api/results", "api/events", "metrics",
                  "frame.jpg", "stream.mjpg", "flagged/1.jpg", "nothing"):
        code, headers, body = get(server.url + route)
        assert code == 401, route
        assert headers["WWW-Authenticate"].startswith("Bearer") and b"token" in body
        assert get(server.url + route, "wrong")[0] == 401
        assert get(server.url + route, "wrong", bearer=True)[0] == 401
    assert get(server.url + "api/status", TOKEN, bearer=True)[0] == 200
    code, _, body = get(server.url + "healthz")
    assert (code, body) == (503, b"source down\n")  # no token needed; the video has ended


def test_no_route_writes(finished) -> None:
    server = finished[0]
    request = urllib.request.Request(server.url + f"api/status?token={TOKEN}", data=b"{}",
                                     method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 501


def test_binding_beyond_localhost_needs_a_token(runner) -> None:
    state = LiveState(model_card(runner, runner.threshold))
    with pytest.raises(ConfigError, match="--token"):
        LiveServer(state, "0.0.0.0", 0)
    with LiveServer(state, "0.0.0.0", 0, token=TOKEN) as server:
        assert server.port > 0 and get(f"http://127.0.0.1:{server.port}/healthz")[0] == 200
        assert get(f"http://127.0.0.1:{server.port}/api/status")[0] == 401
    assert parse_bind("8080") == ("127.0.0.1", 8080)
    assert parse_bind("0.0.0.0:9") == ("0.0.0.0", 9)
    assert parse_bind("[::1]:0") == ("::1", 0)
    for bad in ("", "host:", "x:70000", ":80"):
        with pytest.raises(ConfigError, match="HOST:PORT"):
            parse_bind(bad)


def test_without_prometheus_client_serve_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'prometheus_client':\n"
        "            raise ModuleNotFoundError('blocked', name='prometheus_client')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from glcf_runtime.serve import LiveServer, LiveState\n"
        "LiveServer(LiveState({'threshold': 0.5}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "ConfigError" in proc.stderr
    assert "pip install 'glcf[runtime]'" in proc.stderr


def test_busy_port_is_a_config_error(runner) -> None:
    state = LiveState(model_card(runner, runner.threshold))
    with LiveServer(state) as first, pytest.raises(ConfigError, match="another port"):
        LiveServer(state, "127.0.0.1", first.port)


def test_live_updates_while_the_loop_runs(running) -> None:
    server = running
    events = read_events(server.url + "api/events", 4)
    frames = [e["status"]["frames"] for e in events]
    assert frames == sorted(frames) and frames[-1] > frames[0]
    new = [r["frame"] for e in events[1:] for r in e["records"]]
    assert new == sorted(new) and len(new) == len(set(new)) and new
    assert all(e["status"]["running"] for e in events)
    code, _, body = get(server.url + "healthz")
    assert (code, body) == (200, b"ok\n")
    parts = read_mjpeg(server.url + "stream.mjpg", 3)
    assert len(parts) == 3 and len({bytes(p) for p in parts}) == 3  # new frames, none repeated
    first = get(server.url + "frame.jpg")[1]["X-Frame-Seq"]
    time.sleep(0.3)
    assert int(get(server.url + "frame.jpg")[1]["X-Frame-Seq"]) > int(first)


def test_closing_ends_open_streams(runner, video: Path) -> None:
    source = ReplaySource(video, fps=20.0)
    state = LiveState(model_card(runner, runner.threshold), source)
    server = LiveServer(state).start()
    stream = urllib.request.urlopen(server.url + "stream.mjpg", timeout=10)
    start = time.perf_counter()
    server.close()
    assert stream.read() == b"" and time.perf_counter() - start < 3.0
    stream.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + "healthz", timeout=2)


def test_reconnects_and_error_kinds_are_counted(runner, video: Path) -> None:
    """A live source over a real video file: each end of the file is an outage and a reconnect."""
    source = LiveSource("replayed file", lambda: cv2.VideoCapture(str(video)), backoff=(0.01, 0.01))
    state = LiveState(model_card(runner, runner.threshold), source)
    stop = threading.Event()
    with source, LiveServer(state) as server:
        loop = threading.Thread(target=inspect, args=(runner, source), daemon=True,
                                kwargs={"sinks": [state], "stop_event": stop})
        loop.start()
        deadline = time.monotonic() + 60
        while state.metrics()["source"]["reconnects"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        loop.join(timeout=10)
        values = metric_values(get(server.url + "metrics")[2].decode())
    assert values[("glcf_source_reconnects_total", ())] >= 1
    assert values[("glcf_errors_total", (("kind", "outage"),))] >= 1
    assert values[("glcf_frames_total", ())] > 0


def test_page_in_headless_chromium(running_with_token, tmp_path: Path) -> None:
    """The page, opened once as ``/?token=T``, loads its style and script, updates live while
    the loop runs (its own requests carry no token: the cookie does), and logs no console
    error (a 401 would be one)."""
    server = running_with_token
    with open_browser(1280, 900) as browser:
        browser.open(f"{server.url}?token={TOKEN}", wait_for="#card tr")
        style = "return getComputedStyle(document.querySelector('main')).display"
        assert browser.run(style) == "grid"  # style.css loaded (by cookie, not the token)
        browser.wait_until(lambda: browser.run("return document.getElementById('frame').dataset.seq"),
                           15, "the first frame on the page")
        browser.wait_until(lambda: browser.run("return document.querySelectorAll('#gallery img').length"),
                           15, "a flagged frame in the gallery")
        first_seq = browser.run("return document.getElementById('frame').dataset.seq")
        first = browser.element_png("#frame")
        browser.screenshot(tmp_path / "live-1.png")
        browser.wait_until(
            lambda: browser.run("return document.getElementById('frame').dataset.seq") != first_seq,
            10, "a newer frame on the page")
        time.sleep(0.5)  # let the gallery's images load and the timeline fill
        second = browser.element_png("#frame")
        shot = browser.screenshot(Path(os.environ.get("GLCF_SCREENSHOT", tmp_path / "live-2.png")))
        assert first != second
        assert shot.stat().st_size > 10_000
        frames = int(browser.run("return document.getElementById('frames').textContent"))
        assert frames > 0 and browser.run("return document.getElementById('state').textContent") == "running"
        assert "score" in browser.run("return document.getElementById('verdict').textContent")
        browser.wait_until(lambda: not browser.broken_images(), 5, "every image loaded")
        assert browser.console_errors() == []
