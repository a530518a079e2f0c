"""`glcf demo`: the main job's chain, end to end on one category (random init and two steps, for
speed; the README's figures come from the real run), and its refusals before anything is written."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from glcf_cli.demo import default_jobs, run_demo
from glcf_runtime.errors import ConfigError, DataError


def test_a_swin_preset_without_weights_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    with pytest.raises(ConfigError, match=r"--preset tiny.*--random-init"):
        run_demo(out, ["breakfast_tray"], preset_name="tiny", log=lambda _: None)
    assert not out.exists()


def test_an_output_folder_in_use_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        run_demo(tmp_path, ["breakfast_tray"], log=lambda _: None)
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_the_demo_chain_runs_on_one_category(tmp_path: Path) -> None:
    lines: list[str] = []
    (result,) = run_demo(tmp_path / "demo", ["breakfast_tray"], steps=2, preset_name="tiny",
                         random_init=True, log=lines.append)
    run = result.run
    ckpt_log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert ckpt_log[-1]["step"] == 2  # --steps wins over the demo's default
    assert (result.export / "model.onnx").is_file() and result.report.is_file()
    assert set(result.inspected) == {"good", "logical_anomalies", "structural_anomalies"}
    assert all(s.frames == 40 and s.errors == 0 for s in result.inspected.values())
    metrics = result.result.metrics
    assert metrics and all(0.0 <= v <= 1.0 for v in metrics.values()), metrics
    assert any("random Φ_L weights" in line for line in lines)
    assert json.loads((run / "calibration.json").read_text())["threshold"]["n_normal"] == 100
    assert list(result.stages) == ["scenes", "training", "calibration", "evaluation", "export",
                                   "ONNX Runtime loop"]
    assert all(t > 0 for t in result.stages.values())
    assert sum(result.stages.values()) <= result.seconds < sum(result.stages.values()) + 5
    assert result.timing().startswith("scenes ") and " · export " in result.timing()


def test_jobs_or_categories_that_cannot_run_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    with pytest.raises(ConfigError, match=r"--jobs 0: give the number of categories"):
        run_demo(out, ["breakfast_tray"], jobs=0, log=lambda _: None)
    assert not out.exists()
    with pytest.raises(ConfigError, match=r"unknown synthetic categories \['bread_tray'\]"):
        run_demo(out, ["breakfast_tray", "bread_tray"], log=lambda _: None)
    assert not out.exists()
    assert default_jobs(3, "cuda") == 1 and default_jobs(1, "cpu") == 1


def test_the_default_runs_as_many_categories_at_once_as_the_memory_holds(monkeypatch) -> None:
    import glcf_cli.demo as demo

    assert demo.available_memory() > 0
    for gib, expected in ((64, 3), (5, 2), (3, 1), (1, 1)):
        monkeypatch.setattr(demo, "available_memory", lambda gib=gib: gib << 30)
        assert default_jobs(3, "cpu") == expected


@pytest.mark.slow
def test_categories_run_at_once_each_in_its_own_process(tmp_path: Path) -> None:
    lines: list[str] = []
    results = run_demo(tmp_path / "demo", ["cable_pair", "breakfast_tray"], steps=2,
                       preset_name="tiny", random_init=True, log=lines.append)
    assert [r.name for r in results] == ["cable_pair", "breakfast_tray"]  # the order asked for
    assert any(line.startswith("2 categories, 2 at once") for line in lines)
    for r in results:
        steps = [json.loads(line)["step"] for line in (r.run / "train_log.jsonl").read_text().splitlines()]
        assert steps[-1] == 2
        assert (r.export / "model.onnx").is_file() and r.report.is_file()
        assert all(s.frames == 40 and s.errors == 0 for s in r.inspected.values())
        assert list(r.stages)[-1] == "ONNX Runtime loop"  # run here, after both processes ended
        # the processes' log lines reach this one, each naming its category
        assert any(line.startswith(f"{r.name}: tracing the fused graph") for line in lines)
    assert not multiprocessing.active_children()


@pytest.mark.slow
def test_a_category_that_fails_stops_the_others_with_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--steps -1: give a number of optimiser steps"):
        run_demo(tmp_path / "demo", ["cable_pair", "breakfast_tray"], steps=-1,
                 preset_name="tiny", random_init=True, log=lambda _: None)
    assert not multiprocessing.active_children()
