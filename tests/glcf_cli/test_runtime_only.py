"""The deployment box: `glcf engine`, `glcf inspect` and `glcf bench` on an export folder work
where torch, timm, torchvision, glcf_train and glcf_export cannot be imported; the commands that
need them say which extra to install, in one line, with the brackets intact."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_images, write_model

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
BLOCKED = ("torch", "timm", "torchvision", "glcf_train", "glcf_export")
RUN_BLOCKED = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
sys.meta_path.insert(0, Block())
sys.argv = ['glcf', *sys.argv[1:]]
from glcf_cli import main
try:
    main()
finally:
    leaked = sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED!r})
    assert not leaked, leaked
"""


def glcf(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_BLOCKED, *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("box") / "export"
    write_model(folder)
    return folder


def test_engine_help_and_a_clear_error_without_tensorrt(export_dir: Path) -> None:
    assert glcf("engine", "--help").returncode == 0
    (export_dir / "model.fp16.onnx").write_bytes((export_dir / "model.onnx").read_bytes())
    try:
        built = glcf("engine", "build", str(export_dir))
    finally:
        (export_dir / "model.fp16.onnx").unlink()
    assert built.returncode == 2, built.stderr
    assert "tensorrt is not installed" in built.stderr and "glcf[trt]" in built.stderr


def test_inspect_runs(export_dir: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "frames", [False, True, False])
    out = tmp_path / "run.jsonl"
    done = glcf("inspect", str(export_dir), "--source", str(tmp_path / "frames"), "--jsonl", str(out))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["anomalous"] for r in records if "frame" in r and "score" in r] == [False, True, False]


def test_bench_times_the_onnxruntime_backend(export_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    done = glcf("bench", str(export_dir), "--backends", "onnxruntime,tensorrt", "--batch", "1",
                "--min-time", "0.2", "--rounds", "1", "--warmup", "1", "--no-loop", "--pairs", "0",
                "--json", str(report), "--csv", str(tmp_path / "bench.csv"))
    assert done.returncode == 0, done.stderr
    rows = json.loads(report.read_text())["rows"]
    assert [(r["backend"], r["batch"], r["runnable"]) for r in rows] == [
        ("onnxruntime", 1, True), ("tensorrt", 1, HAS_TRT)]
    assert rows[0]["latency_p50_ms"] > 0
    if not HAS_TRT:  # the reason is printed whole, brackets and all
        assert "pip install 'glcf[trt]'" in " ".join(done.stdout.split()), done.stdout


def test_bench_writes_only_where_it_is_told(export_dir: Path, tmp_path: Path) -> None:
    """--json F alone: the CSV goes beside F, and the working directory is left as it was."""
    work = tmp_path / "work"
    work.mkdir()
    report = tmp_path / "results" / "run.json"
    done = glcf("bench", str(export_dir), "--backends", "onnxruntime", "--batch", "1",
                "--min-time", "0.1", "--rounds", "1", "--warmup", "1", "--no-loop", "--pairs", "0",
                "--json", str(report), cwd=work)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in report.parent.iterdir()) == ["run.csv", "run.json"]
    assert list(work.iterdir()) == []
    assert "onnxruntime" in (report.parent / "run.csv").read_text()


@pytest.mark.parametrize(("args", "expected"), [
    (("bench", "--preset", "tiny", "--backends", "onnxruntime"), "pip install 'glcf[train,export]'"),
    (("train", "--data", "x", "--out", "y"), "pip install 'glcf[train]'"),
    (("export", "run", "--out", "x"), "pip install 'glcf[train,export]'"),
])
def test_commands_that_need_torch_name_the_extra(tmp_path: Path, args: tuple[str, ...],
                                                 expected: str) -> None:
    done = glcf(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2 and "Traceback" not in done.stderr
