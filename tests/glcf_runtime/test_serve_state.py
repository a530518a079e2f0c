"""The live page's state (glcf_runtime.serve.LiveState) without a server: its own copy of each
map, and the flagged-frame gallery."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from glcf_bench.fixtures.contract_model import write_model
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.serve import LiveState, model_card
from glcf_runtime.sinks import Result
from glcf_runtime.sources import Frame


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    with OnnxRuntimeRunner(write_model(tmp_path_factory.mktemp("model")), threads=1) as r:
        yield r


def test_state_keeps_its_own_copy_of_the_map(runner) -> None:
    """The backend may overwrite its output buffer after write(): the page must not change."""
    state = LiveState(model_card(runner, runner.threshold))
    image = np.full((48, 64, 3), 128, np.uint8)
    buffer = np.zeros((64, 64), np.float32)
    state.write(Result(Frame(0, time.time(), image), "t", 0.9, True, 1.0, buffer, 0.5))
    buffer[:] = 1.0  # the next batch lands in the same buffer
    kept = state.flagged[0].result
    assert not np.shares_memory(kept.anomaly_map, buffer) and kept.anomaly_map.max() == 0.0
    assert kept._view is None  # nothing drawn in write(): the server draws when asked
    page = cv2.imdecode(np.frombuffer(state.flagged_jpeg(1), np.uint8), cv2.IMREAD_COLOR)
    assert page.shape == (48, 64, 3)


def test_gallery_lists_the_newest_and_keeps_more_for_late_requests(runner) -> None:
    state = LiveState(model_card(runner, runner.threshold))
    image, anomaly_map = np.full((48, 64, 3), 128, np.uint8), np.zeros((64, 64), np.float32)
    for i in range(40):
        state.write(Result(Frame(i, time.time(), image), "t", 0.9, True, 1.0, anomaly_map, 0.5))
    listed = [f["id"] for f in state.status()["flagged"]]
    assert listed == list(range(40, 28, -1))  # the newest 12, newest first
    assert state.flagged_jpeg(20) is not None  # left the list, still fetchable
    assert state.flagged_jpeg(16) is None  # gone
