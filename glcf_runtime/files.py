"""Files written so that nothing a user has is lost: a temporary name beside the target, then a rename.

One helper for every file the toolkit writes (checkpoints, artifacts, engines, threshold.json,
reports) and one for the file hashes recorded in sidecars.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], Any], *, fsync: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it onto ``path``.

    A crash or an exception leaves the previous ``path`` untouched and no partial file behind.

    Args:
        path: the file to write; its folder must exist.
        write: writes the whole file at the path it is given.
        fsync: flush the file to the disk before the rename (engines, checkpoints).

    Returns:
        ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        if fsync:
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes | memoryview, *, fsync: bool = True) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), fsync=fsync)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON with a final newline, written atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
