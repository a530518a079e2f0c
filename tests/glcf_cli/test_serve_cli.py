"""`glcf inspect --serve` as a user runs it: a real process on a real video file, every route
checked while the loop runs, then SIGTERM; and the refusal to expose the page without a token."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glcf_bench.fixtures.contract_model import write_model
from glcf_cli import app
from glcf_runtime.errors import ConfigError
from tests.glcf_runtime.test_serve import (
    get,
    metric_values,
    read_events,
    read_mjpeg,
    write_stripes_video,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FRAMES = 400  # 1280x720 MJPG: the loop runs for seconds on 2 cores, long enough to be watched
TOKEN = "line-7-token"
ALLOWED = "line-7.plant.example"  # --allow-host: a name the box answers to besides its address


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("serve_cli")
    pattern = [i % 10 == 5 for i in range(FRAMES)]
    return write_model(folder / "export"), write_stripes_video(
        folder / "line.avi", pattern, size=(1280, 720)
    )


def _start(model: Path, video: Path, out: Path) -> tuple[subprocess.Popen, str]:
    """``glcf inspect --serve 127.0.0.1:0`` with the token from GLCF_TOKEN; its page URL. The
    annotated video it also writes doubles the loop's time, so the checks run while it runs."""
    command = [sys.executable, "-m", "glcf_cli", "inspect", str(model), "--source", str(video),
               "--serve", "127.0.0.1:0", "--jsonl", str(out / "run.jsonl"), "--save-video",
               str(out / "annotated.avi"), "--provider", "cpu", "--threads", "1",
               "--allow-host", ALLOWED]
    env = {**os.environ, "GLCF_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        found = re.search(r"live page (http://127\.0\.0\.1:\d+/)", line)
        if found:
            return process, found.group(1)
    process.wait(timeout=10)
    raise AssertionError("glcf inspect printed no live page URL:\n" + "".join(lines))


def _status(url: str, headers: dict[str, str]) -> int:
    """The status code of a GET with these headers (``Host`` and ``Cookie`` included)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _check_page_cookie_and_host(url: str) -> None:
    """The page opened once with its token lets its own loads in by cookie; the Host header
    must name the box (its address, localhost or --allow-host)."""
    cookie = get(url + f"?token={TOKEN}")[1]["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    jar = {"Cookie": cookie.split(";")[0]}
    for route in ("", "static/app.js", "static/style.css", "api/status", "frame.jpg"):
        assert _status(url + route, jar) == 200, route
    assert _status(url + "api/status", {**jar, "Host": f"{ALLOWED}:8080"}) == 200
    assert _status(url + "api/status", {**jar, "Host": "rebound.attacker.example"}) == 403
    head = urllib.request.Request(url + "api/status", headers=jar, method="HEAD")
    with urllib.request.urlopen(head, timeout=10) as response:
        assert response.status == 200 and response.read() == b""


def _first_flagged(url: str, timeout: float = 60.0) -> dict:
    """The gallery's oldest entry, once there is one (frame 5 is the video's first anomaly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(get(url + "api/status", TOKEN)[2])
        if status["flagged"]:
            return status["flagged"][-1]
        assert status["running"], "the loop ended before it flagged a frame"
        time.sleep(0.1)
    raise AssertionError(f"no flagged frame after {timeout:g} s")


def test_serve_on_a_video_file_every_route_then_sigterm(clip, tmp_path: Path) -> None:
    model, video = clip
    jsonl = tmp_path / "run.jsonl"
    process, url = _start(model, video, tmp_path)
    try:
        code, _, body = get(url + "healthz")
        assert (code, body) == (200, b"ok\n")
        assert get(url + "api/status")[0] == 401 and get(url + "metrics")[0] == 401
        code, headers, page = get(url, TOKEN)
        assert code == 200 and b"static/app.js" in page
        assert all(get(url + f"static/{n}", TOKEN)[0] == 200 for n in ("app.js", "style.css"))
        events = read_events(url + f"api/events?token={TOKEN}", 3)
        status = events[-1]["status"]
        assert status["running"] and status["frames"] > 0, "the loop ended before the checks"
        _check_page_cookie_and_host(url)
        assert status["model"]["threshold_origin"] == "the model's metadata"
        assert status["source"] == {"name": str(video), "up": True, "reconnects": 0, "failed": None}
        results = json.loads(get(url + "api/results", TOKEN, bearer=True)[2])
        assert [r["frame"] for r in results] == list(range(len(results))) and results
        assert [r["anomalous"] for r in results] == [i % 10 == 5 for i in range(len(results))]
        values = metric_values(get(url + "metrics", TOKEN)[2].decode())
        assert values[("glcf_frames_total", ())] >= len(results)
        assert values[("glcf_source_up", ())] == 1 and values[("glcf_threshold", ())] == 0.5
        code, headers, jpeg = get(url + "frame.jpg", TOKEN)
        assert code == 200 and jpeg[:2] == b"\xff\xd8" and int(headers["X-Frame-Seq"]) > 0
        parts = read_mjpeg(url + f"stream.mjpg?token={TOKEN}", 2)
        assert len(parts) == 2 and all(p[:2] == b"\xff\xd8" for p in parts)
        flagged = _first_flagged(url)
        assert flagged["frame"] == 5 and get(url + f"flagged/{flagged['id']}.jpg", TOKEN)[0] == 200
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0]
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 1, output  # stopped by a signal
    assert "stopped by SIGTERM" in output
    with pytest.raises(urllib.error.URLError):  # the server stopped with the loop
        urllib.request.urlopen(url + "healthz", timeout=2)
    written = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert written[: len(results)] == results and len(written) < FRAMES


def test_serve_beyond_localhost_without_token_is_refused(clip) -> None:
    model, video = clip
    env = {"GLCF_TOKEN": None}  # unset
    result = CliRunner().invoke(
        app, ["inspect", str(model), "--source", str(video), "--serve", "0.0.0.0:0"], env=env
    )
    assert isinstance(result.exception, ConfigError), result.output
    assert "--token" in str(result.exception) and "GLCF_TOKEN" in str(result.exception)
    result = CliRunner().invoke(
        app, ["inspect", str(model), "--source", str(video), "--serve", "localhost:x"], env=env
    )
    assert isinstance(result.exception, ConfigError) and "HOST:PORT" in str(result.exception)
    for extra in (["--serve", "0", "--allow-host", "box:8080"], ["--allow-host", "box"]):
        result = CliRunner().invoke(app, ["inspect", str(model), "--source", str(video), *extra])
        assert isinstance(result.exception, ConfigError), result.output
        assert "--allow-host" in str(result.exception)
