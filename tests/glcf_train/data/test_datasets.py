"""Readers for the MVTec LOCO, MVTec AD and plain-folder layouts, on real files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from glcf_runtime.errors import DataError, ImageReadError
from glcf_runtime.preprocess import PreprocessSpec
from glcf_train.data.datasets import (
    Layout,
    Sample,
    detect_layout,
    load_defects_config,
    load_images,
    load_mask,
    read_split,
)
from glcf_train.data.synth import generate

SPEC = PreprocessSpec(height=32, width=32)


def _write_images(folder: Path, n: int, size: tuple[int, int] = (40, 48)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        assert cv2.imwrite(str(path), np.full((*size, 3), 10 * i, np.uint8))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def loco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loco")
    generate(out, categories=["breakfast_tray"], n_train=4, n_val=2, n_test=2, image_size=64)
    return out


@pytest.fixture
def mvtec(tmp_path: Path) -> Path:
    """An MVTec AD category: 12 train images, 2 good and 2 "scratch" test images with masks."""
    root = tmp_path / "bottle"
    _write_images(root / "train" / "good", 12)
    _write_images(root / "test" / "good", 2)
    for path in _write_images(root / "test" / "scratch", 2):
        mask = np.zeros((40, 48), np.uint8)
        mask[5:10, 5:20] = 255
        truth = root / "ground_truth" / "scratch" / f"{path.stem}_mask.png"
        truth.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(truth), mask)
    return tmp_path


def test_reads_synthetic_loco(loco: Path) -> None:
    assert detect_layout(loco, "breakfast_tray") is Layout.LOCO
    train = read_split(loco, "breakfast_tray", "train")
    assert [s.path.name for s in train] == ["000.png", "001.png", "002.png", "003.png"]
    assert all(s.label == 0 and s.kind == "good" and not s.mask_paths for s in train)
    assert len(read_split(loco, "breakfast_tray", "validation")) == 2
    test = read_split(loco, "breakfast_tray", "test")
    assert [(s.defect_type, s.kind, s.label) for s in test] == [
        ("good", "good", 0),
        ("good", "good", 0),
        ("logical_anomalies", "logical", 1),
        ("logical_anomalies", "logical", 1),
        ("structural_anomalies", "structural", 1),
        ("structural_anomalies", "structural", 1),
    ]
    config = load_defects_config(loco / "breakfast_tray")
    for sample in test:
        mask = load_mask(sample, (64, 64, 3))
        assert mask.shape == (64, 64) and mask.dtype == bool
        assert mask.any() == bool(sample.label)
        for path in sample.mask_paths:
            values = set(np.unique(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))) - {0}
            assert values <= set(config)


def test_load_images_preprocesses_and_reports_progress(loco: Path) -> None:
    samples = read_split(loco, "breakfast_tray", "train")
    calls = []
    images = load_images(samples, SPEC, progress=lambda done, total: calls.append((done, total)))
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    same = load_images([str(s.path) for s in samples], SPEC)
    np.testing.assert_array_equal(images, same)
    assert load_images([], SPEC).shape == (0, 32, 32, 3)


def test_reads_mvtec_ad(mvtec: Path) -> None:
    assert detect_layout(mvtec, "bottle") is Layout.MVTEC_AD
    train = read_split(mvtec, "bottle", "train")
    validation = read_split(mvtec, "bottle", "validation")
    assert [s.path.name for s in validation] == ["009.png"]
    assert len(train) == 11 and "009.png" not in {s.path.name for s in train}
    test = read_split(mvtec, "bottle", "test")
    assert [(s.path.name, s.defect_type, s.kind, s.label) for s in test] == [
        ("000.png", "good", "good", 0),
        ("001.png", "good", "good", 0),
        ("000.png", "scratch", "structural", 1),
        ("001.png", "scratch", "structural", 1),
    ]
    assert test[2].mask_paths == (mvtec / "bottle/ground_truth/scratch/000_mask.png",)
    mask = load_mask(test[2], (40, 48))
    assert mask.sum() == 5 * 15 and mask[5:10, 5:20].all()
    assert not load_mask(test[0], (40, 48)).any()
    with pytest.raises(DataError, match=r"000_mask\.png"):
        load_mask(test[2], (64, 64))


def test_mvtec_ad_missing_mask_names_it(mvtec: Path) -> None:
    (mvtec / "bottle/ground_truth/scratch/001_mask.png").unlink()
    with pytest.raises(DataError, match=r"001_mask\.png"):
        read_split(mvtec, "bottle", "test")


def test_reads_plain_folder(tmp_path: Path) -> None:
    _write_images(tmp_path, 5)
    for category in (None, ""):
        assert detect_layout(tmp_path, category) is Layout.FOLDER
    assert [s.path.name for s in read_split(tmp_path, None, "validation")] == ["004.png"]
    assert [s.path.name for s in read_split(tmp_path, None, "train")] == [
        f"{i:03d}.png" for i in range(4)
    ]
    assert read_split(tmp_path, None, "test") == []


@pytest.mark.parametrize("layout", ["folder", "loco"])
@pytest.mark.parametrize("bad", ["corrupt.png", "notes.txt"])
def test_bad_file_in_train_folder_stops_loading(tmp_path: Path, layout: str, bad: str) -> None:
    root = tmp_path / "product"
    folder = root if layout == "folder" else root / "train" / "good"
    _write_images(folder, 3)
    if layout == "loco":
        _write_images(root / "validation" / "good", 1)
        (root / "defects_config.json").write_text("[]")
    (folder / bad).write_bytes(b"\x89PNG\r\n\x1a\n not really" if bad.endswith("png") else b"hi")
    samples = read_split(tmp_path, "product", "train") + read_split(
        tmp_path, "product", "validation"
    )
    assert bad in {s.path.name for s in samples}  # listed, not skipped
    with pytest.raises(ImageReadError, match=re.escape(bad)) as caught:
        load_images(samples, SPEC)
    assert caught.value.path == folder / bad


def test_layout_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="glcf data synth"):
        detect_layout(tmp_path, "missing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"empty.*glcf data synth"):
        detect_layout(tmp_path, "empty")
    _write_images(tmp_path / "one", 1)
    with pytest.raises(DataError, match="at least 2"):
        read_split(tmp_path, "one", "train")
    with pytest.raises(DataError, match="split"):
        read_split(tmp_path, "one", "testing")


def test_loco_missing_folder_names_it(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    _write_images(root / "train" / "good", 2)
    (root / "validation").mkdir()
    (root / "defects_config.json").write_text("[]")
    assert detect_layout(tmp_path, "cat") is Layout.LOCO
    with pytest.raises(DataError, match=re.escape(str(root / "validation" / "good"))):
        read_split(tmp_path, "cat", "validation")
    with pytest.raises(DataError, match=re.escape(str(root / "test"))):
        read_split(tmp_path, "cat", "test")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read"),
        ("[]", "non-empty"),
        ('[{"defect_name": "a", "pixel_value": 255, "saturation_threshold": 1.0}]', "relative"),
        (
            json.dumps(
                [
                    {
                        "defect_name": n,
                        "pixel_value": 9,
                        "saturation_threshold": 1,
                        "relative_saturation": False,
                    }
                    for n in "ab"
                ]
            ),
            "twice",
        ),
    ],
)
def test_malformed_defects_config(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "defects_config.json").write_text(content)
    with pytest.raises(DataError, match=message):
        load_defects_config(tmp_path)


def test_defects_config_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"defects_config\.json"):
        load_defects_config(tmp_path)


def test_sample_is_frozen() -> None:
    sample = Sample(Path("a.png"), 0, "good", "good")
    with pytest.raises(AttributeError):
        sample.label = 1  # type: ignore[misc]


def test_links_that_cannot_be_read_are_named_in_every_split(loco: Path, tmp_path: Path) -> None:
    """A dangling link or a link loop in any folder of a data set stops listing it, by name."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(loco, root)
    base = root / "breakfast_tray"
    (base / "validation" / "good" / "000a.png").symlink_to(tmp_path / "gone.png")
    (base / "test" / "good" / "000a.png").symlink_to("000a.png")
    with pytest.raises(ImageReadError, match=r"validation/good/000a\.png: a symbolic link to "
                       r"nothing \(dangling\)"):
        read_split(root, "breakfast_tray", "validation")
    with pytest.raises(ImageReadError, match=r"test/good/000a\.png: a symbolic link that loops"):
        read_split(root, "breakfast_tray", "test")
    assert len(read_split(root, "breakfast_tray", "train")) == 4
