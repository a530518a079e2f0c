"""The FP16 file's check: a rank agreement that cannot be computed fails, never passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glcf_bench.fixtures.contract_model import SIZE, write_model
from glcf_export.checks import CheckReport, check_fp16
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.compare import Outputs


def test_constant_fp16_scores_fail_the_rank_check(tmp_path: Path) -> None:
    """Identical frames: the file under check scores them all alike, so Spearman against the
    FP32 scores is NaN; the check reports it as a failure (a NaN compared with >= is False)."""
    grey = np.full((4, SIZE, SIZE, 3), 128, np.uint8)
    fp32 = Outputs(scores=np.array([0.1, 0.2, 0.3, 0.4], np.float32),
                   maps=np.zeros((4, SIZE, SIZE), np.float32))
    report = CheckReport()
    with OnnxRuntimeRunner(write_model(tmp_path), threads=1) as runner:
        check_fp16(report, runner, fp32, grey, batch=2)
    assert np.isnan(report.figures["fp16_spearman"])
    assert any("FP16: Spearman of scores vs FP32 nan" in f for f in report.failures), report.failures


def test_agreeing_fp16_scores_pass(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)
    report = CheckReport()
    with OnnxRuntimeRunner(write_model(tmp_path), threads=1) as runner:
        maps, scores = runner.infer(frames)
        check_fp16(report, runner, Outputs(scores=scores.copy(), maps=maps.copy()), frames, batch=2)
    assert report.failures == [] and report.figures["fp16_spearman"] == 1.0
