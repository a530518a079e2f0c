"""Heat maps a person can look at: colour maps, overlays, verdict banners, side-by-side panels.

numpy and OpenCV only. Colours are BGR, as OpenCV draws them. Maps are coloured between fixed
``vmin`` and ``vmax`` (e.g. the calibration's normal range and the threshold), never
normalised per frame, so one colour means one score level in every frame of a video. The verdict
a banner shows is ``glcf_runtime.threshold.verdict``'s.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from glcf_runtime.threshold import (
    Verdict,
    verdict,
)

GOOD_BGR = (0, 190, 0)
ANOMALOUS_BGR = (0, 0, 235)
UNDECIDED_BGR = (200, 200, 200)
TEXT_BGR = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _check_image(image_bgr: np.ndarray) -> None:
    if image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(
            f"expected a uint8 BGR image [H, W, 3], got {image_bgr.dtype} {image_bgr.shape}"
        )


def colorize(
    anomaly_map: np.ndarray, vmin: float, vmax: float, colormap: int = cv2.COLORMAP_JET
) -> np.ndarray:
    """Colour an anomaly map between fixed bounds.

    Args:
        anomaly_map: ``[H, W]`` anomaly scores.
        vmin: score shown in the colour map's first colour (blue for JET); lower values too.
        vmax: score shown in its last colour (dark red for JET); higher values too.
        colormap: an OpenCV colour map, e.g. ``cv2.COLORMAP_JET`` or ``cv2.COLORMAP_TURBO``.

    Returns:
        ``[H, W, 3]`` uint8 BGR. NaN scores get the ``vmin`` colour.
    """
    anomaly_map = np.asarray(anomaly_map)
    if anomaly_map.ndim != 2:
        raise ValueError(f"anomaly_map must be [H, W], got shape {anomaly_map.shape}")
    if not (math.isfinite(vmin) and math.isfinite(vmax) and vmax > vmin):
        raise ValueError(f"need finite vmin < vmax, got vmin={vmin}, vmax={vmax}")
    levels = (anomaly_map.astype(np.float32) - np.float32(vmin)) * np.float32(255.0 / (vmax - vmin))
    levels = np.nan_to_num(np.clip(levels, 0.0, 255.0), nan=0.0)
    return cv2.applyColorMap(np.rint(levels).astype(np.uint8), colormap)


def overlay(
    image_bgr: np.ndarray,
    anomaly_map: np.ndarray,
    vmin: float,
    vmax: float,
    alpha: float = 0.5,
    colormap: int = cv2.COLORMAP_JET,
) -> np.ndarray:
    """Blend the coloured anomaly map over the image.

    Args:
        image_bgr: ``[H, W, 3]`` uint8 BGR frame.
        anomaly_map: ``[h, w]`` anomaly scores; resized to ``H × W`` with ``INTER_LINEAR``.
        vmin: see ``colorize``.
        vmax: see ``colorize``.
        alpha: weight of the heat map, in [0, 1].
        colormap: see ``colorize``.

    Returns:
        ``[H, W, 3]`` uint8 BGR.
    """
    _check_image(image_bgr)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    height, width = image_bgr.shape[:2]
    resized = cv2.resize(
        np.asarray(anomaly_map, dtype=np.float32), (width, height), interpolation=cv2.INTER_LINEAR
    )
    heat = colorize(resized, vmin, vmax, colormap)
    return cv2.addWeighted(image_bgr, 1.0 - alpha, heat, alpha, 0.0)


def _fit_scale(lines: list[str], width: int, scale: float, thickness: int) -> float:
    """Shrink ``scale`` until the widest line fits in ``width`` pixels."""
    widest = max(cv2.getTextSize(line, _FONT, scale, thickness)[0][0] for line in lines)
    return scale if widest <= width else scale * width / widest


def annotate(
    image_bgr: np.ndarray, score: float, threshold: float | None, label: str | None = None
) -> np.ndarray:
    """Draw a banner with the verdict, score and threshold across the top of a frame.

    The text scales with the frame (readable at 224 px and at 1080p) and shrinks to fit its
    width. The verdict is green for GOOD, red for ANOMALOUS, grey without a threshold.

    Args:
        image_bgr: ``[H, W, 3]`` uint8 BGR frame; not modified.
        score: the image score.
        threshold: anomalous if ``score >= threshold``; None when not calibrated.
        label: optional text for the second line (source, frame index, category).

    Returns:
        ``[H, W, 3]`` uint8 BGR copy with the banner.
    """
    _check_image(image_bgr)
    height, width = image_bgr.shape[:2]
    decided = verdict(score, threshold)
    colour = {Verdict.GOOD: GOOD_BGR, Verdict.ANOMALOUS: ANOMALOUS_BGR, None: UNDECIDED_BGR}[decided]
    first = decided.value if decided else ("NO SCORE" if not math.isfinite(score) else "NOT CALIBRATED")
    details = f"score {score:.4g}" + ("" if threshold is None else f"  thr {threshold:.4g}")
    lines = [first, details if label is None else f"{details}  {label}"]

    pad = max(3, round(min(height, width) / 80))
    thickness = max(1, round(min(height, width) / 360))
    scale = _fit_scale(lines, width - 2 * pad, max(0.5, min(height, width) / 540), thickness + 1)
    line_height = cv2.getTextSize("Ag", _FONT, scale, thickness)[0][1]
    gap = max(2, line_height // 2)
    banner_height = min(height, 2 * pad + len(lines) * line_height + (len(lines) - 1) * gap + gap)

    result = image_bgr.copy()
    band = result[:banner_height]
    band[:] = (band.astype(np.uint16) * 3 // 10).astype(np.uint8)  # darken, keep the picture
    y = pad + line_height
    styles = ((colour, thickness + 1), (TEXT_BGR, thickness))  # verdict in bold
    for text, (text_colour, weight) in zip(lines, styles, strict=True):
        cv2.putText(result, text, (pad, y), _FONT, scale, text_colour, weight, cv2.LINE_AA)
        y += line_height + gap
    return result


def panel(
    image_bgr: np.ndarray,
    anomaly_map: np.ndarray,
    score: float,
    threshold: float | None,
    vmin: float,
    vmax: float,
    label: str | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Original | heat-map overlay, side by side, with the verdict banner across both.

    Args:
        image_bgr: ``[H, W, 3]`` uint8 BGR frame.
        anomaly_map: ``[h, w]`` anomaly scores.
        score: the image score.
        threshold: anomalous if ``score >= threshold``; None when not calibrated.
        vmin: see ``colorize``.
        vmax: see ``colorize``.
        label: optional text for the banner.
        alpha: weight of the heat map in the overlay.

    Returns:
        ``[H, 2W, 3]`` uint8 BGR.
    """
    blended = overlay(image_bgr, anomaly_map, vmin, vmax, alpha)
    return annotate(np.hstack([image_bgr, blended]), score, threshold, label)
