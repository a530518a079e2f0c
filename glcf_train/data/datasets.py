"""Readers for the MVTec LOCO, MVTec AD and plain-folder layouts. numpy and OpenCV only.

Every entry of an image folder is listed (hidden ones aside, ``list_images``), so a stray
``notes.txt``, a corrupt PNG, a dangling link or a link loop stops loading with an error that
names it instead of being skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import cv2
import numpy as np

from glcf_runtime.errors import DataError, ImageReadError
from glcf_runtime.preprocess import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    PreprocessSpec,
    check_readable,
    list_images,
    load_preprocessed,
)

SPLITS = ("train", "validation", "test")
_LOCO_KINDS = {"good": "good", "logical_anomalies": "logical", "structural_anomalies": "structural"}
_EXAMPLE = "make an example with `glcf data synth OUT` and pass OUT with --category breakfast_tray"


@dataclass(frozen=True)
class Sample:
    """One image of a data set.

    Attributes:
        path: the image file.
        label: 0 good, 1 anomalous.
        defect_type: the test folder name ("good", "logical_anomalies", "structural_anomalies",
            or an MVTec AD defect such as "scratch").
        kind: "good", "logical" or "structural" (MVTec AD defects count as structural).
        mask_paths: ground-truth PNGs; one per defect region in LOCO, empty for good images.
    """

    path: Path
    label: int
    defect_type: str
    kind: str
    mask_paths: tuple[Path, ...] = ()


class Layout(str, Enum):
    LOCO = "loco"
    MVTEC_AD = "mvtec_ad"
    FOLDER = "folder"


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(
        p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()
    )


def detect_layout(root: Path, category: str | None) -> Layout:
    """Which layout ``root/category`` (or ``root`` when category is None or "") has.

    Raises:
        DataError: the folder is missing or matches none of the layouts.
    """
    base = Path(root) / (category or "")
    if not base.is_dir():
        raise DataError(f"data folder {base} does not exist; {_EXAMPLE}")
    if (base / "validation").is_dir() and (
        (base / "test" / "logical_anomalies").is_dir() or (base / "defects_config.json").is_file()
    ):
        return Layout.LOCO
    if all((base / sub).is_dir() for sub in ("train/good", "test", "ground_truth")):
        return Layout.MVTEC_AD
    if _has_images(base):
        return Layout.FOLDER
    raise DataError(
        f"{base} is not a data set: expected an MVTec LOCO category (train/good, validation/good, "
        "test/, ground_truth/, defects_config.json), an MVTec AD category (train/good, test/, "
        f"ground_truth/) or a folder of images ({', '.join(IMAGE_SUFFIXES)}); {_EXAMPLE}"
    )


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"expected the folder {folder}, which does not exist")
    images = list_images(folder)
    if not images:
        raise DataError(f"{folder} holds no images")
    check_readable(images)  # a dangling link or a link loop is named, never left out
    return images


def _hold_out(images: list[Path], split: str, folder: Path) -> list[Path]:
    """Validation = every 10th image (the last one if fewer than 10); train = the rest."""
    if len(images) < 2:
        raise DataError(
            f"{folder} holds {len(images)} image; need at least 2 (train and validation)"
        )
    held = set(images[9::10] or images[-1:])
    return [p for p in images if (p in held) == (split == "validation")]


def _good(paths: list[Path]) -> list[Sample]:
    return [Sample(p, 0, "good", "good") for p in paths]


def _loco_masks(base: Path, defect: str, image: Path) -> tuple[Path, ...]:
    folder = base / "ground_truth" / defect / image.stem
    masks = tuple(list_images(folder)) if folder.is_dir() else ()
    if not masks:
        raise DataError(f"no ground-truth masks for {image}: expected PNGs in {folder}")
    return masks


def _mvtec_mask(base: Path, defect: str, image: Path) -> tuple[Path, ...]:
    mask = base / "ground_truth" / defect / f"{image.stem}_mask.png"
    if not mask.is_file():
        raise DataError(f"no ground-truth mask for {image}: expected {mask}")
    return (mask,)


def _test(base: Path, layout: Layout) -> list[Sample]:
    test = base / "test"
    if not test.is_dir():
        raise DataError(f"expected the folder {test}, which does not exist")
    samples = []
    for folder in sorted(p for p in test.iterdir() if p.is_dir() and not p.name.startswith(".")):
        defect = folder.name
        if defect == "good":
            samples += _good(_images(folder))
            continue
        kind = _LOCO_KINDS.get(defect, "structural") if layout == Layout.LOCO else "structural"
        masks = _loco_masks if layout == Layout.LOCO else _mvtec_mask
        samples += [Sample(p, 1, defect, kind, masks(base, defect, p)) for p in _images(folder)]
    return samples


def read_split(root: Path, category: str | None, split: str) -> list[Sample]:
    """The samples of ``split`` ("train", "validation" or "test"), in sorted order.

    MVTec AD and plain folders have no validation folder: every 10th training image (at least
    one) is held out for validation and left out of train. A plain folder has no test split.

    Raises:
        DataError: an unknown split, or a folder the layout needs is missing or empty.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    base = Path(root) / (category or "")
    layout = detect_layout(root, category)
    if split == "test":
        return [] if layout == Layout.FOLDER else _test(base, layout)
    if layout == Layout.LOCO:
        return _good(_images(base / split / "good"))
    folder = base if layout == Layout.FOLDER else base / "train" / "good"
    return _good(_hold_out(_images(folder), split, folder))


