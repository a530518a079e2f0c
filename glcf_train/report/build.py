"""`glcf eval --report DIR`: one self-contained ``index.html`` (figures embedded) plus the figures
and the tables as files, written under a temporary name and renamed when complete."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from glcf_runtime.errors import DataError
from glcf_train.report import figures as fig
from glcf_train.report.page import data_uri, render_page
from glcf_train.report.tables import (
    GOOD,
    KINDS,
    Caught,
    Group,
    Row,
    groups,
    metric_rows,
    operating_point,
)

GALLERY_SIZE = 4  # images per gallery


@dataclass(frozen=True)
class Detector:
    """One detector's results on the test images (the run, or a reference baseline)."""

    name: str
    maps: np.ndarray  # [N, S, S]
    scores: np.ndarray  # [N]
    threshold: float
    threshold_note: str  # how the threshold was chosen, in words
    localisation: Callable[[np.ndarray], float] | None = None  # of a subset of image indices


@dataclass(frozen=True)
class ReportData:
    title: str
    subtitle: str
    paths: list[str]
    kinds: list[str]  # per image: good, logical, structural
    defect_types: list[str]  # per image: "good" or the defect's name
    images: np.ndarray  # [N, S, S, 3] uint8 BGR, as the model saw them
    masks: np.ndarray  # [N, S, S] bool ground truth
    map_range: tuple[float, float]  # the run's heat-map range; its low end (normal level) is kept
    detectors: list[Detector]  # the run first
    localisation_name: str  # "AUC-sPRO@0.05" or "AU-PRO@0.3"
    about: dict[str, str] = field(default_factory=dict)  # run, data, weights, versions, date
    config: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # warnings about the figures (the ground truth)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _ci(interval: tuple[float, float] | None) -> str:
    return "–" if interval is None else f"{interval[0]:.3f}–{interval[1]:.3f}"


def _css(group: Group) -> str:
    return "kind" if group.defect is None else "type"


def _tables(data: ReportData, index: dict[Group, np.ndarray], n_boot: int, n_boot_loc: int):
    """Metric rows per detector (localisation intervals for the two kinds only: each resample
    recomputes the whole curve) and the operating point."""
    kinds = {Group(k) for k in KINDS}
    rows: list[list[Row]] = []
    for det in data.detectors:
        by_kind = {g: v for g, v in index.items() if g in kinds or g == GOOD}
        others = {g: v for g, v in index.items() if g not in kinds}
        rows.append(metric_rows(det.scores, by_kind, det.localisation, n_boot, n_boot_loc)
                    + metric_rows(det.scores, others, det.localisation, n_boot, 0))
    caught = [operating_point(det.scores, det.threshold, index) for det in data.detectors]
    return rows, caught


def _page_rows(rows: list[list[Row]], caught: list[list[Caught]]) -> tuple[list, list]:
    """Table rows for the page: each group once, the detectors' cells side by side."""
    metrics = []
    for same_group in zip(*rows, strict=True):  # every detector has the same groups in order
        first = same_group[0]
        cells = [c for r in same_group for c in (_fmt(r.image_auroc), _ci(r.image_auroc_ci),
                                                 _fmt(r.localisation), _ci(r.localisation_ci))]
        metrics.append({"group": first.group.label, "css": _css(first.group),
                        "images": f"{first.n_good} + {first.n_anomalous}", "cells": cells})
    operating = []
    for same_group in zip(*caught, strict=True):
        group = same_group[0].group
        operating.append({"group": group.row_label, "css": _css(group),
                          "cells": [f"{c.rate:.0%} ({c.flagged}/{c.total})" for c in same_group]})
    return metrics, operating


def _group_of(data: ReportData, i: int) -> Group:
    """Image ``i``'s group: "good", or its defect type within its kind."""
    kind = data.kinds[i]
    return GOOD if kind == "good" else Group(kind, data.defect_types[i])


