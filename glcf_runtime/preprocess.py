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
from glcf_runtime.image_header import declared_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# The largest image decoded, in pixels (width × height; --max-pixels): 50 MP holds an 8K frame
# (33 MP) and takes 150 MB decoded. A larger declared size is refused before decoding.
MAX_PIXELS = 50_000_000


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


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as uint8 BGR ``[H, W, 3]``.

    Args:
        max_pixels: refuse an image of more pixels (width × height). PNG, JPEG, BMP, TIFF and
            WebP are refused from their header, before any memory is spent on decoding.

    Raises:
        ImageReadError: the file is missing, empty, not a decodable image, or too large.
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
    _check_pixels(path, declared_size(memoryview(data)), "declares", max_pixels)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a damaged header claiming a size past OpenCV's limits
        reason = (exc.err or str(exc)).strip().splitlines()[0]
        raise ImageReadError(path, f"OpenCV refuses to decode it ({reason})") from None
    if image is None:
        raise ImageReadError(path, "OpenCV cannot decode it (not an image, or corrupt)")
    _check_pixels(path, (image.shape[1], image.shape[0]), "has", max_pixels)  # other formats
    return image


def checked_max_pixels(value: int) -> int:
    """``value`` when it is a usable ``--max-pixels``; ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--max-pixels {value}: give the largest image to decode in pixels "
                          f"(width × height, >= 1), e.g. {MAX_PIXELS}")
    return value


def _check_pixels(path: Path, size: tuple[int, int] | None, verb: str, max_pixels: int) -> None:
    if size is None or size[0] * size[1] <= max_pixels:
        return
    width, height = size
    raise ImageReadError(
        path,
        f"it {verb} {width}×{height} pixels ({width * height / 1e6:.1f} megapixels), more than "
        f"the limit of {max_pixels / 1e6:g} megapixels",
        "downscale it, or raise the limit (glcf inspect and glcf train take --max-pixels)",
    )


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


def load_preprocessed(
    path: str | Path, spec: PreprocessSpec, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """``preprocess(read_image(path, max_pixels), spec)``: uint8 BGR
    ``[spec.height, spec.width, 3]``."""
    return preprocess(read_image(path, max_pixels), spec)


def list_images(folder: str | Path) -> list[Path]:
    """What a folder of images holds, sorted by name (not recursive): every entry but hidden
    ones and subfolders without an image suffix. Dangling links, link loops and folders named
    like an image are listed too, so that each is named (``check_readable``, or the error of
    ``read_image``) instead of vanishing: the one listing that inspect, threshold, training and
    evaluation count from."""
    entries = []
    for entry in Path(folder).iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and entry.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        entries.append(entry)
    return sorted(entries)


def check_readable(paths: list[Path]) -> None:
    """Raise for listed entries that are not files (``list_images``), before any is read.

    Raises:
        ImageReadError: naming the first such entry and why (a dangling link, a link loop, a
            folder), and the names of up to five more.
    """
    bad = [(path, _not_a_file(path)) for path in paths if not path.is_file()]
    if not bad:
        return
    path, reason = bad[0]
    if len(bad) > 1:
        names = ", ".join(p.name for p, _ in bad[1:6]) + (", …" if len(bad) > 6 else "")
        more = f"{len(bad) - 1} more entr{'y' if len(bad) == 2 else 'ies'} of {path.parent}"
        reason += f" ({more} cannot be read: {names})"
    raise ImageReadError(path, reason)
