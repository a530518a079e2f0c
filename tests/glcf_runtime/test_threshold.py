"""The threshold of a run, resolved in one place: an explicit value, then ``threshold.json`` next to
the artifact, then the metadata; the live page, the loop and ``glcf inspect`` all use it, and
``glcf threshold --target-fpr`` chooses it as ``glcf calibrate --target-fpr`` does."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from calibration.threshold import select_threshold
from glcf_bench.fixtures.contract_model import write_images, write_model
from glcf_cli import app, main
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.errors import ConfigError
from glcf_runtime.files import file_sha256
from glcf_runtime.loop import inspect
from glcf_runtime.serve import open_live_page
from glcf_runtime.sources import image_files, open_source
from glcf_runtime.threshold import resolve_threshold, score_images

cli = CliRunner()


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):
    """Run ``glcf`` as the console script does: (exit code, stderr on one line)."""
    monkeypatch.setattr(sys, "argv", ["glcf", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, " ".join(capsys.readouterr().err.split())


def _refusal(call) -> str:
    with pytest.raises(ConfigError) as err:
        call()
    return str(err.value)


@pytest.mark.parametrize("threshold", [math.nan, math.inf, 1e39])
def test_the_live_page_refuses_a_bad_threshold_as_inspect_does(tmp_path: Path,
                                                              threshold: float) -> None:
    """The live page used to show an unusable --threshold on its model card without a check."""
    model = write_model(tmp_path / "export")
    write_images(tmp_path / "frames", [False])
    with OnnxRuntimeRunner(model, threads=1) as runner, open_source(str(tmp_path / "frames")) as src:
        by_inspect = _refusal(lambda: inspect(runner, src, threshold))
        by_page = _refusal(lambda: open_live_page(runner, src, threshold, "0"))
    assert by_page == by_inspect and by_page.startswith(f"--threshold {threshold}")


def test_the_live_page_refuses_an_unusable_threshold_json_as_inspect_does(tmp_path: Path) -> None:
    model = write_model(tmp_path / "export")
    write_images(tmp_path / "frames", [False])
    (tmp_path / "export" / "threshold.json").write_text('{"threshold": NaN, "config_hash": "cafe"}')
    with OnnxRuntimeRunner(model, threads=1) as runner, open_source(str(tmp_path / "frames")) as src:
        by_inspect = _refusal(lambda: inspect(runner, src))
        by_page = _refusal(lambda: open_live_page(runner, src, None, "0"))
    assert by_page == by_inspect and "threshold.json" in by_page and "glcf threshold" in by_page


def test_a_stale_threshold_json_is_flagged_on_the_page_and_ignored_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = write_model(tmp_path / "export")
    write_images(tmp_path / "frames", [False, True])
    (tmp_path / "export" / "threshold.json").write_text(
        json.dumps({"threshold": 0.2, "config_hash": "another export", "rule": "normal_quantile"}))
    with caplog.at_level(logging.WARNING), OnnxRuntimeRunner(model, threads=1) as runner, \
            open_source(str(tmp_path / "frames")) as src:
        card = open_live_page(runner, src, None, "0").state.status()["model"]
        summary = inspect(runner, src)
    assert card["threshold"] == summary.threshold == 0.5  # the metadata's
    assert card["threshold_origin"] == summary.threshold_origin
    assert summary.threshold_origin.endswith("is stale and was ignored)")
    assert sum("is ignored" in r.getMessage() for r in caplog.records) == 1


def test_precedence_explicit_then_threshold_json_then_metadata(tmp_path: Path) -> None:
    model = write_model(tmp_path / "export")
    with OnnxRuntimeRunner(model, threads=1) as runner:
        assert resolve_threshold(runner, None).value == 0.5
        assert resolve_threshold(runner, None).origin == "the model's metadata"
        assert resolve_threshold(runner, 0.25).value == 0.25
        assert resolve_threshold(runner, 0.25).origin == "--threshold"
    (tmp_path / "export" / "threshold.json").write_text(
        json.dumps({"threshold": 0.3, "config_hash": "cafe", "rule": "target_fpr",
                    "artifact": "model.onnx", "artifact_sha256": file_sha256(model), "roi": None}))
    with OnnxRuntimeRunner(model, threads=1) as runner:
        assert resolve_threshold(runner, None).value == 0.3
        assert "threshold.json (target_fpr on model.onnx)" in resolve_threshold(runner, None).origin
        assert resolve_threshold(runner, 0.25).value == 0.25
        runner.set_roi((0, 0, 32, 32))  # measured on the whole frame: no longer applies
        assert resolve_threshold(runner, None).value == 0.5


def test_glcf_threshold_target_fpr_on_an_export_folder(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    model = write_model(folder)
    good = write_images(tmp_path / "good", [False] * 10)[0].parent
    result = cli.invoke(app, ["threshold", str(folder), "--good", str(good), "--target-fpr", "0.1",
                              "--threads", "1"])
    assert result.exit_code == 0, result.output
    saved = json.loads((folder / "threshold.json").read_text())
    with OnnxRuntimeRunner(model, threads=1) as runner:
        scores = score_images(runner, image_files(good))
        expected = select_threshold(scores, None, target_fpr=0.1)
        assert resolve_threshold(runner, None).value == saved["threshold"]
    assert (saved["rule"], saved["target_fpr"], saved["n_normal"]) == ("target_fpr", 0.1, 10)
    assert saved["threshold"] == expected.threshold and saved["fpr"] == expected.fpr <= 0.1
    assert np.mean(scores >= saved["threshold"]) == saved["fpr"]
    text = " ".join(result.output.split())
    assert "target_fpr" in text and "threshold.json" in text


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "1"])
def test_target_fpr_is_checked_as_glcf_calibrate_checks_it(tmp_path: Path, monkeypatch, capsys,
                                                            value: str) -> None:
    """Before anything loads: a missing run, a broken model, images nobody could score."""
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not onnx")
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "000.png").write_bytes(b"not a png")
    message = f"--target-fpr {float(value)}: give a false-alarm rate in [0, 1)"
    code, err = _main(monkeypatch, capsys, "threshold", str(broken), "--good",
                      str(tmp_path / "good"), "--target-fpr", value)
    assert code == 2 and message in err, err
    code, err = _main(monkeypatch, capsys, "calibrate", str(tmp_path / "no-run"),
                      "--target-fpr", value)
    assert code == 2 and message in err, err
    assert not (tmp_path / "threshold.json").exists()


def test_target_fpr_with_anomalous_images_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    """The false-alarm rule uses good images alone; with anomalies the cut would be F1-optimal."""
    folder = tmp_path / "export"
    write_model(folder)
    good = write_images(tmp_path / "good", [False] * 4)[0].parent
    bad = write_images(tmp_path / "bad", [True] * 2)[0].parent
    code, err = _main(monkeypatch, capsys, "threshold", str(folder), "--good", str(good),
                      "--anomalous", str(bad), "--target-fpr", "0.1", "--threads", "1")
    assert code == 2 and "--target-fpr 0.1" in err and "--anomalous" in err, err
    assert not (folder / "threshold.json").exists()
