"""A `glcf export` killed mid-way (real subprocesses, SIGTERM and SIGKILL): SIGTERM cleans up and
exits 1; SIGKILL's staging folder holds files marked unchecked and the next export removes it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest

from glcf_cli import main
from glcf_export.export import remove_stale_staging, staging_prefix
from glcf_export.onnx_export import CHECKS_PASSED, CHECKS_PENDING
from glcf_runtime.metadata import read_metadata

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # two exports killed mid-way, one whole export


def _export_until_checking(run: Path, out: Path) -> subprocess.Popen[str]:
    """`glcf export` in a subprocess, returned once model.onnx is staged and its checks started."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "glcf_cli", "export", str(run), "--out", str(out), "--batch", "4",
         "--no-fp16"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    seen = []
    deadline = time.monotonic() + 240
    assert proc.stdout is not None
    for line in proc.stdout:  # "checking FP32 …" is logged once model.onnx is saved
        seen.append(line)
        if line.startswith("checking FP32"):
            return proc
        assert time.monotonic() < deadline, "".join(seen)
    proc.kill()
    raise AssertionError(f"the export ended before its checks: {''.join(seen)} {proc.stderr.read()}")


def _staging(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.staging-*"))


def test_sigterm_mid_export_removes_the_staging_folder(calibrated_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "models"
    proc = _export_until_checking(calibrated_run, out)
    try:
        assert len(_staging(out)) == 1  # the export is in its checks now
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr  # as glcf train and Ctrl-C
    assert "export interrupted by SIGTERM" in stderr and "Traceback" not in stderr, stderr
    assert "nothing was published" in stdout, stdout
    assert _staging(out) == [] and not out.exists()


def test_sigkill_leaves_only_unchecked_files_and_the_next_export_removes_them(
        calibrated_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "my models"  # a space: the "next:" commands must stay copy-pastable
    proc = _export_until_checking(calibrated_run, out)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    (staging,) = _staging(out)
    staged = read_metadata(onnx.load(str(staging / "model.onnx")), "staged")  # complete, readable
    assert staged.extra["checks"] == CHECKS_PENDING  # ... and says it is not checked
    assert staging.name.startswith(staging_prefix(out, proc.pid))

    monkeypatch.setattr(sys, "argv", ["glcf", "export", str(calibrated_run), "--out", str(out),
                                      "--batch", "4", "--no-fp16", "--no-int8"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    printed = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0, printed
    assert not staging.exists() and _staging(out) == []
    assert f"removed {staging}: the unchecked files of an export by process {proc.pid}" in printed
    published = read_metadata(onnx.load(str(out / "model.onnx")), "published")
    assert published.extra["checks"] == CHECKS_PASSED
    assert json.loads((out / "export_report.json").read_text())["batch"] == 4
    model = shlex.quote(str(out / "model.onnx"))
    assert f"next: glcf inspect {model} --source VIDEO_OR_FOLDER_OR_CAMERA" in printed, printed
    assert f"glcf threshold {model} --good GOOD_IMAGES" in printed, printed


def test_staging_folders_of_live_or_foreign_processes_are_left_alone(
        calibrated_run: Path, tmp_path: Path) -> None:
    """Only a folder whose process is known to be gone is removed; nothing runs past the check."""
    out = tmp_path / "models"
    live = tmp_path / f"{staging_prefix(out)}abc123"  # this test's own process
    foreign = tmp_path / ".models.staging-another.box-1-def456"
    old = tmp_path / ".models.staging-k2j3h4"  # an older glcf's name: no process recorded
    dead = tmp_path / f"{staging_prefix(out, _dead_pid())}ghi789"
    for folder in (live, foreign, old, dead):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"staged")
    logged: list[str] = []
    remove_stale_staging(out, logged.append)
    assert live.exists() and foreign.exists() and old.exists() and not dead.exists()
    assert any(f"removed {dead}" in line for line in logged), logged
    assert any(str(old) in line and "delete it" in line for line in logged), logged


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
