"""One listing of an image folder for every command: dangling links, link loops and folders named
like an image are counted and named by inspect, threshold and training alike.
Real symbolic links on a real file system."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_images, write_model
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.errors import ImageReadError
from glcf_runtime.preprocess import check_readable, list_images
from glcf_runtime.sources import open_source
from glcf_runtime.threshold import calibrate_threshold

DANGLING = "a symbolic link to nothing (dangling)"
LOOP = "a symbolic link that loops"


def _folder_with_links(folder: Path) -> Path:
    """18 good PNGs (000-017), a dangling link (005a.png) and a link loop (012a.png)."""
    write_images(folder, [False] * 18)
    (folder / "005a.png").symlink_to(folder.parent / "gone.png")
    (folder / "012a.png").symlink_to("012a.png")
    return folder


def test_the_listing_keeps_what_cannot_be_read(tmp_path: Path) -> None:
    folder = _folder_with_links(tmp_path / "good")
    (folder / "x.png").mkdir()  # a folder named like an image
    (folder / "plain").mkdir()  # a subfolder: not an entry
    (folder / ".hidden.png").symlink_to("nowhere")  # hidden: not an entry
    (folder / "003b.png").symlink_to(folder / "003.png")  # a working link is an image
    names = [p.name for p in list_images(folder)]
    assert len(names) == 22 and {"005a.png", "012a.png", "x.png", "003b.png"} <= set(names)
    assert "plain" not in names and ".hidden.png" not in names
    with pytest.raises(ImageReadError) as caught:
        check_readable(list_images(folder))
    message = str(caught.value)
    assert message.startswith(f"cannot read image {folder / '005a.png'}: {DANGLING} (2 more ")
    assert "cannot be read: 012a.png, x.png)" in message


def test_inspect_and_threshold_name_the_same_entries(tmp_path: Path) -> None:
    folder = _folder_with_links(tmp_path / "good")
    with open_source(str(folder)) as source:
        frames = list(source)
    assert len(frames) == 20  # 18 images and 2 error records: nothing left out
    errors = {f.path.name: f.error for f in frames if f.error is not None}
    assert set(errors) == {"005a.png", "012a.png"}
    assert DANGLING in errors["005a.png"] and LOOP in errors["012a.png"]
    model = write_model(tmp_path / "export")
    with OnnxRuntimeRunner(model, threads=1) as runner, pytest.raises(ImageReadError) as caught:
        calibrate_threshold(runner, folder)
    assert str(caught.value).startswith(f"cannot read image {folder / '005a.png'}: {DANGLING}")
    assert f"(1 more entry of {folder} cannot be read: 012a.png)" in str(caught.value)
    assert not (model.parent / "threshold.json").exists()


def test_cli_threshold_stops_with_one_line_naming_the_link(tmp_path: Path) -> None:
    folder = _folder_with_links(tmp_path / "good")
    model = write_model(tmp_path / "export")
    result = subprocess.run(
        [sys.executable, "-m", "glcf_cli", "threshold", str(model), "--good", str(folder),
         "--backend", "onnxruntime", "--threads", "1"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "005a.png" in result.stderr and "dangling" in result.stderr
    assert "Traceback" not in result.stderr and "threshold " not in result.stdout
