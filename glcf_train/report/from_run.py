"""Assemble a :class:`ReportData` from an evaluated run: ground truth, detectors, provenance."""

from __future__ import annotations

import datetime as dt
import platform
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from glcf_train.config import GlcfConfig, ScoringConfig, from_dict, to_dict
from glcf_train.data.datasets import Layout, Sample, load_mask_images
from glcf_train.report.build import Detector, ReportData

# (name, maps [N, S, S], scores [N], threshold, how the threshold was chosen)
DetectorScores = tuple[str, np.ndarray, np.ndarray, float, str]


def _versions() -> str:
    names = ("glcf", "torch", "timm", "numpy", "opencv-python-headless", "matplotlib")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return f"Python {sys.version.split()[0]}, " + ", ".join(found) + f"; {platform.platform()}"


def _scoring(calib: dict) -> str:
    """The scoring the run was calibrated with (``glcf calibrate`` may change the config's)."""
    return from_dict(ScoringConfig, calib.get("scoring", {}), "calibration scoring").describe()


def _mask(sample: Sample, size: int) -> np.ndarray:
    union = np.zeros((size, size), bool)
    for mask in load_mask_images(sample):
        union |= cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST) > 0
    return union


def report_data(run: Path, ckpt: dict, cfg: GlcfConfig, calib: dict, samples: list[Sample],
                names: list[str], images: np.ndarray, detectors: list[DetectorScores],
                localisers: list[Callable[[np.ndarray], float]], layout: Layout,
                notes: tuple[str, ...] = ()) -> ReportData:
    """Everything the report shows, from what ``evaluate_run`` computed."""
    size = cfg.model.image_size
    data = ckpt["data"]
    about = {
        "run": str(Path(run).resolve()),
        "data": f"{data.get('root')} · category {data.get('category')} · "
                f"{data.get('count')} good training images",
        "test images": f"{len(samples)} ({sum(s.label for s in samples)} anomalous)",
        "backbone weights": f"{cfg.model.backbone.kind.value}, {ckpt.get('backbone')}"
                            + (f" (sha256 {ckpt['backbone_sha256']})" if ckpt.get("backbone_sha256") else ""),
        "training": f"{ckpt.get('step')} optimiser steps, preset {cfg.preset}, config {cfg.hash()}",
        "scoring": _scoring(calib),
        "versions": _versions(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    loco = layout is Layout.LOCO
    return ReportData(
        title=f"GLCF evaluation · {data.get('category') or Path(str(data.get('root'))).name}",
        subtitle=("Test split scored with the torch reference scorer (the exported graph "
                  "computes the same maps)" + (", beside a reference baseline." if len(detectors) > 1 else ".")),
        paths=[str(s.path) for s in samples],
        kinds=[s.kind for s in samples],
        defect_types=names,
        images=images,
        masks=np.stack([_mask(s, size) for s in samples]),
        map_range=(float(calib["map_range"][0]), float(calib["map_range"][1])),
        detectors=[Detector(n, m, sc, t, note, loc) for (n, m, sc, t, note), loc
                   in zip(detectors, localisers, strict=True)],
        localisation_name="AUC-sPRO@0.05" if loco else "AU-PRO@0.3",
        about=about,
        config=to_dict(cfg),
        notes=list(notes),
    )
