"""Overlays: shapes, clipping, colours, banners, PNG round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from glcf_runtime.overlay import annotate, colorize, overlay, panel
from glcf_runtime.threshold import Verdict, is_anomalous, verdict

REPO_ROOT = Path(__file__).resolve().parents[2]


def _frame(height: int = 224, width: int = 224) -> np.ndarray:
    return np.full((height, width, 3), 128, dtype=np.uint8)


def _red(pixels: np.ndarray) -> np.ndarray:
    b, g, r = (pixels[..., i].astype(int) for i in range(3))
    return (r > 150) & (g < 90) & (b < 90)


def _green(pixels: np.ndarray) -> np.ndarray:
    b, g, r = (pixels[..., i].astype(int) for i in range(3))
    return (g > 120) & (r < 90) & (b < 90)


def test_colorize_shape_dtype_and_clipping() -> None:
    anomaly_map = np.array([[-5.0, 0.0, 0.5], [1.0, 2.0, np.nan]], dtype=np.float32)
    colours = colorize(anomaly_map, vmin=0.0, vmax=1.0)
    assert colours.shape == (2, 3, 3) and colours.dtype == np.uint8
    np.testing.assert_array_equal(colours[0, 0], colours[0, 1])  # below vmin -> vmin colour
    np.testing.assert_array_equal(colours[1, 1], colours[1, 0])  # above vmax -> vmax colour
    np.testing.assert_array_equal(colours[1, 2], colours[0, 1])  # NaN -> vmin colour
    assert not np.array_equal(colours[0, 2], colours[0, 1])
    assert colours[1, 0, 2] > colours[1, 0, 0]  # JET top: red over blue (BGR)
    assert colours[0, 1, 0] > colours[0, 1, 2]  # JET bottom: blue over red


def test_colorize_is_not_normalised_per_frame() -> None:
    low = colorize(np.full((4, 4), 0.2, dtype=np.float32), 0.0, 1.0)
    mixed = colorize(np.array([[0.2, 0.9]], dtype=np.float32), 0.0, 1.0)
    np.testing.assert_array_equal(low[0, 0], mixed[0, 0])


@pytest.mark.parametrize(("vmin", "vmax"), [(1.0, 1.0), (2.0, 1.0), (0.0, float("inf"))])
def test_colorize_rejects_bad_bounds(vmin: float, vmax: float) -> None:
    with pytest.raises(ValueError, match="vmin < vmax"):
        colorize(np.zeros((2, 2), dtype=np.float32), vmin, vmax)


def test_overlay_hot_region_is_red() -> None:
    anomaly_map = np.zeros((8, 8), dtype=np.float32)
    anomaly_map[:4, :4] = 10.0  # hot top-left quarter, given at low resolution
    blended = overlay(_frame(224, 320), anomaly_map, vmin=0.0, vmax=10.0, alpha=0.6)
    assert blended.shape == (224, 320, 3) and blended.dtype == np.uint8
    hot, cold = blended[20:80, 20:100].reshape(-1, 3), blended[150:, 200:].reshape(-1, 3)
    assert (hot[:, 2] > hot[:, 0] + 30).all() and (hot[:, 2] > hot[:, 1] + 30).all()
    assert (cold[:, 0] > cold[:, 2] + 30).all()


def test_overlay_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"uint8 BGR image"):
        overlay(np.zeros((8, 8), dtype=np.uint8), np.zeros((8, 8)), 0.0, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        overlay(_frame(), np.zeros((8, 8)), 0.0, 1.0, alpha=1.5)


def test_verdict_rule() -> None:
    assert verdict(2.5, 2.5) is Verdict.ANOMALOUS and is_anomalous(2.5, 2.5) is True
    assert verdict(2.4, 2.5) is Verdict.GOOD and is_anomalous(2.4, 2.5) is False
    assert verdict(9.0, None) is None and is_anomalous(9.0, None) is None
    assert verdict(float("nan"), 2.5) is None
    assert verdict(float("nan"), 1.0) is None


@pytest.mark.parametrize(("score", "anomalous"), [(3.0, True), (1.0, False)])
def test_annotate_verdict_colour_depends_on_threshold(score: float, anomalous: bool) -> None:
    frame = _frame()
    annotated = annotate(frame, score=score, threshold=2.0, label="cam0")
    assert annotated.shape == frame.shape and annotated.dtype == np.uint8
    assert (frame == 128).all()  # input untouched
    banner = annotated[:60]
    assert _red(banner).any() == anomalous
    assert _green(banner).any() == (not anomalous)


def test_annotate_without_threshold_draws_no_verdict_colour() -> None:
    banner = annotate(_frame(), score=1.0, threshold=None)[:60]
    assert not _red(banner).any() and not _green(banner).any()


def test_annotate_scales_with_the_frame() -> None:
    def banner_rows(frame: np.ndarray) -> int:
        changed = np.any(annotate(frame, 3.0, 2.0, "a long label for the source") != frame, axis=2)
        return int(np.flatnonzero(changed.any(axis=1)).max()) + 1

    small, full_hd = banner_rows(_frame(224, 224)), banner_rows(_frame(1080, 1920))
    assert small < 224 // 3
    assert full_hd > 3 * small


def test_panel_png_round_trip(tmp_path: Path) -> None:
    anomaly_map = np.random.default_rng(0).random((56, 56)).astype(np.float32)
    image = panel(_frame(224, 224), anomaly_map, score=1.5, threshold=2.0, vmin=0.0, vmax=1.0)
    assert image.shape == (224, 448, 3) and image.dtype == np.uint8
    path = tmp_path / "panel.png"
    assert cv2.imwrite(str(path), image)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_COLOR), image)


def test_overlay_imports_without_torch() -> None:
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import glcf_runtime.overlay\n"
        "assert 'torch' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
