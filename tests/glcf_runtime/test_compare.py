"""``glcf_runtime.compare``: a runner's outputs over many frames, the one Spearman (ties share their
average rank, as scipy's), and ``gates.json`` as the export wrote it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from glcf_bench.fixtures.contract_model import frame, write_model
from glcf_runtime.artifacts import GATES_FILE
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.compare import average_ranks, infer_all, read_gates, spearman
from glcf_runtime.errors import ConfigError

TIED = [  # score vectors with ties, as a quantized graph gives them
    (np.array([0.1, 0.2, 0.2, 0.3, 0.4]), np.array([1.0, 2.0, 3.0, 4.0, 5.0])),
    (np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0]), np.array([3.0, 1.0, 2.0, 2.0, 5.0, 4.0])),
    (np.round(np.random.default_rng(0).normal(size=64), 1),
     np.round(np.random.default_rng(1).normal(size=64), 1)),
    (np.array([0.5, 0.25, 0.25, 0.75, 0.25, 1.0, 0.0]), np.array([2, 1, 1, 3, 1, 3, 0], float)),
]


@pytest.mark.parametrize(("a", "b"), TIED)
def test_spearman_is_scipys_with_ties(a: np.ndarray, b: np.ndarray) -> None:
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman(b, a) == pytest.approx(spearman(a, b), abs=1e-12)


def test_tied_scores_are_not_ranked_by_their_order() -> None:
    a, b = TIED[0]  # two frames tie in a; b orders them: the rankings do not fully agree
    assert spearman(a, b) < 1.0
    assert spearman(a[::-1], b[::-1]) == pytest.approx(spearman(a, b))  # order of frames is no rank
    np.testing.assert_array_equal(average_ranks(a), [1, 2.5, 2.5, 4, 5])


def test_spearman_without_ties_small_and_undefined() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=40), rng.normal(size=40)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman(a, a * 3 + 1) == pytest.approx(1.0) and spearman(a, -a) == pytest.approx(-1.0)
    assert spearman([0.1, 0.2], [1.0, 3.0]) == 1.0 and spearman([0.1, 0.2], [3.0, 1.0]) == 0.0
    assert np.isnan(spearman(np.full(5, 0.3), a[:5]))  # a constant vector has no ranking
    assert spearman(np.full(5, 0.3), np.full(5, 0.7)) == 1.0  # two runs that tie every frame agree
    assert spearman(a, a) == 1.0 and spearman(TIED[0][0], TIED[0][0] * 2) == 1.0
    assert np.isnan(spearman(np.r_[np.nan, a[1:5]], a[:5]))
    assert not spearman(np.full(5, 0.3), a[:5]) >= 0.99  # a gate on it fails
    with pytest.raises(ValueError, match="5 scores against 4"):
        spearman(a[:5], a[:4])


@pytest.fixture
def images() -> np.ndarray:
    return np.stack([frame(anomalous=i % 3 == 0, seed=i) for i in range(7)])


def test_infer_all_in_batches_equals_one_at_a_time(tmp_path: Path, images: np.ndarray) -> None:
    with OnnxRuntimeRunner(write_model(tmp_path), providers=["cpu"]) as runner:
        one = [runner.infer(images[i : i + 1]) for i in range(len(images))]
        expected_maps = np.concatenate([m.copy() for m, _ in one])
        expected_scores = np.concatenate([s.copy() for _, s in one])
        for batch in (1, 3, 4, None, 100):
            out = infer_all(runner, images, batch)
            assert out.scores.shape == (7,) and out.maps.shape == (7, *images.shape[1:3])
            np.testing.assert_allclose(out.scores, expected_scores, rtol=1e-6)
            np.testing.assert_allclose(out.maps, expected_maps, rtol=1e-6, atol=1e-7)
        scores, maps = infer_all(runner, images, 2)  # unpacks as (scores, maps)
        assert maps.shape == (7, *images.shape[1:3])
        assert scores[0] > scores[1]  # frame 0 is the anomalous one
        empty = infer_all(runner, images[:0], 4)
        assert empty.scores.shape == (0,) and empty.maps.shape == (0, *images.shape[1:3])
        with pytest.raises(ConfigError, match="batch 0: give 1 or more"):
            infer_all(runner, images, 0)


def test_infer_all_keeps_to_a_fixed_batch_engine(tmp_path: Path, images: np.ndarray) -> None:
    with OnnxRuntimeRunner(write_model(tmp_path, batch=1), providers=["cpu"]) as runner:
        assert runner.max_batch == 1
        out = infer_all(runner, images, 4)  # capped at the graph's batch of 1, not refused
        whole = [runner.infer(images[i : i + 1])[1].copy() for i in range(len(images))]
        np.testing.assert_allclose(out.scores, np.concatenate(whole), rtol=1e-6)


def test_read_gates(tmp_path: Path) -> None:
    assert read_gates(tmp_path) == {}  # an older export
    gates = {"int8": {"passed": True, "figures": {"spearman": 0.998}}}
    (tmp_path / GATES_FILE).write_text(json.dumps(gates))
    assert read_gates(tmp_path) == gates
    (tmp_path / GATES_FILE).write_text("[1, 2]")
    assert read_gates(tmp_path) == {}
    (tmp_path / GATES_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match=rf"{GATES_FILE} cannot be read .*glcf export"):
        read_gates(tmp_path)


def test_compare_needs_numpy_only() -> None:
    code = ("import sys, glcf_runtime.compare\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'torch', "
            "'onnxruntime', 'openvino', 'tensorrt') or m.startswith('glcf_runtime.backends'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
