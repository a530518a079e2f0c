"""`glcf eval` says when a LOCO ground truth looks binarised: one pixel value for every defect,
so per-type names and sPRO saturations cannot be right."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from glcf_cli import app
from glcf_train import evaluate
from glcf_train.data.datasets import detect_layout, read_split
from glcf_train.data.synth import generate


def _binarise(root: Path) -> None:
    for png in root.rglob("ground_truth/**/*.png"):
        mask = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
        assert cv2.imwrite(str(png), np.where(mask > 0, 255, 0).astype(np.uint8))


@pytest.fixture(scope="module")
def cable_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gt")
    generate(root, ["cable_pair"], n_train=1, n_val=1, n_test=6, seed=0, image_size=64)
    return root


def _names(root: Path) -> tuple[list[str], tuple[str, ...]]:
    samples = read_split(root, "cable_pair", "test")
    return evaluate.defect_names(detect_layout(root, "cable_pair"), root / "cable_pair", samples)


def test_binarised_masks_are_noted_and_typed_masks_are_not(cable_root: Path, tmp_path: Path) -> None:
    names, notes = _names(cable_root)
    assert notes == () and len(set(names) - {"good"}) > 2  # several defect types, named
    copy = tmp_path / "copy"
    shutil.copytree(cable_root, copy)
    _binarise(copy)
    names, notes = _names(copy)
    assert set(names) - {"good"} == {names[-1]}  # every defect now reads as one type
    (note,) = notes
    assert "all 12 anomalous test images" in note and "pixel value, 255" in note
    assert str(copy / "cable_pair" / "defects_config.json") in note and "original ground truth" in note


def test_eval_prints_the_note_and_keeps_it_in_json_and_report(
        calibrated_run: Path, synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "data"
    shutil.copytree(synth_root, copy)
    _binarise(copy)
    monkeypatch.setattr(evaluate, "BINARISED_MIN_IMAGES", 2)  # the session's run has 4 anomalies
    out = CliRunner().invoke(app, ["eval", str(calibrated_run), "--data", str(copy), "--device", "cpu",
                                   "--json", str(tmp_path / "eval.json"), "--report", str(tmp_path / "report")],
                             terminal_width=400)
    assert out.exit_code == 0, out.output
    assert "note: all 4 anomalous test images" in out.output
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["notes"] and "binarised" in saved["notes"][0]
    html = (tmp_path / "report" / "index.html").read_text()
    assert 'class="warning"' in html and "all 4 anomalous test images" in html
