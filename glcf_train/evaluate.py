"""`glcf eval`: metrics on a test split, one record per image, anomaly maps as TIFF, heat maps.

Metrics are computed at the images' original resolution, scaled down to at most
``METRIC_MAX_SIDE`` pixels on the longer side to bound memory (absolute sPRO saturation areas
are scaled with it). For official MVTec LOCO numbers, run MVTec's evaluation script on the
TIFF files ``--save-maps`` writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from calibration import metrics as M
from calibration.loco_defects import defects_from_masks
from calibration.threshold import sample_size_note
from glcf_runtime.errors import DataError
from glcf_runtime.files import atomic_write_text
from glcf_runtime.overlay import panel
from glcf_runtime.preprocess import PreprocessSpec, read_image
from glcf_train.baseline import Baseline
from glcf_train.builder import load_run, resolve_device
from glcf_train.calibrate import score_images, scorer_for
from glcf_train.config import BranchMode, to_dict
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
    defect: str = ""  # the defect's name (LOCO: from defects_config.json), "good" for good images


@dataclass(frozen=True)
class EvalResult:
    layout: str
    branch_mode: str
    metrics: dict[str, float]
    records: list[EvalRecord]
    threshold: float
    baseline: EvalResult | None = None  # a reference baseline on the same images
    report: Path | None = None  # the report's index.html
    scoring: dict | None = None  # the scoring the run was calibrated with (GLCF only)
    notes: tuple[str, ...] = ()  # what the user should know about these figures (e.g. the ground truth)

    def to_dict(self) -> dict:
        out = {"layout": self.layout, "branch_mode": self.branch_mode, "metrics": self.metrics,
               "threshold": self.threshold, "records": [asdict(r) for r in self.records]}
        if self.scoring is not None:
            out["scoring"] = self.scoring
        if self.baseline is not None:
            out["baseline"] = self.baseline.to_dict()
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def evaluate_run(run: Path, data: Path | None = None, category: str | None = None,
                 branch_mode: BranchMode | None = None, json_out: Path | None = None,
                 save_maps: Path | None = None, overlays: Path | None = None,
                 device: str = "auto", batch_size: int = 8, progress: bool = True,
                 report: Path | None = None, baseline: Baseline | None = None) -> EvalResult:
    """Score a run on the test split of its data set (or of ``data``/``category``); with
    ``baseline``, score a reference baseline on the same images; with ``report``, write the
    HTML report there."""
    check_outputs(json_out, save_maps, overlays, report)
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
    images = load_images(samples, spec)
    maps, scores = score_images(model, scorer, images, batch_size, dev, progress, label="test images")
    base = root / (category or "")
    names, notes = defect_names(layout, base, samples)
    threshold = float(calib["threshold"]["threshold"])

    def result_of(m: np.ndarray, sc: np.ndarray, t: float, mode: str) -> EvalResult:
        records = [EvalRecord(str(s.path), s.label, s.defect_type, s.kind, float(v), n)
                   for s, v, n in zip(samples, sc, names, strict=True)]
        return EvalResult(layout.value, mode, compute_metrics(layout, base, samples, m, sc),
                          records, t)

    result = _with(result_of(maps, scores, threshold, scorer.cfg.branch_mode.value),
                   scoring=to_dict(scorer.cfg), notes=notes)
    ref = None
    if baseline is not None:
        ref = score_baseline(model, root, category, spec, images, calib, batch_size, dev, progress)
        result = _with(result, baseline=result_of(ref.maps, ref.scores, ref.threshold, baseline.value))
    if report is not None:
        from glcf_train.report import write_report
        from glcf_train.report.from_run import report_data

        detectors = [("GLCF", maps, scores, threshold, _threshold_note(calib["threshold"]))]
        if ref is not None:
            detectors.append(("PatchCore (reference)", ref.maps, ref.scores, ref.threshold, ref.note))
        localisers = localisation(layout, base, samples, [d[1] for d in detectors])
        page = report_data(run, ckpt, cfg, calib, samples, names, images, detectors, localisers,
                           layout, notes)
        result = _with(result, report=write_report(report, page))
    if save_maps is not None or overlays is not None:
        vmin, vmax = calib["map_range"]
        _write_images(samples, maps, scores, threshold, (vmin, vmax), save_maps, overlays)
    if json_out is not None:
        atomic_write_text(Path(json_out), json.dumps(result.to_dict(), indent=2))
    return result


def check_outputs(json_out: Path | None, save_maps: Path | None, overlays: Path | None,
                  report: Path | None) -> None:
    """Refuse, before the run loads, an output that cannot be written (a folder where a file
    goes, a read-only or full disk, a report folder that is not new): ConfigError / DataError."""
    from glcf_runtime.sinks import check_writable

    if json_out is not None:
        check_writable(Path(json_out), "--json")
    for folder, option in ((save_maps, "--save-maps"), (overlays, "--overlays")):
        if folder is not None:
            check_writable(Path(folder), option, folder=True)
    if report is not None:
        from glcf_train.report.build import check_report_folder

        check_report_folder(report)
        check_writable(Path(report), "--report", folder=True)


def _with(result: EvalResult, **changes: object) -> EvalResult:
    return replace(result, **changes)  # type: ignore[arg-type]


def _threshold_note(t: dict) -> str:
    rule = t.get("rule")
    if rule == "target_fpr":
        how = (f"lowest threshold with at most {t['target_fpr']:.1%} false alarms on the "
               f"{t['n_normal']} good validation images ({t['fpr']:.1%} reached)")
    elif rule == "normal_quantile":
        how = (f"quantile {t['quantile']} of the scores of {t['n_normal']} good validation images "
               f"plus a margin of {t['margin']} × (quantile − median)")
    else:
        return f"threshold rule {rule}"
    few = sample_size_note(t)
    return how if few is None else f"{how}. Note: {few}"


@dataclass(frozen=True)
class BaselineScores:
    maps: np.ndarray
    scores: np.ndarray
    threshold: float
    note: str


def score_baseline(model, root: Path, category: str | None, spec: PreprocessSpec,
                   images: np.ndarray, calib: dict, batch_size: int, device,
                   progress: bool) -> BaselineScores:
    """PatchCore on the run's frozen Φ_L: memory bank from the good training images, threshold
    from the good validation images by the run's own threshold rule, then the test images."""
    from calibration.threshold import DEFAULT_MARGIN, DEFAULT_QUANTILE, select_threshold
    from glcf_train.baseline import PatchCore

    core = PatchCore(model)
    core.fit(load_images(read_split(root, category, "train"), spec), batch_size, device, progress)
    val = load_images(read_split(root, category, "validation"), spec)
    _, val_scores = core.score(val, batch_size, device, progress)
    t = calib["threshold"]
    if t.get("rule") == "target_fpr":
        chosen = select_threshold(val_scores, None, target_fpr=t["target_fpr"])
    else:
        chosen = select_threshold(val_scores, None, t.get("quantile") or DEFAULT_QUANTILE,
                                  t.get("margin") or DEFAULT_MARGIN)
    maps, scores = core.score(images, batch_size, device, progress)
    note = ("PatchCore-style nearest-neighbour patch distance on the same frozen Φ_L features "
            f"(coreset of {core.cfg.coreset_ratio:.0%} of the good training patches); threshold "
            f"by the same rule: {_threshold_note(chosen.to_dict())}")
    return BaselineScores(maps, scores, float(chosen.threshold), note)


