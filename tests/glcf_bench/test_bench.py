"""`glcf bench` smoke tests on the tiny preset (random weights, exported on the fly)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from glcf_bench.bench import loop_throughput, run_bench
from glcf_bench.frames import write_video
from glcf_bench.pairs import paired_ratios
from glcf_bench.report import BenchReport, BenchRow, render, result_stem
from glcf_bench.settings import BenchSettings, parse_backends, parse_batches
from glcf_bench.target import BenchTarget
from glcf_bench.targets import prepare_target
from glcf_bench.torch_runner import TorchRunner
from glcf_cli import app
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.errors import ConfigError

ALL = ["torch", "onnxruntime", "onnxruntime-fp16", "tensorrt"]
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> BenchTarget:
    """The tiny preset exported once (model.onnx, model.fp16.onnx) with its torch module."""
    return prepare_target(None, "tiny", tmp_path_factory.mktemp("tiny-export"), _quiet)


def test_cli_every_backend_appears(tmp_path: Path) -> None:
    args = [
        "bench",
        "--preset",
        "tiny",
        "--backends",
        ",".join(ALL),
        "--batch",
        "1",
        "--warmup",
        "1",
        "--min-time",
        "0.2",
        "--loop-frames",
        "4",
        "--pairs",
        "3",
        "--out-dir",
        str(tmp_path),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    (json_file,) = tmp_path.glob("bench_*.json")
    (csv_file,) = tmp_path.glob("bench_*.csv")
    assert "".join(str(json_file).split()) in "".join(result.output.split())  # path printed
    data = json.loads(json_file.read_text())
    assert {"cpu", "usable_cores", "hostname"} <= set(data["machine"])
    assert all(data["versions"][k] for k in ("torch", "onnxruntime", "onnx", "glcf"))
    assert f"_{data['machine']['usable_cores']}c_" in json_file.name and "torch" in json_file.name
    rows = {r["backend"]: r for r in data["rows"]}
    assert set(rows) == set(ALL)
    for row in rows.values():
        if not row["runnable"]:
            assert row["reason"] and data["skipped"][row["backend"]] == row["reason"]
            continue
        for key in (
            "latency_p50_ms",
            "images_per_s",
            "infer_ms",
            "preprocess_ms",
            "capture_ms",
            "postprocess_ms",
            "peak_rss_mb",
            "achieved_gflops",
        ):
            assert row[key] > 0, (row["backend"], key)
        assert row["latency_p50_ms"] <= row["latency_p99_ms"]
    assert rows["torch"]["runnable"] and rows["onnxruntime"]["runnable"]
    assert rows["onnxruntime-fp16"]["precision"] == "fp16-mixed"
    ort, eager = rows["onnxruntime"], rows["torch"]
    assert ort["vs_torch"] == pytest.approx(ort["latency_p50_ms"] / eager["latency_p50_ms"])
    assert eager["vs_torch"] is None and 0 < ort["outside_graph"] < 1
    assert "× torch eager" in result.output and "outside the graph" in result.output
    for name in ("onnxruntime", "onnxruntime-fp16"):  # timed back to back with torch
        row = rows[name]
        assert row["pairs"] == 3
        assert 0 < row["paired_vs_torch_p25"] <= row["paired_vs_torch"] <= row["paired_vs_torch_p75"]
    assert eager["pairs"] == 0 and eager["paired_vs_torch"] is None
    assert "back to back" in result.output
    # Not a terminal: laid out wide enough that no header or figure is cut short ("prec…").
    assert "precision" in result.output and "postproc" in result.output
    if not HAS_TENSORRT:
        reason = rows["tensorrt"]["reason"]
        assert not rows["tensorrt"]["runnable"]
        assert "tensorrt not installed" in reason or "no GPU" in reason
        # printed as written: the extra's name is not taken for rich markup and dropped
        assert "pipinstall'glcf[trt]'" in "".join(result.output.split())
    assert data["flops"]["gflop_per_image"] > 0 and data["peak_gflops"]["cpu_fp32"] > 0
    loops = {r["backend"]: r for r in data["loop"]}
    assert "torch" not in loops and loops["onnxruntime"]["frames"] == 4
    assert loops["onnxruntime"]["ratio"] > 0
    with csv_file.open() as f:
        assert {r["backend"] for r in csv.DictReader(f)} == set(ALL)


def test_export_folder_has_no_torch_model(tiny: BenchTarget) -> None:
    report = run_bench(
        tiny.folder,
        BenchSettings("torch,onnxruntime", "1,2", warmup=0, min_time=0.0, threads=1, loop=False),
        _quiet,
    )
    torch_rows = [r for r in report.rows if r.backend == "torch"]
    assert [r.runnable for r in torch_rows] == [False, False]
    assert "no torch model" in report.skipped["torch"]
    ort = [r for r in report.rows if r.backend == "onnxruntime"]
    assert [r.batch for r in ort] == [1, 2] and all(r.runnable and r.runs >= 3 for r in ort)
    assert report.loop == [] and report.flops["unknown"] == []


def test_backends_take_turns_round_by_round(tiny: BenchTarget) -> None:
    lines: list[str] = []
    args = dict(backends="onnxruntime,onnxruntime-fp16", batches="1")
    report = run_bench(tiny.folder, BenchSettings(**args, warmup=0, min_time=0.0, threads=1,
                                                  loop=False, rounds=2), lines.append)
    assert [line for line in lines if "round" in line] == [
        "onnxruntime: batch 1, round 1/2 …",
        "onnxruntime-fp16: batch 1, round 1/2 …",
        "onnxruntime: batch 1, round 2/2 …",
        "onnxruntime-fp16: batch 1, round 2/2 …",
    ]
    assert [(r.backend, r.runs) for r in report.rows] == [("onnxruntime", 4), ("onnxruntime-fp16", 4)]
    with pytest.raises(ConfigError, match="--rounds"):
        run_bench(tiny.folder, BenchSettings(**args, rounds=0), _quiet)


def test_torch_runner_matches_onnxruntime(tiny: BenchTarget) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    with OnnxRuntimeRunner(tiny.folder / "model.onnx", providers=["cpu"], threads=1) as ort:
        maps, scores = (a.copy() for a in ort.infer(frames))
    runner = TorchRunner(tiny.deploy, tiny.folder / "model.onnx", tiny.metadata)
    torch_maps, torch_scores = runner.infer(frames)
    span = float(maps.max() - maps.min()) or 1.0
    assert np.abs(torch_maps - maps).max() <= 1e-4 * span
    np.testing.assert_allclose(torch_scores, scores, rtol=1e-4)


def test_loop_throughput(tiny: BenchTarget, tmp_path: Path) -> None:
    video = write_video(tmp_path / "loop.avi", frames=5)
    with OnnxRuntimeRunner(tiny.folder / "model.onnx", providers=["cpu"], threads=1) as runner:
        row = loop_throughput(
            runner, video, batch=2, backend_images_per_s=10.0, backend="onnxruntime"
        )
    assert row.frames == 5 and row.loop_fps > 0 and row.decode_fps > 0
    assert row.ratio == pytest.approx(row.loop_fps / 10.0)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="choose from"):
        parse_backends("torch,tensorflow")
    with pytest.raises(ConfigError, match=">= 1"):
        parse_batches("1,0")
    with pytest.raises(ConfigError, match="comma-separated"):
        parse_batches("one")
    with pytest.raises(ConfigError, match="not both"):
        prepare_target(tmp_path, "tiny", tmp_path, _quiet)
    with pytest.raises(ConfigError, match="neither an export folder"):
        prepare_target(tmp_path, None, tmp_path, _quiet)


def test_result_names_carry_machine_versions_and_precision() -> None:
    report = BenchReport(
        "2025-01-02T03:04:05+0000",
        {"cpu": "AMD EPYC 7763 64-Core Processor", "usable_cores": 16, "gpu": None},
        {"torch": "2.14.1+cu130", "onnxruntime": "1.32.0", "onnx": "1.23.2", "glcf": "0.1.0"},
        {},
        {},
        None,
        {},
    )
    assert result_stem(report) == (
        "bench_amd-epyc-7763-64-core_16c_none_torch2.14.1-cu130-"
        "ort1.32.0-onnx1.23.2-glcf0.1.0_20250102-030405"
    )


def test_a_reason_given_for_one_batch_is_not_repeated_for_the_next() -> None:
    from rich.console import Console

    why = "tensorrt is not installed: pip install 'glcf[trt]'"
    report = BenchReport("2025-01-02T03:04:05+0000", {"cpu": "x", "usable_cores": 2}, {}, {"threads": 2},
                         {"description": "t"}, None, {},
                         rows=[BenchRow("tensorrt", 1, runnable=False, reason=why),
                               BenchRow("tensorrt", 8, runnable=False, reason=why),
                               BenchRow("tensorrt-int8", 1, runnable=False, reason="other")])
    console = Console(width=300, record=True)
    for item in render(report):
        console.print(item)
    text = console.export_text()
    assert text.count("pip install 'glcf[trt]'") == 1  # the whole reason once, markup-escaped
    assert "tensorrt (batch 8) not run: as tensorrt (batch 1)" in text
    assert "tensorrt-int8 (batch 1) not run: other" in text


def test_run_folder_benchmarks_its_checkpoint(trained_run: Path) -> None:
    """A run (not calibrated): the torch model from its checkpoint, the graph exported for the run."""
    report = run_bench(trained_run, BenchSettings("torch,onnxruntime", "1", warmup=0, min_time=0.0,
                                                  threads=1, loop=False, rounds=1), _quiet)
    assert "uncalibrated" in report.target["description"] and report.target["temporary"]
    rows = {r.backend: r for r in report.rows}
    assert rows["torch"].runnable and rows["onnxruntime"].runnable
    assert rows["onnxruntime"].vs_torch and rows["onnxruntime"].vs_torch > 0
    assert not any(trained_run.glob("*/model.onnx"))  # nothing written into the user's run


def test_paired_ratios_of_one_model_against_itself(tiny: BenchTarget) -> None:
    """The same graph in two sessions, back to back: ratios near 1, one per pair."""
    meta = tiny.metadata
    a = OnnxRuntimeRunner(tiny.folder / "model.onnx", threads=1)
    b = OnnxRuntimeRunner(tiny.folder / "model.onnx", threads=1)
    batch = np.zeros((2, meta.preprocess_spec.height, meta.preprocess_spec.width, 3), np.uint8)
    with a, b:
        ratios = paired_ratios(a, b, batch, 8)
    assert ratios.shape == (8,)
    assert 0.5 < float(np.median(ratios)) < 2.0


def test_pairs_can_be_skipped(tiny: BenchTarget, tmp_path: Path) -> None:
    report = run_bench(None, BenchSettings("torch,onnxruntime", "1", preset="tiny", warmup=0,
                                           min_time=0.0, threads=1, loop=False, rounds=1, pairs=0),
                       _quiet)
    rows = {r.backend: r for r in report.rows}
    assert rows["onnxruntime"].vs_torch is not None  # torch ran, and no pairs were timed
    assert all(r.pairs == 0 and r.paired_vs_torch is None for r in report.rows)
    with pytest.raises(ConfigError, match="--pairs"):
        run_bench(tiny.folder, BenchSettings("onnxruntime", "1", pairs=-1), _quiet)
