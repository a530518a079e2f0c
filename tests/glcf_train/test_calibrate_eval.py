"""calibrate → eval on a briefly trained tiny run: statistics, threshold, records, TIFFs, heat maps."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch

from calibration.settings import CalibrationSettings
from glcf_runtime.preprocess import PreprocessSpec
from glcf_train.builder import load_run
from glcf_train.calibrate import NotCalibrated, calibrate_run
from glcf_train.config import BranchMode
from glcf_train.data.datasets import load_images, read_split
from glcf_train.evaluate import evaluate_run
from glcf_train.scoring import BRANCHES, SCALES, FusionStats, GaussianBlur, calibration_maps


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, trained_run: Path) -> Path:
    """A private copy of the session's trained run, calibrated by the tests below."""
    out = tmp_path_factory.mktemp("calib") / "run"
    shutil.copytree(trained_run, out)
    return out


def test_eval_before_calibration_says_what_to_run(run: Path) -> None:
    with pytest.raises(NotCalibrated, match="glcf calibrate"):
        evaluate_run(run, device="cpu", progress=False)


def test_calibration_normalises_training_maps(run: Path, synth_root: Path) -> None:
    result = calibrate_run(run, CalibrationSettings(device="cpu"), progress=False)
    saved = json.loads((run / "calibration.json").read_text())
    assert FusionStats.from_dict(saved["stats"]) == result.stats
    assert saved["threshold"]["threshold"] == pytest.approx(result.threshold.threshold)
    assert len(saved["validation_scores"]) == 4
    assert result.threshold.threshold >= max(saved["validation_scores"])
    # With μ, σ applied, the training maps have mean spatial mean 0 and mean spatial std 1.
    model, _, _ = load_run(run)
    images = load_images(read_split(synth_root, "breakfast_tray", "train"), PreprocessSpec())
    with torch.no_grad():
        maps = calibration_maps(model(torch.from_numpy(images)), 224, GaussianBlur(4.0))
    for b, branch in enumerate(BRANCHES):
        for i, scale in enumerate(SCALES):
            z = (maps[(branch, scale)].double() - result.stats.mu[b][i]) / result.stats.sigma[b][i]
            assert float(z.mean(dim=(1, 2)).mean()) == pytest.approx(0.0, abs=1e-5)
            assert float(z.std(dim=(1, 2), unbiased=False).mean()) == pytest.approx(1.0, abs=1e-5)


def test_eval_writes_records_maps_and_heat_maps(run: Path, tmp_path: Path) -> None:
    if not (run / "calibration.json").exists():
        calibrate_run(run, CalibrationSettings(device="cpu"), progress=False)
    result = evaluate_run(run, json_out=tmp_path / "eval.json", save_maps=tmp_path / "maps",
                          overlays=tmp_path / "overlays", device="cpu", progress=False)
    for key in ("logical_image_auroc", "structural_image_auroc", "mean_image_auroc",
                "logical_spro_0.05", "structural_spro_0.05", "mean_spro_0.05"):
        assert 0.0 <= result.metrics[key] <= 1.0, key
    data = json.loads((tmp_path / "eval.json").read_text())
    assert len(data["records"]) == 6
    assert {r["defect_type"] for r in data["records"]} == {"good", "logical_anomalies",
                                                          "structural_anomalies"}
    assert all(set(r) == {"path", "label", "defect_type", "kind", "score", "defect"}
               for r in data["records"])
    tiff = tifffile.imread(tmp_path / "maps" / "logical_anomalies" / "000.tiff")
    assert tiff.dtype == np.float32 and tiff.shape == (256, 256)
    picture = cv2.imread(str(tmp_path / "overlays" / "structural_anomalies" / "001.png"))
    assert picture is not None and picture.shape[0] == 256 and picture.shape[1] >= 512


def test_branch_mode_override(run: Path) -> None:
    if not (run / "calibration.json").exists():
        calibrate_run(run, CalibrationSettings(device="cpu"), progress=False)
    local = evaluate_run(run, branch_mode=BranchMode.LOCAL, device="cpu", progress=False)
    glob = evaluate_run(run, branch_mode=BranchMode.GLOBAL, device="cpu", progress=False)
    assert local.branch_mode == "local" and glob.branch_mode == "global"
    assert [r.score for r in local.records] != [r.score for r in glob.records]


