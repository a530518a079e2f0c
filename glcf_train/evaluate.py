"""`glcf eval`: metrics on a test split, one record per image, anomaly maps as TIFF, heat maps.

Metrics are computed at the images' original resolution, scaled down to at most
``METRIC_MAX_SIDE`` pixels on the longer side to bound memory (absolute sPRO saturation areas
are scaled with it). For official MVTec LOCO numbers, run MVTec's evaluation script on the
TIFF files ``--save-maps`` writes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration import metrics as M
from calibration.loco_defects import defects_from_masks
from glcf_runtime.errors import DataError
from glcf_runtime.files import atomic_write_text
from glcf_runtime.overlay import panel
from glcf_runtime.preprocess import PreprocessSpec, read_image
from glcf_train.builder import load_run, resolve_device
from glcf_train.calibrate import score_images, scorer_for
from glcf_train.config import BranchMode
from glcf_train.data.datasets import (
    Layout,
    Sample,
    detect_layout,
    load_defects_config,
    load_images,
    load_mask_images,
    read_split,
)

METRIC_MAX_SIDE = 512


@dataclass(frozen=True)
class EvalRecord:
    path: str
    label: int
    defect_type: str
    kind: str
    score: float


@dataclass(frozen=True)
class EvalResult:
    layout: str
    branch_mode: str
    metrics: dict[str, float]
    records: list[EvalRecord]
    threshold: float

    def to_dict(self) -> dict:
        return {"layout": self.layout, "branch_mode": self.branch_mode, "metrics": self.metrics,
                "threshold": self.threshold, "records": [asdict(r) for r in self.records]}


def evaluate_run(run: Path, data: Path | None = None, category: str | None = None,
                 branch_mode: BranchMode | None = None, json_out: Path | None = None,
                 save_maps: Path | None = None, overlays: Path | None = None,
                 device: str = "auto", batch_size: int = 8, progress: bool = True) -> EvalResult:
    """Score a run on the test split of its data set (or of ``data``/``category``)."""
    dev = resolve_device(device)
    model, cfg, ckpt = load_run(run, dev)
    scorer, calib = scorer_for(run, cfg, branch_mode)
    scorer.to(dev)
    root = Path(data) if data is not None else Path(ckpt["data"]["root"])
    category = category if category is not None else ckpt["data"]["category"]
    layout = detect_layout(root, category)
    samples = read_split(root, category, "test")
    if not samples:
        raise DataError(f"{root}: a plain folder of good images has no test split; evaluate on an "
                        "MVTec AD / LOCO layout (try `glcf data synth`)")
    spec = PreprocessSpec(cfg.model.image_size, cfg.model.image_size)
    maps, scores = score_images(model, scorer, load_images(samples, spec), batch_size, dev,
                                progress, label="test images")
    base = root / (category or "")
    metrics = compute_metrics(layout, base, samples, maps, scores)
    records = [EvalRecord(str(s.path), s.label, s.defect_type, s.kind, float(sc))
               for s, sc in zip(samples, scores, strict=True)]
    threshold = float(calib["threshold"]["threshold"])
    result = EvalResult(layout.value, scorer.cfg.branch_mode.value, metrics, records, threshold)
    if save_maps is not None or overlays is not None:
        vmin, vmax = calib["map_range"]
        _write_images(samples, maps, scores, threshold, (vmin, vmax), save_maps, overlays)
    if json_out is not None:
        atomic_write_text(Path(json_out), json.dumps(result.to_dict(), indent=2))
    return result


def compute_metrics(layout: Layout, base: Path, samples: list[Sample], maps: np.ndarray,
                    scores: np.ndarray) -> dict[str, float]:
    """LOCO: image AUROC and AUC-sPRO@0.05 for logical, structural and their mean.
    MVTec AD: image AUROC, pixel AUROC and AU-PRO@0.3."""
    labels = np.array([s.label for s in samples])
    size = _metric_size(samples[0].path)
    if layout is not Layout.LOCO:
        masks = np.stack([_union(s, size) for s in samples])
        small = _resize_maps(maps, size)
        return {"image_auroc": M.image_auroc(scores, labels),
                "pixel_auroc": M.pixel_auroc(small, masks), "au_pro_0.3": M.pro_auc(small, masks)}
    config = load_defects_config(base)
    out: dict[str, float] = {}
    for kind in ("logical", "structural"):
        sel = [i for i, s in enumerate(samples) if s.kind in ("good", kind)]
        if not any(samples[i].label for i in sel):
            continue
        sub = [samples[i] for i in sel]
        defects = [_defects(s, size, config) for s in sub]
        out[f"{kind}_image_auroc"] = M.image_auroc(scores[sel], labels[sel])
        out[f"{kind}_spro_0.05"] = M.spro_auc(_resize_maps(maps[sel], size), defects)
    for metric in ("image_auroc", "spro_0.05"):
        values = [v for k, v in out.items() if k.endswith(metric)]
        if len(values) == 2:
            out[f"mean_{metric}"] = float(np.mean(values))
    return out


def _metric_size(path: Path) -> tuple[int, int]:
    h, w = read_image(path).shape[:2]
    scale = min(1.0, METRIC_MAX_SIDE / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    return np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in maps])


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)


def _union(sample: Sample, size: tuple[int, int]) -> np.ndarray:
    union = np.zeros(size, bool)
    for mask in load_mask_images(sample):
        union |= _resize_mask(mask, size) > 0
    return union


def _defects(sample: Sample, size: tuple[int, int], config: dict[int, dict]) -> list:
    masks = load_mask_images(sample)
    if not masks:
        return []
    area_ratio = (size[0] * size[1]) / float(masks[0].shape[0] * masks[0].shape[1])
    scaled = {v: {**e, "saturation_threshold": e["saturation_threshold"] *
                  (1.0 if e["relative_saturation"] else area_ratio)} for v, e in config.items()}
    return defects_from_masks([_resize_mask(m, size) for m in masks], scaled)


def _write_images(samples: list[Sample], maps: np.ndarray, scores: np.ndarray, threshold: float,
                  vrange: tuple[float, float], save_maps: Path | None, overlays: Path | None) -> None:
    import tifffile

    for sample, m, score in zip(samples, maps, scores, strict=True):
        image = read_image(sample.path)
        h, w = image.shape[:2]
        full = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        if save_maps is not None:
            target = Path(save_maps) / sample.defect_type / f"{sample.path.stem}.tiff"
            target.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(target, full)
        if overlays is not None:
            target = Path(overlays) / sample.defect_type / f"{sample.path.stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            picture = panel(image, full, float(score), threshold, vrange[0], vrange[1],
                            label=f"{sample.defect_type}/{sample.path.name}")
            if not cv2.imwrite(str(target), picture):
                raise DataError(f"could not write {target}; check the folder is writable")
