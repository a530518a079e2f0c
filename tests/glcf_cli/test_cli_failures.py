"""`glcf inspect` failure modes end to end: exit codes, unwritable outputs, bad thresholds."""

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

from glcf_bench.fixtures.contract_model import write_images, write_model, write_video
from glcf_cli import app, main
from tests.glcf_runtime.readonly import readonly_folder

REPO_ROOT = Path(__file__).resolve().parents[2]
cli = CliRunner()


def _inspect(model: Path, source: Path, *options: str):
    return cli.invoke(app, ["inspect", str(model), "--source", str(source), "--threads", "1",
                            *options])


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):
    """Run ``glcf`` as the console script does: (exit code, one-line stderr)."""
    monkeypatch.setattr(sys, "argv", ["glcf", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, " ".join(capsys.readouterr().err.split())


def test_exit_codes_and_summary_json(tmp_path: Path) -> None:
    model = write_model(tmp_path / "export")
    good = write_images(tmp_path / "good", [False, True])[0].parent
    summary = tmp_path / "s.json"
    result = _inspect(model, good, "--summary-json", str(summary))
    assert result.exit_code == 0, result.output
    data = json.loads(summary.read_text())
    assert data["exit_code"] == 0 and data["frames"] == 2 and "3" in data["exit_codes"]
    (good / "zz.png").write_bytes(b"broken")
    result = _inspect(model, good, "--summary-json", str(summary))
    assert result.exit_code == 3 and json.loads(summary.read_text())["exit_code"] == 3
    assert "exit code" in result.output and "frame_errors" in result.output


def test_truncated_video_exits_3_incomplete(tmp_path: Path) -> None:
    model = write_model(tmp_path / "export")
    data = write_video(tmp_path / "clip.avi", [False] * 40).read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    result = _inspect(model, tmp_path / "cut.avi")
    assert result.exit_code == 3 and "lost" in result.output, result.output


def test_outputs_are_checked_before_the_model_loads(tmp_path: Path, monkeypatch, capsys) -> None:
    broken_model = tmp_path / "model.onnx"
    broken_model.write_bytes(b"not onnx")  # had the model loaded first, it would be the error
    frames = write_images(tmp_path / "in", [False])[0].parent
    (tmp_path / "afile").write_text("mine")
    cases = [
        (["--jsonl", str(tmp_path)], "is a folder"),
        (["--save-anomalies", str(tmp_path / "afile")], "is a file; give a folder"),
        (["--save-video", str(tmp_path / "afile" / "a.avi")], "is a file, not a folder"),
        (["--threshold", "0.5", "--summary-json", str(tmp_path)], "is a folder"),
    ]
    for options, message in cases:
        code, err = _main(monkeypatch, capsys, "inspect", str(broken_model), "--source",
                          str(frames), *options)
        assert code == 2 and message in err and "Traceback" not in err, (options, err)
    with readonly_folder(tmp_path / "ro") as ro:
        for option, target in (("--jsonl", ro / "r.jsonl"), ("--save-video", ro / "a.avi"),
                                ("--save-anomalies", ro / "panels")):
            code, err = _main(monkeypatch, capsys, "inspect", str(broken_model), "--source",
                              str(frames), option, str(target))
            assert code == 2 and "Read-only file system" in err and option in err, err
    assert (tmp_path / "afile").read_text() == "mine"


def test_full_disk_mid_run_exits_4_with_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    model = write_model(tmp_path / "export")
    video = write_video(tmp_path / "clip.avi", [False] * 10)
    code, err = _main(monkeypatch, capsys, "inspect", str(model), "--source", str(video),
                      "--jsonl", "/dev/full", "--threads", "1")
    assert code == 4 and "Traceback" not in err
    assert "error: cannot write /dev/full (No space left on device)" in err


@pytest.mark.parametrize(("options", "message"), [
    (["--threshold", "nan"], "--threshold nan: a threshold must be a finite number"),
    (["--threshold", "inf"], "finite number"),
    (["--reconnect", "often"], "--reconnect 'often'"),
    (["--reconnect-max-wait", "0"], "--reconnect-max-wait 0.0"),
    (["--health-max-clipped", "2"], "--health-max-clipped 2.0"),
])
def test_bad_values_exit_2_with_the_fix(tmp_path: Path, monkeypatch, capsys, options: list[str],
                                        message: str) -> None:
    model = write_model(tmp_path / "export")
    frames = write_images(tmp_path / "in", [False])[0].parent
    code, err = _main(monkeypatch, capsys, "inspect", str(model), "--source", str(frames),
                      "--threads", "1", *options)
    assert code == 2 and message in err, err


def test_no_health_check_option_scores_blank_frames(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    model = write_model(tmp_path / "export")
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "grey.png"), np.full((64, 64, 3), 128, np.uint8))
    assert _inspect(model, tmp_path / "in").exit_code == 3
    assert _inspect(model, tmp_path / "in", "--no-health").exit_code == 0


@pytest.mark.slow
def test_ctrl_c_while_onnxruntime_imports_is_never_a_missing_package() -> None:
    """Real interrupts at staggered times over the first ~0.4 s of importing onnxruntime."""
    code = ("import numpy; from glcf_runtime.requires import require; require('onnxruntime'); "
            "print('imported')")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for i in range(16):
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO_ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.15 + 0.02 * i)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert "needs onnxruntime" not in err and "cannot be imported" not in err, err


