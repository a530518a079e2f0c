"""A calibrated run evaluated once with its report and the PatchCore baseline (shared by the
report tests and the browser test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def reported_run(tmp_path_factory: pytest.TempPathFactory, trained_run: Path):
    """``(run, EvalResult)``: a copy of ``trained_run`` calibrated with ``target_fpr=0``, then
    evaluated with ``report=run/report`` and the PatchCore baseline. Do not modify."""
    from calibration.settings import CalibrationSettings
    from glcf_train.baseline import Baseline
    from glcf_train.calibrate import calibrate_run
    from glcf_train.evaluate import evaluate_run

    run = tmp_path_factory.mktemp("reported") / "run"
    shutil.copytree(trained_run, run)
    calibrate_run(run, CalibrationSettings(device="cpu", target_fpr=0.0), progress=False)
    result = evaluate_run(run, device="cpu", progress=False, report=run / "report",
                          baseline=Baseline.PATCHCORE, json_out=run / "eval.json")
    return run, result
