"""Synthetic scenes with logical and structural anomalies, written in the MVTec LOCO layout.

Each category draws normal scenes that obey a few logical rules (counts, slots, pairings) with
random pose, size, colour, lighting and noise, and anomalies that break one rule (logical) or
damage a surface (structural). ``generate`` writes train/validation/test images, one ground-truth
PNG per defect and ``defects_config.json``, exactly as MVTec LOCO publishes them.
numpy and OpenCV only.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from glcf_runtime.errors import ConfigError, DataError
from glcf_train.data.categories import CATEGORIES
from glcf_train.data.scenes import (
    Example,
    defect_mask,
    render,
)

KIND_FOLDERS = {
    "good": "good",
    "logical": "logical_anomalies",
    "structural": "structural_anomalies",
}


def describe() -> dict[str, str]:
    """One line per category for a README: its rules and its anomalies."""
    return {name: category.description for name, category in CATEGORIES.items()}


def example(category: str, split: str, kind: str, index: int, seed: int = 0) -> Example:
    """The scene ``generate`` writes as image ``index`` of ``split`` and ``kind`` ("good", ...)."""
    ids = ({"train": 0, "validation": 1, "test": 2}[split], list(KIND_FOLDERS).index(kind))
    rng = np.random.default_rng([seed, zlib.crc32(category.encode()), *ids, index])
    return CATEGORIES[category].example(kind, rng)


def _imwrite(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise DataError(
            f"OpenCV could not write {path}; check that the folder is writable and has space"
        )


def _check_free(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} exists and is not a folder; remove it or choose another OUT")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise DataError(
            f"{root} already exists and is not empty; pass overwrite=True (--overwrite) "
            "to replace it, or choose another OUT"
        )


def _write_category(
    tmp: Path, name: str, plan, seed: int, size: int, tick: Callable[[], None]
) -> None:
    values = {d["defect_name"]: d["pixel_value"] for d in CATEGORIES[name].defects_config()}
    for split, kind, n in plan:
        folder = tmp / split / KIND_FOLDERS[kind]
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            ex, stem = example(name, split, kind, i, seed), f"{i:0{max(3, len(str(n - 1)))}d}"
            _imwrite(folder / f"{stem}.png", render(ex.scene, size))
            if ex.defects:
                truth = tmp / "ground_truth" / KIND_FOLDERS[kind] / stem
                truth.mkdir(parents=True)
                for j, defect in enumerate(ex.defects):
                    mask = defect_mask(defect, ex.scene.pose, size).astype(np.uint8) * np.uint8(
                        values[defect.name]
                    )
                    _imwrite(truth / f"{j:03d}.png", mask)
            tick()
    (tmp / "defects_config.json").write_text(
        json.dumps(CATEGORIES[name].defects_config(), indent=4) + "\n"
    )


def category_names(categories: Sequence[str] | str | None) -> list[str]:
    """The category names (all of them for None; each once), after checking them; ConfigError
    otherwise."""
    if isinstance(categories, str):
        categories = [categories]
    names = list(CATEGORIES) if categories is None else list(dict.fromkeys(categories))
    unknown = [n for n in names if n not in CATEGORIES]
    if unknown or not names:
        raise ConfigError(
            f"unknown synthetic categories {unknown or names}; choose from {sorted(CATEGORIES)}"
        )
    return names


def _check_options(categories: Sequence[str] | str | None, **counts: int) -> list[str]:
    """The category names, after checking them and the counts; ConfigError otherwise."""
    names = category_names(categories)
    lowest = {"n_train": 1, "n_val": 1, "n_test": 0, "seed": 0, "image_size": 64}
    for option, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest[option]:
            raise ConfigError(f"{option} must be an integer >= {lowest[option]}, got {value!r}")
    return names


def generate(
    out: Path,
    categories: Sequence[str] | None = None,
    n_train: int = 200,
    n_val: int = 30,
    n_test: int = 40,
    seed: int = 0,
    image_size: int = 256,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write synthetic data sets in the MVTec LOCO layout, one folder per category.

    Args:
        out: parent folder; each category goes to ``out/<category>``.
        categories: names from ``CATEGORIES``; all of them when None.
        n_train: images in ``train/good``.
        n_val: images in ``validation/good``.
        n_test: images in each of ``test/good``, ``test/logical_anomalies`` and
            ``test/structural_anomalies``.
        seed: the same seed gives the same bytes; image ``i`` of a split does not depend on
            the other counts.
        image_size: side of the square images in pixels.
        overwrite: replace an existing non-empty category folder.
        progress: called as ``progress(done, total)`` after each image.

    Returns:
        The category folders.
    """
    names = _check_options(
        categories, n_train=n_train, n_val=n_val, n_test=n_test, seed=seed, image_size=image_size
    )
    out = Path(out)
    roots = [out / name for name in names]
    for root in roots:
        _check_free(root, overwrite)
    plan = (
        ("train", "good", n_train),
        ("validation", "good", n_val),
        *(("test", kind, n_test) for kind in KIND_FOLDERS),
    )
    total, done = len(roots) * sum(n for _, _, n in plan), 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    out.mkdir(parents=True, exist_ok=True)
    for root in roots:  # written under a temporary name, renamed when complete
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=out))
        try:
            _write_category(tmp, root.name, plan, seed, image_size, tick)
            if root.exists():
                shutil.rmtree(root)
            tmp.rename(root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    return roots
