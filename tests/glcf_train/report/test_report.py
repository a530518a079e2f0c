"""`glcf eval --report`: a self-contained page with tables, figures, gallery and provenance."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glcf_cli import app
from glcf_runtime.errors import DataError
from glcf_train.evaluate import evaluate_run


def test_report_files_and_self_contained_page(reported_run) -> None:
    run, result = reported_run
    folder = run / "report"
    assert result.report == folder / "index.html"
    names = {p.name for p in folder.iterdir()}
    assert {"index.html", "roc.svg", "histograms.svg", "tables.json"} <= names
    assert any(n.startswith("gallery-") and n.endswith(".png") for n in names)
    html = result.report.read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources and all(s.startswith("data:") or s.startswith("#") for s in sources), sources
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    for section in ("operating-point", "metrics", "roc", "histograms", "gallery", "run"):
        assert f'id="{section}"' in html
    for fact in ("PatchCore (reference)", "random-init", "torch ", "breakfast_tray", " UTC"):
        assert fact in html, fact
    # the threshold's note says what 4 validation images cannot show (calibrated with target FPR 0)
    assert "Note: a false-alarm target of 0 puts the threshold above all 4 good images" in " ".join(html.split())


def test_report_tables_agree_with_eval_metrics(reported_run) -> None:
    run, result = reported_run
    tables = json.loads((run / "report" / "tables.json").read_text())
    glcf = {row["group"]: row for row in tables["GLCF"]["metrics"]}
    for kind in ("logical", "structural"):
        assert glcf[kind]["image_auroc"] == pytest.approx(result.metrics[f"{kind}_image_auroc"])
        assert glcf[kind]["localisation"] == pytest.approx(result.metrics[f"{kind}_spro_0.05"])
        low, high = glcf[kind]["image_auroc_ci"]
        assert low <= glcf[kind]["image_auroc"] <= high
    base = {row["group"]: row for row in tables["PatchCore (reference)"]["metrics"]}
    assert base["logical"]["image_auroc"] == pytest.approx(result.baseline.metrics["logical_image_auroc"])
    # per defect type rows, named from defects_config.json and labelled with their kind
    defect_names = {r.defect for r in result.records if r.label}
    assert defect_names and defect_names <= {row["defect"] for row in glcf.values()}
    for r in result.records:
        if r.label:
            assert f"{r.kind} · {r.defect}" in glcf


def test_operating_point_uses_the_target_fpr_threshold(reported_run) -> None:
    run, result = reported_run
    calib = json.loads((run / "calibration.json").read_text())["threshold"]
    assert calib["rule"] == "target_fpr" and calib["fpr"] == 0.0
    assert result.threshold == calib["threshold"]
    point = {c["group"]: c for c in json.loads((run / "report" / "tables.json").read_text())
             ["GLCF"]["operating_point"]}
    flagged_good = sum(r.score >= result.threshold for r in result.records if not r.label)
    assert point["good"]["flagged"] == flagged_good and point["good"]["total"] == 2


def test_report_never_overwrites(reported_run, tmp_path: Path) -> None:
    run, _ = reported_run
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not an empty folder"):
        evaluate_run(run, device="cpu", progress=False, report=taken)
    assert (taken / "notes.txt").read_text() == "mine"


def test_cli_rejects_an_unknown_baseline(reported_run) -> None:
    run, _ = reported_run
    out = CliRunner().invoke(app, ["eval", str(run), "--baseline", "knn"])
    assert out.exit_code != 0 and "patchcore" in out.output
