"""`glcf eval RUN --compare-scoring`: the scoring choices of `glcf calibrate` side by side.

The error maps of the training, validation and test images are computed once. Each choice
(image score ``std`` / ``max`` × ``image`` / ``position`` normalisation) is then calibrated as
`glcf calibrate` would (fusion statistics on the training images, the threshold rule on the
validation images) and scored on the test images: image AUROC with bootstrap intervals per defect
kind, and the operating point at that threshold. Nothing is written to the run.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from calibration import metrics as M
from calibration.threshold import DEFAULT_MARGIN, DEFAULT_QUANTILE, select_threshold
from glcf_runtime.errors import DataError
from glcf_runtime.preprocess import PreprocessSpec
from glcf_train.builder import load_run, resolve_device
from glcf_train.calibrate import CALIBRATION_NAME, StatsAccumulator, read_calibration
from glcf_train.config import BranchMode, Normalisation, ScoreRule
from glcf_train.data.datasets import load_images, read_split
from glcf_train.progress import counting_progress
from glcf_train.report.tables import auroc_interval
from glcf_train.scoring import TorchScorer, error_maps

CHOICES = tuple((rule, norm) for norm in Normalisation for rule in ScoreRule)


@dataclass(frozen=True)
class ScoringRow:
    """One scoring choice on the test split."""

    score_rule: str
    normalisation: str
    threshold: float
    auroc: dict[str, float]  # per defect kind present ("logical", "structural")
    interval: dict[str, tuple[float, float]]
    caught: dict[str, tuple[int, int]]  # per group ("good" = false alarms): (flagged, total)

    @property
    def mean_auroc(self) -> float:
        return float(np.mean(list(self.auroc.values())))

    def command(self, run: Path) -> str:
        """The calibrate command that chooses this scoring, shell-quoted."""
        return shlex.join(["glcf", "calibrate", str(run), "--score-rule", self.score_rule,
                           "--normalisation", self.normalisation])


@torch.no_grad()
def _errors(model, images: np.ndarray, batch_size: int, device: torch.device, label: str,
            progress: bool) -> list[dict]:
    """Error maps of ``images`` (both branches), batch by batch, on the CPU."""
    out = []
    with counting_progress(label, len(images), enabled=progress) as advance:
        for i in range(0, len(images), batch_size):
            batch = torch.from_numpy(images[i:i + batch_size]).to(device)
            errs = error_maps(model(batch, BranchMode.BOTH))
            out.append({b: [m.float().cpu() for m in maps] for b, maps in errs.items()})
            advance(min(i + batch_size, len(images)), len(images))
    return out


@torch.no_grad()
def _scores(scorer: TorchScorer, errors: list[dict]) -> np.ndarray:
    return np.concatenate([scorer.score_errors(e)[1].numpy() for e in errors])


def compare_scoring(run: Path, data: Path | None = None, category: str | None = None,
                    device: str = "auto", batch_size: int = 8,
                    quantile: float = DEFAULT_QUANTILE, margin: float = DEFAULT_MARGIN,
                    target_fpr: float | None = None, progress: bool = True) -> list[ScoringRow]:
    """Every scoring choice of `glcf calibrate`, calibrated and scored on ``run``'s data.

    Raises:
        DataError: the data set has no labelled test split or too few validation images.
    """
    dev = resolve_device(device)
    model, cfg, ckpt = load_run(run, dev)
    root = Path(data) if data is not None else Path(ckpt["data"]["root"])
    category = category if category is not None else ckpt["data"]["category"]
    test = read_split(root, category, "test")
    kinds = np.array([s.kind for s in test])
    present = [k for k in ("logical", "structural") if (kinds == k).any()]
    if not present or not (kinds == "good").any():
        raise DataError(f"{root}: comparing scorings needs a test split with good and anomalous "
                        "images (MVTec AD / LOCO layout)")
    val = read_split(root, category, "validation")
    if len(val) < 2:
        raise DataError(f"{root}: need at least 2 validation images to set thresholds, found {len(val)}")
    spec = PreprocessSpec(cfg.model.image_size, cfg.model.image_size)
    train = read_split(root, category, "train")
    errors = {name: _errors(model, load_images(samples, spec), batch_size, dev, f"{name} images", progress)
              for name, samples in (("training", train), ("validation", val), ("test", test))}
    good = np.flatnonzero(kinds == "good")
    rows = []
    for rule, norm in CHOICES:
        scoring = replace(cfg.scoring, score_rule=rule, normalisation=norm)
        acc = StatsAccumulator(scoring, cfg.model.image_size)
        for e in errors["training"]:
            acc.add(e)
        scorer = TorchScorer(scoring, cfg.model.image_size, acc.result())
        cut = select_threshold(_scores(scorer, errors["validation"]), None, quantile, margin,
                               target_fpr).threshold
        scores = _scores(scorer, errors["test"])
        auroc, interval, caught = {}, {}, {"good": (int((scores[good] >= cut).sum()), good.size)}
        for kind in present:
            bad = np.flatnonzero(kinds == kind)
            labels = np.r_[np.zeros(good.size), np.ones(bad.size)]
            auroc[kind] = M.image_auroc(np.r_[scores[good], scores[bad]], labels)
            interval[kind] = auroc_interval(scores, good, bad)
            caught[kind] = (int((scores[bad] >= cut).sum()), bad.size)
        rows.append(ScoringRow(rule.value, norm.value, float(cut), auroc, interval, caught))
    return rows


def threshold_rule_of(run: Path) -> dict:
    """The threshold rule of the run's calibration (so the comparison uses the same), or {}."""
    path = Path(run) / CALIBRATION_NAME
    if not path.is_file():
        return {}
    t = read_calibration(path)["threshold"]
    if t.get("rule") == "target_fpr":
        return {"target_fpr": t.get("target_fpr")}
    if t.get("rule") == "normal_quantile":
        return {"quantile": t.get("quantile"), "margin": t.get("margin")}
    return {}
