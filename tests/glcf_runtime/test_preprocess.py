"""The pre-processing contract shared by training and deployment."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_fuzzed_image_files_are_scored_or_recorded(tmp_path: Path) -> None:
    """2,000 seeded byte mutations of real PNG/JPEG/BMP/TIFF/WebP files through the whole loop:
    each is scored or gets an error record, in order; no crash, no hang (a few seconds)."""
    from glcf_runtime.backends import OnnxRuntimeRunner
    from tests.glcf_runtime.contract_model import write_model
    from tests.glcf_runtime.fuzz import run_fuzz

    with OnnxRuntimeRunner(write_model(tmp_path / "model"), threads=1) as runner:
        result = run_fuzz(runner, tmp_path / "cases", cases=2000, seed=0)
    assert result.scored + result.errors == 2000 and result.scored > 0 and result.errors > 0
    assert result.slowest_ms < 5000  # a damaged PNG chunk length once took 7 s and 2.6 GB


def test_png_with_a_damaged_chunk_length_is_refused_at_once(tmp_path: Path) -> None:
    import time

    data = bytearray(cv2.imencode(".png", np.full((64, 64, 3), 90, np.uint8))[1].tobytes())
    data[33] = 0xA0  # the IDAT length's top byte: 2.7 GB claimed by a file of ~100 bytes
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    start = time.perf_counter()
    with pytest.raises(ImageReadError, match="past the end of the file"):
        read_image(path)
    assert time.perf_counter() - start < 0.5


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    shape=st.tuples(st.integers(0, 40), st.integers(0, 40), st.sampled_from([None, 1, 2, 3, 4, 5])),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.int8]),
    roi=st.one_of(st.none(), st.tuples(*[st.integers(-2, 50)] * 4)),
)
def test_preprocess_returns_the_contract_or_a_clear_error(shape, dtype, roi) -> None:
    h, w, c = shape
    frame = np.zeros((h, w) if c is None else (h, w, c), dtype)
    spec = PreprocessSpec(16, 24, roi)
    try:
        out = preprocess(frame, spec)
    except ConfigError as exc:
        assert str(exc)
        return
    assert out.shape == (16, 24, 3) and out.dtype == np.uint8
