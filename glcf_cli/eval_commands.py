"""`glcf calibrate` and `glcf eval` (need the `train` extra: they run the torch reference scorer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from calibration.settings import CalibrationSettings
from calibration.threshold import DEFAULT_MARGIN, DEFAULT_QUANTILE, sample_size_note
from glcf_cli.common import console, shell
from glcf_cli.preflight import check_batch, check_threshold_rule

Opt = typer.Option
CALIBRATE = CalibrationSettings()  # glcf calibrate's defaults are the library's
Run = Annotated[Path, typer.Argument(help="Run folder written by `glcf train`.")]


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
    app.command("eval")(evaluate)


def calibrate(
    run: Run,
    data: Annotated[Path | None, Opt(help="Data root (default: the one the run trained on).")] = CALIBRATE.data,
    category: Annotated[str | None, Opt(help="Category (default: the run's).")] = CALIBRATE.category,
    quantile: Annotated[float, Opt(help="Quantile of the validation scores for the threshold.")] = CALIBRATE.quantile,
    margin: Annotated[float, Opt(help="Margin: threshold = q + margin × (q − median).")] = CALIBRATE.margin,
    target_fpr: Annotated[float | None, Opt(help="Instead of --quantile/--margin: the lowest threshold "
                                            "with at most this false-alarm rate on the validation images, e.g. 0.01.")] = CALIBRATE.target_fpr,
    score_rule: Annotated[str | None, Opt(help="Image score: std (paper) or max (small defects). "
                                            "Default: the run's config.")] = None,
    normalisation: Annotated[str | None, Opt(help="Fusion statistics: image (paper: one μ, σ per map) "
                                               "or position (a μ, σ per position: fixed layouts). "
                                               "Default: the run's config.")] = None,
    batch_size: Annotated[int, Opt(help="Images per forward pass.")] = CALIBRATE.batch_size,
    device: Annotated[str, Opt(help="cpu, cuda or auto.")] = CALIBRATE.device,
) -> None:
    """Fusion statistics from the good training images and a threshold from the validation images.

    --score-rule and --normalisation choose how maps are scored, without retraining; eval and
    export then score that way. Compare the choices with `glcf eval RUN --report DIR`."""
    check_batch(batch_size, "--batch-size")  # before torch or the run loads
    check_threshold_rule(quantile, margin)
    from glcf_runtime.threshold import checked_target_fpr

    checked_target_fpr(target_fpr)
    from glcf_train.calibrate import calibrate_run

    scoring = {k: v for k, v in (("score_rule", score_rule), ("normalisation", normalisation)) if v is not None}
    settings = CalibrationSettings(data=data, category=category, device=device,
                                   batch_size=batch_size, quantile=quantile, margin=margin,
                                   target_fpr=target_fpr, scoring=scoring)
    result = calibrate_run(run, settings)
    console.print(f"scoring: {result.scoring.describe()}")
    t = result.threshold
    reached = f", {t.fpr:.1%} false alarms on them" if t.fpr is not None else ""
    console.print(f"threshold {t.threshold:.5f} ({t.rule.value}, {t.n_normal} validation images"
                  f"{reached}); written to {run}/calibration.json")
    note = sample_size_note(t)
    if note is not None:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    console.print(f"next: {shell(['glcf', 'eval', run, '--report', Path(run) / 'report'])}",
                  highlight=False)


def evaluate(
    run: Run,
    data: Annotated[Path | None, Opt(help="Data root (default: the one the run trained on).")] = None,
    category: Annotated[str | None, Opt(help="Category (default: the run's).")] = None,
    branch_mode: Annotated[str | None, Opt(help="both, local or global (default: the run's).")] = None,
    json_out: Annotated[Path | None, Opt("--json", help="Write metrics and per-image records here.")] = None,
    save_maps: Annotated[Path | None, Opt(help="Write float32 TIFF maps as DIR/<defect type>/<id>.tiff.")] = None,
    overlays: Annotated[Path | None, Opt(help="Write heat-map panels as DIR/<defect type>/<id>.png.")] = None,
    report: Annotated[Path | None, Opt(help="Write an HTML report (a new folder): DIR/index.html.")] = None,
    baseline: Annotated[str | None, Opt(help="Also score a reference baseline: patchcore.")] = None,
    compare_scoring: Annotated[bool, Opt(help="Instead: every scoring choice of `glcf calibrate` "
                                              "(--score-rule × --normalisation) side by side, each "
                                              "calibrated as calibrate would; writes nothing but --json.")] = False,
    batch_size: Annotated[int, Opt(help="Images per forward pass.")] = 8,
    device: Annotated[str, Opt(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """Evaluate a calibrated run on the test split: AUROC, sPRO / PRO, the operating point at the
    threshold, per-image scores, heat maps, an HTML report, a reference baseline."""
    check_batch(batch_size, "--batch-size")  # before torch or the run loads
    from glcf_train.evaluate import evaluate_run

    if compare_scoring:
        _compare(run, data, category, json_out, batch_size, device)
        return
    mode = parse_branch_mode(branch_mode)
    ref = parse_baseline(baseline)
    result = evaluate_run(run, data, category, mode, json_out, save_maps, overlays, device,
                          batch_size, report=report, baseline=ref)
    from glcf_train.config import ScoringConfig, from_dict

    scoring = from_dict(ScoringConfig, result.scoring or {}, "scoring")
    console.print(f"scoring: {scoring.describe()} (as calibrated)")
    console.print(metrics_table(result.metrics, str(run)))
    if result.baseline is not None:
        console.print(metrics_table(result.baseline.metrics, f"reference baseline {ref.value}"))
    console.print(operating_table(result))
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    for what, where in (("metrics and records", json_out), ("anomaly maps", save_maps),
                        ("heat maps", overlays), ("report", result.report)):
        if where is not None:
            console.print(f"{what}: {where}")
    export = shell(["glcf", "export", run, "--out", f"models/{Path(run).name}"])
    compare = shell(["glcf", "eval", run, "--compare-scoring"])
    console.print(f"next: {export}   (other scorings, no retraining: {compare})", highlight=False)


def _compare(run: Path, data: Path | None, category: str | None, json_out: Path | None,
             batch_size: int, device: str) -> None:
    import dataclasses
    import json

    from glcf_runtime.files import atomic_write_text
    from glcf_runtime.sinks import check_writable
    from glcf_train.compare import compare_scoring, threshold_rule_of

    if json_out is not None:
        check_writable(json_out, "--json")
    rule = threshold_rule_of(run)
    rows = compare_scoring(run, data, category, device, batch_size, **rule)
    kinds = list(rows[0].auroc)
    table = Table(title=f"{run} — scoring choices on the test split")
    for head in ("--score-rule", "--normalisation", *(f"{k} AUROC (95 %)" for k in kinds),
                 "false alarms", *(f"{k} caught" for k in kinds)):
        table.add_column(head, justify="left" if head.startswith("--") else "right")
    for r in rows:
        cells = [f"{r.auroc[k]:.3f} ({r.interval[k][0]:.2f}–{r.interval[k][1]:.2f})" for k in kinds]
        caught = [f"{r.caught[k][0]}/{r.caught[k][1]}" for k in kinds]
        table.add_row(r.score_rule, r.normalisation, *cells, f"{r.caught['good'][0]}/{r.caught['good'][1]}",
                      *caught)
    console.print(table)
    how = ", ".join(f"{k} {v}" for k, v in rule.items()) or (
        f"quantile {DEFAULT_QUANTILE}, margin {DEFAULT_MARGIN}")
    console.print(f"each threshold: the calibration rule ({how}) on the validation images")
    if json_out is not None:
        atomic_write_text(json_out, json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
        console.print(f"rows: {json_out}")
    best = max(rows, key=lambda r: r.mean_auroc)
    console.print(f"highest mean AUROC: {best.score_rule} / {best.normalisation}; differences inside "
                  "the intervals are noise, and choosing on the test split flatters the choice")
    console.print(f"next: {escape(best.command(run))}", highlight=False)


def parse_branch_mode(value: str | None):
    """``BranchMode`` from a CLI string (None stays None: the run's own mode)."""
    from glcf_train.config import BranchMode

    if value is None:
        return None
    try:
        return BranchMode(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: choose both, local or global") from None


def parse_baseline(value: str | None):
    """``Baseline`` from a CLI string (None: no baseline)."""
    from glcf_train.baseline import Baseline

    if value is None:
        return None
    try:
        return Baseline(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: choose {', '.join(b.value for b in Baseline)}") from None


def operating_table(result) -> Table:
    """At each detector's threshold: false alarms on good test images and anomalies caught per
    kind and defect type."""
    import numpy as np

    from glcf_train.report.tables import groups, operating_point

    table = Table(title="operating point at the calibrated threshold")
    table.add_column("test images")
    detectors = [("GLCF", result)] + ([("baseline", result.baseline)] if result.baseline else [])
    per = []
    for name, res in detectors:
        table.add_column(f"{name} ≥ {res.threshold:.4g}", justify="right")
        index = groups([r.kind for r in res.records], [r.defect or r.defect_type for r in res.records])
        per.append(operating_point(np.array([r.score for r in res.records]), res.threshold, index))
    for cells in zip(*per, strict=True):
        table.add_row(cells[0].group.row_label,
                      *(f"{c.rate:.0%} ({c.flagged}/{c.total})" for c in cells))
    return table


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
