"""Frame health: a frame no model verdict should be given for (a covered lens, a blown exposure,
a dead or frozen camera) is reported as unusable instead of scored.

The check runs in the per-frame loop on the pre-processed model input (after the crop, so it sees
what the model sees), sampled on a strided grid of about ``SAMPLE_SIDE``² pixels (every 3rd
pixel of a 224² input), with OpenCV's counting and statistics. A blank frame scores *low* with
the ``std`` score rule, so without this check a dead camera would be called good.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np

from glcf_runtime.errors import ConfigError

SAMPLE_SIDE = 64  # pixels per side of the strided view the statistics are taken on
FLAT_STD = 0.75  # pixel std (8-bit levels, model input) below which a frame is flat


class Health(str, Enum):
    """Why a frame is unusable (the ``health`` field of its record)."""

    FLAT = "flat"  # near-constant: covered lens, grey / black / white frame
    CLIPPED = "clipped"  # mostly saturated pixels: blown exposure, black-clipped
    FROZEN = "frozen"  # a live stream repeating the identical frame


@dataclass(frozen=True)
class HealthConfig:
    """Limits of a usable frame; ``enabled=False`` scores every frame.

    Attributes:
        min_std: a frame whose pixel standard deviation (8-bit levels, model input) is below this
            is flat. A product photo is far above it (tens of levels); resizing a camera frame to
            the model's input averages sensor noise away, so a covered lens comes out below it.
        max_clipped: a frame with more than this fraction of its pixel values at 0–2 or 253–255
            is clipped.
        frozen_frames: a live source repeating the identical frame this many times in a row is
            frozen (from the last of them on); 0 turns the check off. Files are never frozen: a
            video may repeat a frame, and that is what the file holds.
    """

    enabled: bool = True
    min_std: float = FLAT_STD
    max_clipped: float = 0.95
    frozen_frames: int = 25

    def __post_init__(self) -> None:
        if not (np.isfinite(self.min_std) and self.min_std >= 0):
            raise ConfigError(f"--health-min-std {self.min_std}: give a number of 8-bit levels >= 0")
        if not (0.0 < self.max_clipped <= 1.0):
            raise ConfigError(
                f"--health-max-clipped {self.max_clipped}: give a fraction in (0, 1]"
            )
        if self.frozen_frames < 0 or self.frozen_frames == 1:
            raise ConfigError(
                f"--health-frozen-frames {self.frozen_frames}: give 0 (off) or at least 2"
            )


def _sample(image: np.ndarray) -> np.ndarray:
    """The strided view of about ``SAMPLE_SIDE``² pixels, every value in one column."""
    step = max(1, max(image.shape[:2]) // SAMPLE_SIDE)
    return np.ascontiguousarray(image[::step, ::step]).reshape(-1, 1)


def _std(view: np.ndarray) -> float:
    return float(cv2.meanStdDev(view)[1][0, 0])


def pixel_std(image: np.ndarray) -> float:
    """The standard deviation of an image's pixel values (8-bit levels) as the health check
    measures it; below ``FLAT_STD`` the image is flat.

    Args:
        image: uint8 ``[H, W, 3]``, a pre-processed model input.
    """
    return _std(_sample(image))


class HealthCheck:
    """Checks frames one at a time, in order (it remembers the previous frame for ``frozen``)."""

    def __init__(self, config: HealthConfig, live: bool) -> None:
        self.config = config
        self.frozen_limit = config.frozen_frames if live else 0
        self._last: int | None = None
        self._repeats = 0

    def check(self, image: np.ndarray) -> tuple[Health, str] | None:
        """``(health, message)`` for an unusable frame, None for a good one.

        Args:
            image: uint8 ``[H, W, 3]``, the pre-processed model input.
        """
        cfg = self.config
        if not cfg.enabled:
            return None
        view = _sample(image)
        frozen = self._frozen(view)
        if frozen is not None:
            return frozen
        clipped = 1.0 - cv2.countNonZero(cv2.inRange(view, 3, 252)) / view.size
        if clipped > cfg.max_clipped:
            return Health.CLIPPED, (
                f"{clipped:.0%} of the pixels are clipped (black or white; limit "
                f"{cfg.max_clipped:.0%}): check the exposure and the lens"
            )
        std = _std(view)
        if std < cfg.min_std:
            return Health.FLAT, (
                f"the frame is nearly constant (pixel std {std:.2f} < {cfg.min_std:g}): a "
                "covered lens, no light or a dead camera"
            )
        return None

    def _frozen(self, view: np.ndarray) -> tuple[Health, str] | None:
        if self.frozen_limit == 0:
            return None
        digest = zlib.crc32(view.data)
        self._repeats = self._repeats + 1 if digest == self._last else 1
        self._last = digest
        if self._repeats < self.frozen_limit:
            return None
        return Health.FROZEN, (
            f"the stream repeats the identical frame ({self._repeats} in a row): a frozen camera "
            "or encoder"
        )
