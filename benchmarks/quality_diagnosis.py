"""Where GLCF loses to PatchCore: image AUROC per branch and per scale, beside PatchCore per tap.

For each run, the error maps of its training and test images are computed once. The fusion
statistics are computed on the training maps as `glcf calibrate` does (DESIGN §3), and every
variant scores the test maps through the product's own :class:`TorchScorer`: the run's scoring,
each branch alone, each (branch, scale) alone, image score ``std``, ``max`` and their sum (each
standardised on the training images' scores), other branch
weights. PatchCore (the reference baseline of ``glcf eval --baseline``) is scored on the same
images with its patch features from t1 (stride 8), t2 (stride 16) or both (its default).
``by_defect`` gives the AUROC of each defect type (named by the ground truth's pixel values in
``defects_config.json``) for the main scorings and PatchCore's default. The mean
training error per (branch, scale) is reported beside them: how well each decoder fits the normal
images.

With ``--train``, each category is first trained with the ``edge`` preset and the given changes
(steps, learning rate, bottleneck width, loss form), then diagnosed. Rows are printed as JSON
lines and written to ``benchmarks/results/quality-diagnosis_<date>.json``.

    python benchmarks/quality_diagnosis.py --runs /runs/fastener_tray /runs/pill_blister
    python benchmarks/quality_diagnosis.py --train data/synth --categories fastener_tray \
        --work /tmp/qd --steps 2400 --patchcore
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from calibration import metrics as M
from glcf_export.gates import auroc_by_kind
from glcf_runtime.preprocess import PreprocessSpec
from glcf_train import evaluate
from glcf_train.baseline import PatchCoreConfig, greedy_coreset
from glcf_train.builder import load_run
from glcf_train.calibrate import StatsAccumulator
from glcf_train.config import BranchMode, LossForm, ScoreRule, preset, to_dict, with_train
from glcf_train.data.datasets import detect_layout, load_images, read_split
from glcf_train.scoring import SCALES, GaussianBlur, TorchScorer, error_maps, resize_map
from glcf_train.train import TrainOptions, train

RESULTS = Path(__file__).resolve().parent / "results"
CHUNK = 16


def cosine_maps(f) -> dict[str, list[torch.Tensor]]:
    """RD4AD's error maps: 1 - cosine similarity over channels, per branch and scale ``[B, h, w]``."""
    def cos(a, b):
        return [1.0 - F.cosine_similarity(x.float(), y.float(), dim=-1) for x, y in zip(a, b, strict=True)]
    return {"local": cos(f.phi_l, f.psi_l), "global": cos(f.phi_g, f.psi_g)}


def errors_of(model, images: np.ndarray) -> tuple[list[dict], list[dict]]:
    """Squared-error maps (the product's) and cosine-distance maps of ``images``, per chunk."""
    mse, cos = [], []
    for i in range(0, len(images), CHUNK):
        f = model(torch.from_numpy(images[i:i + CHUNK]), BranchMode.BOTH)
        mse.append(error_maps(f))
        cos.append(cosine_maps(f))
    return mse, cos


def kind_auroc(scores: np.ndarray, kinds: np.ndarray) -> dict[str, float]:
    """Image AUROC of each anomaly kind present against the good images."""
    out = {}
    for kind in ("logical", "structural"):
        sel = np.isin(kinds, ("good", kind))
        if (kinds == kind).any():
            out[kind] = round(M.image_auroc(scores[sel], (kinds[sel] == kind).astype(int)), 4)
    return out


def defect_names(samples, root: Path, category: str) -> np.ndarray:
    """Each test image's defect type, named as ``glcf eval`` names it; a ground truth that looks
    binarised (its note) names no type: the test folder's name."""
    names, notes = evaluate.defect_names(detect_layout(root, category), root / category, samples)
    return np.array([s.defect_type if notes and s.label else n
                     for s, n in zip(samples, names, strict=True)])


def defect_auroc(scores: np.ndarray, names: np.ndarray) -> dict[str, float]:
    """Image AUROC of each defect type against the good images (the export gates' measure)."""
    return {name: round(v, 4) for name, v in auroc_by_kind(scores, tuple(names)).items()}


# Per defect type: the run's scoring, each branch alone, both rules (and PatchCore's default).
BY_DEFECT = ("both std", "both max", "local std", "global std", "local max", "global max")


