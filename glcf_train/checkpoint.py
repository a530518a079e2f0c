"""Run folders and checkpoints: written atomically (temporary name, then rename)."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
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
        raise RunError(f"no checkpoint at {path}; train first with `glcf train ... --out {path.parent}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # a damaged file, not a class torch refused
            raise RunError(f"cannot read checkpoint {path}: it is damaged or not a PyTorch file; "
                           "retrain, or restore it from a backup") from None
        # the message advises weights_only=False, which would run code from the file: not passed on
        raise RunError(
            f"{path} holds Python objects that are not plain tensors and numbers, so it is "
            "refused unread (loading it could run code from the file); glcf train writes only "
            "plain data, so this file was not written by it: retrain, or use a checkpoint you made"
        ) from None
    except Exception as exc:  # truncated file, not a torch file, ...: all unusable
        raise RunError(f"cannot read checkpoint {path}: {_first_line(exc)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise RunError(
            f"{path} is not a GLCF checkpoint of format {CHECKPOINT_FORMAT} "
            f"(found {ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__})"
        )
    return ckpt


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Make sure ``out`` may be written as asked; changes nothing (see ``set_aside``)."""
    out = Path(out)
    if resume and overwrite:
        raise RunError("--resume and --overwrite contradict each other; pick one")
    if resume:
        if not (out / CHECKPOINT_NAME).is_file():
            raise RunError(f"cannot resume: {out / CHECKPOINT_NAME} does not exist")
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
