"""Run folders and checkpoints: written atomically (temporary name, then rename)."""

from __future__ import annotations

import pickle
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from glcf_runtime.errors import GlcfError
from glcf_runtime.files import atomic_write
from glcf_runtime.sinks import check_writable

CHECKPOINT_FORMAT = "glcf-checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.yaml"
LOG_NAME = "train_log.jsonl"
# Files a run folder holds; --overwrite removes exactly these, nothing else of the user's.
RUN_FILES = (CHECKPOINT_NAME, CONFIG_NAME, LOG_NAME, "calibration.json")
ASIDE_NAME = ".previous-run"  # where --overwrite keeps the old run until the new one has a checkpoint


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
        raise RunError(f"no checkpoint at {path}; train first with "
                       f"glcf train ... --out {shlex.quote(str(path.parent))}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle, ...: all unusable
        raise RunError(f"cannot read checkpoint {path}: {load_failure(exc)}; retrain, or use a "
                       "checkpoint glcf train wrote") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise RunError(
            f"{path} is not a GLCF checkpoint of format {CHECKPOINT_FORMAT} "
            f"(found {ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__})"
        )
    return ckpt


def load_failure(exc: Exception) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in one line.

    PyTorch's own message for a refused file advises retrying with ``weights_only=False``, which
    would run code from the file: that advice is never passed on.
    """
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in text:
        return ("it holds Python objects that are not plain tensors and numbers, so it was refused "
                "unread (loading it could run code from the file)")
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        return "it is damaged or not a PyTorch file"
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def check_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Make sure ``out`` may be written as asked; changes nothing (see ``set_aside``)."""
    out = Path(out)
    if resume and overwrite:
        raise RunError("--resume and --overwrite contradict each other; pick one")
    if resume:
        if not (out / CHECKPOINT_NAME).is_file():
            raise RunError(f"cannot resume: {out / CHECKPOINT_NAME} does not exist")
        check_writable(out, "--out", folder=True)
        return
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file; give a folder for the run")
    if (out / ASIDE_NAME).exists():
        raise RunError(
            f"{out / ASIDE_NAME} holds a run set aside by an --overwrite that did not finish; "
            f"move its files back into {out} (or delete it) and run again"
        )
    existing = list(out.iterdir()) if out.is_dir() else []
    if existing and not overwrite:
        raise RunError(
            f"run folder {out} already holds {len(existing)} file(s); continue it with --resume, "
            "start it again with --overwrite, or choose another --out"
        )
    check_writable(out, "--out", folder=True)  # a read-only or full disk: before any training


@contextmanager
def set_aside(out: Path) -> Iterator[None]:
    """Move the run files of ``out`` aside while a new run starts there.

    The old files come back if the block raises before the new run wrote its first checkpoint;
    once it has, they are deleted. Nothing else in ``out`` is touched.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    old = [out / name for name in RUN_FILES if (out / name).exists()]
    aside = out / ASIDE_NAME
    if old:
        aside.mkdir()
        for path in old:
            path.rename(aside / path.name)
    try:
        yield
    except BaseException:
        if old and not (out / CHECKPOINT_NAME).exists():
            for path in old:
                (out / path.name).unlink(missing_ok=True)  # the new run's config / log
                (aside / path.name).rename(path)
            aside.rmdir()
        raise
    finally:
        if aside.is_dir() and (out / CHECKPOINT_NAME).exists():
            shutil.rmtree(aside)
