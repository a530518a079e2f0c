"""Errors a user can cause. The CLI prints their message without a traceback."""

from __future__ import annotations

from pathlib import Path


class GlcfError(Exception):
    """Base class: the message says what went wrong, where, and how to fix it."""


class ImageReadError(GlcfError):
    """An image file that cannot be decoded."""

    def __init__(self, path: str | Path, reason: str, fix: str | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        fix = fix or "replace or remove the file, or point at a folder that holds only images"
        super().__init__(f"cannot read image {self.path}: {reason}; {fix}")


class DataError(GlcfError):
    """A data set folder that does not have the expected layout or content."""


class ConfigError(GlcfError):
    """An option or configuration value that cannot be used."""
