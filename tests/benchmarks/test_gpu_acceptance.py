"""benchmarks/gpu_acceptance.py: the dry run names every part and why it would skip here; on a
machine without a GPU the CPU parts run, the others record their reason, and the exit code is 0."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks import gpu_acceptance as ga
from glcf_runtime.backends import OnnxRuntimeRunner

SCRIPT = Path(ga.__file__)


def test_dry_run_lists_every_part_with_why_it_would_skip() -> None:
    before = sorted(ga.RESULTS.iterdir())
    result = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = {line.split(":", 1)[0]: line for line in result.stdout.splitlines()}
    assert list(lines) == [p.name for p in ga.PARTS], result.stdout
    for part in ga.PARTS:
        reason = ga.blocked(part)
        expected = f"{part.name}: skip: {reason}" if reason else f"{part.name}: would run"
        assert lines[part.name].startswith(expected), (lines[part.name], reason)
    assert sorted(ga.RESULTS.iterdir()) == before, "a dry run wrote results"


@pytest.mark.skipif(ga.no_cuda() is None, reason="a GPU is here: the full script is the test")
def test_without_a_gpu_every_gpu_part_says_why() -> None:
    reasons = {p.name: ga.blocked(p) for p in ga.PARTS}
    for part in ga.PARTS:
        if ga.no_cuda in part.needs:
            assert "sees no CUDA device" in reasons[part.name], reasons
    assert reasons["onnxruntime_cuda"] and reasons["tensorrt_fp16"] and reasons["cuda_api"], reasons


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> ga.Ctx:
    """The CPU parts on the tiny preset: synthetic data, an untrained run, its exported graph."""
    ctx = ga.Ctx(tmp_path_factory.mktemp("acceptance"), "tiny", time.monotonic() + 600)
    for part in ga.PARTS:
        if part.name in ("data", "export_graph"):
            entry = ga.run_part(part, ctx, {part.name})
            assert entry["status"] == "ok", entry
    return ctx


def test_the_measuring_helpers_on_the_cpu(exported: ga.Ctx) -> None:
    reference = ga.reference(exported)
    assert reference[0].shape[0] == len(ga.images(exported)) == 8
    same = ga.parity(reference, reference)
    assert same["map_err_rel_range"] == 0 and same["score_err_rel"] == 0 and same["spearman"] == 1
    fp16 = OnnxRuntimeRunner(exported.done["target"].folder / "model.fp16.onnx", providers=["cpu"])
    figures = ga.parity(reference, fp16.infer(ga.images(exported)))
    assert 0 < figures["map_err_rel_range"] < 1e-2, figures
    rows = ga.latency(fp16, seconds=0.1)
    assert [r["batch"] for r in rows] == [1, 8] and all(r["latency_p50_ms"] > 0 for r in rows)


def test_a_run_records_every_part(tmp_path: Path) -> None:
    """All parts on the tiny graph: the CPU ones run, every other one records its reason."""
    out = tmp_path / "acceptance.json"
    code = ga.main(["--graph-preset", "tiny", "--out", str(out), "--workdir", str(tmp_path / "w")])
    report = json.loads(out.read_text())
    assert list(report["parts"]) == [p.name for p in ga.PARTS]
    for part in ga.PARTS:
        entry = report["parts"][part.name]
        assert entry["status"] in ("ok", "skipped"), (part.name, entry)
        if entry["status"] == "skipped":
            assert entry["reason"], part.name
        reason = ga.blocked(part)
        if reason:
            assert entry == {"status": "skipped", "reason": reason}
    assert {n for n, e in report["parts"].items() if e["status"] == "ok"} >= {"environment", "data",
                                                                             "export_graph"}
    assert code == 0
    figures = report["parts"]["export_graph"]["figures"]
    assert np.all([figures["files"][f] > 0 for f in ("model.onnx", "model.fp16.onnx")])
