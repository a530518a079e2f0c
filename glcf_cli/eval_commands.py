"""`glcf calibrate` and `glcf eval` (need the `train` extra: they run the torch reference scorer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from glcf_cli.common import console

Opt = typer.Option
Run = Annotated[Path, typer.Argument(help="Run folder written by `glcf train`.")]


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
    app.command("eval")(evaluate)


def calibrate(
    run: Run,
    data: Annotated[Path | None, Opt(help="Data root (default: the one the run trained on).")] = None,
    category: Annotated[str | None, Opt(help="Category (default: the run's).")] = None,
    quantile: Annotated[float, Opt(help="Quantile of the validation scores for the threshold.")] = 0.99,
    margin: Annotated[float, Opt(help="Margin: threshold = q + margin × (q − median).")] = 0.1,
    batch_size: Annotated[int, Opt(help="Images per forward pass.")] = 8,
    device: Annotated[str, Opt(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """Fusion statistics from the good training images and a threshold from the validation images."""
    from glcf_train.calibrate import calibrate_run

    result = calibrate_run(run, data, category, device, batch_size, quantile, margin)
    t = result.threshold
    console.print(f"threshold {t.threshold:.5f} ({t.rule.value}, {t.n_normal} validation images); "
                  f"written to {run}/calibration.json")
    console.print(f"next: glcf eval {run} --overlays {run}/overlays")


def evaluate(
    run: Run,
    data: Annotated[Path | None, Opt(help="Data root (default: the one the run trained on).")] = None,
    category: Annotated[str | None, Opt(help="Category (default: the run's).")] = None,
    branch_mode: Annotated[str | None, Opt(help="both, local or global (default: the run's).")] = None,
    json_out: Annotated[Path | None, Opt("--json", help="Write metrics and per-image records here.")] = None,
    save_maps: Annotated[Path | None, Opt(help="Write float32 TIFF maps as DIR/<defect type>/<id>.tiff.")] = None,
    overlays: Annotated[Path | None, Opt(help="Write heat-map panels as DIR/<defect type>/<id>.png.")] = None,
    batch_size: Annotated[int, Opt(help="Images per forward pass.")] = 8,
    device: Annotated[str, Opt(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """Evaluate a calibrated run on the test split: AUROC, sPRO / PRO, per-image scores, heat maps."""
    from glcf_train.evaluate import evaluate_run

    mode = parse_branch_mode(branch_mode)
    result = evaluate_run(run, data, category, mode, json_out, save_maps, overlays, device, batch_size)
    console.print(metrics_table(result.metrics, f"{run} — branch mode {result.branch_mode}"))
    for what, where in (("metrics and records", json_out), ("anomaly maps", save_maps),
                        ("heat maps", overlays)):
        if where is not None:
            console.print(f"{what}: {where}")


def parse_branch_mode(value: str | None):
    """``BranchMode`` from a CLI string (None stays None: the run's own mode)."""
    from glcf_train.config import BranchMode

    if value is None:
        return None
    try:
        return BranchMode(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: choose both, local or global") from None


def metrics_table(metrics: dict[str, float], title: str) -> Table:
    """LOCO metrics as rows × (logical, structural, mean); other layouts as one column."""
    table = Table(title=title)
    if any(k.startswith(("logical_", "structural_")) for k in metrics):
        table.add_column("metric")
        for col in ("logical", "structural", "mean"):
            table.add_column(col, justify="right")
        for metric, name in (("image_auroc", "image AUROC"), ("spro_0.05", "AUC-sPRO@0.05")):
            cells = [metrics.get(f"{c}_{metric}") for c in ("logical", "structural", "mean")]
            table.add_row(name, *("–" if v is None else f"{v:.3f}" for v in cells))
        return table
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.3f}")
    return table
