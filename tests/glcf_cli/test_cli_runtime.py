"""`glcf inspect` and `glcf threshold` end to end, including SIGTERM on a running inspection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from glcf_bench.fixtures.contract_model import write_images, write_model, write_video
from glcf_cli import app, main

REPO_ROOT = Path(__file__).resolve().parents[2]
cli = CliRunner()


def test_threshold_then_inspect_uses_threshold_json(tmp_path: Path) -> None:
    model_dir = tmp_path / "export"
    model = write_model(model_dir)
    before = model.read_bytes()
    write_images(tmp_path / "good", [False] * 8)
    result = cli.invoke(
        app,
        [
            "threshold",
            str(model_dir),
            "--good",
            str(tmp_path / "good"),
            "--quantile",
            "0.95",
            "--margin",
            "0.2",
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((model_dir / "threshold.json").read_text())
    assert saved["rule"] == "normal_quantile" and saved["artifact"] == "model.onnx"
    assert saved["threshold"] < 0.5 and model.read_bytes() == before
    assert "threshold.json" in result.output and "next: glcf inspect" in result.output

    frames = write_images(tmp_path / "frames", [False, True, False])[0].parent  # good: ≤ 6/128
    jsonl = tmp_path / "run.jsonl"
    result = cli.invoke(
        app,
        [
            "inspect",
            str(model_dir),
            "--source",
            str(frames),
            "--jsonl",
            str(jsonl),
            "--provider",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "threshold.json" in result.output and "completed" in result.output
    assert [r["anomalous"] for r in map(json.loads, jsonl.read_text().splitlines())] == [
        False,
        True,
        False,
    ]


def test_threshold_with_anomalies_is_f1_optimal(tmp_path: Path) -> None:
    model = write_model(tmp_path / "export")
    write_images(tmp_path / "good", [False] * 4)
    write_images(tmp_path / "bad", [True] * 2)
    result = cli.invoke(
        app,
        [
            "threshold",
            str(model),
            "--good",
            str(tmp_path / "good"),
            "--anomalous",
            str(tmp_path / "bad"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "export" / "threshold.json").read_text())["rule"] == "f1_optimal"


def test_inspect_writes_every_output(tmp_path: Path) -> None:
    model = write_model(tmp_path / "export")
    video = write_video(tmp_path / "clip.avi", [i in (2, 5) for i in range(12)])
    out = tmp_path / "out"
    result = cli.invoke(
        app,
        [
            "inspect",
            str(model),
            "--source",
            str(video),
            "--batch",
            "3",
            "--threshold",
            "0.5",
            "--save-video",
            str(out / "a.avi"),
            "--jsonl",
            str(out / "r.jsonl"),
            "--save-anomalies",
            str(out / "bad"),
        ],
    )
    assert result.exit_code == 0, result.output
    capture, count = cv2.VideoCapture(str(out / "a.avi")), 0
    while capture.read()[0]:
        count += 1
    assert count == 12
    assert len((out / "r.jsonl").read_text().splitlines()) == 12
    assert len(list((out / "bad").glob("*.png"))) == 2
    result = cli.invoke(
        app, ["inspect", str(model), "--source", str(video), "--save-video", str(out / "a.avi")]
    )
    assert result.exit_code != 0 and "exists" in str(result.exception)


def test_user_errors_exit_2_with_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    weird = tmp_path / "model.pt"
    weird.write_bytes(b"x")
    monkeypatch.setattr(sys, "argv", ["glcf", "inspect", str(weird), "--source", "0"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert ".engine → tensorrt" in " ".join(capsys.readouterr().err.split())


def _slow_folder(folder: Path, n: int = 1000) -> Path:
    """n hard links to one 1200×1200 noise PNG: ~10 ms to decode each, seconds in all."""
    folder.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
    first = folder / "f0000.png"
    cv2.imwrite(str(first), noise)
    for i in range(1, n):
        os.link(first, folder / f"f{i:04d}.png")
    return folder


def test_sigterm_stops_cleanly_with_summary_and_complete_jsonl(tmp_path: Path) -> None:
    model = write_model(tmp_path / "export")
    source = _slow_folder(tmp_path / "frames")
    jsonl = tmp_path / "run.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "120"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "glcf_cli",
            "inspect",
            str(model),
            "--source",
            str(source),
            "--jsonl",
            str(jsonl),
            "--threads",
            "1",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (jsonl.exists() and jsonl.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr
    assert "stopped by SIGTERM" in stdout and "frames" in stdout
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert 1 <= len(records) < 1000
    assert [r["frame"] for r in records] == list(range(len(records)))
    assert all("score" in r for r in records)


def _letterboxed(folder: Path, pattern: list[bool]) -> Path:
    """Contract frames with 16-pixel black bars left and right (96x64): the bars alone score 1."""
    for path in write_images(folder, pattern):
        image = cv2.imread(str(path))
        cv2.imwrite(str(path), cv2.copyMakeBorder(image, 0, 0, 16, 16, cv2.BORDER_CONSTANT, value=0))
    return folder


def _verdicts(jsonl: Path) -> list[bool | None]:
    return [json.loads(line).get("anomalous") for line in jsonl.read_text().splitlines()]


def test_roi_crops_letterbox_bars_and_the_threshold_follows_it(tmp_path: Path) -> None:
    model_dir = tmp_path / "export"
    write_model(model_dir)
    good = _letterboxed(tmp_path / "good", [False] * 8)
    frames = _letterboxed(tmp_path / "frames", [False, True, False])
    base = ["inspect", str(model_dir), "--source", str(frames), "--threads", "1", "--jsonl"]

    result = cli.invoke(app, [*base, str(tmp_path / "bars.jsonl")])
    assert result.exit_code == 0, result.output
    assert _verdicts(tmp_path / "bars.jsonl") == [True, True, True]  # the bars are flagged

    result = cli.invoke(app, ["threshold", str(model_dir), "--good", str(good), "--threads", "1",
                              "--roi", "16,0,64,64"])
    assert result.exit_code == 0, result.output
    assert json.loads((model_dir / "threshold.json").read_text())["roi"] == [16, 0, 64, 64]
    assert "--roi 16,0,64,64" in result.output  # the next command keeps the crop
    assert "note: 8 good images are too few for the 0.99 quantile (it needs 100" in " ".join(result.output.split())

    result = cli.invoke(app, [*base, str(tmp_path / "crop.jsonl"), "--roi", "16,0,64,64"])
    assert result.exit_code == 0, result.output
    assert _verdicts(tmp_path / "crop.jsonl") == [False, True, False]
    assert "threshold.json (normal_quantile" in " ".join(result.output.split())
    assert "cropped to 16,0,64,64" in result.output

    result = cli.invoke(app, [*base, str(tmp_path / "whole.jsonl")])
    assert result.exit_code == 0, result.output
    assert "stale" in " ".join(result.output.split())  # measured on cropped frames: not used


@pytest.mark.parametrize("roi", ["16,0,64", "a,b,c,d", "16,0,0,64", "-1,0,64,64"])
def test_bad_roi_is_named_with_the_fix(
    tmp_path: Path, roi: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = tmp_path / "export"
    write_model(model_dir)
    frames = _letterboxed(tmp_path / "frames", [False])
    monkeypatch.setattr(sys, "argv", ["glcf", "inspect", str(model_dir), "--source", str(frames),
                                      f"--roi={roi}"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--roi '{roi}'" in err and "x,y,w,h" in err and "Traceback" not in err


def test_roi_outside_the_frame_is_an_error_per_frame(tmp_path: Path) -> None:
    model_dir = tmp_path / "export"
    write_model(model_dir)
    frames = _letterboxed(tmp_path / "frames", [False, False])
    jsonl = tmp_path / "out.jsonl"
    result = cli.invoke(app, ["inspect", str(model_dir), "--source", str(frames), "--threads", "1",
                              "--roi", "40,0,64,64", "--jsonl", str(jsonl)])
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 2 and all("does not fit a 96x64 frame" in r["error"] for r in records)
    assert "--roi x,y,w,h inside the frame" in records[0]["error"], result.output
