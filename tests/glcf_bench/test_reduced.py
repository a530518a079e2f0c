"""glcf bench's OpenVINO and reduced-precision rows, their accuracy against FP32, the INT8 peak."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from glcf_bench.bench import run_bench
from glcf_bench.fixtures.contract_model import write_model
from glcf_bench.machine import matmul_peak_int8_gops
from glcf_bench.reduced import fill_accuracy, int8_file, open_reduced
from glcf_bench.report import BenchRow
from glcf_bench.settings import BenchSettings
from glcf_runtime.artifacts import GATES_FILE, INT8_FILE
from glcf_runtime.compare import spearman
from glcf_runtime.errors import GlcfError

pytest.importorskip("openvino", reason="the openvino extra is not installed")


def _export(folder: Path, int8: bool = True) -> Path:
    model = write_model(folder)
    if int8:  # a valid artifact under the INT8 name: the rows read files, not their precision
        shutil.copy(model, folder / INT8_FILE)
    (folder / GATES_FILE).write_text(json.dumps({
        "openvino-bf16": {"passed": True, "figures": {"spearman": 1.0, "auroc_logical_change": 0.004,
                                                      "auroc_structural_change": -0.008}}}))
    return folder


def test_rows_run_side_by_side_with_accuracy_and_ratios(tmp_path: Path) -> None:
    settings = BenchSettings("onnxruntime,openvino,openvino-int8,onnxruntime-int8,tensorrt-int8",
                             "1,2", warmup=1, min_time=0.05, threads=1, loop=False, rounds=1,
                             pairs=0)
    report = run_bench(_export(tmp_path / "export"), settings, lambda _: None)
    rows = {(r.backend, r.batch): r for r in report.rows}
    assert not rows["tensorrt-int8", 1].runnable and "tensorrt" in rows["tensorrt-int8", 1].reason
    for name in ("openvino", "openvino-int8", "onnxruntime-int8"):
        for batch in (1, 2):
            row = rows[name, batch]
            assert row.runnable and row.images_per_s > 0 and row.vs_onnxruntime > 0, row
            assert row.spearman_vs_fp32 == pytest.approx(1.0, abs=1e-6)  # the same function
    assert rows["onnxruntime", 1].vs_onnxruntime == 1.0
    assert report.peak_gflops["cpu_int8"] > 0


def test_missing_int8_file_and_unknown_rows_are_named(tmp_path: Path) -> None:
    folder = _export(tmp_path / "export", int8=False)
    with pytest.raises(GlcfError, match="glcf export writes it where its check against FP32 passes"):
        open_reduced("onnxruntime-int8", folder, False, 1, 1, log=lambda _: None)
    with pytest.raises(GlcfError, match="unknown reduced-precision row"):
        open_reduced("openvino-fp4", folder, False, 1, 1, log=lambda _: None)
    # A folder the benchmark exported itself gets its INT8 file made (here: nothing to quantize).
    with pytest.raises(GlcfError, match="nothing to quantize to INT8"):
        int8_file(folder, True, log=lambda _: None)


def test_accuracy_against_fp32_and_the_gates(tmp_path: Path) -> None:
    folder = _export(tmp_path / "export")
    rows = [BenchRow("onnxruntime", 1), BenchRow("openvino-bf16", 1), BenchRow("openvino", 1)]
    reference = np.array([0.1, 0.5, 0.3, 0.9])
    fill_accuracy(rows, {"onnxruntime": reference, "openvino-bf16": reference * 1.01,
                         "openvino": reference[::-1]}, folder)
    assert rows[1].spearman_vs_fp32 == pytest.approx(1.0) and rows[1].auroc_change == -0.008
    assert rows[2].spearman_vs_fp32 == pytest.approx(spearman(reference, reference[::-1]))
    assert rows[2].spearman_vs_fp32 < 0 and rows[2].auroc_change is None


def test_int8_matmul_peak() -> None:
    assert matmul_peak_int8_gops(1, n=256, repeats=2) > 0
