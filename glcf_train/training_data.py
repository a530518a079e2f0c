"""Training images in memory, and a deterministic batch order that makes resume exact."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glcf_runtime.errors import ConfigError, DataError
from glcf_runtime.health import FLAT_STD, pixel_std
from glcf_runtime.preprocess import MAX_PIXELS, PreprocessSpec, checked_max_pixels
from glcf_train.config import GlcfConfig
from glcf_train.data.datasets import detect_layout, load_images, read_split
from glcf_train.distributed import DistInfo
from glcf_train.progress import counting_progress

MIN_VALIDATION = 2  # validation images glcf calibrate needs (checked here, before training)


@dataclass
class TrainingData:
    images: np.ndarray  # uint8 BGR [N, H, W, 3], pre-processed by glcf_runtime
    paths: list[Path]
    root: Path
    category: str | None
    layout: str
    batch_size: int  # per process
    seed: int
    info: DistInfo

    @property
    def count(self) -> int:
        return len(self.images)

    @property
    def steps_per_epoch(self) -> int:
        per_rank = math.ceil(self.count / self.info.world_size)
        return math.ceil(per_rank / self.batch_size)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """Index arrays of this process's batches in ``epoch``: a seeded shuffle, so that a
        resumed run sees exactly the batches an uninterrupted one would."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.count)
        world = self.info.world_size
        padded = np.resize(order, math.ceil(self.count / world) * world)  # wrap to share evenly
        mine = padded[self.info.rank :: world]
        return [mine[i : i + self.batch_size] for i in range(0, len(mine), self.batch_size)]

    def describe(self) -> dict:
        return {"root": str(self.root), "category": self.category, "layout": self.layout,
                "count": self.count}


def load_training_data(root: Path, category: str | None, cfg: GlcfConfig, info: DistInfo,
                       progress: bool = True, max_pixels: int = MAX_PIXELS) -> TrainingData:
    """Read every training image through the runtime's pre-processing (a bad file stops here).

    Args:
        max_pixels: refuse a larger image (``--max-pixels``), before decoding it.

    Raises:
        ConfigError: ``train.shift_augment`` is not a whole number of pixels in range.
        ImageReadError: an image that cannot be read, or is too large.
        DataError: no training images, too few held out, or a flat training image.
    """
    checked_max_pixels(max_pixels)
    shift, size = cfg.train.shift_augment, cfg.model.image_size
    if not (isinstance(shift, int) and 0 <= shift < size // 2):
        raise ConfigError(f"train.shift_augment is {shift!r}: give a whole number of pixels from 0 "
                          f"(no shifted copies) to {size // 2 - 1} (the model's input is {size} px)")
    root = Path(root)
    layout = detect_layout(root, category)
    samples = read_split(root, category, "train")
    if not samples:
        raise DataError(f"no training images found under {root} (category {category!r})")
    held_out = len(read_split(root, category, "validation"))
    if held_out < MIN_VALIDATION:
        where = f"{root}" + (f" (category {category})" if category else "")
        raise DataError(
            f"{where} gives {held_out} validation image(s); glcf calibrate needs at least "
            f"{MIN_VALIDATION} to set a threshold. A plain folder or MVTec AD category holds out "
            "every 10th image, so give it at least 20 images (a LOCO layout: add validation/good images)"
        )
    spec = PreprocessSpec(cfg.model.image_size, cfg.model.image_size)
    with counting_progress("reading training images", len(samples),
                           enabled=progress and info.is_main) as advance:
        images = load_images(samples, spec, progress=advance, max_pixels=max_pixels)
    paths = [s.path for s in samples]
    _refuse_flat(images, paths)
    if cfg.train.shift_augment > 0:
        images = np.concatenate([images, shifted(images, cfg.train.shift_augment, cfg.train.seed)])
        paths = paths + paths  # the copy comes from the same file
    return TrainingData(images, paths, root, category, layout.value, cfg.train.batch_size,
                        cfg.train.seed, info)


def shifted(images: np.ndarray, most: int, seed: int) -> np.ndarray:
    """A copy of each image moved by a seeded whole-pixel offset in [-most, most] in x and y, its
    uncovered border filled by repeating the edge pixels (``cv2.BORDER_REPLICATE``)."""
    offsets = np.random.default_rng([seed, most]).integers(-most, most + 1, (len(images), 2))
    out = np.empty_like(images)
    for i, (image, (dx, dy)) in enumerate(zip(images, offsets, strict=True)):
        height, width = image.shape[:2]
        ys = np.clip(np.arange(height) - dy, 0, height - 1)
        xs = np.clip(np.arange(width) - dx, 0, width - 1)
        out[i] = image[ys][:, xs]
    return out


def _refuse_flat(images: np.ndarray, paths: list[Path]) -> None:
    """DataError naming the flat training images (near-constant pixels at the model's input
    size, as ``glcf inspect``'s health check measures them): a blank capture or a black
    placeholder would teach the model that a blank frame is good."""
    flat = [(path, std) for path, image in zip(paths, images, strict=True)
            if (std := pixel_std(image)) < FLAT_STD]
    if not flat:
        return
    path, std = flat[0]
    more = f" (and {len(flat) - 1} more)" if len(flat) > 1 else ""
    raise DataError(
        f"training image {path}{more} is flat: its pixels are nearly constant (std {std:.2f} < "
        f"{FLAT_STD:g} levels at the model's input size), a blank or failed capture that would "
        "teach the model a blank frame is good; remove it from the training images"
    )
