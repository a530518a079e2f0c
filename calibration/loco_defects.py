"""MVTec LOCO ground truth → defects for sPRO: saturation areas from ``defects_config.json``.

As MVTec LOCO's ``mvtec_loco_ad_evaluation`` reads them: one defect per ground-truth PNG, whose
non-zero pixels carry the defect type's ``pixel_value``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from calibration.metrics import Defect


def saturation_area(mask: np.ndarray, saturation_threshold: float, relative: bool) -> float:
    """Number of a defect's pixels that must be detected for its sPRO to reach 1.

    As MVTec LOCO's ``GroundTruthChannel.get_saturation_area``: relative →
    ``int(threshold × area)`` (truncated); absolute → ``min(threshold, area)``. Where truncation
    gives 0 (a tiny defect with a small relative threshold, on which the official code divides
    by zero), this returns 1: one detected pixel saturates the defect.

    Args:
        mask: ``[H, W]`` bool, the defect's pixels.
        saturation_threshold: a fraction in (0, 1] if ``relative``, else a pixel count > 0.
        relative: whether the threshold is a fraction of the defect's area.

    Returns:
        The saturation area in pixels, at least 1.
    """
    area = int(np.count_nonzero(mask))
    if area == 0:
        raise ValueError("the defect mask is empty; a defect needs at least one pixel")
    if relative:
        if not 0.0 < saturation_threshold <= 1.0:
            raise ValueError(
                f"a relative saturation threshold must lie in (0, 1], got {saturation_threshold}"
            )
        return float(max(int(saturation_threshold * area), 1))
    if not saturation_threshold > 0:
        raise ValueError(
            f"an absolute saturation threshold must be > 0, got {saturation_threshold}"
        )
    return float(min(saturation_threshold, area))


def parse_defects_config(entries: Sequence[Mapping]) -> dict[int, dict]:
    """Key a LOCO ``defects_config.json`` (a list of entries) by pixel value.

    Args:
        entries: dicts with ``defect_name``, ``pixel_value``, ``saturation_threshold`` and
            ``relative_saturation``, as in each LOCO category's ``defects_config.json``.

    Returns:
        ``{pixel_value: entry}``.
    """
    config: dict[int, dict] = {}
    for entry in entries:
        missing = {"pixel_value", "saturation_threshold", "relative_saturation"} - set(entry)
        if missing:
            raise ValueError(f"defects_config entry {entry} lacks {sorted(missing)}")
        value = int(entry["pixel_value"])
        if value in config:
            raise ValueError(f"defects_config lists pixel value {value} twice")
        config[value] = dict(entry)
    return config


def defects_from_masks(
    mask_images: Sequence[np.ndarray], defects_config: Mapping[int, Mapping]
) -> list[Defect]:
    """Turn one image's LOCO ground-truth PNGs into defects with saturation areas.

    LOCO stores one PNG per defect; its non-zero pixels carry the defect type's
    ``pixel_value``. A PNG with several non-zero values gives one defect per value.

    Args:
        mask_images: the image's ground-truth PNGs, each ``[H, W]`` uint8 (0 = defect-free).
        defects_config: ``{pixel_value: entry}`` (see ``parse_defects_config``); an entry
            holds ``saturation_threshold`` and ``relative_saturation``.

    Returns:
        ``[(mask [H, W] bool, saturation_area)]``, one per defect.

    Raises:
        ValueError: a PNG is not 2-D, holds no defect pixel, or uses a pixel value that the
            config does not list.
    """
    defects: list[Defect] = []
    for index, image in enumerate(mask_images):
        image = np.asarray(image)
        if image.ndim != 2:
            raise ValueError(f"ground-truth PNG {index} has shape {image.shape}; expected [H, W]")
        values = [int(v) for v in np.unique(image) if v != 0]
        if not values:
            raise ValueError(f"ground-truth PNG {index} holds no defect pixel (all zero)")
        for value in values:
            if value not in defects_config:
                raise ValueError(
                    f"ground-truth PNG {index} uses pixel value {value}, which defects_config "
                    f"does not list (known: {sorted(defects_config)}); use the category's "
                    "defects_config.json"
                )
            entry = defects_config[value]
            mask = image == value
            area = saturation_area(
                mask, float(entry["saturation_threshold"]), bool(entry["relative_saturation"])
            )
            defects.append((mask, area))
    return defects
