"""Evaluation groups on a LOCO data set whose defects_config.json names every defect "logical":
the per-kind rows of `glcf eval` and of its report count the images of their own kind, add up to
"all", and agree with eval's metrics; no defect type shadows a kind."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console

N_TEST = 6  # per kind; two structural anomalies are removed, so the kinds' counts differ
DROPPED = ("004", "005")


@pytest.fixture(scope="module")
def named_logical(tmp_path_factory: pytest.TempPathFactory, calibrated_run: Path):
    """``(EvalResult, tables.json, index.html)`` of ``calibrated_run`` evaluated, with a report,
    on synthetic scenes whose every defect is named "logical" (both kinds)."""
    from glcf_train.data.synth import generate
    from glcf_train.evaluate import evaluate_run

    root = tmp_path_factory.mktemp("named-logical")
    generate(root, ["breakfast_tray"], n_train=1, n_val=1, n_test=N_TEST, seed=3, image_size=128)
    base = root / "breakfast_tray"
    for stem in DROPPED:
        (base / "test" / "structural_anomalies" / f"{stem}.png").unlink()
        shutil.rmtree(base / "ground_truth" / "structural_anomalies" / stem)
    config_path = base / "defects_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps([{**e, "defect_name": "logical"} for e in config]))
    report = tmp_path_factory.mktemp("named-logical-report") / "report"
    result = evaluate_run(calibrated_run, data=root, category="breakfast_tray", device="cpu",
                          progress=False, report=report)
    tables = json.loads((report / "tables.json").read_text())
    return result, tables, (report / "index.html").read_text()


def _expected(result) -> dict[str, tuple[int, int]]:
    """(flagged, total) per kind and for all anomalies, straight from the records."""
    out = {}
    for kind in ("good", "logical", "structural"):
        scores = [r.score for r in result.records if r.kind == kind]
        out[kind] = (sum(s >= result.threshold for s in scores), len(scores))
    out["all"] = tuple(a + b for a, b in zip(out["logical"], out["structural"], strict=True))
    return out


def test_the_data_set_names_every_defect_logical(named_logical) -> None:
    result, _, _ = named_logical
    assert {r.defect for r in result.records if r.label} == {"logical"}
    counts = {k: sum(r.kind == k for r in result.records)
              for k in ("good", "logical", "structural")}
    assert counts == {"good": N_TEST, "logical": N_TEST, "structural": N_TEST - len(DROPPED)}


def test_report_operating_point_counts_each_kind_and_adds_up(named_logical) -> None:
    result, tables, _ = named_logical
    rows = tables["GLCF"]["operating_point"]
    labels = [r["group"] for r in rows]
    assert len(labels) == len(set(labels)), f"a label is used twice: {labels}"
    point = {r["group"]: (r["flagged"], r["total"]) for r in rows}
    expected = _expected(result)
    for kind, counts in expected.items():
        assert point[kind] == counts, kind
    assert point["logical"][1] + point["structural"][1] == point["all"][1]
    assert point["logical"][0] + point["structural"][0] == point["all"][0]
    # a defect type row per kind, named after its kind, each with its own images
    types = {(r["kind"], r["defect"]): (r["flagged"], r["total"]) for r in rows if r["defect"]}
    assert types == {("logical", "logical"): expected["logical"],
                     ("structural", "logical"): expected["structural"]}


def test_report_kind_metrics_equal_eval_metrics(named_logical) -> None:
    result, tables, html = named_logical
    rows = tables["GLCF"]["metrics"]
    labels = [r["group"] for r in rows]
    assert len(labels) == len(set(labels)), f"a label is used twice: {labels}"
    metric = {r["group"]: r for r in rows}
    for kind in ("logical", "structural"):
        assert metric[kind]["image_auroc"] == pytest.approx(result.metrics[f"{kind}_image_auroc"])
        assert metric[kind]["localisation"] == pytest.approx(result.metrics[f"{kind}_spro_0.05"])
        assert metric[kind]["n_anomalous"] == _expected(result)[kind][1]
        # the page shows the same figures on the kind's own row
        row = rf'<tr class="kind"><td>{kind}</td><td>(\d+) \+ (\d+)</td>\s*<td>([\d.]+)</td>'
        cells = re.search(row, html)
        assert cells, f"no {kind} row on the page"
        assert int(cells[2]) == _expected(result)[kind][1]
        assert cells[3] == f"{result.metrics[f'{kind}_image_auroc']:.3f}"


def test_eval_operating_table_counts_each_kind_and_adds_up(named_logical) -> None:
    from glcf_cli.eval_commands import operating_table

    result, _, _ = named_logical
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(operating_table(result))
    printed = {}
    for line in buffer.getvalue().splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 2 and (found := re.search(r"\((\d+)/(\d+)\)", cells[1])):
            assert cells[0] not in printed, f"{cells[0]!r} printed twice"
            printed[cells[0]] = (int(found[1]), int(found[2]))
    expected = _expected(result)
    assert printed["good (false alarms)"] == expected["good"]
    for kind in ("logical", "structural", "all"):
        assert printed[kind] == expected[kind], kind
    assert len(printed) == 6, printed  # good, two kinds, all, and one defect type per kind
