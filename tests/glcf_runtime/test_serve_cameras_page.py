"""The live page with four cameras in headless Chromium: one tile per camera with its name, live
frame, verdict, counters and timeline, all updating while a real runner scores each camera's
frames; keyboard and screen-reader names on every tile; no console error.

``GLCF_SCREENSHOT=docs/live-page-cameras.png`` writes the screenshot there (the docs' picture);
without it, the screenshot goes to the test's temporary folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_model
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.serve import LiveServer, open_live_page
from tests.browser import open_browser
from tests.glcf_runtime.camera_feed import FeedThread, SyntheticCamera

TOKEN = "grid-of-four"
NAMES = ["line-1 infeed", "line-1 outfeed", "line-2 capper", "dock"]
TILE_COUNTERS = """
return Array.from(document.querySelectorAll('.tile')).map(tile => ({
  name: tile.querySelector('h2').textContent,
  labelled: document.getElementById(tile.getAttribute('aria-labelledby')).textContent,
  alt: tile.querySelector('img').alt,
  seq: tile.querySelector('img').dataset.seq || null,
  verdict: tile.querySelector('.verdict').textContent,
  state: tile.querySelector('.pill').textContent,
  points: Number(tile.querySelector('canvas').dataset.points || 0),
  canvas: tile.querySelector('canvas').getAttribute('aria-label'),
  link: tile.querySelector('a').tabIndex === 0 && tile.querySelector('a').href,
  stats: Object.fromEntries(Array.from(tile.querySelectorAll('dd'))
    .map(dd => [dd.dataset.key, dd.textContent])),
}));
"""


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    with OnnxRuntimeRunner(write_model(tmp_path_factory.mktemp("model")), threads=1) as r:
        yield r


@pytest.fixture
def four_cameras(runner) -> Iterator[LiveServer]:
    """Four cameras at about 10 frames a second each, scored on a feeder thread; the third has
    an unreadable frame every 11th."""
    cameras = {
        name: SyntheticCamera(name, seed, every=7 + seed, broken=11 if seed == 2 else 0, fps=40.0)
        for seed, name in enumerate(NAMES)
    }
    with open_live_page(runner, cameras, None, "0", TOKEN) as server, \
            FeedThread(runner, server.state, cameras):
        yield server


def test_four_cameras_in_headless_chromium(four_cameras: LiveServer, tmp_path: Path) -> None:
    server = four_cameras
    with open_browser(1280, 900) as browser:
        browser.open(f"{server.url}?token={TOKEN}", wait_for=".tile")
        tiles = browser.wait_until(
            lambda: (found := browser.run(TILE_COUNTERS)) and len(found) == 4
            and all(t["seq"] and int(t["stats"]["frames"]) > 0 for t in found) and found,
            20, "four tiles, each with a frame")
        assert [t["name"] for t in tiles] == NAMES
        for tile in tiles:
            name = tile["name"]
            assert tile["labelled"] == name and name in tile["alt"] and name in tile["canvas"]
            assert tile["link"].endswith("frame.jpg?camera=" + name.replace(" ", "%20"))
            assert tile["state"] == "running"
            # the verdict of the frame on screen; an unreadable frame's error until the next one
            assert "score" in tile["verdict"] or (name == NAMES[2] and "ERROR" in tile["verdict"])
        assert browser.run("return document.body.classList.contains('several')")
        assert browser.run("return getComputedStyle(document.querySelector('.live')).display") == "none"
        first = {t["name"]: t["seq"] for t in tiles}
        tiles = browser.wait_until(
            lambda: (found := browser.run(TILE_COUNTERS))
            and all(t["seq"] != first[t["name"]] and t["points"] > 10 for t in found)
            and any(int(t["stats"]["anomalies"]) > 0 for t in found)
            and int(found[2]["stats"]["errors"].split()[0]) > 0 and found,
            30, "newer frames, timelines and counters on every tile")
        assert "unreadable" in tiles[2]["stats"]["errors"]
        assert browser.run("return document.getElementById('counters-title').textContent") \
            == "All cameras"
        totals = int(browser.run("return document.getElementById('frames').textContent"))
        assert totals >= sum(int(t["stats"]["frames"]) for t in tiles) - 8  # a moment apart
        browser.wait_until(lambda: browser.run(
            "return document.querySelectorAll('#gallery img').length"), 15, "a flagged frame")
        time.sleep(3.0)  # let the timelines fill, the gallery's images load
        shot = browser.screenshot(Path(os.environ.get("GLCF_SCREENSHOT", tmp_path / "grid.png")))
        assert 10_000 < shot.stat().st_size < 300_000
        # every image with a source has pixels (the one-camera view's <img> stays hidden, empty)
        browser.wait_until(lambda: not [s for s in browser.broken_images() if s], 5,
                           "every image loaded")
        assert browser.console_errors() == []