def variants(base) -> dict[str, object]:
    """Scoring variants: name → ScoringConfig (the run's scoring with some fields changed)."""
    out = {}
    for rule in ScoreRule:
        out[f"both {rule.value}"] = replace(base, score_rule=rule)
        for mode in (BranchMode.LOCAL, BranchMode.GLOBAL):
            out[f"{mode.value} {rule.value}"] = replace(base, score_rule=rule, branch_mode=mode)
            for i, scale in enumerate(SCALES):
                k = tuple(1.0 if j == i else 0.0 for j in range(3))
                out[f"{mode.value}@{scale} {rule.value}"] = replace(
                    base, score_rule=rule, branch_mode=mode, scale_weights=k)
    for w_local, w_global in ((1.0, 1.0), (1.0, 5.0), (10.0, 1.0)):
        out[f"both W={w_local:g}:{w_global:g} std"] = replace(base, w_local=w_local, w_global=w_global)
    out["both K=1:1:1 std"] = replace(base, scale_weights=(1.0, 1.0, 1.0))
    return out


COSINE_VARIANTS = ("both std", "both max", "local std", "global std", "local@14 std", "global@14 std")


def glcf_rows(cfg, train_err: list[dict], test_err: list[dict], kinds: np.ndarray,
              prefix: str = "", only: tuple[str, ...] | None = None,
              names: np.ndarray | None = None, by_defect: dict | None = None) -> dict[str, dict[str, float]]:
    acc = StatsAccumulator(cfg.scoring, cfg.model.image_size)
    for e in train_err:
        acc.add(e)
    stats = acc.result()
    rows = {}
    for name, scoring in variants(cfg.scoring).items():
        if only is not None and name not in only:
            continue
        scorer = TorchScorer(scoring, cfg.model.image_size, stats)
        scores = np.concatenate([scorer.score_errors(e)[1].numpy() for e in test_err])
        rows[prefix + name] = kind_auroc(scores, kinds)
        if by_defect is not None and names is not None and name in BY_DEFECT:
            by_defect[prefix + name] = defect_auroc(scores, names)
    if only is None:  # the two image-score rules summed, each standardised on the training images
        summed = 0.0
        for rule in ScoreRule:
            scorer = TorchScorer(replace(cfg.scoring, score_rule=rule), cfg.model.image_size, stats)
            train_s, test_s = (np.concatenate([scorer.score_errors(e)[1].numpy() for e in errs])
                               for errs in (train_err, test_err))
            summed = summed + (test_s - train_s.mean()) / train_s.std()
        rows[prefix + "both z(std)+z(max)"] = kind_auroc(summed, kinds)
    return rows


def fit_error(errors: list[dict]) -> dict[str, float]:
    """Mean channel-mean squared error per (branch, scale): 1.0 is a decoder that predicts the
    (standardised) taps' mean everywhere."""
    out = {}
    for branch in ("local", "global"):
        for i, scale in enumerate(SCALES):
            total = sum(float(e[branch][i].sum()) for e in errors)
            count = sum(e[branch][i].numel() for e in errors)
            out[f"{branch}@{scale}"] = round(total / count, 4)
    return out


def patch_features(model, images: np.ndarray, taps: tuple[int, ...]) -> torch.Tensor:
    """PatchCore's locally aware patch features (glcf_train.baseline) from the chosen raw taps,
    at the grid of the finest chosen tap: ``[N, h, w, C]``."""
    out = []
    for i in range(0, len(images), CHUNK):
        raw = model.raw_local_features(torch.from_numpy(images[i:i + CHUNK]))
        parts = [F.avg_pool2d(raw[t].permute(0, 3, 1, 2).float(), 3, stride=1, padding=1,
                              count_include_pad=False) for t in taps]
        size = parts[0].shape[-2:]
        parts = [p if p.shape[-2:] == size else
                 F.interpolate(p, size=size, mode="bilinear", align_corners=False) for p in parts]
        out.append(torch.cat(parts, dim=1).permute(0, 2, 3, 1))
    return torch.cat(out)


def patchcore_rows(model, train_images: np.ndarray, test_images: np.ndarray, kinds: np.ndarray,
                   names: np.ndarray, by_defect: dict) -> dict[str, dict[str, float]]:
    """PatchCore (1 % coreset, largest patch distance) per tap choice; std of its map too."""
    pc = PatchCoreConfig()
    blur = GaussianBlur(pc.smoothing_sigma)
    rows = {}
    for name, taps in (("t1+t2 (default)", (1, 2)), ("t1 stride 8", (1,)), ("t2 stride 16", (2,))):
        bank_feats = patch_features(model, train_images, taps)
        flat = bank_feats.reshape(-1, bank_feats.shape[-1])
        bank = flat[greedy_coreset(flat, max(1, round(pc.coreset_ratio * len(flat))),
                                   pc.projection_dim, pc.seed)]
        feats = patch_features(model, test_images, taps)
        b, h, w, c = feats.shape
        q = feats.reshape(-1, c)
        dist = torch.cat([torch.cdist(q[i:i + pc.chunk], bank).amin(1)
                          for i in range(0, len(q), pc.chunk)]).reshape(b, h, w)
        rows[f"patchcore {name} max"] = kind_auroc(dist.flatten(1).amax(1).numpy(), kinds)
        if name == "t1+t2 (default)":
            by_defect[f"patchcore {name} max"] = defect_auroc(dist.flatten(1).amax(1).numpy(), names)
        maps = blur(resize_map(dist, model.cfg.image_size))
        rows[f"patchcore {name} std"] = kind_auroc(maps.flatten(1).std(1).numpy(), kinds)
    return rows


