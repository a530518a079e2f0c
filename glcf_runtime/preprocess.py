"""The one pre-processing contract shared by training and deployment.

A frame (uint8 BGR, as OpenCV returns it) is optionally cropped to a region of interest and
resized with ``cv2.INTER_AREA`` to the model's input size. Everything after that (colour order,
layout, scaling, ImageNet normalisation) happens inside the model / the exported graph, so the
pixels a model trains on and the pixels it sees in deployment come from this file alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from glcf_runtime.errors import ConfigError, ImageReadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class PreprocessSpec:
    """How a frame becomes a model input.

    Attributes:
        height: model input height in pixels.
        width: model input width in pixels.
        roi: optional crop ``(x, y, w, h)`` in source-frame pixels, applied before resizing.
    """

    height: int = 224
    width: int = 224
    roi: tuple[int, int, int, int] | None = None

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width, "roi": list(self.roi) if self.roi else None,
                "interpolation": "INTER_AREA", "color_order": "BGR"}


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 BGR ``[H, W, 3]``.

    Raises:
        ImageReadError: the file is missing, empty or not a decodable image.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, _not_a_file(path))
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(path, f"it cannot be read ({exc.strerror or exc})") from None
    if data.size == 0:
        raise ImageReadError(path, "the file is empty")
    damage = _png_damage(data)
    if damage is not None:
        raise ImageReadError(path, damage)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a damaged header claiming a size past OpenCV's limits
        reason = (exc.err or str(exc)).strip().splitlines()[0]
        raise ImageReadError(path, f"OpenCV refuses to decode it ({reason})") from None
    if image is None:
        raise ImageReadError(path, "OpenCV cannot decode it (not an image, or corrupt)")
    return image


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_damage(data: np.ndarray) -> str | None:
    """Why a PNG's chunk structure is damaged, else None (other formats: None).

    A damaged chunk length (up to 4 GB in a file of a few KB) makes OpenCV's decoder allocate
    and fill that much memory for seconds before it gives up; walking the chunk headers first
    costs microseconds.
    """
    head = data[:8].tobytes()
    if head != PNG_SIGNATURE:
        return None
    pos, size = 8, data.size
    while pos + 8 <= size:
        length = int.from_bytes(data[pos : pos + 4].tobytes(), "big")
        if length > size - pos - 12:
            return f"a PNG chunk at byte {pos} claims {length} bytes, past the end of the file (damaged)"
        if data[pos + 4 : pos + 8].tobytes() == b"IEND":
            break
        pos += 12 + length
    return None


def _not_a_file(path: Path) -> str:
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            return "a symbolic link that loops"
        except OSError:
            return "a symbolic link to nothing (dangling)"
        return "a symbolic link to something that is not a file"
    if path.is_dir():
        return "it is a folder, not a file"
    return "no such file" if not path.exists() else "not a regular file"


def preprocess(frame: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Crop and resize one frame.

    Args:
        frame: uint8 BGR ``[H, W, 3]`` (a grey ``[H, W]`` frame is expanded to BGR).
        spec: the contract recorded in the model's metadata.

    Returns:
        uint8 BGR ``[spec.height, spec.width, 3]``.
    """
    if frame.dtype != np.uint8:
        raise ConfigError(f"frames must be uint8 (as OpenCV reads them), got {frame.dtype}")
    if frame.size == 0:
        raise ConfigError(f"an empty frame (shape {frame.shape}): the source delivered no pixels")
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ConfigError(f"frames must be [H, W, 3] BGR, got shape {frame.shape}")
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if spec.roi is not None:
        x, y, w, h = spec.roi
        fh, fw = frame.shape[:2]
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > fw or y + h > fh:
            raise ConfigError(
                f"region of interest {spec.roi} does not fit a {fw}x{fh} frame; "
                "give --roi x,y,w,h inside the frame"
            )
        frame = frame[y : y + h, x : x + w]
    if frame.shape[:2] == (spec.height, spec.width):
        return np.ascontiguousarray(frame)
    return cv2.resize(frame, (spec.width, spec.height), interpolation=cv2.INTER_AREA)


def parse_roi(text: str) -> tuple[int, int, int, int]:
    """``"x,y,w,h"`` (pixels of the source frame) → a crop for :class:`PreprocessSpec`.

    Raises:
        ConfigError: not four integers, a negative corner or an empty size.
    """
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        x = y = w = h = -1
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise ConfigError(f"--roi {text!r}: give x,y,w,h in pixels of the source frame (corner "
                          "x,y >= 0, size w,h > 0), e.g. --roi 160,0,960,720")
    return x, y, w, h


def load_preprocessed(path: str | Path, spec: PreprocessSpec) -> np.ndarray:
    """``preprocess(read_image(path), spec)``: uint8 BGR ``[spec.height, spec.width, 3]``."""
    return preprocess(read_image(path), spec)


def list_images(folder: str | Path) -> list[Path]:
    """Files in ``folder`` (not recursive), sorted by name, hidden files skipped."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
