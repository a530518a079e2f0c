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

from glcf_cli import app, main
from tests.glcf_runtime.contract_model import write_images, write_model, write_video
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
    code = ("import numpy, glcf_runtime.backends.onnxruntime as b; b.import_onnxruntime(); "
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
    from glcf_runtime.backends.onnxruntime import import_failure

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
