"""Every `--batch` / `--batch-size` is checked at the CLI before any work: >= 1, and no larger
than the batch an export folder was checked for (``export_report.json``'s ``batch``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_images, write_model
from glcf_cli import main


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):
    """Run ``glcf`` as the console script does: (exit code, stdout, one-line stderr)."""
    monkeypatch.setattr(sys, "argv", ["glcf", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, " ".join(err.split())


def _export_folder(folder: Path, checked_batch: int) -> Path:
    """The contract model with the export report ``glcf export`` writes beside it."""
    write_model(folder)
    (folder / "export_report.json").write_text(json.dumps({"batch": checked_batch}))
    return folder


@pytest.mark.parametrize("batch", ["-1", "0"])
def test_threshold_refuses_a_batch_below_1_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        batch: str) -> None:
    """`--batch -1` used to write a threshold made of uninitialised memory, exit 0."""
    model_dir = tmp_path / "export"
    write_model(model_dir)
    good = write_images(tmp_path / "good", [False] * 4)[0].parent
    code, out, err = _main(monkeypatch, capsys, "threshold", str(model_dir), "--good", str(good),
                           "--batch", batch, "--threads", "1")
    assert code == 2 and f"--batch {batch}: give a batch size of 1 or more" in err, (out, err)
    assert "Traceback" not in err and not (model_dir / "threshold.json").exists()


@pytest.mark.parametrize("command", [
    ["inspect", "{model}", "--source", "{frames}"],
    ["threshold", "{model}", "--good", "{frames}"],
    ["bench", "{model}", "--backends", "onnxruntime"],
])
def test_batch_below_1_is_refused_before_the_model_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        command: list[str]) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not onnx")  # had the model loaded first, it would be the error
    frames = write_images(tmp_path / "in", [False])[0].parent
    args = [a.format(model=broken, frames=frames) for a in command]
    for batch in ("0", "-3"):
        value = f"1,{batch}" if command[0] == "bench" else batch
        code, _, err = _main(monkeypatch, capsys, *args, "--batch", value)
        assert code == 2 and f"--batch {batch}: give a batch size of 1 or more" in err, err


@pytest.mark.parametrize("command", [
    ["inspect", "{folder}", "--source", "{frames}"],
    ["inspect", "{folder}/model.onnx", "--source", "{frames}"],
    ["threshold", "{folder}", "--good", "{frames}"],
    ["bench", "{folder}", "--backends", "onnxruntime", "--no-loop"],
])
def test_batch_above_the_exports_checked_batch_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        command: list[str]) -> None:
    folder = _export_folder(tmp_path / "export", checked_batch=4)
    frames = write_images(tmp_path / "in", [False])[0].parent
    args = [a.format(folder=folder, frames=frames) for a in command]
    value = "1,64" if command[0] == "bench" else "64"
    code, _, err = _main(monkeypatch, capsys, *args, "--batch", value)
    assert code == 2 and "--batch 64" in err and "up to 4" in err, err
    assert "glcf export RUN --out DIR --batch 64" in err  # the fix
    assert not (folder / "threshold.json").exists()


def test_batch_up_to_the_exports_checked_batch_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _export_folder(tmp_path / "export", checked_batch=4)
    good = write_images(tmp_path / "good", [False] * 6)[0].parent
    code, _, err = _main(monkeypatch, capsys, "threshold", str(folder), "--good", str(good),
                         "--batch", "4", "--threads", "1")
    assert code in (0, None), err
    assert json.loads((folder / "threshold.json").read_text())["n_normal"] == 6


@pytest.mark.parametrize(("command", "option"), [
    (["calibrate", "{run}"], "--batch-size"),
    (["eval", "{run}"], "--batch-size"),
    (["eval", "{run}", "--compare-scoring"], "--batch-size"),
    (["export", "{run}", "--out", "{out}"], "--batch"),
    (["train", "--out", "{out}", "--data", "{run}", "--preset", "tiny"], "--batch-size"),
])
def test_training_side_batches_below_1_are_refused_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        command: list[str], option: str) -> None:
    """The run folder does not exist: had anything loaded before the check, that would be the error."""
    args = [a.format(run=tmp_path / "no-run", out=tmp_path / "out") for a in command]
    code, _, err = _main(monkeypatch, capsys, *args, option, "0")
    assert code == 2 and f"{option} 0: give a batch size of 1 or more" in err, err
    assert not (tmp_path / "out").exists()


def test_engine_batch_above_its_profile_is_refused_before_it_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The limit of an engine is its sidecar's profile (written by glcf engine build); nothing
    is deserialised (the engine bytes here are not an engine) before the refusal."""
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not an engine")
    shape = {"min": [1, 64, 64, 3], "opt": [1, 64, 64, 3], "max": [8, 64, 64, 3]}
    (tmp_path / "model.engine.json").write_text(json.dumps({"profile": {"image": shape}}))
    frames = write_images(tmp_path / "in", [False])[0].parent
    code, _, err = _main(monkeypatch, capsys, "inspect", str(engine), "--source", str(frames),
                         "--batch", "9")
    assert code == 2 and "--batch 9: this engine was built for batches up to 8" in err, err
    assert "glcf engine build MODEL_DIR --batch 1,9 --overwrite" in err, err
