"""The smallest plain folder the docs accept (docs/workflow.md) (20 good images: 18 train, 2 held out for
validation) goes all the way through the CLI: train → calibrate → export."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import pytest

from glcf_export.checks import MIN_CHECK_IMAGES
from glcf_train.data.datasets import read_split


def _folder(tmp_path: Path, n: int) -> Path:
    """A plain folder of ``n`` real, varied good scenes."""
    from glcf_train.data.scenes import render
    from glcf_train.data.synth import example

    folder = tmp_path / f"good-{n}"
    folder.mkdir()
    for i in range(n):
        scene = example("breakfast_tray", "train", "good", i).scene
        assert cv2.imwrite(str(folder / f"{i:02d}.png"), render(scene, 96))
    return folder


def _glcf(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI in this process; its output with whitespace runs collapsed (exit 0 asserted)."""
    from glcf_cli import main

    monkeypatch.setattr(sys, "argv", ["glcf", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    assert exit_info.value.code == 0, out.out + out.err
    return " ".join((out.out + out.err).split())


def test_a_20_image_plain_folder_trains_calibrates_and_exports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, 20)
    assert len(read_split(folder, None, "validation")) < MIN_CHECK_IMAGES  # the case at stake
    run, models = tmp_path / "run", tmp_path / "models"
    monkeypatch.setenv("COLUMNS", "200")
    _glcf(monkeypatch, capsys, "train", "--data", str(folder), "--preset", "tiny", "--random-init",
          "--steps", "2", "--batch-size", "2", "--device", "cpu", "--out", str(run))
    _glcf(monkeypatch, capsys, "calibrate", str(run), "--device", "cpu")
    out = _glcf(monkeypatch, capsys, "export", str(run), "--out", str(models), "--batch", "4",
                "--no-int8")
    assert (f"warning: {folder} gives only 2 validation images; the export checks also use "
            f"{MIN_CHECK_IMAGES - 2} of its training images") in out
    for name in ("model.onnx", "model.fp16.onnx", "export_report.json"):
        assert (models / name).is_file(), name
    assert not (models / "model.int8.onnx").exists()  # --no-int8
    gates = json.loads((models / "gates.json").read_text())
    assert "int8" not in gates and "openvino-bf16" in gates  # the BF16 gate runs as before
    assert "openvino-bf16: " in out  # each gate printed
    figures = json.loads((models / "export_report.json").read_text())["figures"]
    assert figures["fp32_b4_map_err_rel_range"] <= 1e-4 and figures["fp16_spearman"] >= 0.999


def test_check_images_top_up_from_training_only_when_needed(tmp_path: Path) -> None:
    from glcf_export.checks import check_samples
    from glcf_train.data.synth import generate

    said: list[str] = []
    folder = _folder(tmp_path, 20)
    samples = check_samples(folder, None, said.append)
    val = [s.path for s in read_split(folder, None, "validation")]
    train = [s.path for s in read_split(folder, None, "train")]
    assert len(samples) == MIN_CHECK_IMAGES and [s.path for s in samples[:2]] == val
    assert [s.path for s in samples[2:]] == [train[0], train[-1]]  # spread over training
    assert len(said) == 1 and said[0].startswith("warning:")
    # 2 validation images, but test images complete the set: no training image, no warning
    said.clear()
    generate(tmp_path / "loco", ["breakfast_tray"], n_train=1, n_val=2, n_test=1, image_size=64)
    samples = check_samples(tmp_path / "loco", "breakfast_tray", said.append)
    assert not said and len(samples) == 5
    assert {s.path.parts[-3] for s in samples} == {"validation", "test"}


def test_a_folder_too_small_for_the_checks_is_refused_with_the_count(tmp_path: Path) -> None:
    from glcf_export.checks import check_samples
    from glcf_export.onnx_export import ExportError

    folder = _folder(tmp_path, 3)
    refusal = rf"at least {MIN_CHECK_IMAGES} images of .*good-3; found 3"
    with pytest.raises(ExportError, match=refusal):
        check_samples(folder, None, lambda _: None)
