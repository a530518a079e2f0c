"""Why small defects are missed: image AUROC of trained runs under scoring variants.

For each run, the error maps of its training and test images are computed once; every variant
(Gaussian σ of the map, scale weights K, branch mode, image-score rule, and the product's
``--normalisation position`` option) recomputes the fusion statistics on the training maps and
scores the test maps, as DESIGN §3 describes. The study's
variants live here, not in the product. Writes benchmarks/results/scoring-study_<category>_<date>.json.

Usage: python benchmarks/scoring_study.py RUN [RUN ...]
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from calibration import metrics as M
from calibration.stats import PositionStatistics
from glcf_runtime.preprocess import PreprocessSpec
from glcf_train.builder import load_run
from glcf_train.data.datasets import load_images, read_split
from glcf_train.scoring import GaussianBlur, error_maps, resize_map

torch.set_grad_enabled(False)


def errs(model, images: np.ndarray, bs: int = 16) -> dict[str, list[torch.Tensor]]:
    """Channel-mean squared errors per branch and scale, ``[N, h, w]`` each."""
    out = {"local": [[], [], []], "global": [[], [], []]}
    for i in range(0, len(images), bs):
        f = model(torch.from_numpy(images[i:i + bs]))
        for br, maps in error_maps(f).items():
            for k, m in enumerate(maps):
                out[br][k].append(m)
    return {br: [torch.cat(v) for v in lst] for br, lst in out.items()}


def stats(train_err: dict, sigma: float, size: int = 224) -> tuple[dict, dict]:
    """μ, σ per (branch, scale) of the resized, smoothed training maps (σ = 0: no smoothing)."""
    blur = GaussianBlur(sigma) if sigma > 0 else None
    mu, sd = {}, {}
    for br in ("local", "global"):
        for k in range(3):
            m = resize_map(train_err[br][k], size)
            if blur is not None:
                m = blur(m)
            mu[br, k] = float(m.mean(dim=(1, 2)).mean())
            sd[br, k] = float(m.std(dim=(1, 2), unbiased=False).mean())
    return mu, sd


def position_stats(train_err: dict) -> tuple[dict, dict]:
    """μ, σ maps per (branch, scale) on the native grids, as `glcf calibrate --normalisation position`."""
    mu, sd = {}, {}
    for br in ("local", "global"):
        for k in range(3):
            acc = PositionStatistics(f"{br}/{k}")
            acc.update(train_err[br][k].numpy())
            m, s = acc.result()
            mu[br, k], sd[br, k] = torch.from_numpy(m), torch.from_numpy(s)
    return mu, sd


def score(test_err: dict, mu: dict, sd: dict, sigma: float, weights: tuple, branch: str,
          rule: str, size: int = 224) -> np.ndarray:
    """Image scores ``[N]`` of the fused, smoothed anomaly maps (μ, σ scalars or native-grid maps)."""
    w = {"local": 5.0 if branch != "global" else 0.0, "global": 1.0 if branch != "local" else 0.0}
    total = 0
    for k in range(3):
        s = sum(w[br] * weights[k] / 3 * (test_err[br][k] - mu[br, k]) / sd[br, k] for br in w if w[br])
        total = total + resize_map(s, size)
    if sigma > 0:
        total = GaussianBlur(sigma)(total)
    flat = total.flatten(1)
    return (flat.amax(1) if rule == "max" else flat.std(1, unbiased=False)).numpy()


def study(run: Path) -> dict:
    model, _, ckpt = load_run(run)
    root, cat = Path(ckpt["data"]["root"]), ckpt["data"]["category"]
    spec = PreprocessSpec()
    train = load_images(read_split(root, cat, "train"), spec)
    test_s = read_split(root, cat, "test")
    test = load_images(test_s, spec)
    tr, te = errs(model, train), errs(model, test)
    kinds = np.array([s.kind for s in test_s])
    results = {}
    for sigma in (4.0, 2.0, 1.0, 0.0):
        mu, sd = stats(tr, sigma)
        for weights, branch, rule in itertools.product(
                ((1, 3, 6), (1, 1, 1), (6, 3, 1), (1, 0, 0)), ("both", "local", "global"), ("std", "max")):
            sc = score(te, mu, sd, sigma, weights, branch, rule)
            row = {}
            for kind in ("logical", "structural"):
                sel = np.isin(kinds, ("good", kind))
                row[kind] = M.image_auroc(sc[sel], (kinds[sel] == kind).astype(int))
            results[f"sigma={sigma} K={weights} {branch} {rule}"] = row
    pmu, psd = position_stats(tr)
    for sigma, rule in itertools.product((4.0, 2.0), ("std", "max")):
        sc = score(te, pmu, psd, sigma, (1, 3, 6), "both", rule)
        row = {}
        for kind in ("logical", "structural"):
            sel = np.isin(kinds, ("good", kind))
            row[kind] = M.image_auroc(sc[sel], (kinds[sel] == kind).astype(int))
        results[f"position sigma={sigma} K=(1, 3, 6) both {rule}"] = row
    return results


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        res = study(Path(arg))
        category = load_run(Path(arg))[2]["data"]["category"]
        out = Path(__file__).parent / "results" / f"scoring-study_{category}_{time.strftime('%Y%m%d')}.json"
        out.write_text(json.dumps({"run": arg, "image_auroc": res}, indent=1))
        print(arg, "→", out)
        for key, row in sorted(res.items(), key=lambda kv: -kv[1]["structural"])[:12]:
            print(f"  {key:40s} logical {row['logical']:.3f} structural {row['structural']:.3f}")
        print("  paper default:", res["sigma=4.0 K=(1, 3, 6) both std"])
        for key in (k for k in res if k.startswith("position")):
            print(f"  {key:40s} logical {res[key]['logical']:.3f} structural {res[key]['structural']:.3f}")