def test_interrupted_import_is_told_apart_from_a_missing_one() -> None:
    from functools import partial

    from glcf_runtime.backends.onnxruntime import GPU_BUILD
    from glcf_runtime.requires import import_failure as failure

    import_failure = partial(failure, module="onnxruntime", note=GPU_BUILD)

    interrupted = ImportError("initialization failed")  # what pybind11 raises on Ctrl-C
    interrupted.__cause__ = KeyboardInterrupt()
    assert isinstance(import_failure(interrupted), KeyboardInterrupt)
    missing = ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")
    assert "pip install onnxruntime" in str(import_failure(missing))
    broken = ImportError("libonnxruntime.so: cannot open shared object file")
    assert "installed but cannot be imported" in str(import_failure(broken))


def test_summary_json_that_cannot_be_written(tmp_path: Path, monkeypatch, capsys) -> None:
    model = write_model(tmp_path / "export")
    frames = write_images(tmp_path / "in", [False])[0].parent
    code, err = _main(monkeypatch, capsys, "inspect", str(model), "--source", str(frames),
                      "--threads", "1", "--summary-json", "/dev/full")
    assert code == 2 and "not a regular file" in err and Path("/dev/full").is_char_device()
    with readonly_folder(tmp_path / "ro") as ro:
        code, err = _main(monkeypatch, capsys, "inspect", str(model), "--source", str(frames),
                          "--threads", "1", "--summary-json", str(ro / "s.json"))
    assert code == 2 and "Read-only file system" in err


# --- one clear line, and outputs checked before the work ---------------------

def _calibrated_copy(calibrated_run: Path, where: Path, **threshold: object) -> Path:
    """A copy of the calibrated run; ``threshold`` changes keys of calibration.json's threshold
    (a value of ``...`` removes the key)."""
    import shutil

    run = where / "run"
    shutil.copytree(calibrated_run, run)
    calib = json.loads((run / "calibration.json").read_text())
    for key, value in threshold.items():
        if value is ...:
            del calib["threshold"][key]
        else:
            calib["threshold"][key] = value
    (run / "calibration.json").write_text(json.dumps(calib))
    return run


