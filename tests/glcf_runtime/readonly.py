"""A read-only folder for write-failure tests that holds as root (where ``os.access`` says yes to
everything): a read-only tmpfs mount, or ``chattr +i``; the test skips with the reason otherwise."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def readonly_folder(path: Path) -> Iterator[Path]:
    """``path`` (created) made read-only for the duration; writing into it fails with EROFS/EPERM."""
    path.mkdir(parents=True, exist_ok=True)
    how = None
    if shutil.which("mount") and _run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)]):
        how = "mount"
    elif shutil.which("chattr") and _run(["chattr", "+i", str(path)]):
        how = "chattr"
    if how is None:
        pytest.skip("cannot make a read-only folder here (needs root for a read-only tmpfs or chattr +i)")
    try:
        (path / "probe").write_text("x")
    except OSError:
        pass
    else:
        (path / "probe").unlink()
        _undo(how, path)
        pytest.skip(f"{path} is still writable after {how} (a user without the capability)")
    try:
        yield path
    finally:
        _undo(how, path)


def _run(args: list[str]) -> bool:
    return subprocess.run(args, capture_output=True).returncode == 0


def _undo(how: str, path: Path) -> None:
    _run(["umount", str(path)] if how == "mount" else ["chattr", "-i", str(path)])
