"""DLA has no dynamic shapes (TensorRT's DLA restrictions: min = opt = max on every wildcard
dimension): a DLA engine serves one fixed batch, and every route to a build says so before any
work is done."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glcf_bench.fixtures.contract_model import write_model
from glcf_cli import app, main
from glcf_runtime.backends.tensorrt.build import BuildOptions
from glcf_runtime.errors import ConfigError


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):
    """``glcf`` as the console script runs it: (exit code, one-line stderr)."""
    monkeypatch.setattr(sys, "argv", ["glcf", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("batch", [(1, 1, 8), (1, 4, 4), (4, 4, 8)], ids=str)
def test_a_dla_build_needs_one_batch_size(batch: tuple[int, int, int]) -> None:
    with pytest.raises(ConfigError) as err:
        BuildOptions(batch=batch, dla_core=0)
    text = str(err.value)
    assert "fixed batch" in text and "--batch 4" in text and "--batch 4,4,4" in text
    assert f"{batch}" in text


def test_a_fixed_batch_is_accepted_for_dla() -> None:
    assert BuildOptions(batch=(4, 4, 4), dla_core=1).batch == (4, 4, 4)
    assert BuildOptions(batch=(1, 1, 1), dla_core=0).dla_core == 0
    assert BuildOptions(batch=(1, 1, 8)).dla_core is None  # the GPU takes any profile


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    write_model(folder)
    (folder / "model.fp16.onnx").write_bytes((folder / "model.onnx").read_bytes())
    return folder


def test_engine_build_refuses_dla_with_a_range_before_needing_tensorrt(
        export_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The default ``--batch 1,8`` is a range: with ``--dla`` it is refused with the fix, on any
    machine (the check comes before TensorRT is looked for)."""
    code, err = _main(monkeypatch, capsys, "engine", "build", str(export_dir), "--dla", "0")
    assert code == 2 and "fixed batch" in err and "--batch 4" in err, err
    assert "tensorrt is not installed" not in err
    assert sorted(p.name for p in export_dir.iterdir()) == ["model.fp16.onnx", "model.onnx"]


def test_engine_build_help_says_dla_needs_one_batch() -> None:
    result = CliRunner().invoke(app, ["engine", "build", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "one fixed batch" in text and "--batch 4" in text, text


@pytest.mark.parametrize(("args", "expected"), [
    (["--trt", "--dla", "0"], "one fixed batch"),  # --batch defaults to 8: a range 1..8
    (["--trt", "--dla", "0", "--batch", "4"], "one fixed batch"),
    (["--dla", "0", "--batch", "1"], "--dla needs --trt"),
])
def test_export_refuses_dla_it_cannot_build_before_any_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], expected: str) -> None:
    """No run folder exists here: had the export started, that would be the error."""
    code, err = _main(monkeypatch, capsys, "export", str(tmp_path / "no-run"), "--out",
                      str(tmp_path / "out"), *args)
    assert code == 2 and expected in err, err
    if "--trt" in args:
        assert "glcf engine build" in err and "--dla 0 --batch" in err, err
    assert not (tmp_path / "out").exists()


def test_export_help_says_dla_needs_batch_1() -> None:
    result = CliRunner().invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "--batch 1" in text and "glcf engine build" in text, text
