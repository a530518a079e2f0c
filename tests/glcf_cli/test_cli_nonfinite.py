"""`glcf inspect` and `glcf threshold` on a graph whose scores are not usable (exit 3, refusal),
and `--summary-json` after a run killed with SIGKILL (no stale summary that looks valid)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glcf_bench.fixtures.contract_model import write_images, write_model
from glcf_cli import app
from tests.glcf_cli.test_cli_runtime import REPO_ROOT, _slow_folder
from tests.glcf_runtime.test_nonfinite import unusable_model

cli = CliRunner()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("tail", ["nan", "clamped"])
def test_inspect_with_unusable_scores_exits_3_and_counts_them(tmp_path: Path, backend: str,
                                                              tail: str) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino", reason="the openvino extra is not installed")
    model = unusable_model(tmp_path / "export", tail)
    frames = write_images(tmp_path / "frames", [False, True, True])[0].parent
    summary, jsonl = tmp_path / "run.json", tmp_path / "run.jsonl"
    result = cli.invoke(app, ["inspect", str(model), "--source", str(frames), "--jsonl", str(jsonl),
                              "--summary-json", str(summary), "--threads", "1",
                              "--backend", backend])
    assert result.exit_code == 3, result.output
    data = json.loads(summary.read_text())
    assert (data["frames"], data["errors"], data["anomalies"], data["exit_code"]) == (1, 2, 0, 3)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert ["error" in r for r in records] == [False, True, True]
    assert all(r["score"] is not None for r in records if "error" not in r)


def test_threshold_refuses_nan_scores_naming_the_images(tmp_path: Path) -> None:
    model = unusable_model(tmp_path / "export", "clamped")  # NaN as -3.4e38, as OpenVINO gave it
    good = write_images(tmp_path / "good", [False, True, False])[0].parent
    result = cli.invoke(app, ["threshold", str(model), "--good", str(good), "--threads", "1",
                              "--backend", "onnxruntime"])
    assert result.exit_code != 0 and isinstance(result.exception, Exception)
    message = str(result.exception)
    assert "001.png" in message and "float32 limit" in message and "1 of 3" in message
    assert not (model.parent / "threshold.json").exists()


def test_summary_of_a_killed_run_never_looks_like_a_finished_one(tmp_path: Path) -> None:
    """A summary left by an earlier run is replaced by an in-progress record when the run starts,
    so SIGKILL (no handler runs) leaves a file that says the run did not finish."""
    model = write_model(tmp_path / "export")
    source = _slow_folder(tmp_path / "frames")
    jsonl, summary = tmp_path / "run.jsonl", tmp_path / "run.json"
    earlier = {"frames": 1000, "anomalies": 0, "errors": 0, "completed": True, "exit_code": 0}
    summary.write_text(json.dumps(earlier))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "glcf_cli", "inspect", str(model), "--source", str(source),
         "--jsonl", str(jsonl), "--summary-json", str(summary), "--threads", "1"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (jsonl.exists() and jsonl.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    data = json.loads(summary.read_text())
    assert data != earlier and data["exit_code"] is None and data["completed"] is False
    assert data["in_progress"] is True and data["pid"] == proc.pid
    assert "has not finished" in data["reason"]
    assert not list(tmp_path.glob(".run.json.*"))  # no temporary file left beside it
