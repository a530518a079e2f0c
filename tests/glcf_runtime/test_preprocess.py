"""The pre-processing contract shared by training and deployment."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from glcf_runtime.errors import ConfigError, ImageReadError
from glcf_runtime.preprocess import PreprocessSpec, load_preprocessed, preprocess, read_image


def _frame(h: int = 480, w: int = 640) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_resize_is_inter_area_bgr_uint8() -> None:
    frame = _frame()
    out = preprocess(frame, PreprocessSpec(224, 224))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, cv2.resize(frame, (224, 224), interpolation=cv2.INTER_AREA))


def test_roi_crops_before_resizing() -> None:
    frame = _frame()
    spec = PreprocessSpec(224, 224, roi=(100, 50, 300, 200))
    expected = cv2.resize(frame[50:250, 100:400], (224, 224), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(preprocess(frame, spec), expected)
    with pytest.raises(ConfigError, match="does not fit"):
        preprocess(frame, PreprocessSpec(224, 224, roi=(600, 0, 100, 100)))


def test_grey_and_bgra_frames_become_bgr() -> None:
    assert preprocess(np.zeros((300, 300), np.uint8), PreprocessSpec()).shape == (224, 224, 3)
    assert preprocess(np.zeros((300, 300, 4), np.uint8), PreprocessSpec()).shape == (224, 224, 3)


def test_no_guessing_of_float_input() -> None:
    with pytest.raises(ConfigError, match="uint8"):
        preprocess(np.zeros((300, 300, 3), np.float32), PreprocessSpec())


def test_read_image_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "a.png"
    cv2.imwrite(str(good), _frame(64, 80))
    assert read_image(good).shape == (64, 80, 3)
    assert load_preprocessed(good, PreprocessSpec(32, 32)).shape == (32, 32, 3)
    for name, content, reason in (("empty.png", b"", "empty"), ("notes.txt", b"hello", "decode"),
                                  ("cut.png", good.read_bytes()[:40], "decode")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ImageReadError, match=rf"{name}.*{reason}"):
            read_image(path)
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")