def _gallery(data: ReportData, det: Detector) -> list[dict]:
    """Indices and captions: worst false alarms, missed anomalies, best detections."""
    s, t = det.scores, det.threshold
    good = np.flatnonzero(np.array(data.kinds) == "good")
    bad = np.flatnonzero(np.array(data.kinds) != "good")
    false_alarms = good[np.argsort(-s[good])][:GALLERY_SIZE]
    missed = bad[np.argsort(s[bad])][:GALLERY_SIZE]
    best = bad[np.argsort(-s[bad])][:GALLERY_SIZE]
    return [
        {"key": "false-alarms", "title": "Highest-scoring good images",
         "note": f"The good test images closest to a false alarm ({int((s[good] >= t).sum())} of "
                 f"{good.size} reach the threshold).", "idx": false_alarms},
        {"key": "missed", "title": "Lowest-scoring anomalies",
         "note": f"The anomalies hardest to catch ({int((s[bad] < t).sum())} of {bad.size} stay "
                 "under the threshold).", "idx": missed},
        {"key": "best", "title": "Best detections", "note": "The highest-scoring anomalies.",
         "idx": best},
    ]


def write_report(out: Path, data: ReportData, n_boot: int = 1000,
                 n_boot_localisation: int = 20) -> Path:
    """Write the report folder ``out`` (refused if it exists and is not empty); returns index.html."""
    out = Path(out)
    check_report_folder(out)
    index = groups(data.kinds, data.defect_types)
    rows, caught = _tables(data, index, n_boot, n_boot_localisation)
    kinds = [k for k in KINDS if Group(k) in index]
    drawn = [fig.Drawn(d.name, d.scores, d.threshold) for d in data.detectors]
    files = {"roc.svg": fig.to_bytes(fig.roc_figure(drawn, index, kinds), "svg"),
             "histograms.svg": fig.to_bytes(fig.histogram_figure(drawn, index, kinds), "svg")}
    galleries = _gallery(data, data.detectors[0])
    # colours from the normal level to the test maps' 99.9th percentile, shared by every row
    vrange = (data.map_range[0], max(float(np.percentile(data.detectors[0].maps, 99.9)),
                                     data.map_range[0] + 1e-6))
    for g in galleries:
        idx = g.pop("idx")
        g["file"] = f"gallery-{g['key']}.png" if idx.size else None
        if idx.size:
            captions = [f"{_group_of(data, i).label} · {Path(data.paths[i]).name} · score "
                        f"{data.detectors[0].scores[i]:.4g}" for i in idx]
            picture = fig.gallery_figure(data.images[idx], data.detectors[0].maps[idx],
                                         data.masks[idx], captions, vrange)
            files[g["file"]] = fig.to_bytes(picture, "png")
    metrics, operating = _page_rows(rows, caught)
    html = render_page(
        title=data.title, subtitle=data.subtitle, notes=data.notes, detectors=data.detectors,
        operating=operating,
        metrics=metrics, localisation_name=data.localisation_name, n_boot=n_boot,
        n_boot_localisation=n_boot_localisation, galleries=galleries,
        gallery_owner=data.detectors[0].name, about=data.about,
        config=yaml.safe_dump(data.config, sort_keys=False, default_flow_style=None),
        figures={name: data_uri(name, payload) for name, payload in files.items()})
    tables = {d.name: {"threshold": d.threshold, "metrics": [r.to_dict() for r in rs],
                       "operating_point": [c.to_dict() for c in cs]}
              for d, rs, cs in zip(data.detectors, rows, caught, strict=True)}
    _publish(out, {**files, "index.html": html.encode(), "tables.json":
                   json.dumps(tables, indent=2).encode()})
    return out / "index.html"


def check_report_folder(folder: Path) -> None:
    """Refuse, before any work, a report folder that would overwrite something."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DataError(f"--report {folder} exists and is not an empty folder; give a new folder "
                        "(a report never overwrites)")


def _publish(out: Path, files: dict[str, bytes]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the report from a web server or a colleague
    try:
        for name, payload in files.items():
            (tmp / name).write_bytes(payload)
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