# At least this many anomalous images, all with one pixel value, raise the binarised-masks note.
BINARISED_MIN_IMAGES = 10


def defect_names(layout: Layout, base: Path, samples: list[Sample]) -> tuple[list[str], tuple[str, ...]]:
    """Per image: "good", the defect named by its first ground-truth PNG's pixel value (LOCO), or
    its test folder (MVTec AD); and notes on the ground truth (masks that look binarised)."""
    if layout is not Layout.LOCO:
        return [s.defect_type for s in samples], ()
    config = load_defects_config(base)
    names, values = [], set()
    for s in samples:
        masks = load_mask_images(s) if s.label else []
        value = int(masks[0].max()) if masks else 0
        values.update(int(v) for m in masks for v in np.unique(m) if v)
        names.append(config[value].get("defect_name", s.defect_type) if value in config
                     else ("good" if not s.label else s.defect_type))
    anomalous = sum(1 for s in samples if s.label)
    if len(values) == 1 and len(config) > 1 and anomalous >= BINARISED_MIN_IMAGES:
        (value,) = values
        name = config.get(value, {}).get("defect_name", "?")
        notes = (f"all {anomalous} anomalous test images' ground-truth masks carry one pixel value, "
                 f"{value} ({name}), while {base / 'defects_config.json'} lists {len(config)} defect "
                 f"types. If the masks were binarised (a converted copy of the data set), every "
                 f"defect is counted as {name!r} in the per-type rows and sPRO uses its saturation "
                 "for all of them; use the data set's original ground truth for those figures.",)
        return names, notes
    return names, ()


def localisation(layout: Layout, base: Path, samples: list[Sample],
                 maps: list[np.ndarray]) -> list[Callable[[np.ndarray], float]]:
    """Per map stack: a function of image indices → AUC-sPRO@0.05 (LOCO) or AU-PRO@0.3, at the
    same resolution as :func:`compute_metrics` (ground truth read once for all)."""
    size = _metric_size(samples[0].path)
    if layout is Layout.LOCO:
        config = load_defects_config(base)
        defects = [_defects(s, size, config) for s in samples]
        return [_spro_of(_resize_maps(m, size), defects) for m in maps]
    masks = np.stack([_union(s, size) for s in samples])
    return [_pro_of(_resize_maps(m, size), masks) for m in maps]


def _spro_of(small: np.ndarray, defects: list) -> Callable[[np.ndarray], float]:
    return lambda idx: M.spro_auc(small[idx], [defects[i] for i in idx])


def _pro_of(small: np.ndarray, masks: np.ndarray) -> Callable[[np.ndarray], float]:
    return lambda idx: M.pro_auc(small[idx], masks[idx])


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