def test_garbage_calibration_json_is_one_line_naming_the_file(
        calibrated_run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    run = _calibrated_copy(calibrated_run, tmp_path)
    (run / "calibration.json").write_text("{ this is not json")
    code, err = _main(monkeypatch, capsys, "eval", str(run), "--device", "cpu")
    assert code == 2 and "Traceback" not in err, err
    assert f"{run / 'calibration.json'} is not valid JSON" in err and "glcf calibrate" in err, err


@pytest.mark.parametrize("threshold", ["abc", ..., None, True])
def test_bad_or_missing_threshold_in_calibration_json_at_export(
        calibrated_run: Path, tmp_path: Path, monkeypatch, capsys, threshold: object) -> None:
    run = _calibrated_copy(calibrated_run, tmp_path, threshold=threshold)
    code, err = _main(monkeypatch, capsys, "export", str(run), "--out", str(tmp_path / "models"))
    assert code == 2 and "Traceback" not in err, err
    assert f"{run / 'calibration.json'}: threshold.threshold" in err and "glcf calibrate" in err, err
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(("options", "message"), [
    (["--quantile", "2"], "--quantile 2.0: give a quantile in [0.5, 1)"),
    (["--quantile", "0"], "--quantile 0.0: give a quantile in [0.5, 1)"),
    (["--margin", "-1"], "--margin -1.0: give a margin >= 0"),
    (["--margin", "nan"], "--margin nan: give a margin >= 0"),
])
def test_threshold_rule_is_refused_before_anything_is_computed(
        tmp_path: Path, monkeypatch, capsys, options: list[str], message: str) -> None:
    """No run / a broken model: had anything been loaded or computed first, that would fail."""
    code, err = _main(monkeypatch, capsys, "calibrate", str(tmp_path / "no-run"), *options)
    assert code == 2 and message in err, err
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not onnx")
    good = write_images(tmp_path / "good", [False])[0].parent
    code, err = _main(monkeypatch, capsys, "threshold", str(broken), "--good", str(good), *options)
    assert code == 2 and message in err, err


@pytest.mark.parametrize(("option", "message"), [
    ("--json", "--json {folder} is a folder"),
    ("--save-maps", "--save-maps {file} is a file; give a folder"),
    ("--overlays", "--overlays {file} is a file; give a folder"),
    ("--report", "--report {file} exists and is not an empty folder"),
])
def test_eval_outputs_are_checked_before_the_evaluation(
        tmp_path: Path, monkeypatch, capsys, option: str, message: str) -> None:
    """No run folder: had the evaluation started first, the missing run would be the error."""
    (tmp_path / "afile").write_text("mine")
    target = tmp_path if option == "--json" else tmp_path / "afile"
    code, err = _main(monkeypatch, capsys, "eval", str(tmp_path / "no-run"), option, str(target))
    assert code == 2 and message.format(folder=tmp_path, file=tmp_path / "afile") in err, err
    code, err = _main(monkeypatch, capsys, "eval", str(tmp_path / "no-run"), "--compare-scoring",
                      "--json", str(tmp_path))
    assert code == 2 and f"--json {tmp_path} is a folder" in err, err
    assert (tmp_path / "afile").read_text() == "mine"


def _bind_readonly(source: Path, view: Path):
    """A read-only view of ``source`` (a read-only bind mount), or skip where that needs root."""
    import contextlib
    import shutil

    @contextlib.contextmanager
    def mounted():
        view.mkdir(parents=True)
        ok = shutil.which("mount") and subprocess.run(
            ["mount", "--bind", str(source), str(view)], capture_output=True).returncode == 0
        if not ok:
            pytest.skip("cannot bind-mount here (needs root)")
        try:
            if subprocess.run(["mount", "-o", "remount,bind,ro", str(view)],
                              capture_output=True).returncode != 0:
                pytest.skip("cannot remount a bind mount read-only here")
            yield view
        finally:
            subprocess.run(["umount", str(view)], capture_output=True)

    return mounted()


def _full_folder(path: Path):
    """``path``: a 4 KiB tmpfs filled up (creating an empty file there still works), or skip."""
    import contextlib

    @contextlib.contextmanager
    def mounted():
        path.mkdir(parents=True)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(path)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a 4 KiB tmpfs here (needs root)")
        try:
            (path / "filler").write_bytes(b"\0" * 4096)
            yield path
        finally:
            subprocess.run(["umount", str(path)], capture_output=True)

    return mounted()


def test_threshold_into_a_read_only_export_folder_fails_before_scoring(
        tmp_path: Path, monkeypatch, capsys) -> None:
    folder = tmp_path / "export"
    write_model(folder)
    good = write_images(tmp_path / "good", [False] * 4)[0].parent
    with _bind_readonly(folder, tmp_path / "ro-export") as ro:
        monkeypatch.setattr(sys, "argv", ["glcf", "threshold", str(ro), "--good", str(good),
                                          "--threads", "1"])
        with pytest.raises(SystemExit) as exit_info:
            main()
        out, err = capsys.readouterr()
    err = " ".join(err.split())
    assert exit_info.value.code == 2 and "Read-only file system" in err, err
    assert str(ro / "threshold.json") in err and "scored with" not in err + out, err


def test_calibrate_into_a_read_only_run_fails_before_computing(
        calibrated_run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    with _bind_readonly(calibrated_run, tmp_path / "ro-run") as ro:
        code, err = _main(monkeypatch, capsys, "calibrate", str(ro), "--device", "cpu")
    assert code == 2 and "Read-only file system" in err and "Traceback" not in err, err
    assert str(ro / "calibration.json") in err and "fusion statistics" not in err, err


def test_read_only_outputs_are_refused_before_the_work(
        calibrated_run: Path, synth_root: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    with readonly_folder(tmp_path / "ro") as ro:
        cases = [
            ("export", str(calibrated_run), "--out", str(ro / "models")),
            ("export", str(calibrated_run), "--out", str(tmp_path / "models"),
             "--triton", str(ro / "repo")),
            ("train", "--out", str(ro / "run"), "--data", str(synth_root), "--category",
             "breakfast_tray", "--preset", "tiny", "--random-init", "--steps", "1"),
            ("data", "synth", str(ro / "data"), "--categories", "breakfast_tray", "--n-train", "1",
             "--n-val", "1", "--n-test", "1"),
            ("eval", str(calibrated_run), "--report", str(ro / "report")),
        ]
        for args in cases:
            code, err = _main(monkeypatch, capsys, *args)
            assert code == 2 and "Read-only file system" in err and "Traceback" not in err, (args, err)
            assert "choose a writable folder" in err, err
    assert not (tmp_path / "models").exists()


def test_full_output_folders_are_refused_before_the_work(
        calibrated_run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    with _full_folder(tmp_path / "full") as full:
        for args in (("data", "synth", str(full / "data"), "--categories", "breakfast_tray"),
                     ("export", str(calibrated_run), "--out", str(full / "models"))):
            code, err = _main(monkeypatch, capsys, *args)
            assert code == 2 and "No space left on device" in err, (args, err)
            assert "Traceback" not in err, err


def test_an_os_error_mid_command_is_one_line_naming_the_path(
        calibrated_run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """A file where eval makes a per-type folder of maps: found only when that folder is made."""
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "good").write_text("mine")
    code, err = _main(monkeypatch, capsys, "eval", str(calibrated_run), "--device", "cpu",
                      "--save-maps", str(maps))
    assert code == 2 and f"error: {maps / 'good'}: File exists" in err and "Traceback" not in err, err
    assert (maps / "good").read_text() == "mine"
