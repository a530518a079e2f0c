"""Commands the CLI prints to run next are shell-quoted: a path with a space copy-pastes."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_images, write_model
from glcf_cli import main


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):
    """Run ``glcf`` as the console script does: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["glcf", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def _line(text: str, start: str) -> str:
    """The line of ``text`` that starts with ``start``, with rich's wrapping undone."""
    joined = " ".join(text.split())
    assert start in joined, text
    return joined[joined.index(start):]


def test_threshold_hint_quotes_the_model_path(tmp_path: Path, monkeypatch, capsys) -> None:
    folder = tmp_path / "my export"
    write_model(folder)
    good = write_images(tmp_path / "good", [False] * 4)[0].parent
    code, out, err = _main(monkeypatch, capsys, "threshold", str(folder), "--good", str(good),
                           "--threads", "1", "--roi", "0,0,64,64")
    assert code == 0, err
    hint = _line(out, "next: ")
    assert hint.startswith(f"next: glcf inspect {shlex.quote(str(folder))} --source SRC --roi 0,0,64,64")
    assert shlex.split(hint)[3] == str(folder)


def test_synth_hint_quotes_its_paths(tmp_path: Path, monkeypatch, capsys) -> None:
    out_dir = tmp_path / "my data"
    code, out, err = _main(monkeypatch, capsys, "data", "synth", str(out_dir), "--categories",
                           "breakfast_tray", "--n-train", "1", "--n-val", "1", "--n-test", "1")
    assert code == 0, err
    hint = shlex.split(_line(out, "next: ")[len("next: "):])
    assert hint[:4] == ["glcf", "train", "--data", str(out_dir)]


def test_eval_and_error_hints_quote_the_run(calibrated_run: Path, trained_run: Path, tmp_path: Path,
                                            monkeypatch, capsys) -> None:
    run = tmp_path / "my run"
    shutil.copytree(calibrated_run, run)
    code, out, err = _main(monkeypatch, capsys, "eval", str(run), "--device", "cpu")
    assert code == 0, err
    hint = _line(out, "next: glcf export")
    export = shlex.join(["glcf", "export", str(run), "--out", "models/my run"])
    assert hint.startswith(f"next: {export}"), hint
    assert f"glcf eval {shlex.quote(str(run))} --compare-scoring" in hint

    uncalibrated = tmp_path / "not calibrated"
    shutil.copytree(trained_run, uncalibrated)
    code, _, err = _main(monkeypatch, capsys, "eval", str(uncalibrated), "--device", "cpu")
    assert code == 2 and f"glcf calibrate {shlex.quote(str(uncalibrated))}" in " ".join(err.split())

    code, _, err = _main(monkeypatch, capsys, "calibrate", str(tmp_path / "no run"))
    assert code == 2, err
    assert f"--out {shlex.quote(str(tmp_path / 'no run'))}" in " ".join(err.split()), err