def load_defects_config(category_root: Path) -> dict[int, dict]:
    """A LOCO category's ``defects_config.json`` keyed by ``pixel_value``.

    Raises:
        DataError: the file is missing, not JSON, or an entry lacks a field or repeats a value.
    """
    path = Path(category_root) / "defects_config.json"
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; MVTec LOCO categories ship one") from None
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path} must hold a non-empty JSON list of defect entries")
    config: dict[int, dict] = {}
    fields = {
        "defect_name": str,
        "pixel_value": int,
        "saturation_threshold": (int, float),
        "relative_saturation": bool,
    }
    for entry in entries:
        bad = [
            k
            for k, t in fields.items()
            if not isinstance(entry, dict) or not isinstance(entry.get(k), t)
        ]
        if bad or isinstance(entry["pixel_value"], bool) or not 0 < entry["pixel_value"] < 256:
            raise DataError(
                f"{path}: entry {entry} needs {', '.join(bad) or 'pixel_value in 1..255'}"
            )
        if entry["pixel_value"] in config:
            raise DataError(f"{path} lists pixel_value {entry['pixel_value']} twice")
        config[entry["pixel_value"]] = dict(entry)
    return config


def load_images(
    samples_or_paths: Sequence[Sample | Path | str],
    spec: PreprocessSpec,
    progress: Callable[[int, int], None] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Read and pre-process images as the deployed model will see them.

    Args:
        max_pixels: refuse a larger image (``glcf_runtime.preprocess.read_image``).

    Returns:
        uint8 BGR ``[N, spec.height, spec.width, 3]``.

    Raises:
        ImageReadError: naming the first file that is not a readable image, or too large.
    """
    paths = [s.path if isinstance(s, Sample) else Path(s) for s in samples_or_paths]
    images = np.empty((len(paths), spec.height, spec.width, 3), np.uint8)
    for i, path in enumerate(paths):
        images[i] = load_preprocessed(path, spec, max_pixels)
        if progress is not None:
            progress(i + 1, len(paths))
    return images


def load_mask_images(sample: Sample) -> list[np.ndarray]:
    """The sample's ground-truth PNGs as uint8 ``[H, W]`` (LOCO: pixel value = defect type)."""
    masks = []
    for path in sample.mask_paths:
        data = np.fromfile(path, np.uint8) if path.is_file() else np.empty(0, np.uint8)
        mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if mask is None:
            raise ImageReadError(path, "OpenCV cannot decode this ground-truth mask")
        masks.append(mask.max(axis=2) if mask.ndim == 3 else mask)
    return masks


def load_mask(sample: Sample, shape: tuple[int, ...]) -> np.ndarray:
    """Union of the sample's defects as bool ``[H, W]`` at the original image size.

    Args:
        sample: a test sample; good samples give an all-False mask.
        shape: the image's ``(H, W)`` (extra trailing dimensions are ignored).

    Raises:
        DataError: a mask file whose size differs from ``shape``.
    """
    union = np.zeros(tuple(shape[:2]), bool)
    for path, mask in zip(sample.mask_paths, load_mask_images(sample), strict=True):
        if mask.shape != union.shape:
            raise DataError(
                f"mask {path} is {mask.shape[1]}x{mask.shape[0]}; its image is "
                f"{union.shape[1]}x{union.shape[0]}"
            )
        union |= mask > 0
    return union