def test_calibrate_chooses_scoring_without_retraining(tmp_path: Path, trained_run: Path,
                                                      synth_root: Path) -> None:
    """`--score-rule max --normalisation position`: the calibration stores the choice and position
    maps that z-score the training error maps per position; eval scores that way."""
    from glcf_runtime.errors import ConfigError
    from glcf_train.calibrate import scorer_for
    from glcf_train.config import Normalisation, ScoreRule
    from glcf_train.scoring import error_maps

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    _, cfg, _ = load_run(run)
    before = cfg.hash()
    result = calibrate_run(run, CalibrationSettings(device="cpu", scoring={
        "score_rule": "max", "normalisation": "position"}), progress=False)
    saved = json.loads((run / "calibration.json").read_text())
    assert saved["scoring"]["normalisation"] == "position" and saved["scoring"]["score_rule"] == "max"
    assert saved["config_hash"] == before  # the training config is untouched
    stats = FusionStats.from_dict(saved["stats"])
    assert stats.position is not None and stats.position.mu[0][0].shape == (56, 56)
    model, _, _ = load_run(run)
    images = load_images(read_split(synth_root, "breakfast_tray", "train"), PreprocessSpec())
    with torch.no_grad():
        native = error_maps(model(torch.from_numpy(images)))
    local56 = native["local"][0].double().numpy()
    np.testing.assert_allclose(stats.position.mu[0][0], local56.mean(0), rtol=1e-4)
    assert np.all(stats.position.sigma[0][0] >= local56.std(0) * (1 - 1e-4))
    scorer, _ = scorer_for(run, cfg)
    assert scorer.cfg.normalisation is Normalisation.POSITION and scorer.cfg.score_rule is ScoreRule.MAX
    evaluated = evaluate_run(run, device="cpu", progress=False, json_out=tmp_path / "eval.json")
    assert 0.0 <= evaluated.metrics["mean_image_auroc"] <= 1.0
    written = json.loads((tmp_path / "eval.json").read_text())["scoring"]
    assert written["normalisation"] == "position" and written["score_rule"] == "max"
    assert result.threshold.threshold >= max(saved["validation_scores"])
    with pytest.raises(ConfigError, match=r"scoring\.normalisation.*'pixel'.*\['image', 'position'\]"):
        calibrate_run(run, CalibrationSettings(device="cpu", scoring={"normalisation": "pixel"}), progress=False)


def test_cli_refuses_an_unknown_scoring_choice(trained_run: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """One line naming the option and its choices, exit 2, and the run folder is left as it was."""
    import sys

    from glcf_cli import main

    before = sorted(p.name for p in trained_run.iterdir())
    monkeypatch.setattr(sys, "argv", ["glcf", "calibrate", str(trained_run), "--device", "cpu",
                                      "--normalisation", "pixel"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = " ".join(capsys.readouterr().err.split())
    assert exit_info.value.code == 2
    assert "scoring.normalisation: 'pixel' is not one of ['image', 'position']" in err, err
    assert sorted(p.name for p in trained_run.iterdir()) == before


def _edited_calibration(calibrated_run: Path, where: Path, edit) -> Path:
    """A copy of the calibrated run whose calibration.json went through ``edit(dict)``."""
    run = where / "run"
    shutil.copytree(calibrated_run, run)
    calib = json.loads((run / "calibration.json").read_text())
    edit(calib)
    (run / "calibration.json").write_text(json.dumps(calib))  # writes NaN / Infinity literals
    return run


@pytest.mark.parametrize(("key", "edit"), [
    ("threshold.threshold", lambda c: c["threshold"].update(threshold=float("nan"))),
    ("threshold.threshold", lambda c: c["threshold"].update(threshold=float("inf"))),
    ("map_range[1]", lambda c: c["map_range"].__setitem__(1, float("inf"))),
    ("stats.local.28.sigma", lambda c: c["stats"]["local"]["28"].update(sigma=float("-inf"))),
    ("validation_scores[0]", lambda c: c["validation_scores"].__setitem__(0, float("nan"))),
    ("threshold.threshold", lambda c: c["threshold"].update(threshold=10 ** 400)),
])
def test_non_finite_calibration_values_are_refused_where_read(
        calibrated_run: Path, tmp_path: Path, key: str, edit) -> None:
    from glcf_runtime.errors import DataError
    from glcf_train.calibrate import scorer_for

    run = _edited_calibration(calibrated_run, tmp_path, edit)
    _, cfg, _ = load_run(run)
    with pytest.raises(DataError, match=rf"calibration\.json: {re.escape(key)} is .*finite.*"
                                        r"glcf calibrate"):
        scorer_for(run, cfg)


def test_eval_refuses_a_nan_threshold(calibrated_run: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """It printed "GLCF ≥ nan, 0 % caught" and exit 0."""
    import sys

    from glcf_cli import main

    run = _edited_calibration(calibrated_run, tmp_path,
                              lambda c: c["threshold"].update(threshold=float("nan")))
    monkeypatch.setattr(sys, "argv", ["glcf", "eval", str(run), "--device", "cpu"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    err = " ".join(err.split())
    assert exit_info.value.code == 2 and "nan" not in out, out
    assert f"{run / 'calibration.json'}: threshold.threshold is NaN" in err, err
    assert f"run glcf calibrate {run} again" in err, err


def test_calibrate_says_when_the_validation_images_are_too_few(tmp_path: Path, trained_run: Path) -> None:
    from typer.testing import CliRunner

    from glcf_cli import app

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    out = CliRunner().invoke(app, ["calibrate", str(run), "--device", "cpu"], terminal_width=400)
    assert out.exit_code == 0, out.output
    assert ("note: 4 good images are too few for the 0.99 quantile (it needs 100 or more)"
            in " ".join(out.output.split())), out.output
    out = CliRunner().invoke(app, ["calibrate", str(run), "--device", "cpu", "--quantile", "0.7"],
                             terminal_width=400)
    assert out.exit_code == 0 and "note:" not in out.output, out.output  # 4 images suffice for 0.7
