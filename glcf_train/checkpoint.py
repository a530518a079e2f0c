"""Run folders and checkpoints: written atomically (temporary name, then rename)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from glcf_runtime.errors import GlcfError
from glcf_runtime.files import atomic_write

CHECKPOINT_FORMAT = "glcf-checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.yaml"
LOG_NAME = "train_log.jsonl"
# Files a run folder holds; --overwrite removes exactly these, nothing else of the user's.
RUN_FILES = (CHECKPOINT_NAME, CONFIG_NAME, LOG_NAME, "calibration.json")


class RunError(GlcfError):
    """A run folder that cannot be used as asked."""


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save({"format": CHECKPOINT_FORMAT, **payload}, tmp), fsync=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``: no code runs from the file)."""
    path = Path(path)
    if path.name != CHECKPOINT_NAME:
        path = path / CHECKPOINT_NAME  # a run folder
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}; train first with `glcf train ... --out {path.parent}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle, ...: all unusable
        raise RunError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise RunError(
            f"{path} is not a GLCF checkpoint of format {CHECKPOINT_FORMAT} "
            f"(found {ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__})"
        )
    return ckpt


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Make sure ``out`` may be written as asked; never silently replace a user's run."""
    out = Path(out)
    if resume and overwrite:
        raise RunError("--resume and --overwrite contradict each other; pick one")
    if resume:
        if not (out / CHECKPOINT_NAME).is_file():
            raise RunError(f"cannot resume: {out / CHECKPOINT_NAME} does not exist")
        return
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file; give a folder for the run")
    existing = [p for p in out.iterdir()] if out.is_dir() else []
    if existing and not overwrite:
        raise RunError(
            f"run folder {out} already holds {len(existing)} file(s); continue it with --resume, "
            "start it again with --overwrite, or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