@torch.no_grad()
def diagnose(run: Path, with_patchcore: bool) -> dict:
    start = time.perf_counter()
    model, cfg, ckpt = load_run(run)
    root, category = Path(ckpt["data"]["root"]), ckpt["data"]["category"]
    spec = PreprocessSpec(cfg.model.image_size, cfg.model.image_size)
    train_images = load_images(read_split(root, category, "train"), spec)
    test = read_split(root, category, "test")
    test_images = load_images(test, spec)
    kinds = np.array([s.kind for s in test])
    names, by_defect = defect_names(test, root, category), {}
    (train_err, train_cos), (test_err, test_cos) = errors_of(model, train_images), errors_of(model, test_images)
    good = [e for e in _split(test_err, kinds == "good")]
    row = {"run": str(run), "category": category, "data": str(root), "steps": ckpt["step"],
           "config_hash": cfg.hash(), "train": to_dict(cfg.train),
           "bottleneck_dim": cfg.model.bottleneck.dim,
           "last_losses": ckpt.get("last_losses", {}),
           "fit_error_train": fit_error(train_err), "fit_error_test_good": fit_error(good),
           "glcf": {**glcf_rows(cfg, train_err, test_err, kinds, names=names, by_defect=by_defect),
                    **glcf_rows(cfg, train_cos, test_cos, kinds, "cosine ", COSINE_VARIANTS)}}
    if with_patchcore:
        row["patchcore"] = patchcore_rows(model, train_images, test_images, kinds, names, by_defect)
    row["by_defect"] = by_defect
    row["diagnose_seconds"] = round(time.perf_counter() - start, 1)
    return row


def _split(errors: list[dict], keep: np.ndarray) -> list[dict]:
    """The chunks of ``errors`` restricted to the images where ``keep`` holds."""
    out, i = [], 0
    for e in errors:
        n = e["local"][0].shape[0]
        sel = torch.from_numpy(keep[i:i + n])
        i += n
        if sel.any():
            out.append({b: [m[sel] for m in maps] for b, maps in e.items()})
    return out


def train_run(data: Path, category: str, work: Path, args: argparse.Namespace) -> tuple[Path, float]:
    cfg = preset("edge")
    changes = {k: v for k, v in (("steps", args.steps), ("lr", args.lr)) if v is not None}
    if args.loss_form is not None:
        changes["loss_form"] = LossForm(args.loss_form)
    if args.detach_global:
        changes["detach_global_target"] = True
    cfg = with_train(cfg, **changes)
    if args.dim is not None:
        cfg = replace(cfg, model=replace(cfg.model, bottleneck=replace(cfg.model.bottleneck, dim=args.dim)))
    run = work / category
    start = time.perf_counter()
    train(TrainOptions(out=run, data=data, category=category, config=cfg, device="cpu", progress=False))
    return run, round(time.perf_counter() - start, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="trained run folders")
    parser.add_argument("--train", type=Path, help="LOCO-layout root: train these categories first")
    parser.add_argument("--categories", default="")
    parser.add_argument("--work", type=Path, help="new folder for the trained runs")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--dim", type=int, help="bottleneck width")
    parser.add_argument("--loss-form", help="train.loss_form (mse | cosine | mse+cosine)")
    parser.add_argument("--detach-global", action="store_true", help="train.detach_global_target")
    parser.add_argument("--patchcore", action="store_true", help="also PatchCore per tap")
    parser.add_argument("--tag", default="", help="a label for the results file")
    args = parser.parse_args()
    runs = [(r, None) for r in args.runs]
    if args.train is not None:
        if args.work is None or not args.categories:
            parser.error("--train needs --work and --categories")
        runs += [(args.train, c) for c in args.categories.split(",")]
    rows = []
    for where, category in runs:
        seconds = None
        if category is not None:
            where, seconds = train_run(where, category, args.work, args)
        row = diagnose(where, args.patchcore)
        row["train_seconds"] = seconds
        rows.append(row)
        print(json.dumps(row), flush=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"quality-diagnosis{'_' + args.tag if args.tag else ''}_{stamp}.json"
    out.write_text(json.dumps({"rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
