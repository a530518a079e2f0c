"""`glcf eval --compare-scoring`: every choice of `glcf calibrate`, scored as calibrate + eval would."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from calibration.settings import CalibrationSettings
from glcf_train.calibrate import calibrate_run
from glcf_train.compare import CHOICES, compare_scoring
from glcf_train.evaluate import evaluate_run


def test_each_row_is_what_calibrate_then_eval_gives(tmp_path: Path, trained_run: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    rows = compare_scoring(run, device="cpu", progress=False)
    assert [(r.score_rule, r.normalisation) for r in rows] == [(a.value, b.value) for a, b in CHOICES]
    assert not (run / "calibration.json").exists()  # the comparison writes nothing to the run
    for row in (rows[0], rows[3]):  # the paper's scoring and max / position
        calibration = calibrate_run(run, CalibrationSettings(
            device="cpu", scoring={"score_rule": row.score_rule,
                                   "normalisation": row.normalisation}), progress=False)
        result = evaluate_run(run, device="cpu", progress=False)
        assert row.threshold == pytest.approx(calibration.threshold.threshold, rel=1e-5)
        for kind in ("logical", "structural"):
            assert row.auroc[kind] == pytest.approx(result.metrics[f"{kind}_image_auroc"])
            low, high = row.interval[kind]
            assert 0.0 <= low <= high <= 1.0
        flagged = [r for r in result.records if r.kind == "good" and r.score >= result.threshold]
        assert row.caught["good"] == (len(flagged), sum(r.kind == "good" for r in result.records))


def test_cli_prints_the_table_and_the_command_to_run(trained_run: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from glcf_cli import main

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", ["glcf", "eval", str(trained_run), "--compare-scoring",
                                      "--device", "cpu", "--json", str(tmp_path / "rows.json")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert len(rows) == 4 and {r["normalisation"] for r in rows} == {"image", "position"}
    best = max(rows, key=lambda r: sum(r["auroc"].values()))
    assert (f"next: glcf calibrate {trained_run} --score-rule {best['score_rule']} "
            f"--normalisation {best['normalisation']}") in out
    assert "scoring choices on the test split" in out
