"""The pre-processing contract shared by training and deployment."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glcf_bench.fixtures.crafted_images import black_png, encoded, with_declared_size
from glcf_runtime.errors import ConfigError, ImageReadError
from glcf_runtime.image_header import declared_size
from glcf_runtime.preprocess import (
    PreprocessSpec,
    checked_max_pixels,
    load_preprocessed,
    preprocess,
    read_image,
)


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
    each is scored or gets an error record, in order; no crash, no hang (a few seconds). About
    one in seven declares more pixels than the limit in its header: each is refused by size."""
    from glcf_bench.fixtures.contract_model import write_model
    from glcf_bench.fixtures.fuzz import run_fuzz
    from glcf_runtime.backends import OnnxRuntimeRunner

    with OnnxRuntimeRunner(write_model(tmp_path / "model"), threads=1) as runner:
        result = run_fuzz(runner, tmp_path / "cases", cases=2000, seed=0)
    assert result.scored + result.errors == 2000 and result.scored > 0 and result.errors > 0
    assert result.oversized > 200  # headers declaring more pixels than the limit, all refused
    assert result.slowest_ms < 5000  # a damaged PNG chunk length once took 7 s and 2.6 GB


def test_png_with_a_damaged_chunk_length_is_refused_at_once(tmp_path: Path) -> None:
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


HEADER_CASES = [
    (".png", ()), (".jpg", ()), (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)), (".bmp", ()),
    (".tiff", ()), (".tiff", (cv2.IMWRITE_TIFF_COMPRESSION, 1)), (".webp", ()),
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80)),
]


@pytest.mark.parametrize(("fmt", "params"), HEADER_CASES)
def test_declared_size_is_read_from_real_headers(fmt: str, params: tuple[int, ...]) -> None:
    image = _frame(23, 37)
    assert declared_size(encoded(fmt, image, *params)) == (37, 23)
    assert declared_size(encoded(fmt, image[:, :, 0], *params)) == (37, 23)  # grey
    if fmt == ".webp":  # with alpha: the extended (VP8X) header
        assert declared_size(encoded(fmt, np.dstack([image, image[:, :, :1]]), *params)) == (37, 23)
    assert declared_size(b"GIF89a" + bytes(20)) is None


@pytest.mark.parametrize("fmt", [".png", ".jpg", ".bmp", ".tiff", ".webp"])
def test_oversized_header_is_refused_before_decoding(tmp_path: Path, fmt: str) -> None:
    """A few-KB file whose header declares 16000×16000 pixels: refused from its header at
    once; the limit is width × height, and --max-pixels moves it."""
    path = tmp_path / f"big{fmt}"
    path.write_bytes(with_declared_size(encoded(fmt, _frame(64, 64)), fmt, 16000, 16000))
    start = time.perf_counter()
    with pytest.raises(ImageReadError, match=rf"big\{fmt}: it declares 16000×16000 pixels "
                       r"\(256\.0 megapixels\), more than the limit of 50 megapixels; "
                       r"downscale it, or raise the limit \(glcf inspect and glcf train take "
                       r"--max-pixels\)"):
        read_image(path)
    assert time.perf_counter() - start < 0.5
    small = tmp_path / f"small{fmt}"
    small.write_bytes(encoded(fmt, _frame(64, 64)))
    assert read_image(small, max_pixels=64 * 64).shape == (64, 64, 3)
    with pytest.raises(ImageReadError, match=r"declares 64×64 pixels"):
        read_image(small, max_pixels=64 * 64 - 1)


def test_a_format_without_a_header_check_is_limited_after_decoding(tmp_path: Path) -> None:
    path = tmp_path / "portable.png"  # a PPM under an image suffix: OpenCV decodes it
    path.write_bytes(encoded(".ppm", _frame(30, 40)))
    assert declared_size(path.read_bytes()) is None
    assert read_image(path, max_pixels=1200).shape == (30, 40, 3)
    with pytest.raises(ImageReadError, match=r"it has 40×30 pixels"):
        read_image(path, max_pixels=1199)
    for bad in (0, -5, True, 2.5):
        with pytest.raises(ConfigError, match=rf"--max-pixels {bad}"):
            checked_max_pixels(bad)  # type: ignore[arg-type]


def test_20000_by_20000_png_is_refused_without_the_memory(tmp_path: Path) -> None:
    """A 389 KB PNG of 20000×20000 (it once took 2.5 GB to inspect): refused before decoding, in a
    fresh process whose peak memory barely moves."""
    path = tmp_path / "huge.png"
    path.write_bytes(black_png(20000, 20000))
    script = (
        "import resource, sys\n"
        "from glcf_runtime.errors import ImageReadError\n"
        "from glcf_runtime.preprocess import read_image\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    read_image(sys.argv[1]); print('decoded')\n"
        "except ImageReadError as exc:\n    print(exc)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                            text=True, timeout=120, cwd=Path(__file__).parents[2])
    message, grown_mb = result.stdout.splitlines()
    assert "huge.png: it declares 20000×20000 pixels (400.0 megapixels)" in message, result
    assert int(grown_mb) < 20, f"peak memory grew by {grown_mb} MB"
