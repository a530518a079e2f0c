"""The live server with four cameras: /api/status, /metrics (parsed with prometheus_client's
parser), the per-camera frame, stream, results and timeline routes, /healthz, the token and the
Host check on them. Two cameras are synthetic sources of a fixed length; two are real
``LiveSource``s over a video file: one reconnects at each end of the file (closed once it has
reconnected, so it is down from then on), one gives up when the file ends."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from glcf_bench.fixtures.contract_model import write_model
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.live import LiveSource
from glcf_runtime.serve import LiveServer, open_live_page
from tests.glcf_runtime.camera_feed import FeedThread, SyntheticCamera, feed
from tests.glcf_runtime.test_serve import (
    get,
    metric_values,
    read_events,
    read_mjpeg,
    write_stripes_video,
)

TOKEN = "four-cameras"
NAMES = ["line-1", "line-2", "dock", "gate"]


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    with OnnxRuntimeRunner(write_model(tmp_path_factory.mktemp("model")), threads=1) as r:
        yield r


@pytest.fixture(scope="module")
def served(runner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict]]:
    """``open_live_page`` over four cameras, as ``glcf inspect --serve`` opens it; line-1 and
    line-2 fed to their end, dock until it reconnected (then closed), gate until it gave up."""
    folder = tmp_path_factory.mktemp("video")
    video = write_stripes_video(folder / "clip.avi", [False] * 12)
    opened = iter([True])
    cameras = {
        "line-1": SyntheticCamera("line-1", 0, every=5, count=20),
        "line-2": SyntheticCamera("line-2", 1, every=4, broken=5, count=12),
        "dock": LiveSource("dock", lambda: cv2.VideoCapture(str(video)), backoff=(0.01, 0.01)),
        "gate": LiveSource(  # opens once; after the file ends, reopening fails: it gives up
            "gate", lambda: cv2.VideoCapture(str(video if next(opened, False) else folder / "gone.avi")),
            backoff=(0.01, 0.01), max_retries=1),
    }
    with open_live_page(runner, cameras, None, "0", TOKEN) as server:
        state = server.state
        feed(runner, state, {n: cameras[n] for n in ("line-1", "line-2", "gate")})
        with FeedThread(runner, state, {"dock": cameras["dock"]}):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                cameras["dock"].reconnects >= 1 and state.camera("dock").frames > 0):
                time.sleep(0.05)
        cameras["dock"].close()
        yield server, cameras


def api(server: LiveServer, route: str):
    code, _, body = get(server.url + route, TOKEN, bearer=True)
    assert code == 200, (route, body)
    return json.loads(body)


def test_status_lists_every_camera(served) -> None:
    server, _ = served
    status = api(server, "api/status")
    found = {c["name"]: c for c in status["cameras"]}
    assert list(found) == NAMES
    assert (found["line-1"]["frames"], found["line-1"]["anomalies"]) == (20, 4)
    assert (found["line-2"]["frames"], found["line-2"]["anomalies"]) == (10, 3)
    assert found["line-2"]["errors"] == {"unreadable": 2}
    for name in ("dock", "gate"):  # live: frames dropped, so counted against the records
        scored = [r for r in api(server, f"api/results?camera={name}") if "score" in r]
        assert found[name]["frames"] == len(scored) > 0, name
        assert found[name]["last_score"] == pytest.approx(scored[-1]["score"])
    assert found["dock"]["reconnects"] >= 1 and found["dock"]["errors"]["outage"] >= 1
    assert found["gate"]["up"] is False and "gave up" in found["gate"]["failed"]
    assert found["line-1"]["up"] and found["line-2"]["up"]
    for key in ("frames", "anomalies", "errors_total"):  # the totals, as before
        assert status[key] == sum(c[key] for c in found.values()), key
    assert found["dock"]["up"] is False and found["dock"]["failed"] is None  # closed
    assert status["source"]["up"] is False and status["source"]["down"] == ["dock", "gate"]
    assert status["model"]["threshold"] == 0.5 and status["running"] is True


def test_metrics_have_each_cameras_series(served) -> None:
    server, _ = served
    status = api(server, "api/status")
    code, headers, body = get(server.url + "metrics", TOKEN, bearer=True)
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    values = metric_values(body.decode())
    for c in status["cameras"]:
        label = (("camera", c["name"]),)
        assert values[("glcf_frames_total", label)] == c["frames"], c["name"]
        assert values[("glcf_anomalies_total", label)] == c["anomalies"]
        assert values[("glcf_latency_seconds_count", label)] == c["frames"]
        assert values[("glcf_source_up", label)] == (1.0 if c["up"] else 0.0)
        assert values[("glcf_source_reconnects_total", label)] == c["reconnects"]
        for kind, count in c["errors"].items():
            assert values[("glcf_errors_total", (*label, ("kind", kind)))] == count
    assert values[("glcf_errors_total", (("camera", "line-2"), ("kind", "unreadable")))] == 2
    per_frame = {"glcf_frames_total", "glcf_anomalies_total", "glcf_errors_total", "glcf_fps",
                 "glcf_latency_seconds_count", "glcf_last_score", "glcf_source_up",
                 "glcf_source_reconnects_total"}
    for name, labels in values:
        if name in per_frame:
            assert dict(labels).get("camera") in NAMES, (name, labels)
    assert {dict(k[1])["camera"] for k in values if k[0] == "glcf_frames_total"} == set(NAMES)


def test_each_cameras_latest_frame(served) -> None:
    server, _ = served
    images = {}
    for name in NAMES:
        code, headers, body = get(server.url + f"frame.jpg?camera={name}", TOKEN)
        assert code == 200 and headers["Content-Type"] == "image/jpeg", name
        record = json.loads(headers["X-Frame-Record"])
        assert record["source"] == name and "score" in record
        images[name] = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert images[name].shape == (240, 320, 3)
    default = get(server.url + "frame.jpg", TOKEN)
    assert json.loads(default[1]["X-Frame-Record"])["source"] == "line-1"  # the first camera
    assert default[2] == get(server.url + "frame.jpg?camera=line-1", TOKEN)[2]
    assert np.abs(images["line-1"].astype(int) - images["line-2"]).mean() > 5
    code, _, body = get(server.url + "frame.jpg?camera=nowhere", TOKEN)
    assert code == 404 and all(name in json.loads(body)["error"] for name in NAMES)
    parts = read_mjpeg(server.url + f"stream.mjpg?camera=line-2&token={TOKEN}", 1)
    assert cv2.imdecode(np.frombuffer(parts[0], np.uint8), 1).shape == (240, 320, 3)


def test_per_camera_routes_keep_the_token_and_host_rules(served) -> None:
    server, _ = served
    for route in ("frame.jpg?camera=dock", "stream.mjpg?camera=dock", "api/timeline",
                  "api/results?camera=dock", "api/events?after=0", "static/tiles.js"):
        assert get(server.url + route)[0] == 401, route
        assert get(server.url + route, "wrong", bearer=True)[0] == 401, route
    headers = {"Host": "rebind.example", "Authorization": f"Bearer {TOKEN}"}
    request = urllib.request.Request(server.url + "frame.jpg?camera=dock", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    code, _, body = get(server.url + "healthz")  # no token; one camera closed, one gave up
    assert code == 503 and body == b"cameras down: dock, gate\n"


def test_timeline_and_events_per_camera(served) -> None:
    server, _ = served
    timeline = api(server, "api/timeline")
    status = api(server, "api/status")
    assert list(timeline["cameras"]) == NAMES
    for c in status["cameras"]:
        points = timeline["cameras"][c["name"]]
        assert len(points) == c["frames"] + c["errors_total"], c["name"]
        assert sum(p[2] is True for p in points) == c["anomalies"]
    assert list(api(server, "api/timeline?camera=gate")["cameras"]) == ["gate"]
    events = read_events(server.url + f"api/events?after={timeline['seq'] - 3}&token={TOKEN}", 1)
    assert len(events[0]["records"]) >= 3 and events[0]["seq"] >= timeline["seq"]
    assert [c["name"] for c in events[0]["status"]["cameras"]] == NAMES
